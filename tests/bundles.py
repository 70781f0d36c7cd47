"""Small real bundles for tests: an MLP exported through the real exporter (no test doubles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.checkpoint import save_checkpoint
from training.config import ILConfig
from training.export.onnx_export import export_checkpoint
from training.models.policies import MLPPolicy


def make_bundle(root: Path, name: str, chunk: int = 10, bias: float = 0.0, obs_dim: int = 21,
                ensembling: bool = False, gain: float = 0.01) -> Path:
    """An ALOHA-shaped bundle whose actions are START pose + `bias` on every joint (easy to recognise);
    `gain` scales the last layer: how much the actions depend on the observation."""
    from sim.aloha import robot

    torch.manual_seed(0)
    policy = MLPPolicy(obs_dim=obs_dim, action_dim=14, discrete=False, hidden_dim=16, chunk_size=chunk)
    with torch.no_grad():
        policy.net[-1].weight.mul_(gain)
        policy.net[-1].bias.zero_()
    policy.set_normalization(np.random.default_rng(0).random((50, obs_dim)).astype(np.float32))
    policy.act_mean.copy_(torch.as_tensor(robot.START_STATE + bias, dtype=torch.float32))
    config = ILConfig(action_chunk_size=chunk, temporal_aggregation=ensembling,
                      extra={"env": "aloha:transfer_cube"})
    ckpt = save_checkpoint(root / f"{name}_run" / "best", policy, config)
    spec, _ = export_checkpoint(ckpt, root / name, name=name)
    return spec.path
