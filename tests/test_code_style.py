"""The code follows STYLE.md's mechanical part: ruff-clean (pyproject.toml holds the rules)."""

import shutil
import subprocess

from tests.ros_harness import ROOT


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    assert ruff, "ruff is part of env/requirements.lock: run scripts/setup.sh"
    done = subprocess.run([ruff, "check", "--quiet", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
