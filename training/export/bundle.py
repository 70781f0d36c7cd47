"""The policy bundle contract (DESIGN.md): a folder with policy.onnx + policy.json.

Read and validated without PyTorch: the policy node loads bundles with this module and ONNX Runtime.
A bundle is refused, with the reason, when a file is missing, the ONNX does not load, or the JSON's
shapes disagree with the graph.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


class BundleError(ValueError):
    """A bundle that must not drive anything; the message says why."""


@dataclass(frozen=True)
class StateComponent:
    name: str  # joint_positions | env_state | ...
    dim: int
    source: str  # the topic it comes from (relative name): joint_states, sim/state


@dataclass(frozen=True)
class BundleSpec:
    path: Path
    policy_id: str
    state_components: tuple[StateComponent, ...]
    cameras: tuple[str, ...]
    image_size: tuple[int, int] | None
    chunk_size: int
    action_dim: int
    joint_names: tuple[str, ...]
    fps: float
    n_action_steps: int
    temporal_ensembling: bool
    temporal_ensembling_k: float
    raw: dict[str, Any] = field(repr=False, hash=False, compare=False, default_factory=dict)

    @property
    def state_dim(self) -> int:
        return sum(c.dim for c in self.state_components)

    @property
    def onnx_path(self) -> Path:
        return self.path / "policy.onnx"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_bundle(path: Path) -> BundleSpec:
    """Parse policy.json and check it against itself; `check_graph` checks it against the ONNX."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path} is not a bundle directory")
    for name in ("policy.onnx", "policy.json"):
        if not (path / name).is_file():
            raise BundleError(f"{path}: {name} is missing")
    try:
        meta = json.loads((path / "policy.json").read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}/policy.json is not valid JSON: {exc}") from exc
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"{path}: schema_version {meta.get('schema_version')!r}, this vla-il reads {SCHEMA_VERSION}")
    try:
        inputs, outputs, rec = meta["inputs"], meta["outputs"], meta.get("recommended", {})
        spec = BundleSpec(
            path=path,
            policy_id=str(meta["policy_id"]),
            state_components=tuple(StateComponent(c["name"], int(c["dim"]), c["source"])
                                   for c in inputs["state"]["components"]),
            cameras=tuple(inputs.get("cameras", [])),
            image_size=tuple(inputs["image_size"]) if inputs.get("image_size") else None,
            chunk_size=int(outputs["chunk_size"]),
            action_dim=int(outputs["action_dim"]),
            joint_names=tuple(meta["joint_names"]),
            fps=float(meta["fps"]),
            n_action_steps=int(rec.get("n_action_steps", outputs["chunk_size"])),
            temporal_ensembling=bool(rec.get("temporal_ensembling", False)),
            temporal_ensembling_k=float(rec.get("temporal_ensembling_k", 0.01)),
            raw=meta,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}/policy.json lacks or mangles a field: {exc!r}") from exc
    if len(spec.joint_names) != spec.action_dim:
        raise BundleError(f"{path}: {len(spec.joint_names)} joint names for an action dim of {spec.action_dim}")
    if not 1 <= spec.n_action_steps <= spec.chunk_size:
        raise BundleError(f"{path}: n_action_steps {spec.n_action_steps} outside 1..{spec.chunk_size}")
    if spec.fps <= 0:
        raise BundleError(f"{path}: fps must be > 0, got {spec.fps}")
    return spec


def check_graph(spec: BundleSpec, session) -> None:
    """The ONNX graph's inputs and outputs must be what policy.json says (dynamic batch axis)."""
    inputs = {i.name: i for i in session.get_inputs()}
    if "state" not in inputs:
        raise BundleError(f"{spec.path}: the graph has no 'state' input (inputs: {', '.join(inputs)})")
    state_shape = inputs["state"].shape
    if len(state_shape) != 2 or state_shape[1] != spec.state_dim:
        raise BundleError(f"{spec.path}: policy.json says state dim {spec.state_dim}, the graph takes {state_shape}")
    for cam in spec.cameras:
        name = f"image_{cam}"
        if name not in inputs:
            raise BundleError(f"{spec.path}: camera {cam} has no graph input {name}")
        shape = inputs[name].shape
        if spec.image_size and tuple(shape[-2:]) != tuple(spec.image_size):
            raise BundleError(f"{spec.path}: camera {cam}: policy.json says {spec.image_size}, graph takes {shape}")
    out = session.get_outputs()[0]
    if len(out.shape) != 3 or tuple(out.shape[1:]) != (spec.chunk_size, spec.action_dim):
        raise BundleError(f"{spec.path}: policy.json says chunk {spec.chunk_size} x {spec.action_dim}, "
                          f"the graph outputs {out.shape}")
