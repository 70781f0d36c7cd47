"""A local LeRobot dataset read in bulk: its columns as arrays, each camera's frames decoded once.

    table = read_table(root)                                    # parquet columns (no images) as numpy
    frames = decoded_frames(root, meta, "observation.images.top", (96, 128))   # uint8 (N, H, W, 3), by `index`

Frames stored as images (PNG in the parquet files) are decoded one by one with OpenCV; frames stored as
video are decoded file by file, in order, with PyAV (one pass, no seeking). Resized once (bilinear,
antialiased, as the model's resize did per item) when the model takes another size. The result is an
.npy file read memory-mapped: the next training on the same data, another process or a dataloader
worker reads it without decoding again. It sits in `<dataset>/cache/` (removed with the dataset), or in a
shared cache: the directory VLA_IL_FRAME_CACHE names, else ~/.cache/vla-il/frames when the dataset is
not writable. Its name carries a fingerprint of the dataset's files (path, size, modification time), so
a dataset that changed (a recorder appended an episode) is decoded again and the stale file of that
camera and size is removed. The shared cache keeps at most VLA_IL_FRAME_CACHE_GB (default 50): before
a decode, the files used least recently go until the new one fits. A decode the disk has no room for is
refused before it starts, with one line (a memory-mapped write that hits a full disk kills the
process with SIGBUS, whatever it had trained).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset that does not fit what was asked (missing cameras, columns, episodes), or no room to decode it."""


CACHE_DIR = "cache"
_PARTS = ("meta", "data", "videos")
_ROOM_MARGIN = 512 * 2**20  # what the decode leaves free for everything else writing to that disk


def fingerprint(root: Path) -> str:
    """Changes when any file of the dataset does (its path, size or modification time)."""
    h = hashlib.sha1(str(Path(root).resolve()).encode())
    for part in _PARTS:
        for path in sorted((Path(root) / part).rglob("*")):
            if path.is_file():
                st = path.stat()
                h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def read_table(root: Path) -> dict[str, np.ndarray]:
    """Every parquet column of the dataset but the images, as arrays (rows in file order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((Path(root) / "data").rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{root}: no data/*.parquet files")
    schema = pq.read_schema(files[0])
    columns = [f.name for f in schema if not pa.types.is_struct(f.type)]
    tables = [pq.read_table(f, columns=columns) for f in files]
    out = {}
    for name in columns:
        col = pa.concat_arrays([c for t in tables for c in t.column(name).chunks])
        if pa.types.is_fixed_size_list(col.type):
            out[name] = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
        else:
            out[name] = col.to_numpy(zero_copy_only=False)
    return out


def _cache_dir(root: Path) -> tuple[Path, bool]:
    """(where the frames of `root` go, whether that is the shared cache)."""
    if os.environ.get("VLA_IL_FRAME_CACHE"):
        shared = Path(os.environ["VLA_IL_FRAME_CACHE"]).expanduser()
        shared.mkdir(parents=True, exist_ok=True)
        return shared, True
    local = Path(root) / CACHE_DIR
    try:
        local.mkdir(exist_ok=True)
        if os.access(local, os.W_OK):
            return local, False
    except OSError:
        pass
    fallback = Path.home() / ".cache/vla-il/frames"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback, True


def _shared_budget() -> int:
    """Bytes the shared cache may hold (VLA_IL_FRAME_CACHE_GB)."""
    text = os.environ.get("VLA_IL_FRAME_CACHE_GB", "50")
    try:
        gb = float(text)
    except ValueError:
        gb = -1.0
    if not gb > 0:
        raise DatasetError(f"VLA_IL_FRAME_CACHE_GB must be a number of GB > 0, got {text!r}")
    return int(gb * 1e9)


def _evict(directory: Path, need: int) -> None:
    """Remove the shared cache's least recently used files until `need` more bytes fit in its budget."""
    budget = _shared_budget()
    files = []
    for f in directory.glob("*.npy"):
        try:
            st = f.stat()
        except FileNotFoundError:  # another process evicted or replaced it just now
            continue
        files.append((st.st_mtime, st.st_size, f))
    files.sort(key=lambda entry: entry[0])
    total = sum(size for _, size, _ in files)
    for _, size, old in files:
        if total + need <= budget:
            break
        total -= size
        old.unlink(missing_ok=True)
        log.info("frame cache: removed %s (least recently used; the cache keeps %.0f GB)", old.name, budget / 1e9)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.1f} KB"


def _check_room(root: Path, directory: Path, key: str, need: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < need + _ROOM_MARGIN:
        raise DatasetError(
            f"{root}: decoding {key} needs {_size(need)} in {directory}, {_size(free)} free "
            f"there: free space, or set VLA_IL_FRAME_CACHE to a directory on a disk with room"
        )


def decoded_frames(root: Path, meta, key: str, image_size: tuple[int, int], progress: bool = True) -> np.ndarray:
    """All frames of camera `key` as uint8 (total_frames, H, W, 3), row i the frame whose `index` is i."""
    root = Path(root)
    h, w = image_size
    stem = f"frames-{key.rsplit('.', 1)[-1]}-{h}x{w}-"
    directory, shared = _cache_dir(root)
    if shared:  # the shared cache: the dataset's path tells its files apart
        stem = f"{hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:8]}-{stem}"
    path = directory / f"{stem}{fingerprint(root)}.npy"
    if path.exists():
        try:
            frames = np.load(path, mmap_mode="r")
            if frames.shape == (meta.total_frames, h, w, 3) and frames.dtype == np.uint8:
                if shared:
                    os.utime(path)  # used now: the last the shared cache evicts
                return frames
        except (ValueError, OSError):
            pass
        log.warning("%s: the frame cache %s is damaged; decoding again", root, path.name)
    for stale in directory.glob(f"{stem}*.npy"):
        stale.unlink(missing_ok=True)  # the dataset changed since: this camera and size decoded anew
    need = meta.total_frames * h * w * 3
    if shared:
        _evict(directory, need)
    _check_room(root, directory, key, need)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(meta.total_frames, h, w, 3))
    start = time.monotonic()
    try:
        if meta.features[key]["dtype"] == "video":
            _decode_videos(root, meta, key, frames, progress)
        else:
            _decode_images(root, key, frames, progress)
        frames.flush()
        del frames
        os.replace(tmp, path)  # whole or absent: a second process decoding the same data replaces it alike
    finally:
        tmp.unlink(missing_ok=True)
    log.info("%s: decoded %d frames of %s in %.1f s -> %s", root, meta.total_frames, key,
             time.monotonic() - start, path)
    return np.load(path, mmap_mode="r")


def _resize(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (n, h, w, 3) -> uint8 (n, H, W, 3), bilinear and antialiased (torch's, as the model side)."""
    if batch.shape[1:3] == tuple(size):
        return batch
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(255)
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()


class _Batches:
    """Decoded frames into their rows of `out`, resized a batch at a time."""

    def __init__(self, out: np.ndarray, bar, size: int = 64) -> None:
        self.out, self.bar, self.size = out, bar, size
        self.frames: list[np.ndarray] = []
        self.rows: list[int] = []

    def add(self, row: int, frame: np.ndarray) -> None:
        self.frames.append(frame)
        self.rows.append(row)
        if len(self.frames) == self.size:
            self.flush()

    def flush(self) -> None:
        if self.frames:
            self.out[self.rows] = _resize(np.stack(self.frames), self.out.shape[1:3])
            self.bar.update(len(self.frames))
            self.frames, self.rows = [], []


def _bar(total: int, desc: str, progress: bool):
    from training.progress import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not progress or not sys.stderr.isatty(),
                mininterval=1.0)


def _decode_images(root: Path, key: str, out: np.ndarray, progress: bool) -> None:
    import cv2
    import pyarrow.parquet as pq

    files = sorted((root / "data").rglob("*.parquet"))
    with _bar(len(out), f"decoding {key}", progress) as bar:
        for f in files:
            table = pq.read_table(f, columns=[key, "index"])
            index = table.column("index").to_numpy()
            images = table.column(key).combine_chunks().field("bytes").to_pylist()
            writer = _Batches(out, bar)
            for i, data in zip(index, images, strict=True):
                if data is None:
                    raise ValueError(f"{f}: frame {i} of {key} has no image bytes")
                bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise ValueError(f"{f}: frame {i} of {key} does not decode")
                writer.add(int(i), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            writer.flush()


def _decode_videos(root: Path, meta, key: str, out: np.ndarray, progress: bool) -> None:
    import av

    episodes = meta.episodes
    fps = meta.fps
    # (video file) -> {frame number in the file: dataset index}
    wanted: dict[Path, dict[int, int]] = {}
    for e in range(meta.total_episodes):
        ep: dict[str, Any] = episodes[e]
        path = root / meta.get_video_file_path(e, key)
        first = round(ep[f"videos/{key}/from_timestamp"] * fps)
        targets = wanted.setdefault(path, {})
        for k in range(ep["length"]):
            targets[first + k] = ep["dataset_from_index"] + k
    with _bar(len(out), f"decoding {key}", progress) as bar:
        for path, targets in wanted.items():
            seen = set()
            writer = _Batches(out, bar)
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    n = round(float(frame.time) * fps) if frame.time is not None else len(seen)
                    row = targets.get(n)
                    if row is None or n in seen:
                        continue
                    seen.add(n)
                    writer.add(row, frame.to_ndarray(format="rgb24"))
            writer.flush()
            if len(seen) != len(targets):
                missing = sorted(set(targets) - seen)[:5]
                raise ValueError(f"{path}: {len(targets) - len(seen)} frame(s) of {key} missing from the video "
                                 f"(frame numbers {missing}...)")
