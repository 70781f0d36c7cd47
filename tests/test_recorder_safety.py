"""The recorder's data safety as a real process over DDS: one recorder per record_dir, kill -9 and
restart, a full disk mid-episode, parameters that mean what they say, and a clean exit on a signal."""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter

from tests.ros_harness import wait_until
from tests.test_recorder_core import file_size_limit
from tests.test_recorder_node import FakeRobot, start, start_recorder, stop
from training.datasets.lerobot_io import open_dataset

pytestmark = pytest.mark.ros


def ready_rig(probe, node_process, root, **params):
    """A recorder on `root`, ready to record, and the fake robot feeding it."""
    rec = start_recorder(node_process, root, **params)
    bot = FakeRobot(probe, size=(params.get("image_height", 48), params.get("image_width", 64)))
    assert rec.wait_for_log("ready:", timeout=180), rec.log()  # lerobot (torch) takes a while to import
    bot.wait_for_recorder()
    return rec, bot


def exit_code_within(rec, seconds: float) -> int | None:
    try:
        return rec.proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def test_a_second_recorder_on_the_same_record_dir_refuses_to_start_and_the_first_records_on(
    probe, node_process, tmp_path
):
    root = tmp_path / "rec"
    rec, bot = ready_rig(probe, node_process, root)
    assert start(probe).success
    for _ in range(5):
        bot.step()
    other = start_recorder(node_process, root)
    assert wait_until(lambda: other.proc.poll() is not None, 30), "a second recorder started on the same record_dir"
    assert other.proc.returncode != 0
    log = other.log()
    refusal = [line for line in log.splitlines() if "refusing to start" in line]
    assert len(refusal) == 1 and "Traceback" not in log, log
    assert f"pid {rec.proc.pid}" in refusal[0] and socket.gethostname() in refusal[0], refusal[0]
    for _ in range(3):
        bot.step()
    done = stop(probe)  # the first recorder's episode was not touched by the second one's start
    assert done.success and done.num_frames == 8 and done.episode_index == 0, done.message
    assert open_dataset(root / "dataset").meta.total_episodes == 1


def test_kill_9_mid_episode_loses_only_that_episode_and_the_restart_answers_at_once(probe, node_process, tmp_path):
    root = tmp_path / "rec"
    rec, bot = ready_rig(probe, node_process, root)
    assert start(probe).success
    for _ in range(8):
        bot.step()
    assert stop(probe).success
    assert start(probe).success
    for _ in range(6):
        bot.step()
    before = bot.subscriber_gids()
    rec.proc.kill()  # SIGKILL mid-episode: no clean-up runs
    rec.proc.wait(timeout=5)
    assert open_dataset(root / "dataset").meta.total_frames == 8  # the saved episode loads with the recorder dead

    rec2 = start_recorder(node_process, root)
    assert rec2.wait_for_log("ready:", timeout=180), rec2.log()
    # a client that waits for the service, as a teleop does, gets an answer from the new process (the
    # killed process's service lingers in discovery for a while and must not swallow the request)
    assert start(probe).episode_index == 1  # the cut episode's index is reused: it never existed
    cut = [line for line in rec2.log().splitlines() if "episode_000001" in line]
    assert len(cut) == 1 and "discarded" in cut[0], rec2.log()
    bot.wait_for_recorder(not_these=before)  # the new process's subscriptions, not the killed one's
    for _ in range(4):
        bot.step()
    assert stop(probe).success
    ds = open_dataset(root / "dataset")
    assert ds.meta.total_episodes == 2 and ds.meta.total_frames == 12


def test_kill_9_while_an_episode_encodes_loses_nothing_the_restart_encodes_it(probe, node_process, tmp_path):
    """Stopped is saved: a recorder killed while it encodes a stopped episode (full-size frames, which take
    seconds to encode, so the kill right after the answer lands mid-encoding) left its raw frames complete in
    staging, and the next start encodes them."""
    root = tmp_path / "rec"
    size = {"image_height": 480, "image_width": 640}
    rec, bot = ready_rig(probe, node_process, root, **size)
    assert start(probe).success
    for _ in range(20):
        bot.step(driver="expert")
    answer = stop(probe, wait_saved=False)
    rec.proc.kill()
    rec.proc.wait(timeout=5)
    assert answer.success and "encoding in the background" in answer.message, answer.message
    assert not (root / "dataset").exists()  # it was not encoded yet
    before = bot.subscriber_gids()
    bot.events.clear()
    rec2 = start_recorder(node_process, root, **size)
    assert rec2.wait_for_log("ready:", timeout=180), rec2.log()
    assert "episode 0 was stopped but not yet encoded" in rec2.log(), rec2.log()
    assert wait_until(lambda: any(e.event == "saved" for e in bot.events), 120), rec2.log()
    saved = next(e for e in bot.events if e.event == "saved")
    assert saved.episode_index == 0 and saved.num_frames == 20 and saved.intervention_frames == 20, saved.message
    ds = open_dataset(root / "dataset")
    assert ds.meta.total_episodes == 1 and ds.meta.total_frames == 20
    bot.wait_for_recorder(not_these=before)
    assert start(probe).episode_index == 1
    assert not [p for p in (root / ".staging").iterdir() if "episode_000000" in p.name]


def test_a_full_disk_mid_episode_fails_that_episode_and_keeps_the_earlier_ones(probe, node_process, tmp_path):
    """The disk fills up while an episode's images are spooled: the write fails for real, in the recorder's
    own code path. Made by RLIMIT_FSIZE on the recorder's process (writes past 2 MB into a file fail with
    EFBIG; Python ignores SIGXFSZ): it needs no root and no mount, unlike a small tmpfs, and the spool is
    the file that grows, as on a real disk. min_free_mb 0 takes the early rule out of the way."""
    root = tmp_path / "rec"
    size = {"image_height": 120, "image_width": 160}  # 57.6 kB a frame: the 2 MB spool fills in ~35 frames
    with file_size_limit(2 * 2**20):
        rec, bot = ready_rig(probe, node_process, root, min_free_mb=0.0, **size)
    assert start(probe).success
    for _ in range(3):
        bot.step()
    assert stop(probe).success
    assert start(probe).success
    for _ in range(80):
        bot.step()
        if any(e.event == "failed" for e in bot.events):
            break
    assert wait_until(lambda: any(e.event == "failed" for e in bot.events), 10), rec.log()
    failed = next(e for e in bot.events if e.event == "failed")
    assert "File too large" in failed.message and failed.episode_index == 1, failed.message
    assert sum("episode 1 failed" in line for line in rec.log().splitlines()) == 1, rec.log()
    assert rec.proc.poll() is None, rec.log()  # the recorder lives on
    assert not stop(probe).success  # the failed episode is over
    ds = open_dataset(root / "dataset")
    assert ds.meta.total_episodes == 1 and ds.meta.total_frames == 3
    assert not any((root / ".staging").iterdir())  # the failed episode's files are gone
    assert start(probe).episode_index == 1  # and the next episode can start


def set_parameter(probe, name: str, value):
    req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    return probe.call(SetParameters, "dagger_recorder/set_parameters", req).results[0]


def test_min_free_mb_is_live_and_every_other_parameter_is_read_only(probe, node_process, tmp_path):
    root = tmp_path / "rec"
    rec, bot = ready_rig(probe, node_process, root)
    for name, value in (("fps", 30), ("record_dir", str(tmp_path / "other")), ("max_lag_s", 1.0)):
        refused = set_parameter(probe, name, value)
        assert not refused.successful and "read-only" in refused.reason, (name, refused.reason)
    negative = set_parameter(probe, "min_free_mb", -1.0)
    assert not negative.successful and "min_free_mb" in negative.reason and ">= 0" in negative.reason
    assert start(probe).success
    for _ in range(5):
        bot.step()
    huge = set_parameter(probe, "min_free_mb", 1e12)  # more than any disk has free: the rule fires at once
    assert huge.successful, huge.reason
    assert wait_until(lambda: any(e.event == "failed" for e in bot.events), 2), rec.log()
    failed = next(e for e in bot.events if e.event == "failed")
    assert "disk almost full" in failed.message and "min_free_mb" in failed.message, failed.message
    got = probe.call(GetParameters, "dagger_recorder/get_parameters", GetParameters.Request(names=["min_free_mb"]),
                     idempotent=True)
    assert got.values[0].double_value == 1e12
    refused = start(probe)
    assert not refused.success and "disk almost full" in refused.message
    assert set_parameter(probe, "min_free_mb", 1.0).successful
    assert start(probe).success


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_recorder_exits_0_within_2_s_on_a_signal_mid_episode(sig, probe, node_process, tmp_path):
    rec, bot = ready_rig(probe, node_process, tmp_path / "rec")
    assert start(probe).success
    for _ in range(5):
        bot.step()
    rec.proc.send_signal(sig)
    assert exit_code_within(rec, 2.0) == 0, rec.log()
    assert "the recorder shut down mid-episode" in rec.log()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_recorder_exits_0_within_2_s_on_a_signal_while_it_loads_lerobot(sig, node_process, tmp_path):
    rec = start_recorder(node_process, tmp_path / "rec")
    assert rec.wait_for_log("recording into", timeout=60), rec.log()  # lerobot (torch) is being imported now
    assert "ready:" not in rec.log()
    rec.proc.send_signal(sig)
    assert exit_code_within(rec, 2.0) == 0, rec.log()
