"""One reader of a dataset's meta/info.json (training.datasets.lerobot_io.read_info) for everything that opens one:
a missing dataset is FileNotFoundError, a damaged info.json a ValueError naming the file, wherever it is read."""

from __future__ import annotations

import json

import pytest

from sim.collect import collect
from training.datasets.lerobot_io import open_dataset, read_info, robot_of_dataset
from training.il.vla_cli import _has_cameras


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("io") / "data"
    collect("transfer_cube", 1, out, keep_failed=True, cameras=("top",), image_size=(24, 32), episode_length=5,
            progress=False)
    return out


def test_a_recording_is_read_the_same_way_by_each_reader(recorded):
    info = read_info(recorded)
    assert info["total_episodes"] == 1
    robot = robot_of_dataset(recorded)
    assert robot["cameras"] == ["top"] and len(robot["joint_names"]) == 14 and robot["fps"] == info["fps"]
    assert _has_cameras(recorded) and open_dataset(recorded).meta.total_episodes == 1


def test_no_dataset_is_file_not_found_everywhere_and_no_cameras(tmp_path):
    for read in (read_info, robot_of_dataset, open_dataset):
        with pytest.raises(FileNotFoundError, match="is not a LeRobot dataset .no meta/info.json."):
            read(tmp_path / "nowhere")
    assert not _has_cameras(tmp_path / "nowhere") and not _has_cameras(None)


@pytest.mark.parametrize(("text", "says"), [("{garbage", "info.json is not valid JSON"),
                                            ('{"total_episodes": 1}', "info.json has no features")])
def test_a_damaged_info_json_is_a_value_error_naming_it_everywhere(recorded, tmp_path, text, says):
    """robot_of_dataset raised FileNotFoundError for it and read an info.json without features as a robot of no
    joints; _has_cameras raised the JSON parser's error (a traceback from `vla-il train`); open_dataset left it
    to lerobot."""
    root = tmp_path / "damaged"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(text)
    for read in (read_info, robot_of_dataset, open_dataset, _has_cameras):
        with pytest.raises(ValueError, match=says) as refused:
            read(root)
        assert str(root / "meta" / "info.json") in str(refused.value)


def test_a_feature_that_is_not_a_mapping_is_no_camera(recorded, tmp_path):
    root = tmp_path / "odd"
    (root / "meta").mkdir(parents=True)
    info = read_info(recorded)
    (root / "meta" / "info.json").write_text(json.dumps(info | {"features": {"x": 3, **info["features"]}}))
    assert _has_cameras(root)
    (root / "meta" / "info.json").write_text(json.dumps(info | {"features": {"x": 3}}))
    assert not _has_cameras(root)
