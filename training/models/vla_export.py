"""A VLA checkpoint -> a policy bundle (policy.onnx + policy.json) the policy node runs.

Graph inputs: `state` (B, 14) and `image_<camera>` (B, 3, H, W) float in [0, 1] — what the node
feeds; output `actions` (B, chunk, action_dim). The instruction is tokenised at export and baked
into the graph as constant token ids (the node has no tokenizer): policy.json names it under
`inputs.instruction` with `"baked": true`; another instruction needs another export. A flow-matching
head's integration is unrolled into the graph ("flow_steps" Euler steps from the model's fixed start noise,
a constant there). PyTorch vs ONNX Runtime parity is checked on random inputs before anything is written.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.models.vla import IMAGE_PREFIX, VLAModel

OPSET = 17


class BakedInstructionVLA(nn.Module):
    """The VLA with its instruction fixed: (state, image_<cam>...) -> actions."""

    def __init__(self, model: VLAModel, instruction: str) -> None:
        super().__init__()
        self.model = model
        # Padded to max_instruction_tokens as in training: the state token and the action queries keep the
        # positions the model learned them at (trimming the padding shifted them, and the actions with them).
        ids, mask = model.tokenize([instruction])
        self.register_buffer("ids", ids.clone())
        self.register_buffer("mask", mask.clone())

    def forward(self, state: torch.Tensor, *images: torch.Tensor) -> torch.Tensor:
        b = state.shape[0]
        ids, mask = self.ids.expand(b, -1), self.mask.expand(b, -1)
        out = self.model(state, torch.stack(images, dim=1), ids, mask)
        # Static chunk and action sizes in the graph: ONNX shape inference loses them when nothing in the
        # graph ties the output to the state (a vision-only model), and the bundle check reads them.
        return out.reshape(-1, self.model.chunk_size, self.model.action_dim)


class EnsembleVLA(nn.Module):
    """Several VLAs trained alike (same data, other seeds), one graph: their chunks averaged, then the on/off
    action dimensions (grippers) snapped again, so each member votes open or closed. Measured on transfer_cube:
    three trainings that alone reached 23%, 46% and 15% reached 36% averaged (docs/results/vla_transfer_cube)."""

    def __init__(self, members: list[BakedInstructionVLA]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, state: torch.Tensor, *images: torch.Tensor) -> torch.Tensor:
        out = torch.stack([m(state, *images) for m in self.members]).mean(0)
        return self.members[0].model.snap_binary(out)


def check_members(policy: VLAModel, members: list[VLAModel]) -> None:
    """An ensemble's members must take and give the same things; BundleError naming the first difference."""
    from vla_il_core.bundle import BundleError

    def io(m: VLAModel) -> dict[str, Any]:
        return {"cameras": tuple(m.cameras), "image size": tuple(m.image_size), "chunk size": m.chunk_size,
                "action dim": m.action_dim, "state dim": m.state_dim, "action head": m.config.action_head}

    want = io(policy)
    for i, m in enumerate(members, start=2):
        if not isinstance(m, VLAModel):
            raise BundleError(f"ensemble member {i} is a {type(m).__name__}, not a VLAModel")
        got = io(m)
        for key in want:
            if got[key] != want[key]:
                raise BundleError(f"ensemble member {i} has {key} {got[key]}, member 1 has {want[key]}: the members "
                                  f"must be trained alike (another seed, the same data and model settings)")
        for buf in ("binary_mask", "binary_low", "binary_high"):
            if not torch.equal(getattr(m, buf), getattr(policy, buf)):
                raise BundleError(f"ensemble member {i} snaps other action dimensions ({buf}) than member 1: "
                                  f"trained on other data?")


def export_vla(
    policy: VLAModel,
    config,
    metrics: dict[str, Any],
    checkpoint: Path,
    out: Path,
    name: str | None = None,
    instruction: str | None = None,
    tolerance: float = 1e-4,
    provenance: dict[str, Any] | None = None,
    members: tuple[tuple[VLAModel, Path], ...] = (),
):
    """Write the bundle into `out` (which must not hold one); return its spec and the parity max abs diff.
    `provenance`: the checkpoint's (its task names the instruction baked in, unless `instruction` is given).
    `members`: more (model, checkpoint) trained alike: the bundle runs the ensemble (EnsembleVLA)."""
    import onnxruntime as ort

    from training.export.joints import robot_io
    from vla_il_core.bundle import SCHEMA_VERSION, BundleError, check_graph, file_sha256, read_bundle

    provenance = provenance or {}
    if not provenance.get("robot") and not provenance.get("env"):
        provenance = {**provenance, "env": "aloha:" + (provenance.get("task") or "transfer_cube")}  # the sim's VLA
    _, joint_names, fps = robot_io(provenance, policy.action_dim, policy.action_dim)
    if policy.state_dim != len(joint_names):
        raise BundleError(f"the VLA's state has {policy.state_dim} values; the {len(joint_names)} joints it drives "
                          f"({', '.join(joint_names)}) are what the policy node feeds it")
    if instruction is None:
        instruction = (provenance.get("robot") or {}).get("instruction")
    if instruction is None:
        from sim.aloha.tasks import get_task

        instruction = get_task(provenance.get("task") or "transfer_cube").instruction
    check_members(policy, [m for m, _ in members])
    models = [policy, *(m.eval() for m, _ in members)]
    policy.eval()
    wrapper = BakedInstructionVLA(policy, instruction).eval()
    if members:
        wrapper = EnsembleVLA([BakedInstructionVLA(m, instruction) for m in models]).eval()
    cams = [f"image_{c}" for c in policy.cameras]
    h, w = policy.image_size
    rng = np.random.default_rng(0)
    state = policy.state_mean.numpy() + rng.standard_normal((4, policy.state_dim)) * policy.state_std.numpy()
    state = state.astype(np.float32)
    images = [rng.random((4, 3, h, w), dtype=np.float32) for _ in cams]

    out.mkdir(parents=True)
    dynamic = {n: {0: "batch"} for n in ["state", *cams, "actions"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript tracer notices
        torch.onnx.export(
            wrapper,
            (torch.from_numpy(state[:2]), *[torch.from_numpy(i[:2]) for i in images]),
            str(out / "policy.onnx"),
            input_names=["state", *cams],
            output_names=["actions"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
        # Parity against the model as trained and evaluated (predict: the instruction tokenized as in training),
        # not against the wrapper: a wrapper that fed the model differently would pass its own comparison.
        obs = {"observation.state": torch.from_numpy(state), "task": [instruction] * len(state)}
        obs |= {IMAGE_PREFIX + c: torch.from_numpy(i) for c, i in zip(policy.cameras, images)}
        expected = policy.snap_binary(torch.stack([m.predict(obs) for m in models]).mean(0)).numpy()
    session = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"state": state, **dict(zip(cams, images))})[0]
    max_diff = float(np.abs(got - expected).max())
    if not max_diff <= tolerance:
        raise BundleError(
            f"export parity failed: PyTorch and ONNX Runtime differ by {max_diff:.3g} "
            f"(tolerance {tolerance:g}); no bundle written"
        )
    sha = file_sha256(out / "policy.onnx")
    views, views_note = camera_views(policy, provenance, out)
    bundle_name = name or Path(checkpoint).resolve().parent.name
    meta = {
        "schema_version": SCHEMA_VERSION,
        "name": bundle_name,
        "policy_id": f"{bundle_name}-{sha[:12]}",
        "inputs": {
            "state": {
                "name": "state",
                "components": [{"name": "joint_positions", "dim": policy.state_dim, "source": "joint_states"}],
            },
            "cameras": list(policy.cameras),
            "image_size": [h, w],
            "instruction": {"text": instruction, "baked": True},
            **({"camera_views": views} if views else {}),
        },
        "outputs": {"name": "actions", "chunk_size": policy.chunk_size, "action_dim": policy.action_dim},
        "joint_names": list(joint_names),
        "fps": fps,
        "recommended": {
            "n_action_steps": policy.chunk_size if not config.temporal_aggregation else 1,
            "temporal_ensembling": bool(config.temporal_aggregation),
            "temporal_ensembling_k": config.temporal_aggregation_k,
        },
        "normalization": {
            "folded_into_graph": True,
            "obs_mean": policy.state_mean.tolist(),
            "obs_std": policy.state_std.tolist(),
            "action_mean": policy.action_mean.tolist(),
            "action_std": policy.action_std.tolist(),
        },
        "provenance": {
            "checkpoint": str(Path(checkpoint).resolve()),
            "dataset": provenance.get("dataset"),
            "model": "VLAModel" if not members else f"an ensemble of {len(models)} VLAModels (EnsembleVLA)",
            **({"members": [str(Path(checkpoint).resolve()), *(str(Path(c).resolve()) for _, c in members)]}
               if members else {}),
            "vla_config": {k: v for k, v in policy.spec()["config"].items() if k != "tokenizer_json"},
            "config": config.to_dict(),
            "metrics": metrics,
            "camera_views": views_note,
            "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        },
        "parity": {"max_abs_diff": max_diff, "tolerance": tolerance, "samples": len(state)},
        "onnx": {"file": "policy.onnx", "opset": OPSET, "sha256": sha},
    }
    (out / "policy.json").write_text(json.dumps(meta, indent=2, default=float))
    spec = read_bundle(out)
    check_graph(spec, session)
    return spec, max_diff


def camera_views(policy: VLAModel, provenance: dict[str, Any], out: Path) -> tuple[dict[str, Any], str]:
    """Each camera's view in training (the median first frame of up to 256 training episodes,
    vla_il_core.camera_view) written into the bundle as camera_view_<camera>.npy: the policy node warns when
    a camera's frames match it only shifted (the camera moved). Returns policy.json's inputs.camera_views
    and a line saying where they came from, or why there are none (the training dataset is not here)."""
    from training.datasets.lerobot_dataset import LeRobotVLADataset
    from vla_il_core.bundle import file_sha256
    from vla_il_core.camera_view import reference_view

    dataset = provenance.get("dataset")
    if not dataset:
        return {}, "none: the checkpoint names no training dataset to take them from"
    if not (Path(dataset) / "meta" / "info.json").is_file():
        return {}, f"none: the training dataset {dataset} is not here to take them from"
    try:
        data = LeRobotVLADataset(dataset, cameras=list(policy.cameras), image_size=tuple(policy.image_size),
                                 chunk_size=1, progress=False)
        frames = {c: data.first_frames(c) for c in policy.cameras}
    except (OSError, ValueError) as exc:  # DatasetError is a ValueError
        return {}, f"none: the training dataset {dataset} cannot be read for them ({exc})"
    views = {}
    for camera, first in frames.items():
        if not len(first):
            return {}, f"none: the training dataset {dataset} has no training episodes"
        file = f"camera_view_{camera}.npy"
        np.save(out / file, reference_view(first), allow_pickle=False)
        views[camera] = {"file": file, "sha256": file_sha256(out / file), "episodes": len(first)}
    n = len(next(iter(frames.values())))
    return views, f"the median first frame of {n} training episodes of {dataset}"


def export_vla_checkpoint(
    checkpoint: Path, out: Path, name: str | None = None, instruction: str | None = None, overwrite: bool = False,
    temporal_ensembling: bool | None = None, members: tuple[Path, ...] = (),
):
    """Load a VLA checkpoint and export it (atomic: a temporary folder renamed into place); temporal_ensembling
    as training.export.playback.with_ensembling says; `members`: more checkpoints, run as one ensemble."""
    from training.checkpoint import load_checkpoint, read_provenance
    from training.export.playback import with_ensembling
    from vla_il_core.bundle import BundleError, read_bundle

    policy, config, metrics = load_checkpoint(checkpoint)
    config = with_ensembling(config, temporal_ensembling)
    provenance = read_provenance(checkpoint)
    if not isinstance(policy, VLAModel):
        raise BundleError(f"{checkpoint} holds a {type(policy).__name__}, not a VLAModel")
    loaded = tuple((load_checkpoint(m)[0], Path(m)) for m in members)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise BundleError(f"{out} exists and is not empty (choose another --out, or overwrite)")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _, diff = export_vla(policy, config, metrics, Path(checkpoint), tmp, name, instruction,
                             provenance=provenance, members=loaded)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return read_bundle(out), diff
