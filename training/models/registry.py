"""Rebuild a policy module from the spec saved beside its checkpoint: the one place that knows every
policy class (the base class does not know its subclasses)."""

from __future__ import annotations

from typing import Any

from training.models.policies import ILPolicy, MLPPolicy


def build_policy(spec: dict[str, Any]) -> ILPolicy:
    """The policy module a checkpoint's policy.json describes (weights not loaded)."""
    kind = spec.get("class")
    args = {k: v for k, v in spec.items() if k != "class"}
    if kind == "MLPPolicy":
        return MLPPolicy(**args)
    if kind == "VLAModel":
        from training.models.vla import VLAModel

        return VLAModel.from_spec(args)
    raise ValueError(f"unknown policy class {kind!r} in checkpoint spec")
