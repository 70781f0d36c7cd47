"""teleop_joy: a gamepad as the teleop device; holding the deadman button engages.

Subscribes  joy (sensor_msgs/Joy, from the joy driver), joint_states (JointState: where to start from)
Publishes   teleop/action (JointState: the target, while engaged), teleop/engaged (Bool, every message)
The sticks move the selected arm's six joints, two buttons open and close its gripper, one switches
arm (vla_il_core.teleop.JoyTeleop). Release the deadman button and the policy drives again.
"""

from __future__ import annotations

import time

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, Header

from vla_il_core.mux import order_by_names
from vla_il_core.teleop import JoyConfig, JoyTeleop
from vla_il_nodes.node_runtime import ParameterError, declare, run

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class JoyTeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("teleop_joy")
        names = declare(self, "joint_names", [""], "Joints in command order (14 for ALOHA: left then right).")
        lower = declare(self, "joint_lower", [0.0], "Lower joint limits, one per joint.")
        upper = declare(self, "joint_upper", [0.0], "Upper joint limits, one per joint.")
        deadman = declare(self, "deadman_button", 4, "Button held while the operator drives.")
        switch = declare(self, "switch_arm_button", 5, "Button switching between the left and right arm.")
        grip_open = declare(self, "gripper_open_button", 0, "Button opening the gripper.")
        grip_close = declare(self, "gripper_close_button", 1, "Button closing the gripper.")
        axes = declare(self, "axes", [0, 1, 3, 4, 6, 7], "Axis per arm joint, waist .. wrist_rotate (-1: unused).")
        speed = declare(self, "speed", 1.0, "Joint speed at full deflection (rad/s).")
        self.names = tuple(n for n in names if n)
        if len(self.names) != 14 or len(lower) != 14 or len(upper) != 14:
            raise ParameterError("parameters 'joint_names', 'joint_lower', 'joint_upper': 14 values each (two arms)")
        try:
            config = JoyConfig(deadman, switch, grip_open, grip_close, tuple(axes), speed)
        except ValueError as exc:
            raise ParameterError(f"parameter {exc}") from exc
        self.teleop = JoyTeleop(config, lower, upper)
        self.state = None
        self._last = None
        self.action_pub = self.create_publisher(JointState, "teleop/action", RELIABLE)
        self.engaged_pub = self.create_publisher(Bool, "teleop/engaged", RELIABLE)
        self.create_subscription(Joy, "joy", self._on_joy, RELIABLE)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, RELIABLE)
        self.get_logger().info(f"hold button {deadman} to drive; button {switch} switches arm")

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            self.state = order_by_names(list(msg.name), list(msg.position), self.names)
        except ValueError as exc:
            self.get_logger().warning(f"ignoring joint state: {exc}", throttle_duration_sec=2.0)

    def _on_joy(self, msg: Joy) -> None:
        now = time.monotonic()
        dt = min(now - self._last, 0.1) if self._last is not None else 0.0
        self._last = now
        engaged, target = self.teleop.on_joy(list(msg.axes), list(msg.buttons), self.state, dt)
        self.engaged_pub.publish(Bool(data=engaged))
        if target is not None:
            self.action_pub.publish(
                JointState(
                    header=Header(stamp=self.get_clock().now().to_msg()),
                    name=list(self.names),
                    position=target.tolist(),
                )
            )


def main(args: list[str] | None = None) -> int:
    return run(JoyTeleopNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
