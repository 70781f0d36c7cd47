"""Progress that reads well wherever it goes: tqdm's bars on a terminal; in a log file (a launch log, CI,
`./vla-il demo > demo.log`) a plain line every few seconds and one when the work is done, instead of a
carriage-return frame per refresh.

    from training.progress import tqdm, trange      # drop-in for tqdm's

VLA_IL_PROGRESS=bars|lines forces one or the other; VLA_IL_PROGRESS_INTERVAL sets the seconds between lines
(default 10).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any


def bars_wanted(stream=None) -> bool:
    """Bars on a terminal, lines elsewhere (or as VLA_IL_PROGRESS says)."""
    forced = os.environ.get("VLA_IL_PROGRESS", "").strip().lower()
    if forced in ("bars", "lines"):
        return forced == "bars"
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def tqdm(iterable: Iterable | None = None, *args: Any, **kwargs: Any):
    """tqdm.tqdm on a terminal; LineProgress elsewhere (same calls: update, set_postfix, close, iteration)."""
    if bars_wanted(kwargs.get("file")):
        from tqdm import tqdm as bar

        return bar(iterable, *args, **kwargs)
    return LineProgress(iterable, **kwargs)


def trange(n: int, *args: Any, **kwargs: Any):
    return tqdm(range(n), *args, **kwargs)


def quiet_library_output() -> None:
    """Off a terminal, the libraries under us print no progress bars either (Hugging Face datasets draws a
    "Map" bar per saved episode, lerobot a tqdm bar per merge), and lerobot's per-episode notice about bool
    features is not repeated. Best called before they are imported (tqdm reads TQDM_DISABLE then)."""
    import warnings

    warnings.filterwarnings("ignore", message="Converting input from bool to", category=RuntimeWarning)
    if bars_wanted():
        return
    warnings.filterwarnings("ignore", message="Cannot enable progress bars", category=UserWarning)
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if "datasets" in sys.modules:  # read at its import: tell an imported one too
        try:
            sys.modules["datasets"].disable_progress_bars()
        except AttributeError:
            pass


class LineProgress:
    """A progress report as plain lines: `desc: n/total unit (p%), rate unit/s, eta, postfix`, at most every
    `interval` seconds, and a last line at close (for a bar tqdm would leave on screen)."""

    def __init__(self, iterable: Iterable | None = None, desc: str | None = None, total: float | None = None,
                 unit: str = "it", leave: bool | None = True, disable: bool = False, file=None,
                 initial: float = 0, postfix: Any = None, **_ignored: Any) -> None:
        self.iterable = iterable
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.desc, self.total, self.unit = desc or "", total, unit
        self.leave, self.disable = leave is not False, bool(disable)
        self.file = file or sys.stderr
        self.n = initial
        self.interval = float(os.environ.get("VLA_IL_PROGRESS_INTERVAL", "10"))
        self.start = self.last = time.monotonic()
        self.postfix = ""
        self.closed = False
        if postfix:
            self.set_postfix(postfix)

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self.last >= self.interval:
            self.last = now
            self._print()

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={_short(v)}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def write(self, text: str) -> None:
        print(text, file=self.file, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.disable and self.leave and self.n:
            self._print(done=True)

    def _print(self, done: bool = False) -> None:
        elapsed = time.monotonic() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        count = f"{_short(self.n)}/{_short(self.total)} {self.unit}" if self.total else f"{_short(self.n)} {self.unit}"
        parts = [count]
        if self.total and not done:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"{rate:.3g} {self.unit}/s" if rate >= 1 or rate == 0 else f"{1 / rate:.3g} s/{self.unit}")
        if done:
            parts.append(f"done in {_duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"about {_duration((self.total - self.n) / rate)} left")
        if self.postfix:
            parts.append(self.postfix)
        head = f"{self.desc}: " if self.desc else ""
        print(head + ", ".join(parts), file=self.file, flush=True)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"
