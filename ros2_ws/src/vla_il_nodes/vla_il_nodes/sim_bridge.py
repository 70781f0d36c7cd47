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
The simulation itself is sim/bridge_core.py; this node converts messages and calls it.
"""

from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from vla_il_msgs.msg import EpisodeEvent, SimState
from vla_il_msgs.srv import ResetSim

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
        if self.mode not in MODES:
            raise ParameterError(f"parameter 'mode': expected one of {', '.join(MODES)}, got {self.mode!r}")
        if fps <= 0:
            raise ParameterError(f"parameter 'fps': must be > 0, got {fps}")
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
        if self.mode == "realtime":
            self.create_timer(1.0 / fps, self._step_and_publish)
        else:
            # A lockstep graph waits for the first observation: re-send it while nobody commands.
            self.create_timer(0.5, self._resend_if_idle)
        self._last_activity = time.monotonic()
        self._publish(self.core.reset(seed=seed))
        self.get_logger().info(
            f"{task} in {self.mode} mode, cameras: {', '.join(cameras) or 'none'} at {width}x{height}"
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
        if self.core.last is not None and self.core.last.done:
            return  # the episode is over: the robot holds still until reset
        self._publish(self.core.step())
        if self.core.limited_steps > self._limited_logged:
            self._limited_logged = self.core.limited_steps
            self.get_logger().warning("command beyond the joints' velocity limits: moving at the limit "
                                      f"({self.core.limited_steps} steps so far)", throttle_duration_sec=5.0)

    def _resend_if_idle(self) -> None:
        # only an episode in progress waits for a command; an ended one was announced once
        last = self.core.last
        if time.monotonic() - self._last_activity > 0.5 and last is not None and not last.done:
            self._publish(last)

    def _on_reset(self, req: ResetSim.Request, resp: ResetSim.Response) -> ResetSim.Response:
        try:
            step = self.core.reset(task=req.task, seed=None if req.seed < 0 else int(req.seed))
        except ValueError as exc:
            resp.success, resp.message = False, str(exc)
            return resp
        self._publish(step)
        resp.success, resp.episode = True, self.core.episode
        resp.message = f"{self.core.task} episode {self.core.episode} (seed {req.seed if req.seed >= 0 else 'random'})"
        return resp

    def _publish(self, step: SimStep) -> None:
        self._last_activity = time.monotonic()
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id="aloha")

        self.joint_pub.publish(JointState(header=header, name=list(JOINT_NAMES), position=step.agent_pos.tolist()))
        for cam, pub in self.image_pubs.items():
            img = step.images[cam]
            pub.publish(Image(header=Header(stamp=header.stamp, frame_id=cam), height=img.shape[0],
                              width=img.shape[1], encoding="rgb8", is_bigendian=0, step=img.shape[1] * 3,
                              data=np.ascontiguousarray(img).tobytes()))
        self.state_pub.publish(SimState(header=header, task=self.core.task, step=step.step,
                                        agent_pos=step.agent_pos.tolist(), env_state=step.env_state.tolist(),
                                        reward=step.reward, success=step.success))
        if step.done:
            self.episode_pub.publish(EpisodeEvent(header=header, event=EpisodeEvent.EVENT_DONE,
                                                  episode_index=self.core.episode, task=self.core.task,
                                                  success=step.success, max_reward=step.max_reward,
                                                  num_frames=step.step))

    def destroy_node(self) -> None:
        if hasattr(self, "core"):
            self.core.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run(SimBridgeNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
