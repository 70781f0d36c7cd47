"""One recorder per record directory, without ROS: the lock, and what a second session may not touch."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.ros_harness import wait_until
from tests.test_recorder_core import SPEC, record
from training.datasets.lerobot_io import open_dataset
from vla_il_nodes.recorder_lock import RecordDirInUse, RecordDirLock, describe_holder
from vla_il_nodes.recorder_session import RecordingSession


def test_a_second_session_is_refused_and_the_first_ones_episode_is_untouched(tmp_path):
    first = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=0)
    record(first, 4)  # open: its frames and images are in staging
    with pytest.raises(RecordDirInUse, match=f"pid {os.getpid()} on host {socket.gethostname()}"):
        RecordingSession(tmp_path / "rec", SPEC, min_free_mb=0)
    saved = first.stop(task_success=True)
    assert saved.outcome == "saved" and saved.index == 0, saved.message
    assert open_dataset(first.dataset_path).meta.total_frames == 4
    first.close()
    second = RecordingSession(tmp_path / "rec", SPEC, min_free_mb=0)  # the first one is gone: it may start
    record(second, 2)
    assert second.stop(True).index == 1
    second.close()


def test_the_kernel_releases_the_lock_when_its_holder_is_killed(tmp_path):
    code = (
        "import sys, time; from vla_il_nodes.recorder_lock import RecordDirLock; "
        f"lock = RecordDirLock({str(tmp_path)!r}); print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RecordDirInUse, match=f"pid {holder.pid} on host"):
            RecordDirLock(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    RecordDirLock(tmp_path).release()


def lock_is_free(root) -> bool:
    try:
        RecordDirLock(root).release()
    except RecordDirInUse:
        return False
    return True


def test_a_forked_child_does_not_hold_the_lock_on_after_its_recorder_is_killed(tmp_path):
    """lerobot's image writer processes are forked from the recorder and share its open files: one that
    outlives a killed recorder must not keep the record directory locked."""
    code = (
        "import multiprocessing, time; from vla_il_nodes.recorder_lock import RecordDirLock; "
        f"lock = RecordDirLock({str(tmp_path)!r}); "
        "child = multiprocessing.get_context('fork').Process(target=time.sleep, args=(60,)); child.start(); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    recorder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(recorder.stdout.readline())
    try:
        recorder.send_signal(signal.SIGKILL)
        recorder.wait(timeout=10)
        os.kill(child, 0)  # the child lives on ...
        assert wait_until(lambda: lock_is_free(tmp_path), 5)  # ... and the lock is free (once it has run)
    finally:
        os.kill(child, signal.SIGKILL)


def test_an_unreadable_holder_is_described_not_raised():
    assert "holder unknown" in describe_holder(b"")
    assert "holder unknown" in describe_holder(b"\xff{not json")
    assert describe_holder(b'{"pid": 7, "host": "arm-pc", "started": "t"}') == "pid 7 on host arm-pc, since t"
