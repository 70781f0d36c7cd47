"""scripts/setup.sh: missing prerequisites stop it with one clear line; a second run does nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.ros_harness import ROOT

SETUP = ROOT / "scripts/setup.sh"


def run_setup(**env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("ROS_DISTRO",)}
    full_env.update(env)
    return subprocess.run([shutil.which("bash"), str(SETUP)], capture_output=True, text=True, env=full_env, timeout=600)


def test_missing_python_is_one_clear_line():
    done = run_setup(VLA_IL_PYTHON="/nonexistent/python3.11")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "[setup] error: no '/nonexistent/python3.11' on PATH: vla-il needs Python 3.11 (set VLA_IL_PYTHON to its path)"
    ]


def test_wrong_python_version_is_one_clear_line(tmp_path):
    fake = tmp_path / "python3.10"
    fake.write_text("#!/bin/sh\necho 3.10\n")
    fake.chmod(0o755)
    done = run_setup(VLA_IL_PYTHON=str(fake))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"[setup] error: '{fake}' is Python 3.10, vla-il needs 3.11 (set VLA_IL_PYTHON to a python3.11)"
    ]


def test_missing_compiler_is_one_clear_line(tmp_path):
    # A PATH with the basic tools but no C++ compiler, and the real Python 3.11 named directly.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "cat", "grep", "sha256sum", "cut", "date", "ldconfig", "sed"):
        if path := shutil.which(tool):
            (bin_dir / tool).symlink_to(path)
    done = run_setup(PATH=str(bin_dir), VLA_IL_PYTHON=sys._base_executable)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("[setup] error: no C++ compiler")


def test_system_ros_that_is_not_there_is_one_clear_line():
    done = run_setup(ROS_DISTRO="nosuchdistro")
    assert done.returncode == 1
    assert "ROS_DISTRO=nosuchdistro but /opt/ros/nosuchdistro/setup.bash does not exist" in done.stderr


def test_second_run_does_nothing():
    # The test session itself ran setup; with nothing changed another run must not rebuild anything.
    done = run_setup()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
