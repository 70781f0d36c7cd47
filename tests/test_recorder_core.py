"""The recorder's tick synchronisation, episodes and crash-safe store, without ROS (real lerobot files)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import resource
from pathlib import Path

import numpy as np
import pytest

from training.datasets.lerobot_io import open_dataset
from vla_il_core import schema
from vla_il_core.recorder_sync import SyncConfig, TickSynchronizer
from vla_il_nodes.recorder_session import DatasetSpec, RecorderError, RecordingSession
from vla_il_nodes.recorder_store import RecordStore, StoreError

NAMES = tuple(f"j{i}" for i in range(14))
DT = 0.02


def img(value: int, size=(48, 64)) -> np.ndarray:
    return np.full((*size, 3), value, np.uint8)


def step(sync: TickSynchronizer, k: int, t0: float = 100.0, cams=("top",), driver=None, policy=True, expert=True):
    """One lockstep step k: observation at s_k, proposals, then the command; returns the command stamp."""
    s = t0 + k * DT
    sync.on_state(s, np.full(14, k, np.float32))
    for cam in cams:
        sync.on_image(cam, s, img(k % 256))
    if expert:
        sync.on_expert_action(s, np.full(14, 1000 + k))  # the sim expert stamps with the state's stamp
    if policy:
        sync.on_policy_action(s + 0.002, np.full(14, 2000 + k))
    if driver:
        sync.on_driver(s + 0.001, driver)
    t_c = s + 0.004
    sync.on_command(t_c, t_c + 0.0005, np.full(14, 3000 + k))
    return t_c


def test_frames_take_the_observation_the_command_answered():
    sync = TickSynchronizer(SyncConfig(cameras=("top",)))
    for k in range(5):
        step(sync, k)
    # tick 4 waits: no later joint state yet and not settled
    res = sync.poll(now=100 + 4 * DT + 0.01)
    assert len(res.frames) == 4 and not res.drops
    for k, f in enumerate(res.frames):
        assert f[schema.STATE][0] == k and f[schema.image_key("top")][0, 0, 0] == k
        assert f[schema.ACTION][0] == 3000 + k
        assert f[schema.EXPERT_ACTION][0] == 1000 + k and f[schema.EXPERT_LABEL]
        assert f[schema.POLICY_ACTION][0] == 2000 + k and f[schema.POLICY_VALID]
    assert res.lags_s == pytest.approx([0.004] * 4)
    assert len(sync.poll(now=100 + 4 * DT + 0.1).frames) == 1  # settled


def test_arrival_order_does_not_matter():
    """The command may be processed before its image: the frame waits for it instead of using an old one."""
    sync = TickSynchronizer(SyncConfig(cameras=("top",)))
    step(sync, 0)
    s1 = 100 + DT
    sync.on_state(s1, np.full(14, 1))
    sync.on_expert_action(s1, np.full(14, 1001))
    sync.on_policy_action(s1 + 0.002, np.full(14, 2001))
    sync.on_command(s1 + 0.004, s1 + 0.005, np.zeros(14))
    sync.on_state(s1 + DT, np.full(14, 2))  # resolves tick 1's state, but its image is late
    res = sync.poll(now=s1 + 0.06)  # the proposals for state 1 are in
    assert len(res.frames) == 1 and not res.drops
    sync.on_image("top", s1, img(1))
    res = sync.poll(now=s1 + 0.07)
    assert len(res.frames) == 1 and res.frames[0][schema.image_key("top")][0, 0, 0] == 1


def test_a_slow_expert_label_is_waited_for_while_the_expert_keeps_speaking():
    sync = TickSynchronizer(SyncConfig(cameras=()))
    step(sync, 0, cams=())
    t_c = step(sync, 1, cams=(), expert=False)  # the expert's label of state 1 is still being computed
    sync.on_state(100 + 2 * DT, np.full(14, 2))  # the next state is already there
    assert not sync.poll(now=t_c + 0.01).frames  # the expert spoke 30 ms ago: its next label is awaited
    sync.on_expert_action(100 + DT, np.full(14, 1001), arrival=t_c + 0.03)
    frames = sync.poll(now=t_c + 0.09).frames  # (the expert then goes quiet: the last tick settles)
    assert [f[schema.EXPERT_ACTION][0] for f in frames] == [1000, 1001] and frames[1][schema.EXPERT_LABEL]


def test_an_episodes_first_frame_waits_for_the_label_of_an_expert_quiet_since_the_last_episode():
    sync = TickSynchronizer(SyncConfig(cameras=(), max_lag_s=0.25))
    step(sync, 0, cams=())
    assert len(sync.poll(now=100.5, flush=True).frames) == 1  # the last episode ends; a reset follows
    sync.clear_pending()  # a new episode, 10 s later: the expert's first label is slower than the command
    t_c = step(sync, 0, t0=110.0, cams=(), expert=False)
    sync.on_state(110 + DT, np.full(14, 1))
    assert not sync.poll(now=t_c + 0.1).frames  # quiet for 10 s, but it labelled before: awaited
    sync.on_expert_action(110.0, np.full(14, 1000), arrival=t_c + 0.12)
    frames = sync.poll(now=t_c + 0.2).frames
    assert len(frames) == 1 and frames[0][schema.EXPERT_LABEL] and frames[0][schema.EXPERT_ACTION][0] == 1000
    t_c = step(sync, 1, t0=110.0, cams=(), expert=False)  # the expert stops: waited for once, up to max_lag_s
    assert not sync.poll(now=t_c + 0.2).frames
    assert len(sync.poll(now=t_c + 0.26).frames) == 1
    t_c = step(sync, 2, t0=110.0, cams=(), expert=False)  # then a quiet stream is not waited for
    assert len(sync.poll(now=t_c + 0.15).frames) == 1  # quiet for settle_s since its last label (t+0.12)


def test_an_expert_label_later_than_settle_mid_episode_is_kept():
    """A loaded machine: the sim expert that labelled the last state answers this one 110 ms late."""
    sync = TickSynchronizer(SyncConfig(cameras=(), settle_s=0.05, max_lag_s=0.25))
    for k in range(3):
        step(sync, k, cams=())
    t_c = step(sync, 3, cams=(), expert=False)
    sync.on_state(100 + 4 * DT, np.full(14, 4))
    assert len(sync.poll(now=t_c + 0.1).frames) == 3  # quiet for longer than settle_s, but it labels every state
    sync.on_expert_action(100 + 3 * DT, np.full(14, 1003), arrival=t_c + 0.11)
    assert not sync.poll(now=t_c + 0.12).frames  # (a stream is read as final once quiet for settle_s)
    frames = sync.poll(now=t_c + 0.17).frames
    assert len(frames) == 1 and frames[0][schema.EXPERT_LABEL] and frames[0][schema.EXPERT_ACTION][0] == 1003


def test_a_command_answering_an_observation_from_before_the_start_is_no_frame():
    """A lockstep sim re-sends its held observation while it waits for the recorder; the controller's answer
    can reach the recorder just after the episode started, before the episode's first observation."""
    sync = TickSynchronizer(SyncConfig(cameras=("top",)))
    sync.on_state(100.0, np.full(14, -1, np.float32))  # the held observation, before the start
    sync.on_image("top", 100.0, img(255))
    sync.clear_pending()  # the episode starts
    sync.on_command(100.004, 100.5, np.full(14, 2999))  # the answer to it, received after the start
    assert sync.pending_in_episode() == 0
    for k in range(3):
        t_c = step(sync, k, t0=101.0)
    assert sync.pending_in_episode() == 3
    res = sync.poll(now=t_c + 0.1)
    assert [f[schema.STATE][0] for f in res.frames] == [0, 1, 2] and not res.drops
    assert [f[schema.ACTION][0] for f in res.frames] == [3000, 3001, 3002]
    assert not sync.pending


def test_a_lagging_camera_drops_frames_and_says_why():
    sync = TickSynchronizer(SyncConfig(cameras=("top",), max_lag_s=0.1))
    for k in range(3):
        step(sync, k, cams=())  # the camera publishes nothing in time
    res = sync.poll(now=100 + 2 * DT + 0.2)
    assert not res.frames and len(res.drops) == 3
    assert "no top image" in res.drops[0].reason


def test_an_image_stream_that_moved_past_a_tick_drops_it_at_once():
    sync = TickSynchronizer(SyncConfig(cameras=("top",), max_lag_s=10.0))
    step(sync, 0, cams=())  # tick 0's image was lost
    step(sync, 1)
    res = sync.poll(now=100 + DT + 0.1)  # tick 1 settles; tick 0 is dropped long before max_lag_s
    assert len(res.drops) == 1 and len(res.frames) == 1 and res.frames[0][schema.STATE][0] == 1


def test_intervention_flags_follow_every_switch():
    sync = TickSynchronizer(SyncConfig())
    drivers = ["policy", "expert", "policy", "expert", "expert", "policy"]
    for k, d in enumerate(drivers):
        step(sync, k, cams=(), driver=d)
    res = sync.poll(now=200.0, flush=True)
    assert [bool(f[schema.INTERVENTION]) for f in res.frames] == [d == "expert" for d in drivers]


def test_nan_stale_or_missing_proposals_are_flagged_and_replaced_by_the_executed_action():
    sync = TickSynchronizer(SyncConfig(action_fresh_s=0.05))
    sync.on_state(100.0, np.zeros(14))
    sync.on_policy_action(100.001, [math.nan] + [0.0] * 13)
    sync.on_expert_action(99.0, np.ones(14))  # a second old: not this tick's label
    sync.on_command(100.004, 100.005, np.full(14, 7.0))
    (frame,) = sync.poll(now=101.0, flush=True).frames
    assert not frame[schema.POLICY_VALID] and not frame[schema.EXPERT_LABEL]
    assert np.all(frame[schema.POLICY_ACTION] == 7.0) and np.all(frame[schema.EXPERT_ACTION] == 7.0)


def test_sim_success_is_the_state_after_the_step():
    sync = TickSynchronizer(SyncConfig(env_state=True))
    for k in range(3):
        s = 100 + k * DT
        sync.on_state(s, np.zeros(14))
        sync.on_env_state(s, np.full(7, k), success=k == 2)
        sync.on_command(s + 0.004, s + 0.005, np.zeros(14))
    frames = sync.poll(now=200.0, flush=True).frames
    assert [bool(f[schema.SUCCESS]) for f in frames] == [False, True, True]
    assert [f[schema.ENV_STATE][0] for f in frames] == [0, 1, 2]


def test_bad_sync_config_is_refused_by_name():
    with pytest.raises(ValueError, match="max_lag_s"):
        SyncConfig(settle_s=0.5, max_lag_s=0.1)
    with pytest.raises(ValueError, match="image_tolerance_s"):
        SyncConfig(image_tolerance_s=-1)


# ---------------------------------------------------------------------------- episodes on disk
SPEC = DatasetSpec(NAMES, cameras=("top",), image_size=(48, 64), env_state_dim=0, fps=50, image_writer_threads=1)
# 48x64 frames are stored as lossless images; a robot's 480x640 cameras go to video: both paths
VIDEO_SPEC = dataclasses.replace(SPEC, image_storage="video")


def record(session: RecordingSession, n: int, drivers=None, task="pick the cube"):
    sync = TickSynchronizer(SyncConfig(cameras=("top",)))
    session.start(task)
    for k in range(n):
        step(sync, k, driver=(drivers[k] if drivers else "policy"))
    assert session.add(sync.poll(now=1e9, flush=True)) is None


@pytest.mark.parametrize("spec", [SPEC, VIDEO_SPEC], ids=["image", "video"])
def test_saved_episodes_append_across_sessions_into_one_loadable_dataset(tmp_path, spec):
    s1 = RecordingSession(tmp_path / "rec", spec, min_free_mb=1)
    record(s1, 6, drivers=["policy", "expert"] * 3)
    saved = s1.stop(task_success=True)
    assert saved.outcome == "saved" and saved.frames == 6 and saved.intervention_frames == 3
    record(s1, 4)
    assert s1.discard().outcome == "discarded"
    s1.close()
    s2 = RecordingSession(tmp_path / "rec", spec, min_free_mb=1)  # a new session appends
    record(s2, 5, task="hand it over")
    assert s2.stop(task_success=False).index == 1
    ds = open_dataset(s2.dataset_path)
    assert ds.meta.total_episodes == 2 and ds.meta.total_frames == 11
    table = ds.hf_dataset.with_format("numpy")
    assert list(np.asarray(table[schema.INTERVENTION]).reshape(-1)[:6]) == [False, True] * 3
    assert np.asarray(table[schema.SUCCESS]).reshape(-1)[5]  # the operator's verdict on the last frame
    assert set(ds.meta.tasks.index) == {"pick the cube", "hand it over"}
    assert ds[7][schema.image_key("top")].shape == (3, 48, 64)
    assert ds.meta.features[schema.image_key("top")]["dtype"] == ("video" if spec is VIDEO_SPEC else "image")


@pytest.mark.parametrize("spec", [SPEC, VIDEO_SPEC], ids=["image", "video"])
def test_a_crash_mid_episode_loses_only_that_episode(tmp_path, spec):
    s1 = RecordingSession(tmp_path / "rec", spec, min_free_mb=1)
    record(s1, 5)
    s1.stop(task_success=True)
    record(s1, 7)  # never stopped: what a kill -9 leaves behind ...
    if s1.writer is not None:  # (images spooled: no writer until the episode is stopped)
        s1.writer.dataset.stop_image_writer()  # ... once its threads are gone too (they would write on)
    s1.lock.release()  # ... and the kernel has released its lock
    assert any((tmp_path / "rec/.staging").iterdir())
    s2 = RecordingSession(tmp_path / "rec", spec, min_free_mb=1)
    assert s2.cut_episodes == ["episode_000001"] and not any((tmp_path / "rec/.staging").iterdir())
    assert open_dataset(s2.dataset_path).meta.total_episodes == 1
    record(s2, 3)
    assert s2.stop(True).index == 1


def test_an_episode_and_the_union_reach_the_disk_before_they_are_renamed_into_place(tmp_path, monkeypatch):
    """lerobot writes without fsync: a power cut after the rename into the log must not leave an episode the
    log holds whose files never reached the disk. os.fsync and os.rename are watched (spies on the real
    calls): at each rename into episodes/ or merged/, every file under the source was fsynced before."""
    synced: set[str] = set()
    checked: list[str] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    def rename(src, dst):
        if Path(dst).parent.name in ("episodes", "merged"):
            files = [str(f) for f in Path(src).rglob("*") if f.is_file()]
            assert files and not set(files) - synced, f"not fsynced before {dst}: {set(files) - synced}"
            assert str(src) in synced  # the directory entries too
            checked.append(Path(dst).parent.name)
        return real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    session = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=1)
    record(session, 4)
    assert session.stop(task_success=True).outcome == "saved"
    session.close()
    assert checked == ["episodes", "merged"]


def test_a_merge_cut_short_is_redone_from_the_log(tmp_path):
    s1 = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=1, merge=False)
    for n in (3, 4):
        record(s1, n)
        s1.stop(True)
    s1.close()
    assert not (tmp_path / "rec/dataset").exists()
    s2 = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=1)
    s2.prepare()  # merges what the log holds
    assert open_dataset(s2.dataset_path).meta.total_frames == 7
    assert os.readlink(tmp_path / "rec/dataset") == "merged/000002"


def test_a_different_schema_is_refused_before_recording(tmp_path):
    s1 = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=1)
    record(s1, 2)
    s1.stop(True)
    s1.close()
    other = DatasetSpec(NAMES, cameras=("top", "left_wrist"), image_size=(48, 64))
    with pytest.raises(StoreError, match="another schema"):
        RecordingSession(tmp_path / "rec", other, min_free_mb=1)


def test_full_disk_refuses_to_start_and_ends_a_running_episode(tmp_path):
    s1 = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=1)
    record(s1, 3)
    s1.stop(True)
    s1.min_free_mb = 1e12
    with pytest.raises(RecorderError, match="disk almost full"):
        s1.start("task")
    s1.min_free_mb = 1
    s1.start("task")
    s1.min_free_mb = 1e12
    sync = TickSynchronizer(SyncConfig(cameras=("top",)))
    for k in range(60):
        step(sync, k)
        failed = s1.add(sync.poll(now=100 + k * DT + 0.01))
        if failed is not None:
            break
    assert failed is not None and failed.outcome == "failed" and "disk almost full" in failed.message
    assert not s1.recording and open_dataset(s1.dataset_path).meta.total_episodes == 1


def test_a_new_min_free_mb_applies_at_once_to_the_running_episode(tmp_path):
    s1 = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=0)
    record(s1, 3)
    s1.stop(True)
    record(s1, 3)
    with pytest.raises(ValueError, match="min_free_mb: must be >= 0"):
        s1.set_min_free_mb(-1.0)
    assert s1.set_min_free_mb(1.0) is None and s1.recording  # the disk has that much: recording goes on
    failed = s1.set_min_free_mb(1e12)  # not between frames, not 50 frames later: now
    assert failed is not None and failed.outcome == "failed" and "min_free_mb is 1e+12" in failed.message
    assert not s1.recording and not any((tmp_path / "rec/.staging").iterdir())
    with pytest.raises(RecorderError, match="disk almost full"):
        s1.start("task")
    assert open_dataset(s1.dataset_path).meta.total_episodes == 1


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """RLIMIT_FSIZE for this process and those it starts: writes past `nbytes` into a file fail (EFBIG;
    Python ignores SIGXFSZ). A full disk's failing write without root or a mount; restored on exit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def largest_file(root) -> int:
    return max(f.stat().st_size for f in root.rglob("*") if f.is_file())


def test_a_union_that_cannot_be_written_keeps_the_saved_episode_and_is_redone_at_the_next_save(tmp_path):
    """The disk fills up while the union is rebuilt, after the episode reached the log: the episode is
    saved (it is on disk, and the next merge takes it), the old union stays loadable, the half-written
    new one is removed. The union's files are larger than one episode's: a file size limit between the
    two fails exactly the merge's writes."""
    s1 = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=0)
    for _ in range(4):
        record(s1, 3)
        s1.stop(True)
    limit = (largest_file(tmp_path / "rec/episodes/episode_000000") + largest_file(s1.dataset_path.resolve())) // 2
    record(s1, 3)
    with file_size_limit(limit):
        saved = s1.stop(True)
    assert saved.outcome == "saved" and "was not updated" in saved.message and "File too large" in saved.message
    assert len(s1.store.episodes()) == 5 and not any((tmp_path / "rec/.staging").iterdir())
    assert open_dataset(s1.dataset_path).meta.total_episodes == 4
    record(s1, 2)
    assert s1.stop(True).message == ""
    assert open_dataset(s1.dataset_path).meta.total_episodes == 6


def test_stop_without_an_episode_and_empty_task_are_clear_errors(tmp_path):
    s1 = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=1)
    with pytest.raises(RecorderError, match="no episode"):
        s1.stop(True)
    with pytest.raises(RecorderError, match="no task instruction"):
        s1.start("")
    assert RecordStore(tmp_path / "rec").next_index() == 0


@pytest.mark.parametrize("spec", [SPEC, VIDEO_SPEC], ids=["image", "video"])
def test_the_next_episode_records_while_the_last_one_encodes_and_they_reach_the_log_in_order(tmp_path, spec):
    heard = []
    s1 = RecordingSession(tmp_path / "rec", spec, min_free_mb=1, on_encoded=heard.append)
    s1._encode_lock.acquire()  # the encoder is busy (as with four 480x640 cameras): nothing is encoded yet
    try:
        record(s1, 5)
        first = s1.stop(task_success=True, background=True)
        assert first.outcome == "encoding" and first.frames == 5 and s1.encoding == [0]
        record(s1, 3)  # the next episode starts at once, with the next index
        assert s1.episode.index == 1
        second = s1.stop(task_success=False, background=True)
        assert second.outcome == "encoding" and s1.encoding == [0, 1] and s1.store.episodes() == []
        record(s1, 2)
        assert s1.discard().outcome == "discarded"  # a discard does not wait for anyone
    finally:
        s1._encode_lock.release()
    assert s1.wait_encoded(60)
    assert [(h.index, h.outcome, h.frames) for h in heard] == [(0, "saved", 5), (1, "saved", 3)]
    assert heard[0].success and not heard[1].success and heard[0].save_s > 0
    ds = open_dataset(s1.dataset_path)
    assert ds.meta.total_episodes == 2 and ds.meta.total_frames == 8
    assert list(np.asarray(ds.hf_dataset.with_format("numpy")[schema.SUCCESS]).reshape(-1)) == [0, 0, 0, 0, 1, 0, 0, 0]
    record(s1, 2)
    assert s1.episode.index == 2
    assert s1.stop(True).outcome == "saved"  # a waiting stop comes after what was queued
    s1.close()
    assert not any((tmp_path / "rec/.staging").iterdir())


def test_an_episode_stopped_but_not_encoded_when_the_recorder_died_is_encoded_by_the_next_start(tmp_path):
    s1 = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=1)
    record(s1, 4)
    s1.stop(True)
    s1._encode_lock.acquire()  # the encoder never gets to it: what a kill -9 during the encoding leaves
    record(s1, 6, drivers=["expert"] * 6)
    assert s1.stop(task_success=True, background=True).outcome == "encoding"
    record(s1, 7)  # and an episode in progress: that one is lost, as before
    s1.lock.release()  # the kernel releases a dead process's lock
    heard = []
    s2 = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=1, on_encoded=heard.append)
    assert s2.cut_episodes == ["episode_000002"]
    assert [(r.index, r.frames) for r in s2.resumed] == [(1, 6)]
    s2.prepare()
    assert s2.wait_encoded(60) and [(h.index, h.outcome) for h in heard] == [(1, "saved")]
    ds = open_dataset(s2.dataset_path)
    assert ds.meta.total_episodes == 2 and ds.meta.total_frames == 10
    table = ds.hf_dataset.with_format("numpy")
    assert np.asarray(table[schema.INTERVENTION]).reshape(-1).tolist() == [False] * 4 + [True] * 6
    assert np.asarray(table[schema.SUCCESS]).reshape(-1)[-1]
    record(s2, 2)
    assert s2.episode.index == 2 and s2.stop(True).outcome == "saved"
    s1._closing.set()  # the "dead" session's encoder wakes to find it is shutting down: it writes nothing
    s1._encode_lock.release()
    s1._encoder.join(10)
    assert open_dataset(s2.dataset_path).meta.total_episodes == 3
    assert not any((tmp_path / "rec/.staging").iterdir())


def test_a_late_message_into_a_full_buffer_keeps_the_newest_in_order():
    """Found under the real `ros2 launch` in lockstep: a policy action arriving out of order once the buffer
    was full made the recorder die (a full deque cannot insert). The oldest goes instead; a message older than
    everything kept is the one dropped."""
    from vla_il_core.recorder_sync import StampedBuffer

    buf = StampedBuffer(4)
    for t in (1.0, 2.0, 3.0, 4.0):
        buf.add(t, f"v{t}")
    buf.add(2.5, "late")
    assert list(buf.stamps) == [2.0, 2.5, 3.0, 4.0] and list(buf.values) == ["v2.0", "late", "v3.0", "v4.0"]
    buf.add(0.5, "too old")
    assert list(buf.stamps) == [2.0, 2.5, 3.0, 4.0]
    buf.add(5.0, "v5")
    assert list(buf.stamps) == [2.5, 3.0, 4.0, 5.0] and buf.at_or_before(3.5) == (3.0, "v3.0")
