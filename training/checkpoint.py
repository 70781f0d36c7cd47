"""Checkpoints: a folder with the weights, the policy's spec, the ILConfig, the metrics and the provenance
(what the run trained on: env, task, dataset, the checkpoint it started from).

Writes go to a temporary sibling folder that replaces the old one only when complete, so a failed
or interrupted run never leaves a half checkpoint where a good one was.
"""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from training.config import ILConfig
from training.models.policies import ILPolicy
from training.models.registry import build_policy


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and what is wrong."""


def save_checkpoint(directory: Path, policy: ILPolicy, config: ILConfig, metrics: dict[str, Any] | None = None,
                    extra_modules: dict[str, torch.nn.Module] | None = None,
                    provenance: dict[str, Any] | None = None) -> Path:
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(policy.state_dict(), tmp / "model.pt")
    for name, module in (extra_modules or {}).items():
        torch.save(module.state_dict(), tmp / f"{name}.pt")
    (tmp / "policy.json").write_text(json.dumps(policy.spec(), indent=2))
    (tmp / "metrics.json").write_text(json.dumps(metrics or {}, indent=2, default=float))
    (tmp / "provenance.json").write_text(json.dumps(provenance or {}, indent=2, default=str))
    config.save(tmp)
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def checkpoint_dir(directory: Path) -> Path:
    """The checkpoint folder `directory` names: itself, or an output_dir's best/."""
    directory = Path(directory)
    if (directory / "best").is_dir() and not (directory / "model.pt").exists():
        return directory / "best"
    return directory


def read_provenance(directory: Path) -> dict[str, Any]:
    """What a checkpoint's run trained on (env, task, dataset, ...): its provenance.json, or for a checkpoint
    written before there was one, the `extra` its config.json carried."""
    directory = checkpoint_dir(directory)
    if (directory / "provenance.json").exists():
        return _read_json(directory / "provenance.json")
    if (directory / "config.json").exists():
        extra = _read_json(directory / "config.json").get("extra")
        return dict(extra) if isinstance(extra, dict) else {}
    return {}


def load_checkpoint(directory: Path, expect: dict[str, Any] | None = None) -> tuple[ILPolicy, ILConfig, dict]:
    """Rebuild the policy from a checkpoint; `expect` names spec fields that must match (e.g. obs_dim)."""
    directory = checkpoint_dir(directory)
    for name in ("model.pt", "policy.json", "config.json"):
        if not (directory / name).exists():
            raise CheckpointError(f"{directory} is not a vla-il checkpoint: {name} is missing")
    spec = _read_json(directory / "policy.json")
    for key, want in (expect or {}).items():
        if key in spec and spec[key] != want:
            raise CheckpointError(f"checkpoint {directory} has {key}={spec[key]}, this run needs {key}={want} "
                                  "(a checkpoint of another architecture or task)")
    try:
        policy = build_policy(spec)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory / 'policy.json'} does not describe a policy: {exc}") from exc
    weights = directory / "model.pt"
    if not zipfile.is_zipfile(weights):  # torch.save writes a zip archive; the unpickler's errors on others vary
        raise CheckpointError(f"{weights} is not readable weights: not a PyTorch zip archive (damaged or cut short)")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError) as exc:  # a damaged archive's errors
        # (torch's text for an unpicklable file suggests weights_only=False: never, for a file that is damaged)
        why = "not PyTorch weights" if isinstance(exc, pickle.UnpicklingError) else _first_line(exc)
        raise CheckpointError(f"{weights} is not readable weights (damaged?): {why}") from exc
    try:
        policy.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {directory} does not fit {spec.get('class')}: {exc}") from exc
    metrics = _read_json(directory / "metrics.json") if (directory / "metrics.json").exists() else {}
    try:
        config = ILConfig.load(directory / "config.json")
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory / 'config.json'} is not a training config: {exc}") from exc
    return policy, config, metrics


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON (damaged?): {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data
