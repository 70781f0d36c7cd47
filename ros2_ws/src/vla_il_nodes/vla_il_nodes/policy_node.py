"""policy_node: runs an exported policy bundle (ONNX Runtime) at the control rate.

Subscribes  joint_states (JointState), sim/state (SimState) when the bundle reads object poses,
            cameras/<name>/image_raw (Image rgb8, sensor-data QoS) for the bundle's cameras
Publishes   policy/action (JointState: one action per tick, the bundle's joint names; never a non-finite one),
            policy/chunk (ActionChunk, after every good inference), policy/status (PolicyStatus)
Services    ~/load_policy (LoadPolicy; /policy_node/load_policy): prove a new bundle aside (below), then swap
            it in atomically. A refused one leaves the running one driving, and the reply and the log say why.
            The path is read relative to `bundle_dir` and must resolve (symlinks followed) inside it, its
            policy files too: only bundles put there can drive. One node, one executor thread: the service
            hands the load to a thread of its own and awaits it (a coroutine), so a load never delays a tick.
            ~/reset (Trigger): a new episode starts; forget the queued chunk / ensembled predictions.
Proof       a bundle drives only once policy.json parses strictly (every field typed, fps 1..1000 Hz, an
            onnx.sha256), policy.onnx hashes to that sha256, the graph's inputs and output are exactly what the
            node feeds and reads (names, float32, policy.json's dims) and a trial inference on a neutral
            observation (zero state, mid-grey images; the instruction is baked into the graph) gives a finite
            chunk of the declared shape: at start-up (else exit 2) and on every load_policy.
Holding     a non-finite (or misshapen) output at run time is not acted on: no action, status `error` with the
            reason in its message, one log line (throttled). It drives again once an inference is good (a
            different observation) or another bundle is loaded.
Lifecycle   a managed node (`ros2 lifecycle get|set /policy_node`): configure proves the bundle (a refused one
            leaves it unconfigured, with the reason logged), activate starts the ticks, deactivate stops them
            (no actions: the mux holds the robot on its last safe command), cleanup lets the bundle go.
            autostart (default true) goes to active at start; a bundle refused then is exit 2.
Parameters  bundle, bundle_dir (empty: the start-up bundle's parent directory), tick_source, prefer_gpu,
            status_rate_hz, autostart are read-only; stale_after_s is live (a finite number > 0, applied at once).
Episodes    the same reset happens on recorder/episode "started" and when sim/state's step goes back
            (the sim was reset): chunks predicted on the last episode's final states must not drive
            the first ticks of the next one (a sim reset teleports the arms).
Camera view a bundle that carries its cameras' views in training (inputs.camera_views: the median first frame of
            the training episodes) has the first frame of each camera compared with them, after a load and at
            every episode start: a view that matches the training frames only when shifted by whole pixels (a
            camera knocked out of place) is reported in a warning and in the status message, until a later
            check finds it in place (vla_il_core.camera_view). It does not hold the robot: the expert and the
            mux decide; a policy trained on a fixed camera measured 0% with its view moved by 1 px.
Ticks       tick_source=timer: a timer at the bundle's fps (a robot); observation: one tick per
            joint state received (the sim in lockstep), inference inline, deterministic.
Stopping    SIGINT or SIGTERM: exit 0 (node_runtime.run, which calls stop_work). No thread may be inside
            rclpy's or ONNX Runtime's C++ when the interpreter finalizes (a daemon thread returning from it is
            ended by pthread_exit, whose forced unwind through the extension's frames calls std::terminate:
            "terminate called without an active exception"); so a load under way is joined and an inference
            in flight awaited first.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.task import Future
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from vla_il_msgs.msg import ActionChunk, EpisodeEvent, PolicyStatus, SimState
from vla_il_msgs.srv import LoadPolicy

from vla_il_core.bundle import BundleError
from vla_il_core.camera_view import check_view
from vla_il_core.runner import (
    LoadedPolicy,
    PolicyRunner,
    TickWork,
    checked_stale_after_s,
    load_policy,
    resolve_bundle_path,
)
from vla_il_nodes.node_runtime import AUTOSTART, ParameterError, apply_on_set, autostart, declare, run

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
TICK_SOURCES = ("timer", "observation")


class PolicyNode(LifecycleNode):
    """A managed node: configure reads, checks, opens and tries the bundle (a refused one leaves the node
    unconfigured, with the reason); activate starts the ticks; deactivate stops them (no actions: the mux holds
    the robot on its last safe command); cleanup lets the bundle go. `autostart` (default) goes to active at once."""

    def __init__(self) -> None:
        super().__init__("policy_node")
        self.bundle = declare(self, "bundle", "", "Policy bundle directory (policy.onnx + policy.json).")
        bundle_dir = declare(self, "bundle_dir", "", "load_policy reads bundles only inside this directory "
                             "(relative paths: from it); empty: the start-up bundle's parent directory.")
        self.tick_source = declare(self, "tick_source", "timer", "timer (bundle fps) | observation (lockstep).")
        self.stale_after_s = declare(self, "stale_after_s", 0.2, "Stop acting when an input is older than this (s).",
                                     live=True)
        self.prefer_gpu = declare(self, "prefer_gpu", True, "Use the CUDA execution provider when present.")
        self.blend = declare(self, "chunk_blending", True, "Timer ticks: cross-fade a chunk that arrives mid-chunk "
                             "into the last one over their common ticks (false: switch at once).")
        self.status_hz = declare(self, "status_rate_hz", 2.0, "Rate of policy/status (Hz).")
        start = declare(self, "autostart", True, AUTOSTART)
        if not self.bundle:
            raise ParameterError("parameter 'bundle': a policy bundle directory is required")
        if self.tick_source not in TICK_SOURCES:
            raise ParameterError(f"parameter 'tick_source': one of {', '.join(TICK_SOURCES)}, got {self.tick_source!r}")
        if not self.status_hz > 0:
            raise ParameterError(f"parameter 'status_rate_hz': must be > 0, got {self.status_hz}")
        self.bundle_dir = Path(bundle_dir or Path(self.bundle).resolve().parent).resolve()
        if not self.bundle_dir.is_dir():
            raise ParameterError(f"parameter 'bundle_dir': {self.bundle_dir} is not a directory")
        self.runner: PolicyRunner | None = None  # configured
        self.active = False
        self.transition_error: str | None = None
        self.work = TickWork()
        self._images_s = 0.0  # image callbacks since the last tick (s)
        self._joint_error: str | None = None
        self._views_due: set[str] = set()  # cameras whose next frame is compared with the bundle's view
        self._view_issues: dict[str, str] = {}  # camera -> why its view looks moved (the last check's)
        self.state = PolicyStatus.STATE_WAITING
        # actions only while active (lifecycle publishers); the status says what the node is doing in any state
        self.action_pub = self.create_lifecycle_publisher(JointState, "policy/action", RELIABLE)
        self.chunk_pub = self.create_lifecycle_publisher(ActionChunk, "policy/chunk", RELIABLE)
        self.status_pub = self.create_publisher(PolicyStatus, "policy/status", RELIABLE)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, RELIABLE)
        self._subscribed: set[str] = set()
        self._stamps: dict[str, int] = {}  # input -> stamp (ns) of its latest message (lockstep ticks)
        self._ticked_stamp: int | None = None
        self._sim_step: int | None = None  # the last sim/state step (a smaller one: the sim was reset)
        self.create_subscription(EpisodeEvent, "recorder/episode", self._on_episode_event, RELIABLE)
        self.create_service(Trigger, "~/reset", self._on_reset)
        # a group of its own: while a load is awaited, the ticks (the default group) go on
        self.create_service(LoadPolicy, "~/load_policy", self._on_load,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self._loads: list[threading.Thread] = []  # loads under way (joined before the process exits)
        self._timer = None
        self._status_timer = None
        # the status on the steady clock: with use_sim_time (lockstep) the sim's clock stands still between steps
        # and episodes, and an rclpy executor waiting on a timer of that clock missed the wake-up of a finished
        # load_policy (the service never answered: measured in the demo)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        apply_on_set(self, self._apply_parameters)
        autostart(self, start)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            policy = load_policy(self.bundle, self.prefer_gpu)
        except BundleError as exc:
            self.transition_error = f"parameter 'bundle': refused: {exc}"
            self.get_logger().error(f"cannot configure: {self.transition_error}")
            return TransitionCallbackReturn.FAILURE
        try:
            runner = PolicyRunner(policy, self.stale_after_s, async_inference=self.tick_source == "timer",
                                  blend=self.blend)
        except ValueError as exc:
            self.transition_error = f"parameter 'stale_after_s': {exc}"
            self.get_logger().error(f"cannot configure: {self.transition_error}")
            return TransitionCallbackReturn.FAILURE
        runner.on_chunk = self._publish_chunk
        self.runner = runner
        self._check_views_next()
        self._action_msg = JointState(name=list(policy.spec.joint_names))
        self._subscribe_inputs(policy)
        self._status_timer = self.create_timer(1.0 / self.status_hz, self._publish_status, clock=self._steady)
        self.get_logger().info(
            f"configured: {policy.spec.policy_id} on {policy.provider} ({policy.spec.chunk_size}-step chunks, "
            f"{policy.spec.fps:g} Hz)")
        if self.prefer_gpu and policy.provider != "CUDAExecutionProvider":
            self.get_logger().info("no CUDA execution provider here: running on the CPU")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        spec = self.runner.policy.spec
        self.runner.reset()  # no chunk predicted before a pause drives after it
        self._start_timer(spec.fps)
        self.active = True
        self.get_logger().info(f"driving with {spec.policy_id} on {self.runner.policy.provider} "
                               f"({spec.chunk_size}-step chunks, {spec.fps:g} Hz, ticks from {self.tick_source})")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        self._stop_timer()
        self.state = PolicyStatus.STATE_WAITING
        self.get_logger().info("inactive: no actions (the mux holds the robot on its last safe command)")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("unconfigured: the bundle is let go")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        self._stop_timer()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._status_timer is not None:
            self.destroy_timer(self._status_timer)
            self._status_timer = None
        if self.runner is not None:
            self.runner.wait_idle(1.0)
        self.runner = None
        self._views_due.clear()
        self._view_issues.clear()

    def _apply_parameters(self, changes: dict) -> None:
        """stale_after_s is the one live parameter (rclpy refuses the read-only ones before this is called)."""
        for name, value in changes.items():
            if name != "stale_after_s":
                raise ValueError(f"{name} cannot change while the node runs")
            self.stale_after_s = checked_stale_after_s(value)  # ValueError with the reason: refused
            if self.runner is not None:
                self.runner.stale_after_s = self.stale_after_s

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
        if self.runner is None:
            return  # unconfigured: no bundle to observe for
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
        if self.runner is None:
            return
        if self._sim_step is not None and msg.step < self._sim_step:
            self._reset_episode(f"the sim was reset (step {self._sim_step} -> {msg.step})")
        self._sim_step = msg.step
        self._observe("env_state", np.asarray(msg.env_state), msg.header.stamp)

    def _on_image(self, camera: str, msg: Image) -> None:
        if self.runner is None:
            return
        spec = self.runner.policy.spec
        h, w = spec.image_size if spec.image_size else (msg.height, msg.width)
        if msg.encoding != "rgb8" or (msg.height, msg.width) != (h, w):
            # never converted or resized here: a policy must see what it was trained on
            self.get_logger().warning(
                f"refusing images on {self._topic_of(f'image_{camera}')}: {msg.width}x{msg.height} {msg.encoding}; "
                f"the bundle {spec.policy_id} takes {w}x{h} rgb8 (publish that, e.g. the camera driver's size)",
                throttle_duration_sec=5.0)
            return
        start = time.perf_counter()
        img = np.frombuffer(msg.data, dtype=np.uint8)
        if img.size != msg.height * msg.width * 3:
            self.get_logger().warning(f"refusing images on {self._topic_of(f'image_{camera}')}: {img.size} bytes "
                                      f"for {msg.width}x{msg.height} rgb8", throttle_duration_sec=5.0)
            return
        img = img.reshape(msg.height, msg.width, 3)
        if camera in self._views_due:
            self._check_view(camera, img)
        self._images_s += time.perf_counter() - start  # a lockstep tick below counts its own time
        self._observe(f"image_{camera}", img, msg.header.stamp)

    def _topic_of(self, name: str) -> str:
        """The topic an input comes from, as this node resolves it (namespace and remappings applied)."""
        topic = f"cameras/{name[len('image_'):]}/image_raw" if name.startswith("image_") else \
            {"joint_positions": "joint_states", "env_state": "sim/state"}.get(name, name)
        try:
            return self.resolve_topic_name(topic)
        except Exception:  # an rclpy without resolve_topic_name: the relative name
            return topic

    def _inputs_line(self, names: list[str]) -> str:
        return ", ".join(f"{self._topic_of(n)} ({n})" for n in names)

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
            if self.active and all(self._stamps.get(n) == ns for n in needed):
                if ns != self._ticked_stamp:
                    self._ticked_stamp = ns
                    self._tick()
                elif self._action_msg.position:
                    # the same observation again (an idle lockstep sim re-sends it, with its stamp on the sim's
                    # clock): not a tick, but answered with the action already decided, or a mux that missed it
                    # (a subscription still matching at start) would wait for it for ever
                    self.action_pub.publish(self._action_msg)

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.EVENT_STARTED and self.runner is not None:
            self._reset_episode(f"the recorder started episode {msg.episode_index}")

    def _on_reset(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        self._reset_episode("reset requested")
        resp.success, resp.message = True, "chunk queue and ensembled predictions cleared"
        return resp

    def _reset_episode(self, why: str) -> None:
        if self.runner is None:
            return
        self.runner.reset()
        self._check_views_next()
        self.get_logger().info(f"{why}: starting from a clean chunk history")

    def _check_views_next(self) -> None:
        """The next frame of each camera the running bundle has a view of is compared with it."""
        if self.runner is not None:
            self._views_due = set(self.runner.policy.camera_views)

    def _check_view(self, camera: str, img: np.ndarray) -> None:
        self._views_due.discard(camera)
        view = self.runner.policy.camera_views.get(camera)
        if view is None:
            return
        result = check_view(img, view)
        topic = self._topic_of(f"image_{camera}")
        if result.moved:
            self._view_issues[camera] = f"{topic}: {result.describe(camera)}"
            self.get_logger().warning(self._view_issues[camera])
        elif self._view_issues.pop(camera, None) is not None:
            self.get_logger().info(f"{topic}: camera {camera}'s view matches the training frames again")

    # ------------------------------------------------------------------ control
    def _start_timer(self, fps: float) -> None:
        """Tick at `fps` (tick_source timer): the new timer first, then the old one goes."""
        if self.tick_source == "timer":
            old, self._timer = self._timer, self.create_timer(1.0 / fps, self._tick)
            if old is not None:
                self.destroy_timer(old)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _tick(self) -> None:
        if not self.active or self.runner is None:
            return
        if self._joint_error is not None:
            self.state = PolicyStatus.STATE_ERROR
            return
        start = time.perf_counter()
        images_s, self._images_s = self._images_s, 0.0
        now = time.monotonic()
        action = self.runner.tick(now)
        ticked = time.perf_counter()
        if action is None:
            stale = self.runner.missing_or_stale(now)
            fault = self.runner.fault
            if stale:
                self.state = PolicyStatus.STATE_STALE
                self.get_logger().warning(f"not acting: no fresh {self._inputs_line(stale)}",
                                          throttle_duration_sec=2.0)
            elif fault is not None:
                self.state = PolicyStatus.STATE_ERROR
                self.get_logger().error(f"holding: {fault}", throttle_duration_sec=5.0)
            return
        self.state = PolicyStatus.STATE_RUNNING
        msg = self._action_msg  # one message, refilled: building a JointState per tick costs twice as much
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.position = action.tolist()
        self.action_pub.publish(msg)
        r = self.runner
        self.work.add(
            inputs=1000 * r.tick_inputs_s,
            runner=1000 * (ticked - start - r.tick_inputs_s - r.tick_model_s),
            publish=1000 * (time.perf_counter() - ticked),
            images=1000 * images_s,
        )

    def _publish_chunk(self, chunk: np.ndarray, latency_ms: float, policy: LoadedPolicy) -> None:
        if not self.context.ok():
            return  # an inference that finished after SIGINT/SIGTERM: nobody to tell
        spec = policy.spec
        self.chunk_pub.publish(ActionChunk(header=Header(stamp=self.get_clock().now().to_msg()),
                                           chunk_size=spec.chunk_size, action_dim=spec.action_dim,
                                           actions=chunk.astype(np.float32).ravel().tolist(),
                                           joint_names=list(spec.joint_names), policy_id=spec.policy_id,
                                           inference_latency_ms=float(latency_ms)))

    def _publish_status(self) -> None:
        if self.runner is None:
            return
        r, p = self.runner, self.runner.policy
        waiting = ""
        missing = r.missing_or_stale(time.monotonic())
        if missing:
            waiting = f"waiting for {self._inputs_line(missing)}"
            if self.state != PolicyStatus.STATE_STALE:  # a stale tick says it itself; in lockstep nothing ticks
                self.get_logger().warning(f"{waiting}: holding (no action published)", throttle_duration_sec=5.0)
        p50, p99, worst = r.latency.summary()
        self.status_pub.publish(PolicyStatus(
            header=Header(stamp=self.get_clock().now().to_msg()), state=self.state,
            bundle_path=str(p.spec.path), policy_id=p.spec.policy_id, execution_provider=p.provider,
            fps=float(p.spec.fps), queue_depth=r.queue_depth, ticks=r.ticks, missed_ticks=r.missed_ticks,
            inferences=r.inferences, latency_p50_ms=p50, latency_p99_ms=p99, latency_max_ms=worst,
            work_p50_ms=self.work.p50("total"), work_p99_ms=self.work.stages["total"].summary()[1],
            work_breakdown=self.work.line(),
            message=self._joint_error or (r.fault if self.state == PolicyStatus.STATE_ERROR else None) or waiting
            or "; ".join(self._view_issues.values())))

    # ------------------------------------------------------------------ hot reload
    async def _on_load(self, req: LoadPolicy.Request, resp: LoadPolicy.Response) -> LoadPolicy.Response:
        """The load runs on a thread of its own; this coroutine awaits it while the executor goes on ticking."""
        done = Future(executor=self.executor)

        def work() -> None:
            try:
                result = self.load(req.bundle_path)
            except Exception as exc:  # load() refuses rather than raises; this is the service's last guard
                result = (False, f"refused bundle {req.bundle_path}: {type(exc).__name__}: {exc}", "")
            done.set_result(result)

        self._loads = [t for t in self._loads if t.is_alive()]
        thread = threading.Thread(target=work, name="policy_loader")
        self._loads.append(thread)
        thread.start()
        resp.success, resp.message, resp.policy_id = await done
        return resp

    def stop_work(self) -> None:
        """node_runtime.run's hook on stopping: join a load under way, await an inference in flight."""
        for thread in self._loads:
            thread.join(2.0)
        if self.runner is not None:
            self.runner.wait_idle(1.0)

    def load(self, path: str) -> tuple[bool, str, str]:
        """Called on a load's own thread: prove the bundle aside, then swap. Any failure at all is a refusal
        (the service must outlive every bundle); the running policy keeps driving."""
        runner = self.runner
        if runner is None:
            return False, f"refused bundle {path}: the node is not configured (ros2 lifecycle set ... configure)", ""
        old = runner.policy
        try:
            policy = load_policy(str(resolve_bundle_path(path, self.bundle_dir)), self.prefer_gpu)
            if policy.spec.joint_names != old.spec.joint_names:
                raise BundleError("the new bundle drives other joints than the running one")
            self._subscribe_inputs(policy)
            runner.swap(policy)
            self._view_issues.clear()
            self._check_views_next()
            try:
                if policy.spec.fps != old.spec.fps and self.active:
                    self._start_timer(policy.spec.fps)
            except Exception:
                runner.swap(old)
                raise
        except Exception as exc:
            reason = str(exc) if isinstance(exc, BundleError) else f"{type(exc).__name__}: {exc}"
            message = f"refused bundle {path}: {reason}; {old.spec.policy_id} keeps driving"
            self.get_logger().error(message)
            return False, message, old.spec.policy_id
        self.get_logger().info(f"now driving with {policy.spec.policy_id} (was {old.spec.policy_id})")
        return True, f"loaded {policy.spec.policy_id} on {policy.provider}", policy.spec.policy_id


def main(args: list[str] | None = None) -> int:
    return run(PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
