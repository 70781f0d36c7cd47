"""teleop_leader: a leader arm (a second, hand-moved arm) as the teleop device.

Subscribes  leader/joint_states (JointState: the leader's joints; remap to its driver's topic),
            leader/engage (Bool: a foot pedal or switch; true engages)
Publishes   teleop/action (JointState: the leader's pose in the follower's joint names, grippers
            normalised 0..1, while engaged), teleop/engaged (Bool, on every leader message)
Services    ~/engage (std_srvs/SetBool): engage or hand back without a pedal
Name mapping and gripper scaling: vla_il_core.teleop.LeaderArm.
"""

from __future__ import annotations

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Header
from std_srvs.srv import SetBool

from vla_il_core.teleop import LeaderArm
from vla_il_nodes.node_runtime import ParameterError, declare, run

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class LeaderTeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("teleop_leader")
        names = declare(self, "joint_names", [""], "Follower joints in command order.")
        leader_names = declare(self, "leader_joint_names", [""], "Leader joint per follower joint (empty: same).")
        closed = declare(self, "leader_gripper_closed", 0.0, "Leader gripper reading when closed.")
        opened = declare(self, "leader_gripper_open", 1.0, "Leader gripper reading when open.")
        self.engaged = declare(self, "engaged_at_start", False, "Engage at start (no pedal).")
        self.names = [n for n in names if n]
        if not self.names:
            raise ParameterError("parameter 'joint_names': at least one joint is needed")
        try:
            self.leader = LeaderArm(self.names, [n for n in leader_names if n], closed, opened)
        except ValueError as exc:
            raise ParameterError(f"parameter {exc}") from exc
        self.action_pub = self.create_publisher(JointState, "teleop/action", RELIABLE)
        self.engaged_pub = self.create_publisher(Bool, "teleop/engaged", RELIABLE)
        self.create_subscription(JointState, "leader/joint_states", self._on_leader, RELIABLE)
        self.create_subscription(Bool, "leader/engage", lambda m: self._set(bool(m.data)), RELIABLE)
        self.create_service(SetBool, "~/engage", self._on_engage)
        self.get_logger().info(f"leader arm drives {len(self.names)} joints when engaged")

    def _on_leader(self, msg: JointState) -> None:
        try:
            action = self.leader.map(list(msg.name), list(msg.position))
        except ValueError as exc:
            self.get_logger().warning(f"ignoring leader message: {exc}", throttle_duration_sec=2.0)
            return
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
