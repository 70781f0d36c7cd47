"""Command-line argument types shared by every command line (a count or a path that makes no sense is a
usage error, named by the parser), and flags made from a config dataclass's fields."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any


def positive_int(text: str) -> int:
    """An integer >= 1 (episodes, workers, sizes)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (seeds, optional counts)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    value = _number(text, float)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text}")
    return value


def unit_interval(text: str) -> float:
    """A number in [0, 1]."""
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def output_dir(text: str) -> Path:
    """A directory to write into: it may exist (the command decides about overwriting), but not as a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} exists and is not a directory")
    return path


def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if kind is float and value != value:  # NaN compares false with every bound: refuse it by name
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    return value


def parse_bool(text: str) -> bool:
    """true/false, yes/no, on/off, 1/0."""
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_dataclass_arguments(parser, cls: type, fields: typing.Iterable[str] | None = None,
                            aliases: dict[str, list[str]] | None = None,
                            types_: dict[str, Any] | None = None, helps: dict[str, str] | None = None) -> None:
    """A flag `--<field>` for each of `fields` (default: every field of scalar type) of the dataclass `cls`,
    typed from its annotation, default None (not given: the dataclass's default stands; the help names it).
    A bool takes true/false, or nothing (= true). `aliases`: more option strings per field (earlier names
    kept working); `types_`: an argument type per field instead of the annotation's; `helps`: a help text per
    field instead of its default."""
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    names = list(fields) if fields is not None else [f.name for f in dataclasses.fields(cls)]
    for name in names:
        kind = _scalar(hints[name])
        kwargs: dict[str, Any] = {"default": None, "dest": name}
        default = defaults[name]
        shown = "none" if default is None else default
        if kind is bool:
            kwargs.update(type=parse_bool, nargs="?", const=True, metavar="BOOL", help=f"(default: {shown})")
        elif kind in (int, float, str):
            kwargs.update(type=kind, metavar=kind.__name__.upper(), help=f"(default: {shown})")
        elif fields is None:
            continue  # dicts and the like: not a flag
        else:
            raise TypeError(f"{cls.__name__}.{name}: no flag for a field of type {hints[name]}")
        if types_ and name in types_:
            kwargs["type"] = types_[name]
        if helps and name in helps:
            kwargs["help"] = helps[name]
        parser.add_argument(f"--{name}", *(aliases or {}).get(name, []), **kwargs)


def _scalar(hint: Any) -> type | None:
    """int, float, str or bool for a field's type hint (`X | None` counts as X); None for anything else."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else hint
    return hint if hint in (int, float, str, bool) else None
