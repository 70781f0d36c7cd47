"""display_node: the live view of the loop in rerun, one more subscriber off the control path.

Subscribes  cameras/<name>/image_raw (Image rgb8/bgr8/mono8, sensor-data QoS, depth 1) for `cameras`,
            joint_states, policy/action, teleop/action, command (JointState), intervention
            (InterventionEvent), policy/status (PolicyStatus)
Shows       every camera, the measured joints, the policy's and the expert's proposals, the command sent,
            who drives (a colour band), takeovers so far, the policy's latency (vla_il_core.display)
Parameters  cameras, sink (web | save | connect | spawn), save_path, web_port, grpc_port, connect_url,
            max_image_rate_hz
The recorder and the policy node never wait for it: it is a process of its own, its image subscriptions
keep only the newest frame, and rerun logs from a background thread. `sink: web` serves the web viewer
(http://localhost:<web_port>, the URL is logged); `save` writes an .rrd file; `connect` streams to a
running viewer (`rerun` on the operator's machine; connect_url e.g. rerun+http://host:9876/proxy).
The first message on each topic logs `live view: receiving <topic>`: a silent topic is one that never arrived.
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from vla_il_msgs.msg import InterventionEvent, PolicyStatus

from vla_il_core.images import rgb_pixels
from vla_il_nodes.node_runtime import ParameterError, declare, exit_line, run

SINKS = ("web", "save", "connect", "spawn")


def viewer_url(web_port: int, grpc_url: str, host: str = "localhost") -> str:
    """The web viewer's address, with the data source it should connect to."""
    from urllib.parse import quote

    return f"http://{host}:{web_port}/?url={quote(grpc_url, safe=':/')}"


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


class DisplayNode(Node):
    def __init__(self) -> None:
        super().__init__("display_node")
        cameras = declare(self, "cameras", [""], "Cameras to show (topics cameras/<name>/image_raw).")
        sink = declare(self, "sink", "web", "web (serve the web viewer) | save (an .rrd file) | connect | spawn.")
        save_path = declare(self, "save_path", "", "sink save: the .rrd file to write.")
        web_port = declare(self, "web_port", 9090, "sink web: the web viewer's port (http://localhost:<port>).")
        grpc_port = declare(self, "grpc_port", 9876, "sink web: the port the viewer reads the data from.")
        connect_url = declare(self, "connect_url", "rerun+http://127.0.0.1:9876/proxy",
                              "sink connect: a running viewer's URL.")
        rate = declare(self, "max_image_rate_hz", 10.0, "Frames shown per camera per second, at most (0: all).")
        cameras = [c for c in cameras if c]
        if sink not in SINKS:
            raise ParameterError(f"parameter 'sink': one of {', '.join(SINKS)}, got {sink!r}")
        if sink == "save" and not save_path:
            raise ParameterError("parameter 'save_path': sink save needs the .rrd file to write")
        if rate < 0:
            raise ParameterError(f"parameter 'max_image_rate_hz': must be >= 0, got {rate}")
        try:
            import rerun as rr
        except ImportError as exc:
            raise ParameterError(f"the live view needs rerun-sdk ({exc}): pip install rerun-sdk") from exc
        from vla_il_core.display import LiveView

        self.recording = rr.RecordingStream("vla_il_live")
        if sink == "save":
            self.recording.save(save_path)
            where = f"writing {save_path}"
        elif sink == "connect":
            self.recording.connect_grpc(connect_url)
            where = f"streaming to {connect_url}"
        elif sink == "spawn":
            self.recording.spawn()
            where = "in the rerun viewer it started"
        else:
            url = self.recording.serve_grpc(grpc_port=grpc_port)
            rr.serve_web_viewer(web_port=web_port, open_browser=False, connect_to=url)
            where = f"open {viewer_url(web_port, url)} in a browser"
        self.view = LiveView(self.recording, rate, cameras)
        self.refused: set[str] = set()
        self.heard: set[str] = set()  # topics that delivered a message: one line each, the first time
        newest = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # sensor data, the newest frame
        for cam in cameras:
            self.create_subscription(Image, f"cameras/{cam}/image_raw", lambda m, c=cam: self._on_image(c, m), newest)
        # best effort: the view takes what it gets and never slows a reliable publisher down
        lossy = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        for topic, stream in (("joint_states", "measured"), ("policy/action", "policy"),
                              ("teleop/action", "expert"), ("command", "command")):
            self.create_subscription(JointState, topic, lambda m, t=topic, s=stream: self._on_joints(t, s, m), lossy)
        # the current driver, also for a view started late (the mux latches it)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(InterventionEvent, "intervention", self._on_switch, latched)
        self.create_subscription(PolicyStatus, "policy/status", self._on_status, lossy)
        self.get_logger().info(f"live view of {', '.join(cameras) or 'no cameras'}, joints, drivers: {where}")

    def _first(self, topic: str) -> None:
        if topic not in self.heard:
            self.heard.add(topic)
            self.get_logger().info(f"live view: receiving {topic}")

    def _on_image(self, camera: str, msg: Image) -> None:
        self._first(f"cameras/{camera}/image_raw")
        try:
            rgb = rgb_pixels(msg)
        except ValueError as exc:
            if camera not in self.refused:  # once per camera: a stream of wrong images is one line
                self.refused.add(camera)
                self.get_logger().warning(f"cameras/{camera}/image_raw: not shown: {exc}")
            return
        self.view.image(camera, _stamp(msg), rgb)

    def _on_joints(self, topic: str, stream: str, msg: JointState) -> None:
        self._first(topic)
        self.view.joints(stream, _stamp(msg), list(msg.name), list(msg.position))

    def _on_switch(self, msg: InterventionEvent) -> None:
        self.view.switch(_stamp(msg), msg.driver, msg.previous_driver, msg.reason)

    def _on_status(self, msg: PolicyStatus) -> None:
        self._first("policy/status")
        self.view.policy_status(_stamp(msg), msg.state, msg.latency_p50_ms, msg.latency_p99_ms, msg.message)

    def destroy_node(self) -> None:
        if hasattr(self, "view"):
            exit_line(self, f"live view: {self.view.takeovers} takeovers shown")
            self.recording.flush(timeout_sec=2.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run(DisplayNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
