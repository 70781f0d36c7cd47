"""Where the DAgger recorder keeps its episodes, so that a crash loses at most the episode in progress.

    <record_dir>/
      episodes/episode_000000/   one finalized LeRobot v3 dataset per saved episode: the durable log
      dataset -> merged/000012   all saved episodes as one LeRobot dataset (what training reads): a
                                 symlink, switched atomically once a merge is complete
      .staging/                  the episode being written and merges in progress; whatever a crash
                                 leaves here is removed (and reported) by the next start, except the
                                 complete image spools of stopped episodes, which it encodes
      recorder.lock              held by the one recorder writing here (recorder_lock.py): recovery runs
                                 only with it, so it never removes a live recorder's files

Why this layout: lerobot 0.4.4 writes a parquet file's footer only in `finalize()`, so a dataset
killed before it is unreadable, and a LeRobotDataset takes no episodes after `finalize()`. So each
episode is written and finalized as its own dataset in .staging/, then renamed into episodes/
(rename is atomic; every file is fsynced first, as lerobot does not), and the union is built from the log
with lerobot's `aggregate_datasets`.
Appending across sessions is the same operation: a new session adds episodes to the log.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

EPISODE_PREFIX = "episode_"
SPOOL_SUFFIX = ".spool"  # an episode's raw images beside its staging dataset (recorder_session.ImageSpool)
SPOOL_DONE = "episode.pkl"  # in a spool: the episode was stopped and its spool is complete


class StoreError(RuntimeError):
    """The record directory cannot take this episode (e.g. a different schema); the message says why."""


class RecordStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.episodes_dir = self.root / "episodes"
        self.merged_dir = self.root / "merged"
        self.staging_dir = self.root / ".staging"
        self.dataset_link = self.root / "dataset"
        for d in (self.episodes_dir, self.merged_dir, self.staging_dir):
            d.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ recovery
    def recover(self) -> list[str]:
        """Remove what a crash left in staging and merged versions no longer in use; return what was cut.

        Call it holding the record directory's lock: everything here is then a dead recorder's.
        """
        cut = []
        stopped = {p.name[: -len(SPOOL_SUFFIX)] for p in self.stopped_spools()}
        for leftover in sorted(self.staging_dir.iterdir()):
            if leftover.name.endswith(SPOOL_SUFFIX) and leftover.name[: -len(SPOOL_SUFFIX)] in stopped:
                continue  # a stopped episode's complete spool: the session encodes it
            if leftover.name in stopped:  # the half-encoded dataset of a stopped episode: encoded anew
                _remove(leftover)
                continue
            if leftover.name.startswith(EPISODE_PREFIX):
                cut.append(leftover.name.split(".")[0])
            _remove(leftover)
        cut = list(dict.fromkeys(cut))  # an episode's dataset and its image spool
        current = self._merged_count()
        for old in self.merged_dir.iterdir():
            if current is None or old.name != f"{current:06d}":
                _remove(old)
        for link in self.root.glob(".dataset.*"):  # a union's link made but not yet switched in
            _remove(link)
        return cut

    # ------------------------------------------------------------------ episodes
    def episodes(self) -> list[Path]:
        return sorted(p for p in self.episodes_dir.iterdir() if p.name.startswith(EPISODE_PREFIX) and p.is_dir())

    def stopped_spools(self) -> list[Path]:
        """Complete spools of stopped episodes not in the log (a recorder died while encoding them).

        One whose episode reached the log (the recorder died before removing the spool) is removed."""
        found = []
        for spool in sorted(self.staging_dir.glob(f"{EPISODE_PREFIX}*{SPOOL_SUFFIX}")):
            if not (spool / SPOOL_DONE).is_file():
                continue
            index = spool.name[len(EPISODE_PREFIX) :].split(".")[0]
            if (self.episodes_dir / f"{EPISODE_PREFIX}{index}").exists():
                _remove(spool)
            else:
                found.append(spool)
        return found

    def next_index(self) -> int:
        eps = self.episodes()
        return int(eps[-1].name[len(EPISODE_PREFIX) :]) + 1 if eps else 0

    def staging_path(self, index: int) -> Path:
        """A fresh directory name in staging for episode `index` (the writer creates it)."""
        return self.staging_dir / f"{EPISODE_PREFIX}{index:06d}.{uuid.uuid4().hex[:8]}"

    def check_features(self, features: dict[str, dict[str, Any]], fps: int) -> None:
        """Episodes of one record directory must share the schema: refuse a different one up front."""
        eps = self.episodes()
        if not eps:
            return
        info = json.loads((eps[0] / "meta" / "info.json").read_text())
        if info.get("fps") != fps:
            raise StoreError(f"{self.root} holds episodes at {info.get('fps')} fps, this recorder runs at {fps}")
        theirs = {k: (v["dtype"], tuple(v["shape"])) for k, v in info["features"].items() if k in features}
        ours = {k: (v["dtype"], tuple(v["shape"])) for k, v in features.items()}
        if theirs != ours:
            diff = sorted(set(theirs.items()) ^ set(ours.items()), key=str)
            raise StoreError(
                f"{self.root} holds episodes of another schema (cameras, image size or storage, state): "
                f"differs in {', '.join(str(k) for k, _ in diff[:4])}; record to another record_dir "
                "(or, for image storage, set image_storage as it was)"
            )

    def commit(self, staged: Path, index: int) -> Path:
        """Move a finalized episode dataset into the log (atomic rename); returns its path."""
        target = self.episodes_dir / f"{EPISODE_PREFIX}{index:06d}"
        if target.exists():
            raise StoreError(f"{target} exists already: another recorder writes to {self.root}?")
        _fsync_tree(staged)  # its files on disk before the rename makes it part of the log
        os.rename(staged, target)
        fsync_path(self.episodes_dir)
        return target

    # ------------------------------------------------------------------ the union
    def merge(self) -> Path | None:
        """Bring `dataset` up to date with the log: aggregate the new episodes onto the last union."""
        from lerobot.datasets.aggregate import aggregate_datasets

        eps = self.episodes()
        done = self._merged_count() or 0
        if done > len(eps):  # episodes were removed by hand: rebuild the union
            done = 0
        if not eps or done == len(eps):
            return self.dataset_link if eps else None
        sources = ([self.merged_dir / f"{done:06d}"] if done else []) + eps[done:]
        out = self.staging_dir / f"merge_{len(eps):06d}.{uuid.uuid4().hex[:8]}"
        try:
            aggregate_datasets(
                repo_ids=[f"local/{p.name}" for p in sources],
                aggr_repo_id=f"local/{self.root.name}",
                roots=sources,
                aggr_root=out,
            )
        except BaseException:  # e.g. the disk filled up: a half union must not hold the space
            _remove(out)
            raise
        final = self.merged_dir / f"{len(eps):06d}"
        _fsync_tree(out)  # the union's files on disk before the link can point at them
        os.rename(out, final)
        fsync_path(self.merged_dir)
        link_tmp = self.root / f".dataset.{uuid.uuid4().hex[:8]}"
        os.symlink(Path("merged") / final.name, link_tmp)
        os.replace(link_tmp, self.dataset_link)  # atomic: readers see the old union or the new one
        fsync_path(self.root)
        if done:
            _remove(self.merged_dir / f"{done:06d}")
        return self.dataset_link

    def _merged_count(self) -> int | None:
        if not self.dataset_link.is_symlink():
            return None
        name = Path(os.readlink(self.dataset_link)).name
        return int(name) if name.isdigit() and (self.merged_dir / name).is_dir() else None


def free_mb(path: Path) -> float:
    return shutil.disk_usage(path).free / 2**20


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_tree(path: Path) -> None:
    """fsync every file and directory under path (lerobot writes without fsync): after a power cut, an
    episode the log holds is one whose data reached the disk."""
    for folder, _dirs, files in os.walk(path):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder))


def fsync_path(path: Path) -> None:
    """fsync a file, or a directory (its entries: a rename or a new file in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
