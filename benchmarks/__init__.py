"""Benchmarks: scripts that print tables against a baseline measured in the same run."""

from __future__ import annotations

import argparse


def image_size(parser: argparse.ArgumentParser, text: str, minimum: int) -> tuple[int, int]:
    """`--size HxW` (e.g. 480x640), both sides at least `minimum`; a parser error otherwise."""
    try:
        size = tuple(int(x) for x in text.lower().split("x"))
        if len(size) == 2 and min(size) >= minimum:
            return size
    except ValueError:
        pass
    parser.error(f"--size: expected HxW with both >= {minimum} (e.g. 480x640), got {text!r}")
