"""Progress that reads well in a log file: plain lines every few seconds and one at the end, never a
carriage-return frame per refresh; bars only on a terminal."""

from __future__ import annotations

import io
import time

import pytest

from training import progress


@pytest.fixture(autouse=True)
def lines(monkeypatch):
    monkeypatch.setenv("VLA_IL_PROGRESS_INTERVAL", "0.05")
    monkeypatch.delenv("VLA_IL_PROGRESS", raising=False)


def test_off_a_terminal_progress_is_a_few_plain_lines():
    out = io.StringIO()
    assert not progress.bars_wanted(out)
    for _ in progress.tqdm(range(6), desc="collect", unit="ep", file=out):
        time.sleep(0.02)
    bar = progress.tqdm(total=4, desc="train", unit="step", file=out)
    bar.update(2)
    bar.set_postfix({"loss": 0.123456})
    time.sleep(0.06)
    bar.update(2)
    bar.close()
    bar.close()  # closing twice: one last line
    text = out.getvalue()
    assert "\r" not in text
    rows = text.splitlines()
    assert rows[-1].startswith("train: 4/4 step,") and "done in" in rows[-1] and rows[-1].endswith("loss=0.1235")
    assert sum(r.startswith("collect: 6/6 ep,") for r in rows) == 1
    assert any(r.startswith("collect:") and "%" in r and "left" in r for r in rows)  # progress on the way
    assert len(rows) < 10


def test_inner_loops_and_disabled_bars_leave_no_final_line():
    out = io.StringIO()
    list(progress.tqdm(range(3), desc="epochs", leave=False, file=out))
    list(progress.trange(3, desc="off", disable=True, file=out))
    assert out.getvalue() == ""


def test_bars_on_a_terminal_or_when_asked(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert progress.bars_wanted(Terminal())
    monkeypatch.setenv("VLA_IL_PROGRESS", "lines")
    assert not progress.bars_wanted(Terminal())
    monkeypatch.setenv("VLA_IL_PROGRESS", "bars")
    assert progress.bars_wanted(io.StringIO())
    assert type(progress.tqdm(range(1), file=io.StringIO())).__module__.startswith("tqdm")
