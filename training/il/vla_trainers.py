"""The VLA's recipe of the demo and benchmarks (`fit_vla`), and the VLA trainers' earlier home.

The trainers live beside their algorithms, under the specification's import paths:
`training.il.behavioral_cloning.VLABehavioralCloning`, `training.il.dagger.VLADAgger`,
`training.il.gail.VLAGAIL`; they are re-exported here for code that imported them from this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.config import ILConfig
from training.datasets.lerobot_dataset import create_lerobot_dataloader
from training.il.behavioral_cloning import VLABehavioralCloning
from training.il.dagger import VLADAgger
from training.il.gail import VLAGAIL
from training.il.vla_rollouts import evaluate_in_sim
from training.models.vla import VLAModel

__all__ = ["VLABehavioralCloning", "VLADAgger", "VLAGAIL", "evaluate_in_sim", "fit_vla"]


def _roots(data) -> list[str]:
    """The recordings (LeRobot dataset folders) a dataset or a ConcatDataset of them reads, in order."""
    if hasattr(data, "datasets"):
        return [r for part in data.datasets for r in _roots(part)]
    return [str(data.root)] if hasattr(data, "root") else []


def fit_vla(
    data: torch.utils.data.Dataset,
    output_dir: Path,
    *,
    cameras: tuple[str, ...],
    image_size: tuple[int, int],
    chunk_size: int,
    epochs: int,
    task: str,
    learning_rate: float = 1e-3,
    lr_schedule: str = "cosine",
    batch_size: int = 32,
    seed: int = 0,
    previous: Path | None = None,
    backbones: tuple[str, str] | None = None,
    state_keep: tuple[int, ...] = (),
    state_keep_dropout: float = 0.0,
    camera_dropout: dict[str, float] | None = None,
    image_shift: int = 0,
    ema_decay: float = 0.0,
    sample_weights: Sequence[float] | None = None,
    **tuning: Any,
) -> tuple[Path, int]:
    """BC of a VLA on `data` (AlohaDataset / RolloutDataset items, or a ConcatDataset of them): vision only (state
    dropout 1.0: the robot state is never read, so the policy finds the cube in the image instead of reading the
    arm's progress off its joints), the last epoch of the fit (`lr_schedule`: a new VLA's, cosine or constant; a
    continued one always anneals, cosine). The model: the tiny preset with 16-pixel patches (the README's VLA
    table), or `backbones` (SigLIP, Qwen2: hub ids or local directories, through from_pretrained); either as
    `tuning` says (VLAConfig fields: action_head, freeze_vision, lora_rank, ...); or `previous` (a checkpoint)
    continued (a `tuning` its model differs from is refused). `state_keep`: state indices a new VLA reads all the
    same (e.g. the grippers, 6 and 13), hidden from a `state_keep_dropout` share of training samples too;
    `camera_dropout` ({camera: share}): a new VLA does not see that camera in that share of its training samples;
    `image_shift`: random-shift augmentation of a new VLA's training images (pixels); `ema_decay` > 0: the fit keeps
    and leaves the weights' moving average (ILConfig.ema_decay); `sample_weights` (one per item of `data`): each
    epoch draws as many items as `data` holds, in proportion to them (e.g. an expert's corrections above the demos;
    create_lerobot_dataloader). Returns (the checkpoint, the number of labelled frames)."""
    from training.checkpoint import load_checkpoint

    # first: weights that cannot be are refused before a model exists or anything is written
    loader = create_lerobot_dataloader(data, batch_size, seed=seed, weights=sample_weights)
    if previous is not None:  # a continued fit anneals whatever a new VLA's does (constant there: 24% against 74%)
        lr_schedule = "cosine"
    config = ILConfig.behavioral_cloning(
        bc_epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, lr_schedule=lr_schedule,
        action_chunk_size=chunk_size, bc_validation_split=0.0, bc_early_stopping=False, eval_episodes=0,
        seed=seed, output_dir=str(output_dir), use_wandb=False, ema_decay=ema_decay,
    )
    torch.manual_seed(seed)
    shape = dict(cameras=tuple(cameras), image_size=tuple(image_size), chunk_size=chunk_size, state_dropout=1.0,
                 state_keep=tuple(state_keep), image_shift=image_shift,
                 **({"state_keep_dropout": state_keep_dropout} if state_keep_dropout else {}),
                 **({"camera_dropout": dict(camera_dropout)} if camera_dropout else {}))
    if previous is not None:
        model = load_checkpoint(previous)[0]
        differ = {k: v for k, v in tuning.items() if getattr(model.config, k, None) != v}
        if differ:  # the checkpoint's model is continued as it is: a different head or tuning cannot be asked for
            raise ValueError(f"a continued fit keeps {previous}'s model: " + ", ".join(
                f"{k} is {getattr(model.config, k, None)!r} there, not {v!r}" for k, v in differ.items()))
    elif backbones is not None:
        model = VLAModel(backbones[0], backbones[1], action_dim=14, state_dim=14, **shape, **tuning)
    else:
        model = VLAModel.tiny(patch_size=16, **shape, **tuning)
    # provenance.json says where a continued fit started, as `vla-il train --model_path` records it, and the
    # recordings it fit (as `vla-il train --dataset/--extra_dataset`: the export takes the cameras' views there)
    # and how many labelled frames (a benchmark that resumes tells its own kept fit by it)
    roots = _roots(data)
    provenance = {"model_path": str(previous) if previous is not None else None,
                  "dataset": roots[0] if roots else None, **({"extra_datasets": roots[1:]} if len(roots) > 1 else {}),
                  "frames": len(data)}
    if sample_weights is not None:  # how many frames carried which weight
        values, counts = np.unique(np.asarray(sample_weights, dtype=float), return_counts=True)
        provenance["frame_weights"] = {f"{v:g}": int(n) for v, n in zip(values, counts, strict=True)}
    trainer = VLABehavioralCloning(model, config, use_wandb=False, eval_task=task, provenance=provenance)
    trainer.train(loader)
    trainer.close()
    return Path(output_dir) / "best", len(data)


