"""`vla-il export`: a trained checkpoint -> a policy bundle (policy.onnx + policy.json).

Normalisation is folded into the graph (it lives in the module's forward); the statistics are kept
in policy.json for reference. After export the same inputs go through PyTorch and ONNX Runtime; a
bundle whose outputs differ by more than the tolerance is not written.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.checkpoint import load_checkpoint, read_provenance
from training.export.joints import robot_io
from training.export.playback import with_ensembling
from training.models.policies import MLPPolicy
from vla_il_core.bundle import SCHEMA_VERSION, BundleError, BundleSpec, check_graph, file_sha256, read_bundle

PARITY_TOLERANCE = 1e-4
OPSET = 17


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def export_checkpoint(checkpoint: Path, out: Path, name: str | None = None, overwrite: bool = False,
                      tolerance: float = PARITY_TOLERANCE, temporal_ensembling: bool | None = None,
                      members: tuple[Path, ...] = ()) -> tuple[BundleSpec, float]:
    """Write the bundle; return its spec and the measured max abs difference PyTorch vs ONNX Runtime.

    temporal_ensembling: what the bundle recommends the runner to do with its chunks (ACT's temporal
    ensembling: a chunk every tick, overlapping predictions blended; or play each chunk out); None keeps the
    training run's choice (ILConfig.temporal_aggregation). An inference-time choice: the weights are the same.
    members: more VLA checkpoints trained alike, exported with `checkpoint` as one ensemble (their chunks averaged)."""
    import onnxruntime as ort

    policy, config, metrics = load_checkpoint(checkpoint)
    if type(policy).__name__ == "VLAModel":  # images + baked instruction: training/models/vla_export.py
        from training.models.vla_export import export_vla_checkpoint

        return export_vla_checkpoint(checkpoint, out, name, overwrite=overwrite,
                                     temporal_ensembling=temporal_ensembling, members=tuple(members))
    if members:
        raise BundleError("an ensemble of checkpoints exports for the VLA; the MLP trains its ensemble in one run "
                          "(--ensemble_size)")
    config = with_ensembling(config, temporal_ensembling)
    if not isinstance(policy, MLPPolicy):
        raise BundleError(f"export of {type(policy).__name__} is not supported by this exporter")
    if policy.discrete:
        raise BundleError("bundles drive joint positions: a discrete-action policy cannot be exported")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise BundleError(f"{out} exists and is not empty (choose another --out, or overwrite)")
    policy.eval()
    provenance = read_provenance(checkpoint)
    components, joint_names, fps = robot_io(provenance, policy.obs_dim, policy.action_dim)

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    example = policy.obs_mean[None].clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(policy, (example,), str(tmp / "policy.onnx"), input_names=["state"],
                          output_names=["actions"], dynamic_axes={"state": {0: "batch"}, "actions": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)

    # Parity on states spread like the training data.
    rng = np.random.default_rng(0)
    states = (policy.obs_mean.numpy() + rng.standard_normal((64, policy.obs_dim)) * policy.obs_std.numpy())
    states = states.astype(np.float32)
    with torch.no_grad():
        expected = policy(torch.as_tensor(states)).numpy()
    session = ort.InferenceSession(str(tmp / "policy.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"state": states})[0]
    max_diff = float(np.abs(got - expected).max())
    if not max_diff <= tolerance:
        shutil.rmtree(tmp)
        raise BundleError(f"export parity failed: PyTorch and ONNX Runtime differ by {max_diff:.3g} "
                          f"(tolerance {tolerance:g}); no bundle written")

    sha = file_sha256(tmp / "policy.onnx")
    ckpt = Path(checkpoint).resolve()
    bundle_name = name or (ckpt.name if (ckpt / "best").is_dir() else ckpt.parent.name)  # the training run
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": bundle_name,
        "policy_id": f"{bundle_name}-{sha[:12]}",
        "inputs": {"state": {"name": "state", "components": components}, "cameras": [], "image_size": None,
                   "instruction": None},
        "outputs": {"name": "actions", "chunk_size": policy.chunk_size, "action_dim": policy.action_dim},
        "joint_names": joint_names,
        "fps": fps,
        "recommended": {"n_action_steps": policy.chunk_size if not config.temporal_aggregation else 1,
                        "temporal_ensembling": bool(config.temporal_aggregation),
                        "temporal_ensembling_k": config.temporal_aggregation_k},
        "normalization": {"folded_into_graph": True,
                          "obs_mean": policy.obs_mean.tolist(), "obs_std": policy.obs_std.tolist(),
                          "action_mean": policy.act_mean.tolist(), "action_std": policy.act_std.tolist()},
        "provenance": {"checkpoint": str(Path(checkpoint).resolve()), "dataset": provenance.get("dataset"),
                       "env": provenance.get("env"), "config": config.to_dict(), "metrics": metrics,
                       "git_commit": _git_commit(), "exported_at": dt.datetime.now(dt.UTC).isoformat()},
        "parity": {"max_abs_diff": max_diff, "tolerance": tolerance, "samples": len(states)},
        "onnx": {"file": "policy.onnx", "opset": OPSET, "sha256": sha},
    }
    (tmp / "policy.json").write_text(json.dumps(meta, indent=2, default=float))
    spec = read_bundle(tmp)
    check_graph(spec, session)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return read_bundle(out), max_diff
