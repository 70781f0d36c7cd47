"""LeRobot datasets (format v3, local, offline) as the VLA reads them, and their dataloaders.

Each item: `observation.state` (S,), `observation.images.<camera>` (3, H, W) float in [0, 1], `task`
(the language instruction), `action` (chunk, A) — the next `chunk_size` actions of the episode —
and `action_is_pad` (chunk,) where the episode ended. Train/val are split by whole episodes.

    AlohaDataset(root, split="train", chunk_size=10)        # `vla-il collect` / dagger_recorder data
    PushTDataset(split="train", chunk_size=10, root=...)     # PushT (lerobot/pusht's keys), see pusht_record
    create_lerobot_dataloader(dataset, batch_size=32)        # a DistributedSampler under torchrun

The dataset is read in bulk (frame_cache.py): its parquet columns once, as arrays, and each camera's
frames decoded once into a memory-mapped uint8 file kept beside the dataset until the dataset changes.
An item is then a few array lookups: decoding or seeking per item and per epoch (lerobot's own
`LeRobotDataset.__getitem__`) cost more than the tiny model's whole training step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.datasets.frame_cache import DatasetError  # defined there (frame_cache raises it too); named here
from training.demonstrations import label_segments
from training.models.policies import binary_actions
from vla_il_core import schema

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "all")
PUSHT_TASK = "Push the T-shaped block onto the T-shaped target."


def camera_name(key: str) -> str:
    """observation.images.top -> top; lerobot/pusht's single observation.image -> image."""
    return key[len(schema.IMAGE_PREFIX) :] if key.startswith(schema.IMAGE_PREFIX) else key.rsplit(".", 1)[-1]


def split_episodes(n_episodes: int, split: str, val_fraction: float, seed: int) -> list[int]:
    """Episode indices of a split: val is a seeded random `val_fraction` of the episodes (at least one
    when there are two or more), train the rest; `all` is every episode."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    episodes = list(range(n_episodes))
    if split == "all" or val_fraction <= 0 or n_episodes < 2:
        if split == "val":
            raise DatasetError(f"no validation split: {n_episodes} episode(s) and val_fraction {val_fraction}")
        return episodes
    n_val = min(n_episodes - 1, max(1, round(n_episodes * val_fraction)))
    val = set(np.random.default_rng(seed).choice(n_episodes, n_val, replace=False).tolist())
    return sorted(val) if split == "val" else [e for e in episodes if e not in val]


LABELS = ("all", "intervention", "expert")


class LeRobotVLADataset(torch.utils.data.Dataset):
    """A local LeRobot dataset as (images, state, instruction, action chunk, pad mask) items.

    `labels`: which frames are items. `all`: every frame, its chunk the next actions of its episode.
    `intervention`: the frames the expert drove (HG-DAgger's labels, recorded by the dagger_recorder;
    `vla-il collect`'s demonstrations are expert-driven throughout), and `expert`: every frame that carries
    the expert's label (DAgger's). Then the chunk is the next labels of the same segment, cut as HG-DAgger
    cuts a recording (training.demonstrations.label_segments: an expert-driven stretch, or a single frame
    the policy drove, whose later labels are no chunk the expert would have executed), padded where it
    ends, and `action_key` should be `expert_action`.
    """

    default_cameras: tuple[str, ...] | None = None

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        chunk_size: int = 10,
        cameras: tuple[str, ...] | list[str] | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        image_size: tuple[int, int] | None = None,
        action_key: str = schema.ACTION,
        task: str | None = None,
        labels: str = "all",
        progress: bool = True,
        episodes: list[int] | range | None = None,
    ) -> None:
        from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

        from training.datasets.frame_cache import decoded_frames, read_table

        self.root = Path(root)
        if not (self.root / "meta" / "info.json").exists():
            raise FileNotFoundError(f"{self.root} is not a LeRobot dataset (no meta/info.json)")
        if chunk_size < 1:
            raise DatasetError(f"chunk_size must be >= 1, got {chunk_size}")
        if labels not in LABELS:
            raise DatasetError(f"labels must be one of {', '.join(LABELS)}, got {labels!r}")
        meta = LeRobotDatasetMetadata(f"local/{self.root.name}", root=self.root)
        for key in (schema.STATE, action_key):
            if key not in meta.features:
                raise DatasetError(f"{self.root} has no '{key}' feature (features: {', '.join(meta.features)})")
        available = {camera_name(k): k for k in meta.camera_keys}
        wanted = tuple(cameras or self.default_cameras or available)
        missing = [c for c in wanted if c not in available]
        if missing or not wanted:
            raise DatasetError(
                f"{self.root} lacks the camera(s) {', '.join(missing) or '(any)'} "
                f"the model expects; it has: {', '.join(available) or 'no cameras'}"
            )
        self.cameras, self.camera_keys = wanted, {c: available[c] for c in wanted}
        self.chunk_size, self.action_key, self.fps, self.task_override = chunk_size, action_key, meta.fps, task
        self.labels = labels
        if episodes is not None:  # these episodes (e.g. the first n), instead of a split
            episodes = sorted(int(e) for e in episodes)
            if episodes and not 0 <= episodes[0] <= episodes[-1] < meta.total_episodes:
                raise DatasetError(f"{self.root} has episodes 0..{meta.total_episodes - 1}, asked for "
                                   f"{episodes[0]}..{episodes[-1]}")
        self.episodes = episodes if episodes is not None else split_episodes(meta.total_episodes, split,
                                                                             val_fraction, seed)
        self.split = split if episodes is None else f"episodes {len(episodes)}"
        stored = tuple(meta.features[self.camera_keys[wanted[0]]]["shape"][:2])
        self.stored_image_size: tuple[int, int] = stored
        self.image_size: tuple[int, int] = tuple(image_size) if image_size else stored
        if self.image_size != stored:
            log.warning(
                "%s: resizing images %dx%d -> %dx%d (bilinear, antialiased) for the model",
                self.root,
                *stored,
                *self.image_size,
            )
        self.meta = meta
        # the columns, episodes contiguous and frames in order
        table = read_table(self.root)
        order = np.lexsort((table["frame_index"], table["episode_index"]))
        self.table = {k: v[order] for k, v in table.items()}
        episode = self.table["episode_index"].astype(np.int64)
        keep, driven = self._kept(labels)
        # segments as HG-DAgger cuts them (label_segments): a chunk never runs past the end of its own
        _, segment = label_segments(keep, driven, episode)
        kept = np.flatnonzero(keep)
        ends = kept[np.concatenate([segment[kept][1:] != segment[kept][:-1], [True]])] if len(kept) else kept
        self._last_row = np.zeros(len(episode), np.int64)
        self._last_row[kept] = ends[segment[kept]]
        in_split = np.isin(episode, self.episodes)
        self._rows = np.flatnonzero(keep & in_split)
        self._driven = driven
        self._actions = self.table[action_key].astype(np.float32)
        self._states = self.table[schema.STATE].astype(np.float32)
        self._env = self.table[schema.ENV_STATE].astype(np.float32) if schema.ENV_STATE in self.table else None
        self._tasks = list(meta.tasks.index)
        # decoded once for the whole dataset (both splits share the file), read memory-mapped
        self._frames = {
            cam: decoded_frames(self.root, meta, key, self.image_size, progress=progress)
            for cam, key in self.camera_keys.items()
        }

    def _kept(self, labels: str) -> tuple[np.ndarray, np.ndarray]:
        """(the frames that are items, the frames the expert drove): `all` keeps every frame as if driven."""
        n = len(self.table["episode_index"])
        if labels == "all":
            return np.ones(n, bool), np.ones(n, bool)
        flag = schema.INTERVENTION if labels == "intervention" or schema.EXPERT_LABEL not in self.table \
            else schema.EXPERT_LABEL
        for column in {flag, schema.INTERVENTION}:
            if column not in self.table:
                raise DatasetError(f"{self.root}: labels={labels!r} needs an '{column}' column (a dataset recorded "
                                   "by the dagger_recorder or collected by `vla-il collect`)")
        keep = np.asarray(self.table[flag]).reshape(n).astype(bool)
        if not np.all(np.isfinite(self.table[self.action_key][keep])):
            raise DatasetError(f"{self.root}: non-finite {self.action_key} in frames kept as labels")
        return keep, np.asarray(self.table[schema.INTERVENTION]).reshape(n).astype(bool)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = int(self._rows[index])
        rows = np.arange(row, row + self.chunk_size)
        last = self._last_row[row]
        pad = rows > last
        task = self.task_override or self._tasks[int(self.table["task_index"][row])]
        out: dict[str, Any] = {
            schema.STATE: torch.from_numpy(self._states[row]),
            "task": task,
            "action": torch.from_numpy(self._actions[np.minimum(rows, last)]),
            "action_is_pad": torch.from_numpy(pad),
            "episode_index": torch.tensor(int(self.table["episode_index"][row])),
        }
        if self._env is not None:  # recorded in the sim: the object poses (a VLA's auxiliary target)
            out[schema.ENV_STATE] = torch.from_numpy(self._env[row])
        frame = int(self.table["index"][row])
        for cam, frames in self._frames.items():
            out[schema.image_key(cam)] = torch.from_numpy(np.array(frames[frame])).permute(2, 0, 1).float().div_(255)
        return out

    @property
    def state_dim(self) -> int:
        return int(self.meta.features[schema.STATE]["shape"][0])

    @property
    def action_dim(self) -> int:
        return int(self.meta.features[self.action_key]["shape"][0])

    @property
    def env_state_dim(self) -> int:
        """Size of the recorded object poses (0: none, as on a robot)."""
        feature = self.meta.features.get(schema.ENV_STATE)
        return int(feature["shape"][0]) if feature else 0

    @property
    def tasks(self) -> list[str]:
        return [self.task_override] if self.task_override else self._tasks

    def expert_drove(self) -> np.ndarray:
        """Per item, whether the expert drove its frame (every item of labels='all')."""
        return self._driven[self._rows]

    def stats(self) -> dict[str, np.ndarray]:
        """Normalisation statistics of state and actions (lerobot's, over the whole dataset)."""
        s = self.meta.stats
        if s is None or schema.STATE not in s or self.action_key not in s:
            raise DatasetError(
                f"{self.root} has no statistics for {schema.STATE} / {self.action_key} (meta/stats.json)"
            )
        out = {
            "state_mean": np.asarray(s[schema.STATE]["mean"]),
            "state_std": np.asarray(s[schema.STATE]["std"]),
            "action_mean": np.asarray(s[self.action_key]["mean"]),
            "action_std": np.asarray(s[self.action_key]["std"]),
            **binary_actions(self._actions),
        }
        if schema.ENV_STATE in s:
            out["env_state_mean"] = np.asarray(s[schema.ENV_STATE]["mean"])
            out["env_state_std"] = np.asarray(s[schema.ENV_STATE]["std"])
        return out

    def first_frames(self, camera: str, limit: int = 256) -> np.ndarray:
        """The first frame of each of this split's episodes (up to `limit`, evenly spread), uint8 (N, H, W, 3)
        at the model's image size: a camera's view at the start of an episode (vla_il_core.camera_view)."""
        first = np.flatnonzero((self.table["frame_index"] == 0) & np.isin(self.table["episode_index"], self.episodes))
        if len(first) > limit:
            first = first[np.linspace(0, len(first) - 1, limit).round().astype(np.int64)]
        frames = self._frames[camera]
        return np.stack([frames[int(self.table["index"][row])] for row in first]) if len(first) else \
            np.zeros((0, *self.image_size, 3), np.uint8)

    def describe(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "split": self.split,
            "episodes": len(self.episodes),
            "frames": len(self),
            "labels": self.labels,
            "cameras": list(self.cameras),
            "image_size": list(self.image_size),
            "chunk_size": self.chunk_size,
            "action_key": self.action_key,
            "fps": self.fps,
        }


class AlohaDataset(LeRobotVLADataset):
    """The bimanual ALOHA's recordings (`vla-il collect`, the dagger_recorder): 14-d state and actions."""

    def __init__(self, root: str | Path, split: str = "train", chunk_size: int = 10, **kwargs: Any) -> None:
        super().__init__(root, split, chunk_size, **kwargs)
        if self.state_dim != 14 or self.action_dim != 14:
            raise DatasetError(
                f"{self.root} is not an ALOHA dataset: state {self.state_dim}-d, action "
                f"{self.action_dim}-d (expected 14 and 14)"
            )


def default_pusht_root() -> Path:
    return Path(os.environ.get("VLA_IL_PUSHT_ROOT", Path.home() / ".cache/vla-il/datasets/pusht"))


class PushTDataset(LeRobotVLADataset):
    """PushT in lerobot/pusht's layout (observation.image 96x96, 2-d state and action).

    lerobot/pusht itself cannot be downloaded here: record one with
    `python -m training.datasets.pusht_record --out <root>` (a scripted pusher in gym-pusht), or point
    `root` / VLA_IL_PUSHT_ROOT at a local copy of lerobot/pusht (v3).
    """

    def __init__(
        self, split: str = "train", chunk_size: int = 10, root: str | Path | None = None, **kwargs: Any
    ) -> None:
        root = Path(root) if root is not None else default_pusht_root()
        if not (root / "meta" / "info.json").exists():
            raise FileNotFoundError(
                f"no PushT dataset at {root}: record one with `python -m "
                f"training.datasets.pusht_record --out {root}` (lerobot/pusht cannot be "
                "downloaded here), or pass root= / set VLA_IL_PUSHT_ROOT"
            )
        kwargs.setdefault("task", None)
        super().__init__(root, split, chunk_size, **kwargs)


class Recordings(torch.utils.data.ConcatDataset):
    """Several recordings of one robot and task setup (LeRobotVLADatasets: the same cameras, image size,
    state, action and chunk) trained on as one: their items in turn, normalisation statistics pooled over
    every frame of every recording (a recording's own would fit the first one only)."""

    def __init__(self, parts: list[LeRobotVLADataset]) -> None:
        first = parts[0]
        for part in parts[1:]:
            for what in ("cameras", "image_size", "state_dim", "action_dim", "chunk_size", "action_key"):
                if getattr(part, what) != getattr(first, what):
                    raise DatasetError(f"{part.root} does not go with {first.root}: {what} "
                                       f"{getattr(part, what)} against {getattr(first, what)}")
        super().__init__(parts)
        self.parts = parts
        self.cameras, self.image_size, self.chunk_size = first.cameras, first.image_size, first.chunk_size
        self.state_dim, self.action_dim = first.state_dim, first.action_dim
        self.env_state_dim = min(p.env_state_dim for p in parts)
        self.episodes = [(str(p.root), e) for p in parts for e in p.episodes]

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(t for p in self.parts for t in p.tasks))

    def expert_drove(self) -> np.ndarray:
        return np.concatenate([p.expert_drove() for p in self.parts])

    def stats(self) -> dict[str, np.ndarray]:
        """Each recording's mean and std (lerobot's, over its frames) pooled by frame count; the binary
        action dimensions from every recording's actions."""
        each = [p.stats() for p in self.parts]
        frames = np.array([len(p.table["index"]) for p in self.parts], np.float64)
        w = frames / frames.sum()
        out: dict[str, np.ndarray] = {}
        for name in ("state", "action", "env_state"):
            if not all(f"{name}_mean" in s for s in each):
                continue
            means = np.stack([s[f"{name}_mean"] for s in each])
            second = np.stack([s[f"{name}_std"] ** 2 + s[f"{name}_mean"] ** 2 for s in each])
            mean = (w[:, None] * means).sum(0)
            out[f"{name}_mean"] = mean
            out[f"{name}_std"] = np.sqrt(np.maximum((w[:, None] * second).sum(0) - mean**2, 0.0))
        out.update(binary_actions(np.concatenate([p._actions for p in self.parts])))
        return out

    def describe(self) -> dict[str, Any]:
        described = [p.describe() for p in self.parts]
        return {**described[0], "root": [d["root"] for d in described], "episodes": len(self.episodes),
                "frames": len(self)}


def open_recordings(roots: list[Path], split: str, **kwargs: Any) -> LeRobotVLADataset | Recordings:
    """One recording as a LeRobotVLADataset, several as Recordings (each split by its own episodes)."""
    parts = [LeRobotVLADataset(root, split=split, **kwargs) for root in roots]
    return parts[0] if len(parts) == 1 else Recordings(parts)


def create_lerobot_dataloader(
    dataset: torch.utils.data.Dataset,
    batch_size: int = 32,
    shuffle: bool = True,
    num_workers: int | None = None,
    pin_memory: bool | None = None,
    drop_last: bool = False,
    seed: int = 0,
    weights: Sequence[float] | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader with worker processes where there are cores to spare, pinned memory with a GPU, and a
    DistributedSampler (one shard per rank) when torch.distributed is initialised. `weights` (one per item,
    relative): each epoch draws len(dataset) items with replacement in proportion to them instead of shuffling
    (the epoch keeps its number of batches; one process only)."""
    import torch.distributed as dist

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sampler = None
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(dataset),):
            raise ValueError(f"weights: one per item ({len(dataset)}), got shape {w.shape}")
        if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
            raise ValueError("weights: finite, >= 0 and not all 0")
        if distributed:
            raise ValueError("weights: weighted sampling runs in one process (torch.distributed is initialised)")
        sampler = torch.utils.data.WeightedRandomSampler(torch.as_tensor(w), len(dataset), replacement=True,
                                                         generator=torch.Generator().manual_seed(seed))
    elif distributed:
        sampler = torch.utils.data.DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    if num_workers is None:
        cores = os.cpu_count() or 1
        num_workers = 0 if cores <= 2 else min(4, cores // 2)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        generator=torch.Generator().manual_seed(seed) if sampler is None and shuffle else None,
    )


def dataset_stats(dataset: torch.utils.data.Dataset) -> dict[str, np.ndarray] | None:
    """The normalisation statistics of a dataset that has them (Recordings: pooled; another ConcatDataset: its
    LeRobot part's)."""
    if hasattr(dataset, "stats"):
        return dataset.stats()
    return next((ds.stats() for ds in getattr(dataset, "datasets", []) if hasattr(ds, "stats")), None)
