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

import importlib
import time

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, Header

from vla_il_core.profiles import CommandTarget, ProfileError, load_profile
from vla_il_nodes.node_runtime import ParameterError, declare, run

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Drivers publish joint states reliable or best effort; a best-effort subscription hears both.
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


def _message_type(kind: str):
    package, name = kind.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as exc:
        raise ParameterError(
            f"parameter 'profile': a command target needs {kind}, which is not installed here "
            f"(source the workspace that provides {package})"
        ) from exc


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
        self.latest: dict[str, tuple[float, list[float], object]] = {}
        self.state_pub = None
        if p.state_sources:
            self.state_pub = self.create_publisher(JointState, p.topics["joint_states"], RELIABLE)
            for source in p.state_sources:
                self.create_subscription(JointState, source.topic, lambda m, s=source: self._on_state(s, m), STATE_QOS)
        self.targets: list[tuple[CommandTarget, object, object]] = []
        if p.command_targets:
            for target in p.command_targets:
                kind = _message_type(target.type)
                self.targets.append((target, kind, self.create_publisher(kind, target.topic, RELIABLE)))
            self.create_subscription(JointState, p.topics["command"], self._on_command, RELIABLE)
        self.get_logger().info(
            f"{p.name}: state from {', '.join(s.topic for s in p.state_sources) or 'the robot directly'}, "
            f"commands to {', '.join(t.topic for t in p.command_targets) or 'the robot directly'}"
        )

    def _on_state(self, source, msg: JointState) -> None:
        try:
            values = source.extract(list(msg.name), list(msg.position))
        except ValueError as exc:
            self.get_logger().warning(f"dropping state: {exc}", throttle_duration_sec=2.0)
            return
        now = time.monotonic()
        self.latest[source.topic] = (now, values.tolist(), msg.header.stamp)
        if source is not self.profile.state_sources[0]:
            return  # the first source paces the joined state
        stale = [
            s.topic
            for s in self.profile.state_sources
            if s.topic not in self.latest or now - self.latest[s.topic][0] > self.stale_after_s
        ]
        if stale:
            self.get_logger().warning(
                f"not publishing joint states: no fresh {', '.join(stale)}", throttle_duration_sec=2.0
            )
            return
        by_name: dict[str, float] = {}
        for s in self.profile.state_sources:
            by_name.update(zip(s.joints, self.latest[s.topic][1]))
        names = list(self.profile.joint_names)
        self.state_pub.publish(
            JointState(header=Header(stamp=msg.header.stamp), name=names, position=[by_name[n] for n in names])
        )

    def _on_command(self, msg: JointState) -> None:
        command = dict(zip(msg.name, msg.position))
        missing = [n for n in self.profile.joint_names if n not in command]
        if missing:
            self.get_logger().warning(
                f"refusing command without joint(s) {', '.join(missing)}", throttle_duration_sec=2.0
            )
            return
        for target, kind, pub in self.targets:
            values = [float(v) for v in target.values(command)]
            if target.type == "sensor_msgs/JointState":
                out = JointState(header=msg.header, name=[m.joint for m in target.joints.values()], position=values)
            elif target.type == "std_msgs/Float64MultiArray":
                out = Float64MultiArray(data=values)
            elif target.type.endswith("JointGroupCommand"):
                out = kind(name=target.group, cmd=values)
            else:  # JointSingleCommand
                out = kind(name=next(iter(target.joints.values())).joint, cmd=values[0])
            pub.publish(out)


def main(args: list[str] | None = None) -> int:
    return run(RobotAdapterNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
