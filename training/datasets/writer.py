"""Writing whole episodes into a LeRobot dataset (format v3) through lerobot's own API.

Episodes are written whole: frames are buffered (images go to lerobot's temporary image files) and
only `save_episode()` commits them; `discard_episode()` drops the one in progress. `close()`
finalizes the parquet files, after which the dataset loads with `LeRobotDataset(root=...)`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from vla_il_core import schema


class DatasetExistsError(FileExistsError):
    pass


class EpisodeWriter:
    """Create a dataset at `root`, then add frames and save or discard episodes."""

    def __init__(self, root: Path, features: dict[str, dict[str, Any]], fps: int, robot_type: str = "aloha",
                 repo_id: str | None = None, overwrite: bool = False, image_writer_threads: int = 4) -> None:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        from training.progress import quiet_library_output

        quiet_library_output()
        self.root = Path(root)
        if self.root.exists() and any(self.root.iterdir()):
            if not overwrite:
                raise DatasetExistsError(f"{self.root} exists and is not empty (choose another --out, or overwrite)")
            shutil.rmtree(self.root)
        self.features = features
        self.dataset = LeRobotDataset.create(
            repo_id=repo_id or f"local/{self.root.name}",
            fps=fps,
            features=features,
            root=self.root,
            robot_type=robot_type,
            use_videos=True,
            image_writer_threads=image_writer_threads if schema.cameras_of(features) else 0,
        )
        self.frames_in_episode = 0
        self.episodes_saved = 0

    def add(self, frame: dict[str, Any], task: str) -> None:
        """One frame: keys of the schema (missing optional ones are an error, as in lerobot)."""
        out: dict[str, Any] = {}
        for key, spec in self.features.items():
            value = frame[key]
            if spec["dtype"] in ("float32", "bool"):
                dtype = np.float32 if spec["dtype"] == "float32" else bool
                value = np.asarray(value, dtype=dtype).reshape(spec["shape"])
            out[key] = value
        out["task"] = task
        self.dataset.add_frame(out)
        self.frames_in_episode += 1

    def save_episode(self) -> int:
        """Commit the episode in progress; returns its index."""
        if self.frames_in_episode == 0:
            raise ValueError("no frames to save in this episode")
        self.dataset.save_episode()
        self.frames_in_episode = 0
        self.episodes_saved += 1
        return self.dataset.meta.total_episodes - 1

    def discard_episode(self) -> None:
        self.dataset.clear_episode_buffer()
        self.frames_in_episode = 0

    def close(self) -> None:
        if self.frames_in_episode:
            self.discard_episode()  # a partial episode is never written
        self.dataset.finalize()
