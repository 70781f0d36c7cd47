"""State-based demonstrations from a local LeRobot dataset (no video decoding: parquet columns only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.demonstrations import Demonstrations
from vla_il_core import schema


def open_dataset(root: Path):
    """A local LeRobot dataset, offline; a clear error when `root` is not one."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    if not (root / "meta" / "info.json").exists():
        raise FileNotFoundError(f"{root} is not a LeRobot dataset (no meta/info.json)")
    return LeRobotDataset(f"local/{root.name}", root=root, video_backend="pyav")


def load_demonstrations(root: Path, label: str = schema.ACTION, use_env_state: bool = True) -> Demonstrations:
    """(state [+ object poses], label) pairs per episode; an episode's return is its success (0/1).

    label: which action is learned, `action` (what was executed) or `expert_action` (the expert's label).
    """
    ds = open_dataset(root)
    table = ds.hf_dataset.with_format("numpy")
    cols = set(table.column_names)
    if label not in cols:
        raise ValueError(f"{root} has no '{label}' column (columns: {', '.join(sorted(cols))})")
    parts = [np.stack(table[schema.STATE])]
    if use_env_state and schema.ENV_STATE in cols:
        parts.append(np.stack(table[schema.ENV_STATE]))
    obs = np.concatenate(parts, axis=1).astype(np.float32)
    actions = np.stack(table[label]).astype(np.float32)
    episode = np.asarray(table["episode_index"], dtype=np.int64)
    order = np.lexsort((np.asarray(table["frame_index"]), episode))  # episodes contiguous, frames in order
    obs, actions, episode = obs[order], actions[order], episode[order]
    returns = {}
    if schema.SUCCESS in cols:
        success = np.asarray(table[schema.SUCCESS]).reshape(-1)[order]
        returns = {int(e): float(success[episode == e].any()) for e in np.unique(episode)}
    return Demonstrations(obs, actions, episode, returns)
