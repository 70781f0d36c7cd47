"""teleop_leader: leader arms (second, hand-moved arms) as the teleop device.

With `profile` (a robot profile with a leader section, e.g. aloha: two leader arms on two topics):
Subscribes  each leader.state topic (JointState in the leaders' names and units), leader/engage (Bool: a
            foot pedal or switch; true engages), and joint_states (the followers, in our names) to follow
Publishes   teleop/action (JointState: the leaders' pose joined in the profile's joints and units, while
            engaged), teleop/engaged (Bool, on every leader update), and, while the policy drives (not
            engaged) and the profile has leader.command targets, the followers' pose to the leaders (follow:
            a takeover then starts where the robot is, without a jump)
Without a profile: one leader on leader/joint_states (remap it to its driver's topic), names mapped by
leader_joint_names and the gripper scaled by leader_gripper_closed/open (vla_il_core.teleop.LeaderArm).
Services    ~/engage (std_srvs/SetBool): engage or hand back without a pedal
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Header
from std_srvs.srv import SetBool

from vla_il_core.profiles import ProfileError, StateJoiner, load_profile
from vla_il_core.teleop import LeaderArm
from vla_il_nodes.node_runtime import ParameterError, declare, run
from vla_il_nodes.robot_io import command_message, joined_state, message_type

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)  # hears reliable drivers too


class LeaderTeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("teleop_leader")
        names = declare(self, "joint_names", [""], "Follower joints in command order.")
        leader_names = declare(self, "leader_joint_names", [""], "Leader joint per follower joint (empty: same).")
        closed = declare(self, "leader_gripper_closed", 0.0, "Leader gripper reading when closed.")
        opened = declare(self, "leader_gripper_open", 1.0, "Leader gripper reading when open.")
        self.engaged = declare(self, "engaged_at_start", False, "Engage at start (no pedal).")
        profile = declare(self, "profile", "", "Robot profile with a leader section (empty: one leader on "
                          "leader/joint_states, mapped by the parameters above).")
        self.follow = declare(self, "follow", True, "With a profile's leader.command: the leaders follow the "
                              "robot while the policy drives.")
        stale_after_s = declare(self, "stale_after_s", 0.1, "Do not join a leader arm's state older than this (s).")
        self.action_pub = self.create_publisher(JointState, "teleop/action", RELIABLE)
        self.engaged_pub = self.create_publisher(Bool, "teleop/engaged", RELIABLE)
        self.targets = []
        if profile:
            try:
                p = load_profile(profile)
            except ProfileError as exc:
                raise ParameterError(f"parameter 'profile': {exc}") from exc
            if not p.leader_sources:
                raise ParameterError(f"parameter 'profile': '{p.name}' has no leader section (its leader arms' topics)")
            self.names = list(p.joint_names)
            self.joiner = StateJoiner(p.leader_sources, p.joint_names, stale_after_s)
            for source in p.leader_sources:
                self.create_subscription(JointState, source.topic, lambda m, s=source: self._on_leader_source(s, m),
                                         STATE_QOS)
            if self.follow and p.leader_targets:
                for target in p.leader_targets:
                    kind = message_type(target.type)
                    self.targets.append((target, kind, self.create_publisher(kind, target.topic, RELIABLE)))
                self.create_subscription(JointState, "joint_states", self._on_follower, RELIABLE)
            where = ", ".join(s.topic for s in p.leader_sources)
            follows = "; they follow the robot while the policy drives" if self.targets else ""
            self.get_logger().info(f"leader arms ({where}) drive {len(self.names)} joints when engaged{follows}")
        else:
            self.names = [n for n in names if n]
            if not self.names:
                raise ParameterError("parameter 'joint_names': at least one joint is needed")
            try:
                self.leader = LeaderArm(self.names, [n for n in leader_names if n], closed, opened)
            except ValueError as exc:
                raise ParameterError(f"parameter {exc}") from exc
            self.create_subscription(JointState, "leader/joint_states", self._on_leader, RELIABLE)
            self.get_logger().info(f"leader arm drives {len(self.names)} joints when engaged")
        self.create_subscription(Bool, "leader/engage", lambda m: self._set(bool(m.data)), RELIABLE)
        self.create_service(SetBool, "~/engage", self._on_engage)

    def _on_leader(self, msg: JointState) -> None:
        try:
            action = self.leader.map(list(msg.name), list(msg.position))
        except ValueError as exc:
            self.get_logger().warning(f"ignoring leader message: {exc}", throttle_duration_sec=2.0)
            return
        self._drive(action)

    def _on_leader_source(self, source, msg: JointState) -> None:
        action = joined_state(self, self.joiner, source, msg, "leader arms")
        if action is not None:
            self._drive(action)

    def _on_follower(self, msg: JointState) -> None:
        """While the policy drives, the leaders are sent where the robot is."""
        if self.engaged:
            return
        command = dict(zip(msg.name, msg.position))
        if any(n not in command for n in self.names):
            return
        for target, kind, pub in self.targets:
            pub.publish(command_message(target, kind, command, msg.header))

    def _drive(self, action) -> None:
        self.engaged_pub.publish(Bool(data=self.engaged))
        if self.engaged:
            self.action_pub.publish(
                JointState(
                    header=Header(stamp=self.get_clock().now().to_msg()), name=self.names, position=action.tolist()
                )
            )

    def _set(self, engaged: bool) -> None:
        if engaged != self.engaged:
            self.get_logger().info("engaged: the leader arm drives" if engaged else "handed back to the policy")
        self.engaged = engaged
        self.engaged_pub.publish(Bool(data=engaged))

    def _on_engage(self, req: SetBool.Request, resp: SetBool.Response) -> SetBool.Response:
        self._set(bool(req.data))
        resp.success, resp.message = True, "engaged" if req.data else "handed back"
        return resp


def main(args: list[str] | None = None) -> int:
    return run(LeaderTeleopNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
