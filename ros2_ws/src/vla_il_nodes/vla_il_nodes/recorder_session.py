"""An episode's life in the DAgger recorder: start, frames, then saved, discarded or failed. No ROS.

Frames go through lerobot's API (training.datasets.writer.EpisodeWriter) into a dataset of their
own in the record store's staging area; saving finalizes it, moves it into the log and merges the
union (recorder_store.py). A write error or a nearly full disk ends the episode as failed, with the
error in the summary, removes its files and leaves every earlier episode as it was. A session holds
the record directory's lock (recorder_lock.py) from its start to `close()`.

With cameras, an episode's images are spooled raw while it runs and encoded after it (ImageSpool):
tens of seconds to minutes for 480x640 cameras. `stop(background=True)` hands that encoding to one
encoder thread (FIFO, niced below the receive path) and returns at once, so the next episode can
start while the last one encodes; `on_encoded` hears how it ended. A stopped episode's spool is
complete on disk (its frames' data beside the raw images, fsynced) before stop returns: a recorder
that dies while encoding leaves it in staging, and the next start encodes it again instead of
losing it.
"""

from __future__ import annotations

import os
import pickle
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_il_core import schema
from vla_il_core.recorder_sync import SyncResult
from vla_il_nodes.recorder_lock import RecordDirLock
from vla_il_nodes.recorder_store import SPOOL_DONE, SPOOL_SUFFIX, RecordStore, free_mb, fsync_path

SAVED, DISCARDED, FAILED, ENCODING = "saved", "discarded", "failed", "encoding"
ENCODER_NICE = 10  # the encoder thread's niceness: receiving the next episode's frames comes first


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
    slow_writes: int = 0  # frames whose write took over half a tick: the disk is falling behind the stream
    refused: dict[str, int] = field(default_factory=dict)  # inputs refused (wrong image size...), by what
    save_s: float = 0.0  # from the stop to the episode in the log and merged (encoding included)
    queued_s: float = 0.0  # of which waiting behind earlier episodes' encoding
    stages_s: dict[str, float] = field(default_factory=dict)  # the rest: images, video+parquet, merge
    message: str = ""

    def line(self) -> str:
        text = (
            f"episode {self.index} {self.outcome}: {self.frames} frames, {self.intervention_frames} by the expert, "
            f"{self.dropped_frames} dropped, observation lag p50 {self.lag_ms_p50:.1f} ms max "
            f"{self.lag_ms_max:.1f} ms, {self.policy_invalid_frames} without a valid policy action, "
            f"write {self.write_ms_per_frame:.2f} ms/frame"
        )
        if self.outcome == ENCODING:
            text += ", encoding in the background"
        if self.save_s:
            text += f", saved in {self.save_s:.1f} s"
            parts = ([f"queued {self.queued_s:.1f} s"] if self.queued_s >= 0.05 else []) + [
                f"{stage} {t:.1f} s" for stage, t in self.stages_s.items()
            ]
            if parts:
                text += f" ({', '.join(parts)})"
        if self.drop_reasons:
            text += "; drops: " + "; ".join(f"{n}x {r}" for r, n in self.drop_reasons.items())
        if self.refused:
            text += "; refused: " + "; ".join(f"{n}x {r}" for r, n in self.refused.items())
        if self.slow_writes:
            text += (f"; {self.slow_writes} frames took over half a tick to write: the disk is falling behind "
                     "the cameras (a faster disk, or fewer/smaller cameras)")
        return text + (f"; {self.message}" if self.message else "")


@dataclass
class _EncodeJob:
    """A stopped episode waiting to be encoded: its summary, spool and staging path."""

    summary: EpisodeSummary
    staged: Path
    spool: ImageSpool | None
    frames: list[dict[str, Any]]
    task_success: bool
    writer: Any = None  # without a spool: the writer that has the frames already
    background: bool = True  # False: the caller waits for `done`; on_encoded is not called
    stopped_at: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)


class _Interrupted(Exception):
    """The recorder is shutting down: the encoding stops, the spool stays for the next start."""


class RecordingSession:
    """The episodes of one recorder run; at most one episode is open at a time, any number encoding.

    Raises RecordDirInUse while another recorder holds `record_dir`; only then, holding its lock, does it
    clear what a dead recorder left in staging (`cut_episodes`) and take up the episodes it had stopped
    but not yet encoded (`resumed`, encoded once `prepare` has loaded lerobot).
    `on_encoded(summary)` is called from the encoder thread when a background encoding ends.
    """

    encode_grace_s = 2.0  # close(): how long an encoding under way may take to stop

    def __init__(
        self,
        record_dir: Path,
        spec: DatasetSpec,
        min_free_mb: float = 500.0,
        merge: bool = True,
        on_encoded: Callable[[EpisodeSummary], None] | None = None,
    ) -> None:
        _check_min_free_mb(min_free_mb)
        self.lock = RecordDirLock(record_dir)
        try:
            self.store = RecordStore(record_dir)
            self.cut_episodes = self.store.recover()
            self.store.check_features(spec.features(), spec.fps)
            self._resume = [ImageSpool.load(path) for path in self.store.stopped_spools()]
        except BaseException:
            self.lock.release()
            raise
        self.resumed = [job.summary for job in self._resume]
        self.spec = spec
        self.min_free_mb = min_free_mb
        self.merge_after_save = merge
        self.on_encoded = on_encoded
        self.ready = False
        self.writer = None
        self._spool: ImageSpool | None = None
        self._pending: list[dict[str, Any]] = []
        self.episode: EpisodeSummary | None = None
        self._staged: Path | None = None
        self._lags: list[float] = []
        self._write_s = 0.0
        self._jobs: queue.Queue[_EncodeJob | None] = queue.Queue()
        self._encoding: dict[int, EpisodeSummary] = {}  # queued or being encoded, by index
        self._unreported = 0  # jobs queued whose on_encoded call has not returned yet
        self._encode_lock = threading.Lock()  # one episode encodes at a time, in stop order
        self._encoder: threading.Thread | None = None
        self._closing = threading.Event()
        self._state = threading.Lock()  # guards _encoding between the encoder and the caller's thread

    def prepare(self) -> None:
        """Load lerobot (slow: it imports torch), merge what a crash left unmerged, and queue the
        episodes a dead recorder had stopped but not encoded."""
        from training.datasets.writer import EpisodeWriter  # noqa: F401 - the import is the point

        if self.merge_after_save:
            self.store.merge()
        resume, self._resume = self._resume, []
        for job in resume:
            self._queue(job)
        self.ready = True

    @property
    def recording(self) -> bool:
        return self.episode is not None

    @property
    def encoding(self) -> list[int]:
        """Indices of the stopped episodes not yet in the log (queued or being encoded)."""
        with self._state:
            return sorted(self._encoding)

    def start(self, task: str) -> int:
        if self.episode is not None:
            raise RecorderError(f"episode {self.episode.index} is being recorded: stop or discard it first")
        if not self.ready:
            self.prepare()
        if not task:
            raise RecorderError("no task instruction: give one in the request or set the 'instruction' parameter")
        full = self._disk_full()
        if full:
            raise RecorderError(full)
        with self._state:
            index = max([self.store.next_index(), *(i + 1 for i in self._encoding)])
        self._staged = self.store.staging_path(index)
        try:
            spec = self.spec
            self._spool = None
            if spec.spool_images and spec.cameras:  # the writer comes at the encoding, in its thread
                self._spool = ImageSpool(self._staged.with_name(self._staged.name + SPOOL_SUFFIX), spec.cameras)
            else:
                self.writer = self._new_writer(self._staged)
        except BaseException:  # e.g. a full disk: nothing of this episode stays behind
            self._close_writer()
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
                took = time.perf_counter() - t0
                self._write_s += took
                ep.slow_writes += took > 0.5 / self.spec.fps
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

    def refuse(self, what: str) -> None:
        """Count an input refused during the episode (it appears in the episode's account)."""
        if self.episode is not None:
            self.episode.refused[what] = self.episode.refused.get(what, 0) + 1

    def set_min_free_mb(self, value: float) -> EpisodeSummary | None:
        """Apply a new disk-space rule at once: an episode in progress it breaks fails (its summary)."""
        _check_min_free_mb(value)
        self.min_free_mb = value
        full = self._disk_full() if self.episode is not None else None
        return self._fail(full) if full else None

    def stop(self, task_success: bool, background: bool = False) -> EpisodeSummary:
        """Save the episode: finalize its dataset, move it into the log, merge the union.

        background: when its images were spooled, return at once (outcome "encoding") and encode in the
        encoder thread, after the episodes stopped before it; `on_encoded` gets the final summary.
        Otherwise the encoding happens here, after any queued one, and the summary is final.
        """
        ep = self._require()
        if ep.frames == 0:
            self._close_writer()
            return self._end(DISCARDED, "no frames recorded: nothing saved")
        ep.success = ep.success or task_success
        job = _EncodeJob(ep, self._staged, self._spool, self._pending, task_success, self.writer)
        self._account(ep)
        if self._spool is not None:
            try:  # from here on the episode survives this process: the next start would encode it
                self._spool.finish(self._pending, ep, task_success)
            except Exception as exc:  # noqa: BLE001 - e.g. the disk filled up with the last bytes
                return self._fail(f"saving failed: {exc}")
        self.writer, self._spool, self._pending, self._staged = None, None, [], None
        self._end(ENCODING, "")
        if job.spool is None:  # nothing was ever queued: the save is here and now
            return self._encode(job)
        job.background = background
        self._queue(job)  # one queue: episodes reach the log in the order they stopped
        while not background and not job.done.wait(0.1) and not self._closing.is_set():
            pass
        return ep

    def wait_encoded(self, timeout: float | None = None) -> bool:
        """Wait until every stopped episode is encoded and reported to on_encoded (or `timeout` s passed); True
        if none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.encoding or self._unreported:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def discard(self) -> EpisodeSummary:
        self._require()
        self._close_writer()
        return self._end(DISCARDED, "discarded on request")

    def close(self, unlock: bool = True) -> EpisodeSummary | None:
        """Shutdown: an open episode is discarded (it was not asked to be saved), then the lock released
        unless `unlock` is false: a process that may still write (a merge in another thread) keeps it
        until it exits, when the kernel releases it. Stopped episodes still encoding are not waited for:
        their spools stay in staging and the next start encodes them (`encoding` says which). The one
        being encoded stops at its next frame; a video encode under way is waited for up to
        `encode_grace_s`."""
        self._closing.set()
        self._jobs.put(None)
        if self._encoder is not None:
            self._encoder.join(self.encode_grace_s)
        try:
            if self.episode is None:
                return None
            self._close_writer()
            return self._end(DISCARDED, "the recorder shut down mid-episode")
        finally:
            if unlock:
                self.lock.release()

    @property
    def dataset_path(self) -> Path:
        return self.store.dataset_link

    # ----------------------------------------------------------------- encoding
    def _new_writer(self, staged: Path):
        from training.datasets.writer import EpisodeWriter

        spec = self.spec
        writer = EpisodeWriter(staged, spec.features(), fps=spec.fps, image_writer_threads=spec.image_writer_threads)
        if spec.image_writer_processes and spec.cameras:
            writer.dataset.stop_image_writer()
            writer.dataset.start_image_writer(spec.image_writer_processes, spec.image_writer_threads)
        return writer

    def _queue(self, job: _EncodeJob) -> None:
        with self._state:
            self._encoding[job.summary.index] = job.summary
            self._unreported += 1
        if self._encoder is None or not self._encoder.is_alive():
            self._encoder = threading.Thread(target=self._encoder_loop, name="episode-encoder", daemon=True)
            self._encoder.start()
        self._jobs.put(job)

    def _encoder_loop(self) -> None:
        try:  # this thread and the threads it starts (lerobot's image writers, the video encoder)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENCODER_NICE)
        except (AttributeError, OSError):  # not Linux: same priority as the receive path
            pass
        while (job := self._jobs.get()) is not None and not self._closing.is_set():
            try:
                try:
                    summary = self._encode(job)
                finally:
                    job.done.set()
                if job.background and self.on_encoded is not None and not self._closing.is_set():
                    try:
                        self.on_encoded(summary)
                    except Exception:  # noqa: BLE001 - a reporting error must not stop later encodings
                        pass
            finally:
                with self._state:
                    self._unreported -= 1

    def _encode(self, job: _EncodeJob) -> EpisodeSummary:
        """Encode a stopped episode into its staging dataset, move it into the log, merge the union."""
        ep = job.summary
        with self._encode_lock:
            t0 = time.monotonic()
            ep.queued_s = t0 - job.stopped_at
            writer = job.writer
            stage = time.monotonic()

            def lap(name: str) -> None:
                nonlocal stage
                now = time.monotonic()
                ep.stages_s[name] = now - stage
                stage = now

            try:
                try:
                    if job.spool is not None:
                        writer = self._new_writer(job.staged)
                        for frame in job.spool.replay(job.frames):
                            if self._closing.is_set():
                                raise _Interrupted
                            writer.add(frame, task=ep.task)
                        wait = getattr(writer.dataset, "_wait_image_writer", None)  # lerobot's image files
                        if wait is not None:
                            wait()
                        lap("images")
                    if job.task_success:
                        _mark_success(writer)
                    writer.save_episode()
                    writer.close()
                    writer.dataset.stop_image_writer()
                    self.store.commit(job.staged, ep.index)
                    lap("video and parquet" if self.spec.cameras and writer.dataset.meta.video_keys else "parquet")
                except _Interrupted:  # the spool stays complete in staging: the next start encodes it
                    _discard(writer, None)
                    shutil.rmtree(job.staged, ignore_errors=True)
                    ep.message = "not encoded: the recorder shut down; the next start encodes it"
                    return ep
                except Exception as exc:  # noqa: BLE001 - lerobot, pyarrow and PyAV raise their own
                    _discard(writer, job.staged)
                    if job.spool is not None:
                        job.spool.remove()
                    ep.outcome, ep.message = FAILED, f"saving failed: {exc}; earlier episodes are kept"
                    return ep
                if job.spool is not None:
                    job.spool.remove()
                ep.outcome, ep.message = SAVED, ""
                if self.merge_after_save:
                    try:
                        self.store.merge()
                        lap("merge")
                    except Exception as exc:  # noqa: BLE001 - the episode is in the log; the union is redone later
                        ep.message = (
                            f"in {self.store.episodes_dir}; {self.dataset_path} was not updated ({exc}): next save"
                        )
                return ep
            finally:
                ep.save_s = time.monotonic() - job.stopped_at
                if ep.outcome != ENCODING:  # an interrupted one is still to be encoded
                    with self._state:
                        self._encoding.pop(ep.index, None)

    # ----------------------------------------------------------------- internals
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
        self._close_writer()
        return self._end(FAILED, message + "; earlier episodes are kept")

    def _close_writer(self) -> None:
        """Discard the open episode's spool, writer and staging files."""
        if self._spool is not None:
            spool, self._spool, self._pending = self._spool, None, []
            try:
                spool.remove()
            except OSError:  # its buffered bytes hit the same full disk: the files go anyway
                pass
        writer, self.writer = self.writer, None
        if self._staged is not None or writer is not None:
            _discard(writer, self._staged)
            self._staged = None

    def _account(self, ep: EpisodeSummary) -> None:
        ep.write_ms_per_frame = 1000 * self._write_s / max(ep.frames, 1)
        if self._lags:
            lags = 1000 * np.asarray(self._lags)
            ep.lag_ms_p50, ep.lag_ms_max = float(np.median(lags)), float(lags.max())

    def _end(self, outcome: str, message: str) -> EpisodeSummary:
        ep = self._require()
        ep.outcome, ep.message = outcome, message
        self._account(ep)
        self.episode = None
        return ep


def _mark_success(writer) -> None:
    # The operator's verdict: the episode's last frame is its success (LeRobot has no per-episode flag).
    buf = writer.dataset.episode_buffer
    if buf and buf.get(schema.SUCCESS):
        buf[schema.SUCCESS][-1] = np.array([True])


def _discard(writer, staged: Path | None) -> None:
    """Remove an episode's writer and staging files after an error or a discard."""
    if writer is not None:
        try:
            writer.discard_episode()
            writer.dataset.stop_image_writer()
        except Exception:  # noqa: BLE001 - cleaning up after an error: the staging dir goes anyway
            pass
    if staged is not None:
        shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(staged.with_name(staged.name + SPOOL_SUFFIX), ignore_errors=True)


class ImageSpool:
    """Raw camera frames appended to one file per camera while an episode runs.

    lerobot's add_frame encodes a PNG per image (threads in this process) and its video encoder runs
    at save: at 3 x 480x640 x 50 Hz that competes with receiving the images on a small CPU, and
    frames drop (benchmarks/recorder_throughput.py). Spooled, a frame costs a copy into the page
    cache; the encoding runs after the episode. The spool lives in staging. `finish` makes it
    complete: the frames' other data and the episode's account go beside the images (episode.pkl),
    everything fsynced. A crash before that leaves an incomplete spool, which the next start removes
    with the rest of the cut episode; a complete one it encodes.
    """

    DONE = SPOOL_DONE

    def __init__(self, root: Path, cameras: tuple[str, ...], create: bool = True) -> None:
        self.root = Path(root)
        self.cameras = tuple(cameras)
        self.shape: dict[str, tuple[int, ...]] = {}
        self.count = 0
        self.files = {}
        if create:
            self.root.mkdir(parents=True)
            self.files = {cam: open(self.root / f"{cam}.raw", "wb") for cam in cameras}  # noqa: SIM115 - closed in finish/remove

    def put(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Write the frame's images out; returns the frame without them (they come back in replay)."""
        rest = dict(frame)
        for cam, f in self.files.items():
            img = np.ascontiguousarray(rest.pop(schema.image_key(cam)))
            self.shape.setdefault(cam, img.shape)
            f.write(memoryview(img).cast("B"))
        self.count += 1
        return rest

    def finish(self, frames: list[dict[str, Any]], summary: EpisodeSummary, task_success: bool) -> None:
        """Close the image files and write what replay needs beside them, durably."""
        for f in self.files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        self.files = {}
        state = {
            "cameras": self.cameras,
            "shape": self.shape,
            "count": self.count,
            "frames": frames,
            "summary": summary,
            "task_success": task_success,
        }
        tmp = self.root / (self.DONE + ".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / self.DONE)
        fsync_path(self.root)

    @classmethod
    def load(cls, root: Path) -> _EncodeJob:
        """A complete spool a dead recorder left: the job that encodes it (staging path beside it)."""
        with open(Path(root) / cls.DONE, "rb") as f:
            state = pickle.load(f)  # noqa: S301 - our own file, in a directory only the recorder writes
        spool = cls(root, state["cameras"], create=False)
        spool.shape, spool.count = state["shape"], state["count"]
        summary: EpisodeSummary = state["summary"]
        summary.message = "resumed: the recorder stopped before this episode was encoded"
        staged = Path(root).with_name(Path(root).name[: -len(SPOOL_SUFFIX)])
        return _EncodeJob(summary, staged, spool, state["frames"], state["task_success"])

    def replay(self, frames: list[dict[str, Any]]):
        """The frames again, each with its images read back (memory-mapped); after `finish`."""
        maps = {
            cam: np.memmap(self.root / f"{cam}.raw", np.uint8, "r", shape=(self.count, *self.shape[cam]))
            for cam in self.cameras
        }
        for i, frame in enumerate(frames):
            yield {**frame, **{schema.image_key(cam): np.asarray(m[i]) for cam, m in maps.items()}}

    def remove(self) -> None:
        """Close and remove the files; a write error of the last buffered bytes is raised after that."""
        error = None
        for f in self.files.values():
            try:
                f.close()
            except OSError as exc:
                error = error or exc
        self.files = {}
        shutil.rmtree(self.root, ignore_errors=True)
        if error is not None:
            raise error


def _check_min_free_mb(value: float) -> None:
    if not value >= 0:
        raise ValueError(f"min_free_mb: must be >= 0 (MB), got {value}")
