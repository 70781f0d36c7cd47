"""sim_bridge: the simulated ALOHA behind the interface of a real robot's drivers.

Publishes   joint_states (JointState, ALOHA joint names), cameras/<name>/image_raw (Image rgb8,
            sensor-data QoS), sim/state (SimState: the privileged object poses, for the sim's
            expert), sim/episode (EpisodeEvent "done" with success and max reward)
Subscribes  command (JointState: joint position targets by name; velocity-limited like a driver, by the
            robot profile's max_velocity: a rogue command cannot move a joint faster than the robot can)
Services    sim/reset (ResetSim: task and seed)
Modes       realtime: a timer at `fps` steps the physics with the last good command, like a robot.
            lockstep: one physics step per command received, then the next observation:
            deterministic and as fast as the graph allows (tests, evaluation, the demo).
Episodes    An ended episode (success, or the time limit: the log says which) holds still; in realtime the
            bridge goes on publishing where the arms are, as a robot's drivers do (in lockstep an episode in
            progress is re-sent after 0.5 s without a command, an ended one falls silent). auto_episodes: the
            next episode starts by itself (seed, seed+1, ...) episode_gap_s after the last; with
            recorder_service (the recorder's start_episode) it is first asked to record it, and the sim waits
            for it (the first episode too: nothing runs unrecorded). Otherwise sim/reset starts the next one.
Clock       publish_clock (lockstep.yaml sets it): /clock carries sim time, 1/fps more for every new
            observation (a step or a reset), and every message is stamped with it; the other nodes run with
            use_sim_time, so stamps, logs and recorded bags are on the sim's clock (still between steps).
The simulation itself is sim/bridge_core.py; this node converts messages and calls it.
"""

from __future__ import annotations

import time

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from vla_il_msgs.msg import EpisodeEvent, SimState
from vla_il_msgs.srv import ResetSim, StartEpisode

from sim.aloha.robot import JOINT_NAMES
from sim.bridge_core import SimBridgeCore, SimStep
from vla_il_core.profiles import ProfileError, load_profile
from vla_il_nodes.node_runtime import ParameterError, declare, run

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
MODES = ("realtime", "lockstep")


class SimBridgeNode(Node):
    def __init__(self) -> None:
        super().__init__("sim_bridge")
        task = declare(self, "task", "transfer_cube", "ALOHA task: transfer_cube | insertion.")
        cameras = declare(self, "cameras", ["top"], "Cameras to render and publish (empty list: none).")
        height = declare(self, "image_height", 480, "Image height (pixels).")
        width = declare(self, "image_width", 640, "Image width (pixels).")
        self.mode = declare(self, "mode", "realtime", "realtime (timer at fps) | lockstep (a step per command).")
        fps = declare(self, "fps", 50.0, "Control rate in realtime mode (Hz).")
        seed = declare(self, "seed", 0, "Seed of the first episode.")
        episode_length = declare(self, "episode_length", 400, "Steps per episode.")
        end_on_success = declare(self, "end_on_success", True, "End the episode as soon as the task succeeds.")
        profile_name = declare(self, "profile", "aloha_sim", "Robot profile whose joints' max_velocity limit motion.")
        self.auto_episodes = declare(self, "auto_episodes", False, "Start the next episode by itself when one ends.")
        recorder_service = declare(self, "recorder_service", "",
                                   "auto_episodes: ask this StartEpisode service to record each episode first.")
        self.episode_gap_s = declare(self, "episode_gap_s", 1.0, "auto_episodes: pause between episodes (s).")
        publish_clock = declare(self, "publish_clock", False, "Publish /clock (sim time, 1/fps per observation) "
                                "and stamp every message with it (lockstep: the graph runs on use_sim_time).")
        if self.mode not in MODES:
            raise ParameterError(f"parameter 'mode': expected one of {', '.join(MODES)}, got {self.mode!r}")
        if fps <= 0:
            raise ParameterError(f"parameter 'fps': must be > 0, got {fps}")
        if not self.episode_gap_s >= 0:
            raise ParameterError(f"parameter 'episode_gap_s': must be >= 0, got {self.episode_gap_s}")
        cameras = tuple(c for c in cameras if c)
        try:
            profile = load_profile(profile_name)
            profile.check_joint_names(JOINT_NAMES, "the simulated ALOHA")
        except ProfileError as exc:
            raise ParameterError(f"parameter 'profile': {exc}") from exc
        velocity = {j.name: j.max_velocity for j in profile.joints}
        try:
            self.core = SimBridgeCore(task, cameras, (height, width), episode_length, end_on_success,
                                      max_velocity=tuple(velocity[n] for n in JOINT_NAMES))
        except ValueError as exc:
            raise ParameterError(f"parameter 'task'/'cameras': {exc}") from exc
        self._limited_logged = 0
        self.joint_pub = self.create_publisher(JointState, "joint_states", RELIABLE)
        self.image_pubs = {
            c: self.create_publisher(Image, f"cameras/{c}/image_raw", qos_profile_sensor_data) for c in cameras
        }
        self.state_pub = self.create_publisher(SimState, "sim/state", RELIABLE)
        self.episode_pub = self.create_publisher(EpisodeEvent, "sim/episode", RELIABLE)
        self.create_subscription(JointState, "command", self._on_command, RELIABLE)
        self.create_service(ResetSim, "sim/reset", self._on_reset)
        self._tick_ns = int(round(1e9 / fps))
        self._sim_ns = 0  # sim time of the last new observation
        self.clock_pub = self.create_publisher(Clock, "/clock", RELIABLE) if publish_clock else None
        self._seed = seed
        self._recorder = self.create_client(StartEpisode, recorder_service) if recorder_service else None
        self._next_timer = None
        self._asking = False
        self._waiting_logged = False
        if self.mode == "realtime":
            self.create_timer(1.0 / fps, self._step_and_publish)
        else:
            # A lockstep graph waits for the first observation: re-send it while nobody commands.
            self.create_timer(0.5, self._resend_if_idle)
        self._last_activity = time.monotonic()
        first = self.core.reset(seed=seed)
        # with a recorder: hold at rest until it records the first episode (which then starts with `seed`)
        self._running = not (self.auto_episodes and self._recorder is not None)
        self._started = int(self._running)  # episodes started: the next one's seed is seed + this
        self._publish(first, announce=False, fresh=True)
        if not self._running:
            self._schedule_next(0.0)
        self.get_logger().info(
            f"{task} in {self.mode} mode, cameras: {', '.join(cameras) or 'none'} at {width}x{height}"
            + (f"; episodes back to back{', each recorded by ' + recorder_service if recorder_service else ''}"
               if self.auto_episodes else "")
        )

    def _on_command(self, msg: JointState) -> None:
        error = self.core.set_command(list(msg.name), list(msg.position))
        if error is not None:
            self.get_logger().warning(f"refusing command: {error}; holding the last good one",
                                      throttle_duration_sec=1.0)
            return
        if self.mode == "lockstep":
            self._step_and_publish()

    def _step_and_publish(self) -> None:
        if not self._running:  # between episodes the arms hold still, and their drivers go on publishing
            if self.mode == "realtime" and self.core.last is not None:
                self._publish(self.core.last, announce=False, fresh=False)
            return
        step = self.core.step()
        if step.done:
            self._running = False
            why = "success" if step.success else f"time limit ({step.step} steps) without success"
            self.get_logger().info(f"episode {self.core.episode} ({self.core.task}) ended at step {step.step}: "
                                   f"{why}; " + ("the next starts by itself" if self.auto_episodes else
                                                 "holding until sim/reset"))
            if self.auto_episodes:
                self._schedule_next(self.episode_gap_s)
        self._publish(step)
        if self.core.limited_steps > self._limited_logged:
            self._limited_logged = self.core.limited_steps
            self.get_logger().warning("command beyond the joints' velocity limits: moving at the limit "
                                      f"({self.core.limited_steps} steps so far)", throttle_duration_sec=5.0)

    def _resend_if_idle(self) -> None:
        # only an episode in progress (or one about to start) waits for a command: the last observation again;
        # an ended one was announced once, and its silence is how a lockstep driver (the demo) hears it ended
        last = self.core.last
        if time.monotonic() - self._last_activity > 0.5 and last is not None and not last.done:
            self._publish(last, announce=False, fresh=False)

    def _schedule_next(self, delay_s: float) -> None:
        if self._next_timer is not None:
            self.destroy_timer(self._next_timer)
        self._next_timer = self.create_timer(max(delay_s, 0.001), self._next_episode)

    def _next_episode(self) -> None:
        """auto_episodes: have the next episode recorded, then start it (asked again every 0.5 s until it starts)."""
        if self._next_timer is not None and self._next_timer.timer_period_ns != 500_000_000:
            self._schedule_next(0.5)
        if self._asking:
            return
        if self._recorder is None:
            self._start_next()
            return
        if not self._recorder.service_is_ready():
            if not self._waiting_logged:
                self._waiting_logged = True
                self.get_logger().info(f"waiting for {self._recorder.srv_name} before the next episode")
            return  # the timer asks again
        self._asking = True
        self._recorder.call_async(StartEpisode.Request()).add_done_callback(self._on_recording)

    def _on_recording(self, future) -> None:
        self._asking = False
        try:
            reply = future.result()
        except Exception as exc:  # noqa: BLE001 - the recorder went away mid-call: ask again
            reply = StartEpisode.Response(success=False, message=str(exc))
        if not reply.success:
            self.get_logger().warning(f"the recorder did not start an episode ({reply.message}): asking again",
                                      throttle_duration_sec=5.0)
            return  # the timer asks again
        self._start_next()

    def _start_next(self) -> None:
        if self._next_timer is not None:
            self.destroy_timer(self._next_timer)
            self._next_timer = None
        self._waiting_logged = False
        step = self.core.reset(seed=self._seed + self._started)
        self._started += 1
        self._running = True
        self._publish(step)

    def _on_reset(self, req: ResetSim.Request, resp: ResetSim.Response) -> ResetSim.Response:
        try:
            step = self.core.reset(task=req.task, seed=None if req.seed < 0 else int(req.seed))
        except ValueError as exc:
            resp.success, resp.message = False, str(exc)
            return resp
        if self._next_timer is not None:  # a reset asked for replaces the automatic one
            self.destroy_timer(self._next_timer)
            self._next_timer = None
        self._started += 1
        self._running = True
        self._publish(step)
        resp.success, resp.episode = True, self.core.episode
        resp.message = f"{self.core.task} episode {self.core.episode} (seed {req.seed if req.seed >= 0 else 'random'})"
        return resp

    def _publish(self, step: SimStep, announce: bool = True, fresh: bool = True) -> None:
        """`fresh`: a new observation (a step, a reset); else the last one again (a resend, a hold)."""
        self._last_activity = time.monotonic()
        if self.clock_pub is not None:
            if fresh:
                self._sim_ns += self._tick_ns
                self.clock_pub.publish(Clock(clock=_time(self._sim_ns)))  # before what it stamps
            stamp = _time(self._sim_ns)
        else:
            stamp = self.get_clock().now().to_msg()
        header = Header(stamp=stamp, frame_id="aloha")

        self.joint_pub.publish(JointState(header=header, name=list(JOINT_NAMES), position=step.agent_pos.tolist()))
        for cam, pub in self.image_pubs.items():
            img = step.images[cam]
            pub.publish(Image(header=Header(stamp=header.stamp, frame_id=cam), height=img.shape[0],
                              width=img.shape[1], encoding="rgb8", is_bigendian=0, step=img.shape[1] * 3,
                              data=np.ascontiguousarray(img).tobytes()))
        self.state_pub.publish(SimState(header=header, task=self.core.task, step=step.step,
                                        agent_pos=step.agent_pos.tolist(), env_state=step.env_state.tolist(),
                                        reward=step.reward, success=step.success))
        if step.done and announce:
            self.episode_pub.publish(EpisodeEvent(header=header, event=EpisodeEvent.EVENT_DONE,
                                                  episode_index=self.core.episode, task=self.core.task,
                                                  success=step.success, max_reward=step.max_reward,
                                                  num_frames=step.step))

    def destroy_node(self) -> None:
        if hasattr(self, "core"):
            self.core.close()
        super().destroy_node()


def _time(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def main(args: list[str] | None = None) -> int:
    return run(SimBridgeNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
