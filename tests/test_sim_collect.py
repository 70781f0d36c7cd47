"""`collect`: expert episodes into a LeRobot v3 dataset on disk that LeRobotDataset loads offline."""

import numpy as np
import pytest

from sim.aloha import robot
from sim.collect import collect, load
from training.datasets import schema
from training.datasets.writer import DatasetExistsError


def test_collect_writes_a_dataset_that_loads_back(tmp_path):
    out = tmp_path / "demos"
    report = collect("transfer_cube", episodes=2, out=out, cameras=("top",), image_size=(48, 64),
                     keep_failed=True, episode_length=25, progress=False)
    assert report.saved == 2 and report.frames == 50
    ds = load(out)
    assert ds.num_episodes == 2 and len(ds) == 50
    frame = ds[30]
    assert frame[schema.STATE].shape == (14,)
    assert frame[schema.ENV_STATE].shape == (7,)
    assert frame[schema.image_key("top")].shape == (3, 48, 64)  # decoded from the video
    assert frame["task"].startswith("Pick up the red cube")
    assert bool(frame[schema.INTERVENTION])
    assert ds.meta.features[schema.ACTION]["names"] == list(robot.JOINT_NAMES)
    # actions are the expert's and were executed: the next state moves toward them
    assert np.allclose(frame[schema.ACTION].numpy(), frame[schema.EXPERT_ACTION].numpy())


def test_failed_episodes_are_left_out_and_counted(tmp_path):
    # With 5 steps the expert cannot succeed: nothing can be saved, and collect says so.
    with pytest.raises(RuntimeError, match="the expert failed"):
        collect("transfer_cube", episodes=1, out=tmp_path / "d", cameras=(), episode_length=5, progress=False)


def test_an_existing_dataset_is_not_overwritten(tmp_path):
    out = tmp_path / "demos"
    collect("transfer_cube", episodes=1, out=out, cameras=(), keep_failed=True, episode_length=5, progress=False)
    with pytest.raises(DatasetExistsError, match="exists and is not empty"):
        collect("transfer_cube", episodes=1, out=out, cameras=(), keep_failed=True, episode_length=5,
                progress=False)
    assert load(out).num_episodes == 1
