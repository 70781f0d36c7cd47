"""Human-gated DAgger (HG-DAgger, Kelly et al. 2019) from recorded datasets.

    vla-il train dagger --dagger_mode human_gated --env aloha:transfer_cube \
        --dataset ~/vla_il_recordings/dagger/dataset --extra_dataset ./data/demos \
        --model_path ./output/bc --output_dir ./output/hg_dagger_r1 --export_bundle ./bundles/r1

The policy drove; a human (or the sim's scripted expert with its gate) took over when it went wrong
and handed back; the dagger_recorder wrote every frame with `intervention` (the expert was driving),
`expert_action` and `expert_label`. HG-DAgger learns only from the expert's segments: they are the
new labels, on exactly the states the learner led the robot into. Every round appends episodes to
the recording; training reads the union of all rounds (and any initial demonstrations), continuing
from the previous policy.

Labels (`dagger_labels`): `intervention` keeps the expert-driven frames (HG-DAgger); `expert` keeps
every frame that carries an expert label (classic DAgger relabelling, where the expert was queried
on every state, as the sim expert is). `intervention_weight` > 1 oversamples the expert-driven
frames when others are kept too. Each kept stretch of an episode is its own segment, so action
chunks never join frames across a gap; a frame the policy drove is a segment of one (its chunk's
later actions would be the expert's labels along the policy's trajectory: masked out).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.config import ILConfig
from training.demonstrations import Demonstrations, label_segments
from vla_il_core import schema


@dataclass
class LabelStats:
    frames: int = 0  # frames in the datasets
    episodes: int = 0
    intervention_frames: int = 0  # frames the expert drove
    labels: int = 0  # frames kept as training labels (before oversampling)
    segments: int = 0

    def add(self, other: LabelStats) -> LabelStats:
        return LabelStats(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def as_metrics(self) -> dict[str, float]:
        return {f"dagger/{k}": float(v) for k, v in self.__dict__.items()}


def load_labelled(root: Path, labels: str = "intervention", intervention_weight: float = 1.0,
                  use_env_state: bool = True) -> tuple[Demonstrations, LabelStats]:
    """The expert's labels in one recorded (or collected) dataset, as segments of demonstrations."""
    from training.datasets.lerobot_io import open_dataset

    ds = open_dataset(root)
    table = ds.hf_dataset.with_format("numpy")
    cols = set(table.column_names)
    for needed in (schema.STATE, schema.INTERVENTION):
        if needed not in cols:
            raise ValueError(f"{root}: no '{needed}' column — HG-DAgger needs a dataset recorded by the "
                             f"dagger_recorder or collected by `vla-il collect` (columns: {', '.join(sorted(cols))})")
    label_col = schema.EXPERT_ACTION if schema.EXPERT_ACTION in cols else schema.ACTION
    episode = np.asarray(table["episode_index"], dtype=np.int64)
    order = np.lexsort((np.asarray(table["frame_index"]), episode))
    episode = episode[order]
    parts = [np.stack(table[schema.STATE])[order]]
    if use_env_state and schema.ENV_STATE in cols:
        parts.append(np.stack(table[schema.ENV_STATE])[order])
    obs = np.concatenate(parts, axis=1).astype(np.float32)
    actions = np.stack(table[label_col])[order].astype(np.float32)
    intervention = np.asarray(table[schema.INTERVENTION]).reshape(-1)[order].astype(bool)
    if labels == "intervention":
        keep = intervention
    elif labels == "expert":
        keep = np.asarray(table[schema.EXPERT_LABEL]).reshape(-1)[order].astype(bool) \
            if schema.EXPERT_LABEL in cols else intervention
    else:
        raise ValueError(f"labels must be 'intervention' or 'expert', got {labels!r}")
    if not np.all(np.isfinite(actions[keep])):
        raise ValueError(f"{root}: non-finite expert labels in kept frames")
    success = {}
    if schema.SUCCESS in cols:
        flags = np.asarray(table[schema.SUCCESS]).reshape(-1)[order]
        success = {int(e): float(flags[episode == e].any()) for e in np.unique(episode)}

    starts, segment = label_segments(keep, intervention, episode)
    idx = np.flatnonzero(keep)
    demos = Demonstrations(obs[idx], actions[idx], segment[idx].astype(np.int64),
                           {int(segment[i]): success.get(int(episode[i]), 0.0) for i in idx[starts[idx]]})
    stats = LabelStats(frames=len(obs), episodes=len(np.unique(episode)), intervention_frames=int(intervention.sum()),
                       labels=len(idx), segments=int(starts.sum()))
    copies = int(round(intervention_weight))
    if copies > 1 and labels == "expert":
        # the expert-driven stretches again, each as its own segment
        driven = keep & intervention
        d_starts = driven & np.concatenate([[True], ~driven[:-1] | (episode[1:] != episode[:-1])])
        d_segment = np.cumsum(d_starts) - 1
        d_idx = np.flatnonzero(driven)
        extra = Demonstrations(obs[d_idx], actions[d_idx], d_segment[d_idx].astype(np.int64),
                               {int(d_segment[i]): success.get(int(episode[i]), 0.0) for i in d_idx[d_starts[d_idx]]})
        for _ in range(copies - 1):
            demos = demos.aggregate(extra)
    return demos, stats


def load_rounds(datasets: list[Path], config: ILConfig) -> tuple[Demonstrations, LabelStats]:
    """The union of all datasets' labels (DAgger's aggregation across rounds)."""
    total, stats = None, LabelStats()
    for root in datasets:
        demos, s = load_labelled(root, config.dagger_labels, config.intervention_weight)
        total = demos if total is None else total.aggregate(demos)
        stats = stats.add(s)
    if total is None or len(total) == 0:
        raise ValueError("no expert labels in " + ", ".join(map(str, datasets)) +
                         " (no frame was expert-driven: nothing for HG-DAgger to learn)")
    return total, stats


class HGDAgger:
    """Train on the expert's recorded labels, continuing from `policy` (the previous round's)."""

    def __init__(self, config: ILConfig | None = None, policy=None, env_name: str | None = None,
                 use_wandb: bool | None = None, provenance: dict[str, Any] | None = None) -> None:
        from training.il.behavioral_cloning import BehavioralCloning

        self.config = config or ILConfig.dagger(dagger_mode="human_gated")
        self.bc = BehavioralCloning(None, self.config, policy, use_wandb, env_name, run_name="hg_dagger",
                                    provenance=provenance)
        self.stats = LabelStats()

    @property
    def policy(self):
        return self.bc.policy

    def train(self, datasets: list[Path]) -> dict[str, Any]:
        demos, self.stats = load_rounds([Path(d) for d in datasets], self.config)
        self.bc.provenance["datasets"] = [str(d) for d in datasets]
        result = self.bc.fit(demos, self.config.bc_epochs, extra_metrics={
            **self.stats.as_metrics(), "dagger/dataset_size": float(len(demos))})
        self.bc.close()
        return result


def export_bundle(checkpoint: Path, bundle: Path) -> str:
    """Export a checkpoint to a bundle (replacing one there); a line saying so. Hot-loading it into a running
    policy node is the ROS side's: `vla-il train dagger ... --load_policy_service` (vla_il.rosgraph)."""
    from training.export.onnx_export import export_checkpoint

    spec, diff = export_checkpoint(checkpoint, bundle, overwrite=True)
    return f"exported {bundle} (parity {diff:.1e})"
