"""robot_adapter: a robot profile's adapter section, for robots that remapping alone cannot reach.

Subscribes  each adapter.state topic (sensor_msgs/JointState in the robot's names and units), and
            topics.command (sensor_msgs/JointState: our command, by name)
Publishes   topics.joint_states (sensor_msgs/JointState: the profile's joints, in its order and
            units), and each adapter.command topic in its type: sensor_msgs/JointState,
            std_msgs/Float64MultiArray (ros2_control forward controllers), or
            interbotix_xs_msgs/JointGroupCommand / JointSingleCommand (ALOHA's drivers)
The joined state is published when the first state source updates and every other source is
fresher than stale_after_s. The mapping itself (names, gripper units) is vla_il_core.profiles.
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Header

from vla_il_core.profiles import CommandTarget, ProfileError, StateJoiner, load_profile
from vla_il_nodes.node_runtime import ParameterError, declare, run
from vla_il_nodes.robot_io import command_message, joined_state, message_type

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Drivers publish joint states reliable or best effort; a best-effort subscription hears both.
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


class RobotAdapterNode(Node):
    def __init__(self) -> None:
        super().__init__("robot_adapter")
        name = declare(self, "profile", "", "Robot profile: a name in config/robots/ or a YAML path.")
        self.stale_after_s = declare(self, "stale_after_s", 0.1, "Do not join a state source older than this (s).")
        try:
            self.profile = load_profile(name)
        except ProfileError as exc:
            raise ParameterError(f"parameter 'profile': {exc}") from exc
        p = self.profile
        if not p.has_adapter:
            raise ParameterError(f"parameter 'profile': '{p.name}' has no adapter section: remapping is enough")
        self.joiner = StateJoiner(p.state_sources, p.joint_names, self.stale_after_s)
        self.state_pub = None
        if p.state_sources:
            self.state_pub = self.create_publisher(JointState, p.topics["joint_states"], RELIABLE)
            for source in p.state_sources:
                self.create_subscription(JointState, source.topic, lambda m, s=source: self._on_state(s, m), STATE_QOS)
        self.targets: list[tuple[CommandTarget, object, object]] = []
        if p.command_targets:
            for target in p.command_targets:
                kind = message_type(target.type)
                self.targets.append((target, kind, self.create_publisher(kind, target.topic, RELIABLE)))
            self.create_subscription(JointState, p.topics["command"], self._on_command, RELIABLE)
        self.get_logger().info(
            f"{p.name}: state from {', '.join(s.topic for s in p.state_sources) or 'the robot directly'}, "
            f"commands to {', '.join(t.topic for t in p.command_targets) or 'the robot directly'}"
        )

    def _on_state(self, source, msg: JointState) -> None:
        joined = joined_state(self, self.joiner, source, msg, "not publishing joint states")
        if joined is not None:
            self.state_pub.publish(JointState(header=Header(stamp=msg.header.stamp),
                                              name=list(self.profile.joint_names), position=joined.tolist()))

    def _on_command(self, msg: JointState) -> None:
        command = dict(zip(msg.name, msg.position))
        missing = [n for n in self.profile.joint_names if n not in command]
        if missing:
            self.get_logger().warning(
                f"refusing command without joint(s) {', '.join(missing)}", throttle_duration_sec=2.0
            )
            return
        for target, kind, pub in self.targets:
            pub.publish(command_message(target, kind, command, msg.header))


def main(args: list[str] | None = None) -> int:
    return run(RobotAdapterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
