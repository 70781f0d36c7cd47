"""The `vla-il` entry point: every subcommand answers --help; unfinished ones say where they are tracked."""

import subprocess
import sys

import pytest

from vla_il.cli import main

SUBCOMMANDS = ["demo", "doctor", "collect", "eval", "train", "export", "bench"]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: vla-il" in capsys.readouterr().out


def test_console_entry_runs_as_a_module():
    done = subprocess.run([sys.executable, "-m", "vla_il", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "HG-DAgger" in done.stdout
