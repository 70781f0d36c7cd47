"""teleop_sim_expert: the sim's scripted expert as the teleop device, with a gate that plays the human.

Subscribes  sim/state (SimState: the privileged object poses; each one is a control tick),
            policy/action (JointState: to measure how far the policy drifts from the expert)
Publishes   teleop/action (JointState: the expert's action for every state, stamped with the state's
            stamp, so it is also the label of every frame), teleop/engaged (Bool, every tick)
Services    ~/reset (std_srvs/Trigger): a new episode for the gate (also when the sim's step restarts)
The expert is sim.experts.make_expert(task); the gating rule is vla_il_core.teleop.ExpertGate.
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from vla_il_msgs.msg import SimState

from sim.aloha.robot import GRIPPER_INDICES, JOINT_NAMES
from vla_il_core.mux import order_by_names
from vla_il_core.teleop import ExpertGate, GateConfig
from vla_il_nodes.node_runtime import ParameterError, declare, run

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class SimExpertTeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("teleop_sim_expert")
        task = declare(self, "task", "transfer_cube", "ALOHA task whose scripted expert drives.")
        mode = declare(self, "mode", "gated", "gated (HG-DAgger) | beta (DAgger mixing) | always | never.")
        drift = declare(self, "drift_threshold", 0.3, "Engage when max |policy - expert| exceeds this ...")
        drift_ticks = declare(self, "drift_ticks", 5, "... for this many ticks in a row.")
        gripper_ticks = declare(self, "gripper_drift_ticks", 0,
                                "Drift on the grippers alone engages after this many ticks (0: drift_ticks).")
        off_course = declare(self, "off_course", 0.0, "Engage when the expert finds the tool this far (m) off its "
                             "course (transfer_cube: beside the cube where it would close) for drift_ticks (0: never).")
        stall_ticks = declare(self, "stall_ticks", 150, "Engage after this many ticks without progress (0: never).")
        handback = declare(self, "handback_ticks", 60, "Hand back after driving this many ticks at most ...")
        agree = declare(self, "agree_ticks", 0, "... or once the policy agrees this many ticks in a row (0: never).")
        beta = declare(self, "beta", 0.5, "mode beta: probability that the expert drives.")
        mix_ticks = declare(self, "mix_ticks", 1, "mode beta: ticks between two draws.")
        seed = declare(self, "seed", 0, "mode beta: seed of the draws.")
        try:
            self.gate = ExpertGate(GateConfig(mode=mode, drift_threshold=drift, drift_ticks=drift_ticks,
                                              gripper_drift_ticks=gripper_ticks, gripper_joints=GRIPPER_INDICES,
                                              off_course=off_course,
                                              stall_ticks=stall_ticks, handback_ticks=handback, agree_ticks=agree,
                                              beta=beta, mix_ticks=mix_ticks, seed=seed))
        except ValueError as exc:
            raise ParameterError(f"parameter {exc}") from exc
        from sim.experts import make_expert

        try:
            self.expert = make_expert(task)
        except (ValueError, ImportError) as exc:
            raise ParameterError(f"parameter 'task': {exc}") from exc
        self.task = task
        self.label: np.ndarray | None = None
        self._last_step = -1

        self.action_pub = self.create_publisher(JointState, "teleop/action", RELIABLE)
        self.engaged_pub = self.create_publisher(Bool, "teleop/engaged", RELIABLE)
        self.create_subscription(SimState, "sim/state", self._on_sim_state, RELIABLE)
        self.create_subscription(JointState, "policy/action", self._on_policy_action, RELIABLE)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.get_logger().info(f"{task} expert, mode {mode}")

    def _on_sim_state(self, msg: SimState) -> None:
        if msg.task and msg.task != self.task:
            self.get_logger().error(
                f"the sim runs {msg.task}, this expert knows {self.task}: not acting", throttle_duration_sec=5.0
            )
            return
        if msg.step < self._last_step or (msg.step == 0 and self._last_step != 0):
            self._reset("new episode")
        if msg.step == self._last_step and self.label is not None:
            # the same state again (an idle lockstep sim re-sends it): not a tick, but answer it, or
            # a graph waiting for the driver's action would stall
            self._publish(msg.header)
            return
        self._last_step = msg.step
        try:
            self.label = self.expert(np.asarray(msg.agent_pos), np.asarray(msg.env_state))
        except Exception as exc:  # noqa: BLE001 - a failing expert must not take the graph down
            self.get_logger().error(f"expert failed: {exc}", throttle_duration_sec=2.0)
            return
        if msg.step > 0:  # the first state of an episode is not a control tick yet
            reason = self.gate.step(progress=float(msg.reward), success=bool(msg.success),
                                    off_course=self.expert.off_course)
            if reason:
                self.get_logger().info(f"step {msg.step}: {reason}")
        self._publish(msg.header)

    def _publish(self, header) -> None:
        # engaged first, then the action, so that a takeover's first action is the expert's
        self.engaged_pub.publish(Bool(data=self.gate.engaged))
        self.action_pub.publish(JointState(header=header, name=list(JOINT_NAMES), position=self.label.tolist()))

    def _on_policy_action(self, msg: JointState) -> None:
        if self.label is None:
            return
        try:
            self.gate.on_policy_action(order_by_names(list(msg.name), list(msg.position), JOINT_NAMES), self.label)
        except ValueError as exc:
            self.get_logger().warning(f"ignoring policy action: {exc}", throttle_duration_sec=2.0)

    def _on_reset(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        self._reset("reset requested")
        resp.success, resp.message = True, "gate reset: the policy drives"
        return resp

    def _reset(self, why: str) -> None:
        if self.gate.ticks:
            self.get_logger().info(f"{why}: last episode had {self.gate.engagements} engagements")
        self.gate.reset()
        self._last_step = -1


def main(args: list[str] | None = None) -> int:
    return run(SimExpertTeleopNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
