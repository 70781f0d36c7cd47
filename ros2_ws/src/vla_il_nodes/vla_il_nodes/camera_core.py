"""A camera through OpenCV: capture, stamp, reconnect, and measure. Plain Python, no ROS.

Sources (`parse_source`):
    "0", "2"                    a V4L2 device index
    /dev/video0, /dev/CAM_HIGH  a V4L2 device path (udev names included)
    rtsp://..., http://...      a network stream (FFmpeg)
    "... ! appsink"             a GStreamer pipeline (needs an OpenCV built with GStreamer)
    path/to/video.mp4           a video file, played at `fps` (or its own rate), looped or once

`CameraCapture` runs a capture thread: each frame is stamped when `grab()` returns (before decoding),
converted to RGB at the asked size and handed to `on_frame(rgb, stamp_ns, capture_monotonic)`. When
a device stops delivering it is released and reopened every `reconnect_interval_s` until it is back;
every change of state goes to `on_event(text)`. `stats()` reports the real capture rate and the
capture-to-publish latency that the caller records with `record_latency`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import cv2
except ImportError as _exc:  # a robot install without OpenCV: one line saying what to install, no traceback
    raise SystemExit(f"[camera_node] cannot start: OpenCV is not installed here ({_exc}): "
                     "pip install opencv-python-headless (or: apt install python3-opencv)") from None

DEVICE, STREAM, PIPELINE, FILE = "device", "stream", "gstreamer", "file"


class CameraError(ValueError):
    """A camera configuration that cannot work; the message says what was expected."""


@dataclass(frozen=True)
class Source:
    kind: str  # device | stream | gstreamer | file
    target: str | int  # device index or path, URL, pipeline, file path

    def describe(self) -> str:
        return f"{self.kind} {self.target}"


def parse_source(text: str) -> Source:
    """What a `source` parameter names; CameraError when it names nothing usable."""
    text = str(text).strip()
    if not text:
        raise CameraError("source: empty; expected a device index (0), a device (/dev/video0), a URL or a file")
    if text.isdigit():
        return Source(DEVICE, int(text))
    if "!" in text:
        return Source(PIPELINE, text)
    if "://" in text:
        return Source(STREAM, text)
    if text.startswith("/dev/"):
        return Source(DEVICE, text)
    path = Path(text).expanduser()
    if not path.is_file():
        raise CameraError(f"source: {text} is not a device index, /dev path, URL, pipeline or existing video file")
    return Source(FILE, str(path.resolve()))


@dataclass(frozen=True)
class CaptureConfig:
    source: Source
    width: int = 0  # 0: what the source delivers
    height: int = 0
    fps: float = 0.0  # 0: the source's rate (files: their own; devices: their default)
    loop: bool = True  # files: start again at the end (else stop after one play)
    reconnect_interval_s: float = 1.0
    fourcc: str = ""  # devices: e.g. MJPG, for 3 x 640x480 @ 30 on one USB bus

    def __post_init__(self) -> None:
        if self.width < 0 or self.height < 0 or (self.width == 0) != (self.height == 0):
            raise CameraError(f"width/height: both > 0 or both 0 (source size), got {self.width}x{self.height}")
        if self.fps < 0:
            raise CameraError(f"fps: must be >= 0, got {self.fps}")
        if self.reconnect_interval_s <= 0:
            raise CameraError(f"reconnect_interval_s: must be > 0, got {self.reconnect_interval_s}")
        if self.fourcc and len(self.fourcc) != 4:
            raise CameraError(f"fourcc: four characters like MJPG, got {self.fourcc!r}")


@dataclass(frozen=True)
class CameraStats:
    connected: bool
    frames: int  # delivered to on_frame
    capture_rate_hz: float  # over the last window of frames
    latency_p50_ms: float  # capture -> published (as recorded by the caller)
    latency_p99_ms: float
    latency_max_ms: float
    failed_reads: int
    reconnects: int
    resized: bool  # the source did not deliver the asked size: frames are resized

    def line(self) -> str:
        state = "connected" if self.connected else "DISCONNECTED"
        return (
            f"{state}, {self.frames} frames, {self.capture_rate_hz:.1f} fps captured, capture->publish "
            f"p50 {self.latency_p50_ms:.2f} ms p99 {self.latency_p99_ms:.2f} ms max {self.latency_max_ms:.2f} ms, "
            f"{self.failed_reads} failed reads, {self.reconnects} reconnects"
        )


FrameCallback = Callable[[np.ndarray, int, float], None]


class CameraCapture:
    """Owns the OpenCV capture and its thread. `start()`, then frames arrive on `on_frame`."""

    def __init__(
        self,
        config: CaptureConfig,
        on_frame: FrameCallback,
        on_event: Callable[[str], None] = print,
        now_ns: Callable[[], int] = time.time_ns,
        window: int = 300,
    ) -> None:
        self.config = config
        self.on_frame = on_frame
        self.on_event = on_event
        self.now_ns = now_ns  # the stamp's clock (the node passes its ROS clock)
        self._cap: cv2.VideoCapture | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._times: deque[float] = deque(maxlen=window)
        self._latency_ms: deque[float] = deque(maxlen=window)
        self.frames = 0
        self.failed_reads = 0
        self.reconnects = 0
        self.connected = False
        self.finished = False  # a file played once has ended
        self.resized = False
        self._ever_connected = False
        self._source_fps = 0.0

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> bool:
        """Open the source; False (and an event) when it is not there (yet)."""
        src = self.config.source
        if src.kind == PIPELINE and "GStreamer:                   YES" not in cv2.getBuildInformation():
            raise CameraError(
                "source: a GStreamer pipeline, but this OpenCV is built without GStreamer "
                "(use a device, a URL or a file, or an OpenCV with GStreamer)"
            )
        backend = {DEVICE: cv2.CAP_V4L2, STREAM: cv2.CAP_FFMPEG, PIPELINE: cv2.CAP_GSTREAMER, FILE: cv2.CAP_FFMPEG}
        cap = cv2.VideoCapture(src.target, backend[src.kind])
        if not cap.isOpened():
            cap.release()
            return False
        if src.kind == DEVICE:
            if self.config.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.config.fourcc))
            if self.config.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
            if self.config.fps:
                cap.set(cv2.CAP_PROP_FPS, self.config.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
        self._source_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._cap = cap
        self.connected = self._ever_connected = True
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="camera-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._release()

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    @property
    def pace_fps(self) -> float:
        """Files are played in real time: at `fps`, else at the file's own rate, else 30."""
        if self.config.source.kind != FILE:
            return 0.0
        return self.config.fps or self._source_fps or 30.0

    # ------------------------------------------------------------------ capture loop
    def _run(self) -> None:
        next_due = time.monotonic()
        while not self._stop.is_set():
            if self._cap is None and not self._reopen():
                continue
            ok = self._cap.grab()
            capture_mono, stamp_ns = time.monotonic(), self.now_ns()
            frame = self._cap.retrieve()[1] if ok else None
            if frame is None:
                if self._end_of_file():
                    continue
                self._lost("no frame")
                continue
            self._deliver(frame, stamp_ns, capture_mono)
            if self.pace_fps:
                next_due = max(next_due + 1.0 / self.pace_fps, time.monotonic() - 1.0 / self.pace_fps)
                self._stop.wait(max(0.0, next_due - time.monotonic()))

    def _reopen(self) -> bool:
        was_connected = self._ever_connected
        if self.open():
            if was_connected:
                self.reconnects += 1
                self.on_event(f"{self.config.source.describe()}: reconnected (reconnect #{self.reconnects})")
            else:
                self.on_event(f"{self.config.source.describe()}: opened")
            return True
        if self.connected or not self._ever_connected and self.failed_reads == 0:
            self.on_event(
                f"{self.config.source.describe()}: cannot open; retrying every {self.config.reconnect_interval_s:g} s"
            )
        self.connected = False
        self.failed_reads += 1
        self._stop.wait(self.config.reconnect_interval_s)
        return False

    def _end_of_file(self) -> bool:
        """A file at its end: rewind (loop) or finish. False when it is not the end of a file."""
        if self.config.source.kind != FILE or not Path(self.config.source.target).is_file():
            return False
        pos = self._cap.get(cv2.CAP_PROP_POS_FRAMES)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        if count > 0 and pos < count - 1:
            return False  # a broken frame in the middle, not the end
        if self.config.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            return True
        self.finished = True
        self.on_event(f"{self.config.source.describe()}: end of file after {self.frames} frames (loop is off)")
        self._stop.set()
        return True

    def _lost(self, why: str) -> None:
        self.failed_reads += 1
        self.connected = False
        self._release()
        self.on_event(
            f"{self.config.source.describe()}: lost ({why}); reconnecting every {self.config.reconnect_interval_s:g} s"
        )
        self._stop.wait(self.config.reconnect_interval_s)

    def _deliver(self, frame: np.ndarray, stamp_ns: int, capture_mono: float) -> None:
        if frame.ndim == 2:
            rgb = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        else:
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB if frame.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        w, h = self.config.width, self.config.height
        if w and (rgb.shape[1], rgb.shape[0]) != (w, h):
            if not self.resized:
                self.on_event(
                    f"{self.config.source.describe()}: delivers {rgb.shape[1]}x{rgb.shape[0]}, "
                    f"resizing to the asked {w}x{h}"
                )
                self.resized = True
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        with self._lock:
            self._times.append(capture_mono)
            self.frames += 1
        self.on_frame(rgb, stamp_ns, capture_mono)

    # ------------------------------------------------------------------ measurements
    def record_latency(self, capture_mono: float) -> None:
        """The caller published the frame captured at `capture_mono` just now."""
        with self._lock:
            self._latency_ms.append((time.monotonic() - capture_mono) * 1e3)

    def stats(self) -> CameraStats:
        with self._lock:
            times, lat = list(self._times), np.array(self._latency_ms, dtype=float)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        p50, p99, worst = (np.percentile(lat, 50), np.percentile(lat, 99), lat.max()) if lat.size else (0.0, 0.0, 0.0)
        return CameraStats(
            self.connected,
            self.frames,
            float(rate),
            float(p50),
            float(p99),
            float(worst),
            self.failed_reads,
            self.reconnects,
            self.resized,
        )


def load_camera_info(path: str) -> dict:
    """A camera_calibration YAML (image_width, image_height, camera_matrix, distortion_model, ...)."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CameraError(f"camera_info_file: cannot read {path}: {exc}") from exc
    try:
        info = {
            "width": int(raw["image_width"]),
            "height": int(raw["image_height"]),
            "k": [float(x) for x in raw["camera_matrix"]["data"]],
            "distortion_model": str(raw.get("distortion_model", "plumb_bob")),
            "d": [float(x) for x in raw.get("distortion_coefficients", {}).get("data", [])],
            "r": [float(x) for x in raw.get("rectification_matrix", {}).get("data", np.eye(3).ravel())],
            "p": [float(x) for x in raw.get("projection_matrix", {}).get("data", [])],
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise CameraError(f"camera_info_file: {path} lacks {exc} (expected camera_calibration's YAML)") from exc
    if len(info["k"]) != 9 or len(info["r"]) != 9:
        raise CameraError(f"camera_info_file: {path}: camera_matrix and rectification_matrix need 9 values")
    if not info["p"]:
        k = info["k"]
        info["p"] = [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0]
    return info
