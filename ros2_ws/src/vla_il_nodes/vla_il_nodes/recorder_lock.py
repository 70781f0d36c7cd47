"""One recorder per record directory: an exclusive lock held for the recorder's whole life. No ROS.

Two recorders on one record_dir would take the same episode index and each would remove the other's
staging files as a crash's leftovers. So a recorder takes `flock(LOCK_EX)` on <record_dir>/recorder.lock
before it touches anything and keeps it until it exits; a second one is refused with the holder's pid,
host and start time (written into the file). The kernel releases the lock when the holder dies, kill -9
included, so whoever gets the lock may treat whatever is in staging as a dead recorder's leftovers.

flock belongs to the open file, and a fork (lerobot's image writer processes) shares it: a child that
outlived a killed recorder would hold the lock on. Forked children close their copy at once.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
from pathlib import Path

LOCK_NAME = "recorder.lock"
_held: set[int] = set()  # lock file descriptors of this process, closed in forked children


class RecordDirInUse(RuntimeError):
    """Another recorder holds the record directory; the message names it."""


class RecordDirLock:
    """The exclusive lock on a record directory (created if missing); `release()` or process exit frees it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(os.pread(fd, 4096, 0))
            os.close(fd)
            raise RecordDirInUse(
                f"{self.root} is in use by another dagger_recorder ({holder}); "
                "one recorder per record_dir: stop that one or record to another directory"
            ) from None
        except OSError:
            os.close(fd)
            raise
        self.started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd: int | None = fd
        _held.add(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlock (the file stays: removing it would race with a recorder opening it)."""
        if self._fd is None:
            return
        _held.discard(self._fd)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None


def describe_holder(content: bytes) -> str:
    """'pid 12 on host robot-pc, since 2025-01-01T12:00:00+00:00' from the lock file's content."""
    try:
        holder = json.loads(content.decode())
        return f"pid {int(holder['pid'])} on host {holder['host']}, since {holder['started']}"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "holder unknown: it is starting, or not a vla-il recorder"


def _close_in_child() -> None:
    # Closing a shared descriptor in the child keeps the parent's lock; LOCK_UN here would drop it.
    for fd in _held:
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)
