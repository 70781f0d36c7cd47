"""`collect`: expert episodes into a LeRobot v3 dataset on disk that LeRobotDataset loads offline."""

import numpy as np
import pytest

from sim.aloha import robot
from sim.collect import collect, collect_once, load, recorded_episodes
from training.datasets.writer import DatasetExistsError
from vla_il_core import schema


@pytest.mark.parametrize("storage", ["auto", "video"])
def test_collect_writes_a_dataset_that_loads_back(tmp_path, storage):
    out = tmp_path / "demos"
    report = collect("transfer_cube", episodes=2, out=out, cameras=("top",), image_size=(48, 64),
                     keep_failed=True, episode_length=25, progress=False, image_storage=storage)
    assert report.saved == 2 and report.frames == 50
    ds = load(out)
    assert ds.meta.features[schema.image_key("top")]["dtype"] == ("image" if storage == "auto" else "video")
    assert ds.num_episodes == 2 and len(ds) == 50
    frame = ds[30]
    assert frame[schema.STATE].shape == (14,)
    assert frame[schema.ENV_STATE].shape == (7,)
    assert frame[schema.image_key("top")].shape == (3, 48, 64)
    assert frame["task"].startswith("Pick up the red cube")
    assert bool(frame[schema.INTERVENTION])
    assert ds.meta.features[schema.ACTION]["names"] == list(robot.JOINT_NAMES)
    # actions are the expert's and were executed: the next state moves toward them
    assert np.allclose(frame[schema.ACTION].numpy(), frame[schema.EXPERT_ACTION].numpy())


def test_failed_episodes_are_left_out_and_counted(tmp_path):
    # With 5 steps the expert cannot succeed: nothing can be saved, and collect says so.
    with pytest.raises(RuntimeError, match="the expert failed"):
        collect("transfer_cube", episodes=1, out=tmp_path / "d", cameras=(), episode_length=5, progress=False)


def test_the_report_says_whether_the_failures_were_kept(tmp_path):
    kept = collect("transfer_cube", episodes=1, out=tmp_path / "k", cameras=(), keep_failed=True, episode_length=5,
                   progress=False)
    assert kept.failed == 1 and "1 expert failures kept" in kept.line(), kept.line()
    # what collect reports for a recording whose failed episodes were dropped (the report itself: a failure
    # that is not kept needs an expert that fails sometimes, as on insertion)
    dropped = type(kept)(out=tmp_path / "d", saved=2, failed=1, frames=50, seeds_failed=[3])
    assert "1 expert failures left out (seeds [3])" in dropped.line(), dropped.line()


def test_an_existing_dataset_is_not_overwritten(tmp_path):
    out = tmp_path / "demos"
    collect("transfer_cube", episodes=1, out=out, cameras=(), keep_failed=True, episode_length=5, progress=False)
    with pytest.raises(DatasetExistsError, match="exists and is not empty"):
        collect("transfer_cube", episodes=1, out=out, cameras=(), keep_failed=True, episode_length=5,
                progress=False)
    assert load(out).num_episodes == 1


def test_small_frames_are_stored_exactly_as_the_policy_will_see_them_live(tmp_path):
    """At 48x64 the cube is 2x2 pixels: lerobot's AV1 (4:2:0, crf 30) turned it into a dim blot, so
    small frames are stored as lossless images. What comes back is what the camera gave."""
    from sim.aloha.env import AlohaEnv

    out = tmp_path / "demos"
    collect("transfer_cube", episodes=1, out=out, cameras=("top",), image_size=(48, 64), keep_failed=True,
            episode_length=3, progress=False, seed=7)
    stored = load(out)[0][schema.image_key("top")].numpy()
    env = AlohaEnv("transfer_cube", cameras=("top",), image_size=(48, 64))
    try:
        obs, _ = env.reset(seed=7)
    finally:
        env.close()
    live = obs["pixels"]["top"].transpose(2, 0, 1) / 255.0
    assert np.abs(stored - live).max() < 1e-6


def test_image_storage_follows_the_frame_size_unless_asked():
    assert schema.image_dtype((48, 64)) == "image"
    assert schema.image_dtype((128, 160)) == "image"
    assert schema.image_dtype((480, 640)) == "video"
    assert schema.image_dtype((48, 64), "video") == "video"
    assert schema.image_dtype((480, 640), "image") == "image"
    feats = schema.features(robot.JOINT_NAMES, ("top", "wrist"), (480, 640))
    assert {feats[schema.image_key(c)]["dtype"] for c in ("top", "wrist")} == {"video"}
    with pytest.raises(ValueError, match="image storage must be one of"):
        schema.image_dtype((48, 64), "png")


def test_noise_injected_demos_keep_the_expert_label_beside_what_was_executed(tmp_path):
    """DART-style: the arms execute the label plus a wandering offset, inside the joint limits; the
    grippers are not noised; `expert_action` is the expert's label for the state the noise led to."""
    out = tmp_path / "noisy"
    collect("transfer_cube", episodes=1, out=out, cameras=(), keep_failed=True, episode_length=40, progress=False,
            action_noise=0.01)
    table = load(out).hf_dataset.with_format("numpy")
    executed, label = np.stack(table[schema.ACTION]), np.stack(table[schema.EXPERT_ACTION])
    grippers = list(robot.GRIPPER_INDICES)
    arms = [i for i in range(14) if i not in grippers]
    offset = executed[:, arms] - label[:, arms]
    assert np.abs(offset).max() > 0.01 and np.abs(offset).mean() < 0.1
    assert np.array_equal(executed[:, grippers], label[:, grippers])
    assert (executed >= robot.JOINT_LOWER - 1e-6).all() and (executed <= robot.JOINT_UPPER + 1e-6).all()
    with pytest.raises(ValueError, match="action_noise must be >= 0"):
        collect("transfer_cube", episodes=1, out=tmp_path / "bad", cameras=(), action_noise=-1.0, progress=False)
    assert not (tmp_path / "bad").exists()  # refused before anything was created


def test_demos_recorded_through_the_mux_are_the_commands_the_graph_would_record(tmp_path):
    """--through-mux: the executed commands (action) obey the mux's step limit from the first one on, as the
    graph's recorder would record them; expert_action keeps the expert's label, whose gripper jumps."""
    from sim.evaluation import default_mux_config
    from training.datasets.lerobot_io import read_recording
    from vla_il.cli import main

    out = tmp_path / "muxed"
    collect("transfer_cube", episodes=1, out=out, cameras=(), keep_failed=True, episode_length=120, progress=False,
            through_mux=True)
    table = load(out).hf_dataset.with_format("numpy")
    executed, label = np.stack(table[schema.ACTION]), np.stack(table[schema.EXPERT_ACTION])
    state = np.stack(table[schema.STATE])
    step = np.asarray(default_mux_config().max_step)
    assert (np.abs(np.diff(executed, axis=0)) <= step + 1e-6).all()
    assert (np.abs(executed[0] - state[0]) <= step + 1e-6).all()  # the first command: from the measured pose
    g = list(robot.GRIPPER_INDICES)
    assert (np.abs(np.diff(label[:, g], axis=0)) > step[g] + 1e-6).any()  # the label jumps; the command did not
    assert not np.allclose(executed[:, g], label[:, g])
    plain = tmp_path / "plain"
    collect("transfer_cube", episodes=1, out=plain, cameras=(), keep_failed=True, episode_length=120, progress=False)
    plain_table = load(plain).hf_dataset.with_format("numpy")
    assert np.array_equal(np.stack(plain_table[schema.ACTION]), np.stack(plain_table[schema.EXPERT_ACTION]))
    # each says how it was recorded (meta/recording.json), which info.json does not
    assert read_recording(out)["through_mux"] is True and read_recording(out)["mux_profile"] == "aloha_sim"
    assert read_recording(plain)["through_mux"] is False and read_recording(plain)["first_seed"] == 0
    (plain / "meta" / "recording.json").unlink()
    assert read_recording(plain) == {}  # recorded otherwise (the graph's recorder, lerobot): nothing said
    (out / "meta" / "recording.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"recording.json is not valid JSON"):
        read_recording(out)

    assert main(["collect", "--episodes", "1", "--cameras", "--keep-failed", "--through-mux",
                 "--out", str(tmp_path / "cli")]) == 0
    cli = load(tmp_path / "cli").hf_dataset.with_format("numpy")
    assert (np.abs(np.diff(np.stack(cli[schema.ACTION]), axis=0)) <= step + 1e-6).all()


def test_collect_with_workers_writes_the_dataset_one_process_writes(tmp_path):
    """Episodes played in two spawned processes and written here in seed order: the same dataset, episode
    for episode and frame for frame (images included), as one process playing them one after the other."""
    kwargs = dict(task="transfer_cube", episodes=3, cameras=("top",), image_size=(48, 64), keep_failed=True,
                  episode_length=20, progress=False, seed=11, action_noise=0.02)
    one = collect(out=tmp_path / "one", **kwargs)
    two = collect(out=tmp_path / "two", workers=2, **kwargs)
    assert (one.saved, one.frames, one.seeds_failed) == (3, 60, [11, 12, 13])
    assert (two.saved, two.frames, two.seeds_failed) == (3, 60, [11, 12, 13])
    a, b = load(tmp_path / "one"), load(tmp_path / "two")
    assert a.num_episodes == b.num_episodes == 3
    for key in (schema.STATE, schema.ENV_STATE, schema.ACTION, schema.EXPERT_ACTION, "episode_index", "frame_index"):
        assert np.array_equal(np.stack(a.hf_dataset.with_format("numpy")[key]),
                              np.stack(b.hf_dataset.with_format("numpy")[key])), key
    for i in (0, 19, 20, 45, 59):
        assert np.array_equal(a[i][schema.image_key("top")].numpy(), b[i][schema.image_key("top")].numpy()), i
    # the episodes differ from one another (the comparison above is not of three copies of one episode)
    states = np.stack(a.hf_dataset.with_format("numpy")[schema.ENV_STATE])
    assert not np.allclose(states[0], states[20])


def test_collect_with_workers_stops_on_an_expert_that_always_fails(tmp_path):
    with pytest.raises(RuntimeError, match="the expert failed 14 of 14 episodes"):
        collect("transfer_cube", episodes=1, out=tmp_path / "d", cameras=(), episode_length=5, progress=False,
                workers=2)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        collect("transfer_cube", episodes=1, out=tmp_path / "w", cameras=(), workers=0, progress=False)


def test_collect_once_never_takes_a_recording_stopped_part_way_for_a_finished_one(tmp_path, capsys):
    """What the benchmarks resume from: lerobot finalises a dataset whose recording stopped part way with the
    episodes it had, so a finished recording is one that reached its name whole."""
    out = tmp_path / "run5" / "data"
    tiny = dict(cameras=(), episode_length=5, progress=False)
    # a recording that stops part way (here: the expert cannot succeed in 5 steps and collect gives up)
    with pytest.raises(RuntimeError, match="the expert failed"):
        collect_once("transfer_cube", 2, out, **tiny)
    assert not out.exists() and recorded_episodes(out) is None
    assert (tmp_path / "run5" / "data.partial").exists()
    # the next call records it again, whole, under its name
    capsys.readouterr()
    report = collect_once("transfer_cube", 2, out, keep_failed=True, announce="recording run 5", **tiny)
    assert capsys.readouterr().out.splitlines()[:1] == ["recording run 5"]  # said only when it records
    assert report.saved == 2 and report.out == out and recorded_episodes(out) == 2
    assert not (tmp_path / "run5" / "data.partial").exists()
    assert load(out).num_episodes == 2
    # a finished recording is kept as it is
    info = out / "meta" / "info.json"
    written = info.stat().st_mtime_ns
    assert collect_once("transfer_cube", 2, out, keep_failed=True, announce="recording run 5", **tiny) is None
    assert info.stat().st_mtime_ns == written and "recording run 5" not in capsys.readouterr().out


def test_collect_once_refuses_a_recording_of_another_size_and_keeps_it(tmp_path):
    out = tmp_path / "data"
    collect("transfer_cube", 1, out, keep_failed=True, cameras=(), episode_length=5, progress=False)
    with pytest.raises(ValueError, match=r"holds 1 episodes, this run records 2: remove it to record again"):
        collect_once("transfer_cube", 2, out, keep_failed=True, cameras=(), episode_length=5, progress=False)
    assert load(out).num_episodes == 1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no dataset, this run records 2"):
        collect_once("transfer_cube", 2, tmp_path / "other", cameras=(), episode_length=5, progress=False)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    (out / "meta" / "info.json").write_text("{not json")
    with pytest.raises(ValueError, match="info.json is not valid JSON .*: remove .* to record again") as refused:
        recorded_episodes(out)
    assert str(refused.value).count("info.json") == 1  # named once (it was twice)
    (out / "meta" / "info.json").write_text('{"features": {}, "total_episodes": "many"}')
    with pytest.raises(ValueError, match="info.json holds no number of episodes .*: remove .* to record again"):
        recorded_episodes(out)
    (out / "meta" / "info.json").write_text('{"total_episodes": 1}')
    with pytest.raises(ValueError, match="has no features: not a LeRobot dataset's info.json"):
        recorded_episodes(out)
