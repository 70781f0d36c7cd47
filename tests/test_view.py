"""`vla-il view`: a recorded dataset's episodes in rerun (read back from the saved .rrd with rerun's own
dataframe API), and the per-episode summary with its plot."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_hg_dagger import _write_recording
from tests.vla_fixtures import aloha_dataset
from training.datasets.frame_cache import read_table
from vla_il.cli import main
from vla_il.view import summarise
from vla_il_core import schema

FLAGS = [[False, False, True, True, True, False, True, True], [False, True, True, False, False, False, False, False]]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return _write_recording(tmp_path_factory.mktemp("view") / "dataset", FLAGS)


def read_rrd(path, episode):
    import rerun.dataframe as rdf

    table = rdf.load_recording(str(path)).view(index="frame", contents=f"/episode_{episode}/**").select().read_all()
    return {name: table.column(name).to_pylist() for name in table.column_names}


def test_summary_counts_takeovers_expert_share_and_success(recording, tmp_path, capsys):
    rows = summarise(recording)
    assert [(r.episode, r.frames, r.takeovers, r.success) for r in rows] == [(0, 8, 2, True), (1, 8, 1, False)]
    assert [r.expert_share for r in rows] == [5 / 8, 2 / 8]
    assert main(["view", str(recording), "--summary", "--plot", str(tmp_path / "t.png")]) == 0
    out = capsys.readouterr().out
    assert "2 episodes, 16 frames, 1.50 takeovers per episode, expert share 44%, success 50%" in out
    assert (tmp_path / "t.png").stat().st_size > 5000


def test_the_driver_band_and_the_actions_are_the_recordings(recording, tmp_path):
    assert main(["view", str(recording), "--episode", "0", "--save", str(tmp_path / "ep.rrd")]) == 0
    got = read_rrd(tmp_path / "ep.rrd", 0)
    flags = np.array(FLAGS[0])
    assert got["frame"] == list(range(8))
    expert = np.array([v[0] if v else np.nan for v in got["/episode_0/driver/expert:Scalars:scalars"]], float)
    assert np.array_equal(expert == 1.0, flags) and np.isnan(expert[~flags]).all()
    table = read_table(recording)
    rows = table["episode_index"] == 0
    np.testing.assert_allclose(got["/episode_0/state:Scalars:scalars"], table[schema.STATE][rows], rtol=1e-6)
    np.testing.assert_allclose(got["/episode_0/expert_action:Scalars:scalars"], table[schema.EXPERT_ACTION][rows],
                               rtol=1e-6)
    outcome = [t for t in got["/episode_0/outcome:TextLog:text"] if t]
    assert outcome == [["episode 0: success, 8 frames, 2 takeovers, expert drove 62% (transfer the cube)"]]
    assert "/episode_1/state:Scalars:scalars" not in read_rrd(tmp_path / "ep.rrd", 1)  # only the episode asked for


def test_every_camera_frame_of_a_recorded_episode_is_shown(tmp_path):
    data = aloha_dataset(tmp_path, episodes=2, episode_length=20)
    assert main(["view", str(data), "--save", str(tmp_path / "all.rrd")]) == 0
    for episode in (0, 1):
        got = read_rrd(tmp_path / "all.rrd", episode)
        images = [b for b in got[f"/episode_{episode}/cameras/top:EncodedImage:blob"] if b]
        assert len(images) == len(got["frame"]) == 20
        assert len(got[f"/episode_{episode}/state:Scalars:scalars"][0]) == 14


def test_a_missing_dataset_or_episode_is_one_line(recording, tmp_path, capsys):
    assert main(["view", str(tmp_path / "nowhere"), "--save", str(tmp_path / "x.rrd")]) == 2
    assert main(["view", str(recording), "--episode", "5", "--save", str(tmp_path / "x.rrd")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"vla-il view: error: {tmp_path / 'nowhere'} is not a LeRobot dataset (no meta/info.json)",
                   f"vla-il view: error: {recording} has no episode 5 (it has episodes 0..1)"]
