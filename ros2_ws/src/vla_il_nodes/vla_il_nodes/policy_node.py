"""policy_node: runs an exported policy bundle (ONNX Runtime) at the control rate.

Subscribes  joint_states (JointState), sim/state (SimState) when the bundle reads object poses,
            cameras/<name>/image_raw (Image rgb8, sensor-data QoS) for the bundle's cameras
Publishes   policy/action (JointState: one action per tick, the bundle's joint names),
            policy/chunk (ActionChunk, after every inference), policy/status (PolicyStatus)
Services    load_policy (LoadPolicy): validate a new bundle aside, then swap it in atomically; a bad
            one is refused and the running one keeps driving. Served by a second node on its own
            thread, so loading never delays a tick.
            ~/reset (Trigger): a new episode starts; forget the queued chunk / ensembled predictions.
Episodes    the same reset happens on recorder/episode "started" and when sim/state's step goes back
            (the sim was reset): chunks predicted on the last episode's final states must not drive
            the first ticks of the next one (a sim reset teleports the arms).
Ticks       tick_source=timer: a timer at the bundle's fps (a robot); observation: one tick per
            joint state received (the sim in lockstep), inference inline, deterministic.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vla_il_msgs.msg import ActionChunk, EpisodeEvent, PolicyStatus, SimState
from vla_il_msgs.srv import LoadPolicy

from training.export.bundle import BundleError
from vla_il_nodes.node_runtime import ParameterError, declare
from vla_il_nodes.policy_node_core import LoadedPolicy, PolicyRunner, load_policy

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
TICK_SOURCES = ("timer", "observation")


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy_node")
        bundle = declare(self, "bundle", "", "Policy bundle directory (policy.onnx + policy.json).")
        self.tick_source = declare(self, "tick_source", "timer", "timer (bundle fps) | observation (lockstep).")
        stale_after_s = declare(self, "stale_after_s", 0.2, "Stop acting when an input is older than this (s).")
        self.prefer_gpu = declare(self, "prefer_gpu", True, "Use the CUDA execution provider when present.")
        status_hz = declare(self, "status_rate_hz", 2.0, "Rate of policy/status (Hz).")
        if not bundle:
            raise ParameterError("parameter 'bundle': a policy bundle directory is required")
        if self.tick_source not in TICK_SOURCES:
            raise ParameterError(f"parameter 'tick_source': one of {', '.join(TICK_SOURCES)}, got {self.tick_source!r}")
        try:
            policy = load_policy(bundle, self.prefer_gpu)
        except BundleError as exc:
            raise ParameterError(f"parameter 'bundle': refused: {exc}") from exc
        self.runner = PolicyRunner(policy, stale_after_s, async_inference=self.tick_source == "timer")
        self.runner.on_chunk = self._publish_chunk
        self._joint_error: str | None = None
        self.state = PolicyStatus.STATE_WAITING

        self.action_pub = self.create_publisher(JointState, "policy/action", RELIABLE)
        self.chunk_pub = self.create_publisher(ActionChunk, "policy/chunk", RELIABLE)
        self.status_pub = self.create_publisher(PolicyStatus, "policy/status", RELIABLE)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, RELIABLE)
        self._subscribed: set[str] = set()
        self._stamps: dict[str, int] = {}  # input -> stamp (ns) of its latest message (lockstep ticks)
        self._ticked_stamp: int | None = None
        self._sim_step: int | None = None  # the last sim/state step (a smaller one: the sim was reset)
        self.create_subscription(EpisodeEvent, "recorder/episode", self._on_episode_event, RELIABLE)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self._subscribe_inputs(policy)
        self._timer = None
        self._start_timer(policy)
        self.create_timer(1.0 / status_hz, self._publish_status)
        self.get_logger().info(
            f"driving with {policy.spec.policy_id} on {policy.provider} "
            f"({policy.spec.chunk_size}-step chunks, {policy.spec.fps:g} Hz, ticks from {self.tick_source})"
        )
        if self.prefer_gpu and policy.provider != "CUDAExecutionProvider":
            self.get_logger().info("no CUDA execution provider here: running on the CPU")

    # ------------------------------------------------------------------ inputs
    def _subscribe_inputs(self, policy: LoadedPolicy) -> None:
        for comp in policy.spec.state_components:
            if comp.source == "sim/state" and "sim/state" not in self._subscribed:
                self.create_subscription(SimState, "sim/state", self._on_sim_state, RELIABLE)
                self._subscribed.add("sim/state")
        for cam in policy.spec.cameras:
            topic = f"cameras/{cam}/image_raw"
            if topic not in self._subscribed:
                self.create_subscription(Image, topic, lambda m, c=cam: self._on_image(c, m), qos_profile_sensor_data)
                self._subscribed.add(topic)

    def _on_joint_states(self, msg: JointState) -> None:
        names = self.runner.policy.spec.joint_names
        index = {n: i for i, n in enumerate(msg.name)}
        missing = [n for n in names if n not in index]
        if missing:
            self._joint_error = f"/joint_states lacks the bundle's joints {', '.join(missing[:4])}"
            self.get_logger().error(f"refusing to drive: {self._joint_error}", throttle_duration_sec=5.0)
            return
        self._joint_error = None
        self._observe("joint_positions", np.array([msg.position[index[n]] for n in names]), msg.header.stamp)

    def _on_sim_state(self, msg: SimState) -> None:
        if self._sim_step is not None and msg.step < self._sim_step:
            self._reset_episode(f"the sim was reset (step {self._sim_step} -> {msg.step})")
        self._sim_step = msg.step
        self._observe("env_state", np.asarray(msg.env_state), msg.header.stamp)

    def _on_image(self, camera: str, msg: Image) -> None:
        if msg.encoding != "rgb8":
            self.get_logger().warning(f"dropping {camera} image: encoding {msg.encoding}, expected rgb8",
                                      throttle_duration_sec=1.0)
            return
        img = np.frombuffer(msg.data, dtype=np.uint8)
        if img.size != msg.height * msg.width * 3:
            self.get_logger().warning(f"dropping {camera} image: {img.size} bytes for {msg.width}x{msg.height}",
                                      throttle_duration_sec=1.0)
            return
        self._observe(f"image_{camera}", img.reshape(msg.height, msg.width, 3), msg.header.stamp)

    def _observe(self, name: str, value: np.ndarray, stamp=None) -> None:
        error = self.runner.observe(name, value, time.monotonic())
        if error is not None:
            self.get_logger().warning(f"dropping observation: {error}", throttle_duration_sec=1.0)
            return
        if self.tick_source == "observation" and stamp is not None:
            # Lockstep: one tick per observation, once every input of that observation (same stamp:
            # joint states, object poses, images of one sim step) has arrived, in whatever order.
            ns = stamp.sec * 1_000_000_000 + stamp.nanosec
            self._stamps[name] = ns
            spec = self.runner.policy.spec
            needed = [c.name for c in spec.state_components] + [f"image_{c}" for c in spec.cameras]
            if ns != self._ticked_stamp and all(self._stamps.get(n) == ns for n in needed):
                self._ticked_stamp = ns
                self._tick()

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.EVENT_STARTED:
            self._reset_episode(f"the recorder started episode {msg.episode_index}")

    def _on_reset(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        self._reset_episode("reset requested")
        resp.success, resp.message = True, "chunk queue and ensembled predictions cleared"
        return resp

    def _reset_episode(self, why: str) -> None:
        self.runner.reset()
        self.get_logger().info(f"{why}: starting from a clean chunk history")

    # ------------------------------------------------------------------ control
    def _start_timer(self, policy: LoadedPolicy) -> None:
        if self.tick_source == "timer":
            if self._timer is not None:
                self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / policy.spec.fps, self._tick)

    def _tick(self) -> None:
        if self._joint_error is not None:
            self.state = PolicyStatus.STATE_ERROR
            return
        action = self.runner.tick(time.monotonic())
        if action is None:
            stale = self.runner.missing_or_stale(time.monotonic())
            self.state = PolicyStatus.STATE_STALE if stale else self.state
            if stale:
                self.get_logger().warning(f"not acting: no fresh {', '.join(stale)}", throttle_duration_sec=2.0)
            return
        self.state = PolicyStatus.STATE_RUNNING
        self.action_pub.publish(JointState(header=Header(stamp=self.get_clock().now().to_msg()),
                                           name=list(self.runner.policy.spec.joint_names),
                                           position=[float(x) for x in action]))

    def _publish_chunk(self, chunk: np.ndarray, latency_ms: float, policy: LoadedPolicy) -> None:
        spec = policy.spec
        self.chunk_pub.publish(ActionChunk(header=Header(stamp=self.get_clock().now().to_msg()),
                                           chunk_size=spec.chunk_size, action_dim=spec.action_dim,
                                           actions=chunk.astype(np.float32).ravel().tolist(),
                                           joint_names=list(spec.joint_names), policy_id=spec.policy_id,
                                           inference_latency_ms=float(latency_ms)))

    def _publish_status(self) -> None:
        r, p = self.runner, self.runner.policy
        p50, p99, worst = r.latency.summary()
        self.status_pub.publish(PolicyStatus(
            header=Header(stamp=self.get_clock().now().to_msg()), state=self.state,
            bundle_path=str(p.spec.path), policy_id=p.spec.policy_id, execution_provider=p.provider,
            fps=float(p.spec.fps), queue_depth=r.queue_depth, ticks=r.ticks, missed_ticks=r.missed_ticks,
            inferences=r.inferences, latency_p50_ms=p50, latency_p99_ms=p99, latency_max_ms=worst,
            message=self._joint_error or ""))

    # ------------------------------------------------------------------ hot reload
    def load(self, path: str) -> tuple[bool, str, str]:
        """Called from the loader thread: build and validate aside, then swap."""
        try:
            policy = load_policy(path, self.prefer_gpu)
        except BundleError as exc:
            self.get_logger().error(f"refused bundle {path}: {exc}; {self.runner.policy.spec.policy_id} keeps driving")
            return False, str(exc), self.runner.policy.spec.policy_id
        old = self.runner.policy
        if policy.spec.joint_names != old.spec.joint_names:
            return False, "the new bundle drives other joints than the running one", old.spec.policy_id
        self._subscribe_inputs(policy)
        self.runner.swap(policy)
        if policy.spec.fps != old.spec.fps:
            self._start_timer(policy)
        self.get_logger().info(f"now driving with {policy.spec.policy_id} (was {old.spec.policy_id})")
        return True, f"loaded {policy.spec.policy_id} on {policy.provider}", policy.spec.policy_id


class PolicyLoader(Node):
    """Serves load_policy on its own thread, so a slow load never blocks the control loop."""

    def __init__(self, target: PolicyNode) -> None:
        super().__init__("policy_node_loader")
        self.target = target
        self.create_service(LoadPolicy, "load_policy", self._on_load)

    def _on_load(self, req: LoadPolicy.Request, resp: LoadPolicy.Response) -> LoadPolicy.Response:
        resp.success, resp.message, resp.policy_id = self.target.load(req.bundle_path)
        return resp


def main(args: list[str] | None = None) -> int:
    import sys

    rclpy.init(args=args)
    node = loader = None
    try:
        node = PolicyNode()
        loader = PolicyLoader(node)
        loader_exec = SingleThreadedExecutor()
        loader_exec.add_node(loader)
        threading.Thread(target=loader_exec.spin, daemon=True).start()
        rclpy.spin(node)
    except ParameterError as exc:
        print(f"[policy_node] refusing to start: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        for n in (loader, node):
            if n is not None:
                n.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
