"""An episode's life in the DAgger recorder: start, frames, then saved, discarded or failed. No ROS.

Frames go through lerobot's API (training.datasets.writer.EpisodeWriter) into a dataset of their
own in the record store's staging area; saving finalizes it, moves it into the log and merges the
union (recorder_store.py). A write error or a nearly full disk ends the episode as failed, with the
error in the summary, removes its files and leaves every earlier episode as it was. A session holds
the record directory's lock (recorder_lock.py) from its start to `close()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.datasets import schema
from vla_il_nodes.recorder_core import SyncResult
from vla_il_nodes.recorder_lock import RecordDirLock
from vla_il_nodes.recorder_store import RecordStore, free_mb

SAVED, DISCARDED, FAILED = "saved", "discarded", "failed"


class RecorderError(RuntimeError):
    """A request the recorder cannot fulfil now (no episode, episode already running, bad task...)."""


@dataclass(frozen=True)
class DatasetSpec:
    joint_names: tuple[str, ...]
    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (480, 640)
    env_state_dim: int = 0
    fps: int = 50
    image_writer_threads: int = 4
    image_writer_processes: int = 0  # > 0: PNG encoding in processes, off this process's GIL
    spool_images: bool = True  # raw images to disk while recording, lerobot's encoding after the episode
    image_storage: str = "auto"  # video | image (lossless) | auto: image for small frames (schema.image_dtype)

    def __post_init__(self) -> None:
        schema.image_dtype(self.image_size, self.image_storage)  # a bad storage is refused here, not at an episode

    def features(self) -> dict[str, dict[str, Any]]:
        return schema.features(
            self.joint_names,
            self.cameras,
            self.image_size,
            self.env_state_dim,
            recorder_flags=True,
            image_storage=self.image_storage,
        )


@dataclass
class EpisodeSummary:
    """What happened to an episode; `outcome` is saved, discarded or failed."""

    index: int
    task: str
    outcome: str = ""
    success: bool = False
    frames: int = 0
    intervention_frames: int = 0
    expert_label_frames: int = 0
    policy_invalid_frames: int = 0
    dropped_frames: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    lag_ms_p50: float = 0.0
    lag_ms_max: float = 0.0
    write_ms_per_frame: float = 0.0  # time in lerobot's add_frame (images queued to its writer threads)
    save_s: float = 0.0
    message: str = ""

    def line(self) -> str:
        text = (
            f"episode {self.index} {self.outcome}: {self.frames} frames, {self.intervention_frames} by the expert, "
            f"{self.dropped_frames} dropped, observation lag p50 {self.lag_ms_p50:.1f} ms max "
            f"{self.lag_ms_max:.1f} ms, {self.policy_invalid_frames} without a valid policy action, "
            f"write {self.write_ms_per_frame:.2f} ms/frame"
        )
        if self.save_s:
            text += f", saved in {self.save_s:.1f} s"
        if self.drop_reasons:
            text += "; drops: " + "; ".join(f"{n}x {r}" for r, n in self.drop_reasons.items())
        return text + (f"; {self.message}" if self.message else "")


class RecordingSession:
    """The episodes of one recorder run; at most one episode is open at a time.

    Raises RecordDirInUse while another recorder holds `record_dir`; only then, holding its lock, does it
    clear what a dead recorder left in staging (`cut_episodes`).
    """

    def __init__(self, record_dir: Path, spec: DatasetSpec, min_free_mb: float = 500.0, merge: bool = True) -> None:
        _check_min_free_mb(min_free_mb)
        self.lock = RecordDirLock(record_dir)
        try:
            self.store = RecordStore(record_dir)
            self.cut_episodes = self.store.recover()
            self.store.check_features(spec.features(), spec.fps)
        except BaseException:
            self.lock.release()
            raise
        self.spec = spec
        self.min_free_mb = min_free_mb
        self.merge_after_save = merge
        self.ready = False
        self.writer = None
        self._spool: ImageSpool | None = None
        self._pending: list[dict[str, Any]] = []
        self.episode: EpisodeSummary | None = None
        self._staged: Path | None = None
        self._lags: list[float] = []
        self._write_s = 0.0

    def prepare(self) -> None:
        """Load lerobot (slow: it imports torch) and merge what a crash left unmerged."""
        from training.datasets.writer import EpisodeWriter  # noqa: F401 - the import is the point

        if self.merge_after_save:
            self.store.merge()
        self.ready = True

    @property
    def recording(self) -> bool:
        return self.episode is not None

    def start(self, task: str) -> int:
        from training.datasets.writer import EpisodeWriter

        if self.episode is not None:
            raise RecorderError(f"episode {self.episode.index} is being recorded: stop or discard it first")
        if not self.ready:
            self.prepare()
        if not task:
            raise RecorderError("no task instruction: give one in the request or set the 'instruction' parameter")
        full = self._disk_full()
        if full:
            raise RecorderError(full)
        index = self.store.next_index()
        self._staged = self.store.staging_path(index)
        try:
            spec = self.spec
            self.writer = EpisodeWriter(
                self._staged, spec.features(), fps=spec.fps, image_writer_threads=spec.image_writer_threads
            )
            if spec.image_writer_processes and spec.cameras:
                self.writer.dataset.stop_image_writer()
                self.writer.dataset.start_image_writer(spec.image_writer_processes, spec.image_writer_threads)
            self._spool = None
            if spec.spool_images and spec.cameras:
                self._spool = ImageSpool(self._staged.with_name(self._staged.name + ".spool"), spec.cameras)
        except BaseException:  # e.g. a full disk: nothing of this episode stays behind
            self._close_writer(discard=True)
            raise
        self._pending = []
        self.episode = EpisodeSummary(index=index, task=task)
        self._lags = []
        self._write_s = 0.0
        return index

    def add(self, result: SyncResult) -> EpisodeSummary | None:
        """Write the frames of a sync step; returns the summary if a write error ended the episode."""
        ep = self.episode
        if ep is None:
            return None
        for drop in result.drops:
            ep.dropped_frames += 1
            ep.drop_reasons[drop.reason] = ep.drop_reasons.get(drop.reason, 0) + 1
        self._lags += result.lags_s
        try:
            for frame in result.frames:
                t0 = time.perf_counter()
                if self._spool is not None:
                    self._pending.append(self._spool.put(frame))
                else:
                    self.writer.add(frame, task=ep.task)
                self._write_s += time.perf_counter() - t0
                ep.frames += 1
                ep.intervention_frames += bool(frame[schema.INTERVENTION])
                ep.expert_label_frames += bool(frame[schema.EXPERT_LABEL])
                ep.policy_invalid_frames += not bool(frame[schema.POLICY_VALID])
                ep.success = ep.success or bool(frame[schema.SUCCESS])
                if ep.frames % 50 == 0 and self._disk_full():
                    return self._fail(self._disk_full())
        except Exception as exc:  # a write error ends this episode only
            return self._fail(f"write error: {exc}")
        return None

    def set_min_free_mb(self, value: float) -> EpisodeSummary | None:
        """Apply a new disk-space rule at once: an episode in progress it breaks fails (its summary)."""
        _check_min_free_mb(value)
        self.min_free_mb = value
        full = self._disk_full() if self.episode is not None else None
        return self._fail(full) if full else None

    def stop(self, task_success: bool) -> EpisodeSummary:
        """Save the episode: finalize its dataset, move it into the log, merge the union."""
        ep = self._require()
        if ep.frames == 0:
            self._close_writer(discard=True)
            return self._end(DISCARDED, "no frames recorded: nothing saved")
        t0 = time.monotonic()
        try:
            if self._spool is not None:
                for frame in self._spool.replay(self._pending):
                    self.writer.add(frame, task=ep.task)
                self._close_spool()
            if task_success:
                self._mark_success()
            self.writer.save_episode()
            self.writer.close()
            self.writer.dataset.stop_image_writer()
            self.writer = None
            self.store.commit(self._staged, ep.index)
            self._staged = None
        except Exception as exc:  # noqa: BLE001 - lerobot, pyarrow and PyAV raise their own; the episode fails
            return self._fail(f"saving failed: {exc}")
        message = ""
        if self.merge_after_save:
            try:
                self.store.merge()
            except Exception as exc:  # noqa: BLE001 - the episode is in the log; the union is redone later
                message = f"in {self.store.episodes_dir}; {self.dataset_path} was not updated ({exc}): next save"
        ep.success = ep.success or task_success
        ep.save_s = time.monotonic() - t0
        return self._end(SAVED, message)

    def discard(self) -> EpisodeSummary:
        self._require()
        self._close_writer(discard=True)
        return self._end(DISCARDED, "discarded on request")

    def close(self, unlock: bool = True) -> EpisodeSummary | None:
        """Shutdown: an open episode is discarded (it was not asked to be saved), then the lock released
        unless `unlock` is false: a process that may still write (a merge in another thread) keeps it
        until it exits, when the kernel releases it."""
        try:
            if self.episode is None:
                return None
            self._close_writer(discard=True)
            return self._end(DISCARDED, "the recorder shut down mid-episode")
        finally:
            if unlock:
                self.lock.release()

    @property
    def dataset_path(self) -> Path:
        return self.store.dataset_link

    # ----------------------------------------------------------------- internals
    def _mark_success(self) -> None:
        # The operator's verdict: the episode's last frame is its success (LeRobot has no per-episode flag).
        buf = self.writer.dataset.episode_buffer
        if buf and buf.get(schema.SUCCESS):
            buf[schema.SUCCESS][-1] = np.array([True])

    def _disk_full(self) -> str | None:
        free = free_mb(self.store.root)
        if free >= self.min_free_mb:
            return None
        return f"disk almost full: {free:.0f} MB free under {self.store.root}, min_free_mb is {self.min_free_mb:g}"

    def _require(self) -> EpisodeSummary:
        if self.episode is None:
            raise RecorderError("no episode is being recorded: start one first")
        return self.episode

    def _fail(self, message: str) -> EpisodeSummary:
        self._close_writer(discard=True)
        return self._end(FAILED, message + "; earlier episodes are kept")

    def _close_spool(self) -> None:
        if self._spool is not None:
            spool, self._spool, self._pending = self._spool, None, []
            spool.close()

    def _close_writer(self, discard: bool) -> None:
        try:
            self._close_spool()
        except OSError:  # its buffered bytes hit the same full disk: the file goes anyway
            pass
        if self.writer is not None:
            try:
                if discard:
                    self.writer.discard_episode()
                self.writer.dataset.stop_image_writer()
            except Exception:  # noqa: BLE001 - cleaning up after an error: the staging dir goes anyway
                pass
            self.writer = None
        if self._staged is not None:
            import shutil

            shutil.rmtree(self._staged, ignore_errors=True)
            shutil.rmtree(self._staged.with_name(self._staged.name + ".spool"), ignore_errors=True)
            self._staged = None

    def _end(self, outcome: str, message: str) -> EpisodeSummary:
        ep = self._require()
        ep.outcome, ep.message = outcome, message
        ep.write_ms_per_frame = 1000 * self._write_s / max(ep.frames, 1)
        if self._lags:
            lags = 1000 * np.asarray(self._lags)
            ep.lag_ms_p50, ep.lag_ms_max = float(np.median(lags)), float(lags.max())
        self.episode = None
        return ep


class ImageSpool:
    """Raw camera frames appended to one file per camera while an episode runs.

    lerobot's add_frame encodes a PNG per image (threads in this process) and its video encoder runs
    at save: at 3 x 480x640 x 50 Hz that competes with receiving the images on a small CPU, and
    frames drop (benchmarks/recorder_throughput.py). Spooled, a frame costs a copy into the page
    cache; the encoding runs after the episode, when nothing arrives. The spool lives in staging:
    a crash leaves it there and the next start removes it with the rest of the cut episode.
    """

    def __init__(self, root: Path, cameras: tuple[str, ...]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True)
        self.files = {cam: open(self.root / f"{cam}.raw", "wb") for cam in cameras}  # noqa: SIM115 - closed in close()
        self.shape: dict[str, tuple[int, ...]] = {}
        self.count = 0

    def put(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Write the frame's images out; returns the frame without them (they come back in replay)."""
        rest = dict(frame)
        for cam, f in self.files.items():
            img = np.ascontiguousarray(rest.pop(schema.image_key(cam)))
            self.shape.setdefault(cam, img.shape)
            f.write(memoryview(img).cast("B"))
        self.count += 1
        return rest

    def replay(self, frames: list[dict[str, Any]]):
        """The frames again, each with its images read back (memory-mapped)."""
        for f in self.files.values():
            f.flush()
        maps = {
            cam: np.memmap(self.root / f"{cam}.raw", np.uint8, "r", shape=(self.count, *self.shape[cam]))
            for cam in self.files
        }
        for i, frame in enumerate(frames):
            yield {**frame, **{schema.image_key(cam): np.asarray(m[i]) for cam, m in maps.items()}}

    def close(self) -> None:
        """Close and remove the files; a write error of the last buffered bytes is raised after that."""
        import shutil

        error = None
        for f in self.files.values():
            try:
                f.close()
            except OSError as exc:
                error = error or exc
        shutil.rmtree(self.root, ignore_errors=True)
        if error is not None:
            raise error


def _check_min_free_mb(value: float) -> None:
    if not value >= 0:
        raise ValueError(f"min_free_mb: must be >= 0 (MB), got {value}")
