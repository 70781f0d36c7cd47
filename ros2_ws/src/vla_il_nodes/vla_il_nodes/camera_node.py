"""camera_node: one camera (V4L2 device, network stream, GStreamer pipeline or video file) on ROS.

Publishes   image_raw (sensor_msgs/Image rgb8) and camera_info (sensor_msgs/CameraInfo), both with
            sensor-data QoS and the capture time as stamp; ~/status (std_msgs/String, JSON: real
            capture rate, capture-to-publish latency p50/p99/max, frames, failed reads, reconnects)
Parameters  source, camera_name, frame_id, width, height, fps, loop, fourcc, reconnect_interval_s,
            first_frame_timeout_s, camera_info_file, status_period_s (config/camera_node.yaml)
Several cameras are several instances, each in its namespace (cameras/<name>): the launch files
start one per camera of the robot profile. Capture, reconnection and measurement are in
camera_core.py; this node only builds messages and publishes them from the capture thread.
"""

from __future__ import annotations

import array
import json
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String

from vla_il_nodes.camera_core import CameraCapture, CameraError, CaptureConfig, load_camera_info, parse_source
from vla_il_nodes.node_runtime import ParameterError, declare, run


class CameraNode(Node):
    def __init__(self) -> None:
        super().__init__("camera_node")
        source = declare(
            self, "source", "", "Device index (0), device path, rtsp/http URL, GStreamer pipeline or video file."
        )
        self.camera_name = declare(self, "camera_name", "camera", "The camera's name (dataset and policy input).")
        frame_id = declare(self, "frame_id", "", "frame_id of the images (default: <camera_name>_optical_frame).")
        width = declare(self, "width", 0, "Image width (pixels); 0 with height 0: the source's size.")
        height = declare(self, "height", 0, "Image height (pixels).")
        fps = declare(self, "fps", 30.0, "Frame rate asked of a device; the playback rate of a file (0: its own).")
        loop = declare(self, "loop", True, "Video files: start again at the end (false: play once, then stop).")
        fourcc = declare(self, "fourcc", "", "Devices: pixel format to ask for, e.g. MJPG (empty: the default).")
        reconnect_s = declare(self, "reconnect_interval_s", 1.0, "How often to retry a missing source (s).")
        self.first_frame_timeout_s = declare(
            self, "first_frame_timeout_s", 5.0, "Error when no frame has arrived after this long (s)."
        )
        info_file = declare(self, "camera_info_file", "", "camera_calibration YAML with the intrinsics (optional).")
        status_period_s = declare(self, "status_period_s", 2.0, "Period of ~/status and of the log line (s).")
        if not source:
            raise ParameterError("parameter 'source': a device index, device path, URL or video file is required")
        if status_period_s <= 0 or self.first_frame_timeout_s <= 0:
            raise ParameterError("parameters 'status_period_s' and 'first_frame_timeout_s': must be > 0")
        try:
            config = CaptureConfig(parse_source(source), width, height, fps, loop, reconnect_s, fourcc)
            self.intrinsics = load_camera_info(info_file) if info_file else None
        except CameraError as exc:
            raise ParameterError(f"parameter {exc}") from exc
        self.frame_id = frame_id or f"{self.camera_name}_optical_frame"

        self.image_pub = self.create_publisher(Image, "image_raw", qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.capture = CameraCapture(config, self._publish, self._event, self._now_ns)
        self._started = time.monotonic()
        self._no_frame_reported = False
        self.create_timer(status_period_s, self._report)
        try:
            opened = self.capture.open()
        except CameraError as exc:
            raise ParameterError(f"parameter {exc}") from exc
        if not opened and config.source.kind == "file":  # devices and streams: the thread retries
            raise ParameterError(f"parameter 'source': OpenCV cannot decode the video file {config.source.target}")
        self.capture.start()
        size = f"{width}x{height}" if width else "source size"
        self.get_logger().info(
            f"{self.camera_name}: {config.source.describe()} at {size}, "
            f"{fps:g} fps{'' if opened else ' (not there yet: retrying)'}"
        )

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _event(self, text: str) -> None:
        self.get_logger().warning(f"{self.camera_name}: {text}")

    def _publish(self, rgb, stamp_ns: int, capture_mono: float) -> None:
        """Called from the capture thread for every frame."""
        header = Header(frame_id=self.frame_id)
        header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        h, w = rgb.shape[:2]
        msg = Image(header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
        # Filling the message's own array from the frame's buffer: ~0.1 ms for 640x480, where
        # Image(data=bytes) checks every byte in Python (several ms under load).
        msg.data = array.array("B")
        msg.data.frombytes(np.ascontiguousarray(rgb).data)
        self.image_pub.publish(msg)
        self.capture.record_latency(capture_mono)
        self.info_pub.publish(self._camera_info(header, h, w))

    def _camera_info(self, header: Header, h: int, w: int) -> CameraInfo:
        info = CameraInfo(header=header, height=h, width=w)
        if self.intrinsics is not None:
            i = self.intrinsics
            sx, sy = w / i["width"], h / i["height"]  # calibration at another size: scale the intrinsics
            k = list(i["k"])
            k[0], k[2], k[4], k[5] = k[0] * sx, k[2] * sx, k[4] * sy, k[5] * sy
            p = list(i["p"])
            p[0], p[2], p[5], p[6] = p[0] * sx, p[2] * sx, p[5] * sy, p[6] * sy
            info.k, info.p, info.r, info.d = k, p, i["r"], i["d"]
            info.distortion_model = i["distortion_model"]
        return info  # uncalibrated: K = 0, as camera_info_manager publishes it

    def _report(self) -> None:
        s = self.capture.stats()
        if s.frames == 0 and time.monotonic() - self._started > self.first_frame_timeout_s:
            self.get_logger().error(
                f"{self.camera_name}: no frame from {self.capture.config.source.describe()} after "
                f"{time.monotonic() - self._started:.0f} s ({s.failed_reads} failed opens/reads)",
                throttle_duration_sec=max(self.first_frame_timeout_s, 5.0),
            )
        elif s.frames:
            self.get_logger().info(f"{self.camera_name}: {s.line()}", throttle_duration_sec=30.0)
        status = {
            "camera": self.camera_name,
            "source": self.capture.config.source.describe(),
            "finished": self.capture.finished,
            **s.__dict__,
        }
        self.status_pub.publish(String(data=json.dumps(status)))

    def destroy_node(self) -> None:
        if hasattr(self, "capture"):
            self.capture.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run(CameraNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
