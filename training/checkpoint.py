"""Checkpoints: a folder with the weights, the policy's spec, the ILConfig and the metrics.

Writes go to a temporary sibling folder that replaces the old one only when complete, so a failed
or interrupted run never leaves a half checkpoint where a good one was.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from training.config import ILConfig
from training.models.policies import ILPolicy, build_policy


class CheckpointError(ValueError):
    pass


def save_checkpoint(directory: Path, policy: ILPolicy, config: ILConfig, metrics: dict[str, Any] | None = None,
                    extra_modules: dict[str, torch.nn.Module] | None = None) -> Path:
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(policy.state_dict(), tmp / "model.pt")
    for name, module in (extra_modules or {}).items():
        torch.save(module.state_dict(), tmp / f"{name}.pt")
    (tmp / "policy.json").write_text(json.dumps(policy.spec(), indent=2))
    (tmp / "metrics.json").write_text(json.dumps(metrics or {}, indent=2, default=float))
    config.save(tmp)
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def load_checkpoint(directory: Path, expect: dict[str, Any] | None = None) -> tuple[ILPolicy, ILConfig, dict]:
    """Rebuild the policy from a checkpoint; `expect` names spec fields that must match (e.g. obs_dim)."""
    directory = Path(directory)
    if (directory / "best").is_dir() and not (directory / "model.pt").exists():
        directory = directory / "best"  # an output_dir: take its best checkpoint
    for name in ("model.pt", "policy.json", "config.json"):
        if not (directory / name).exists():
            raise CheckpointError(f"{directory} is not a vla-il checkpoint: {name} is missing")
    spec = json.loads((directory / "policy.json").read_text())
    for key, want in (expect or {}).items():
        if key in spec and spec[key] != want:
            raise CheckpointError(f"checkpoint {directory} has {key}={spec[key]}, this run needs {key}={want} "
                                  "(a checkpoint of another architecture or task)")
    policy = build_policy(spec)
    try:
        policy.load_state_dict(torch.load(directory / "model.pt", map_location="cpu", weights_only=True))
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {directory} does not fit {spec.get('class')}: {exc}") from exc
    metrics = json.loads((directory / "metrics.json").read_text()) if (directory / "metrics.json").exists() else {}
    return policy, ILConfig.load(directory / "config.json"), metrics
