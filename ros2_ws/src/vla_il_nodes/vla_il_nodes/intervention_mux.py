"""intervention_mux: decides who drives the robot (policy or expert) and enforces safety.

Subscribes  joint_states (JointState), policy/action (JointState), teleop/action (JointState),
            teleop/engaged (Bool)
Publishes   command (JointState: what the robot executes), intervention (InterventionEvent, latched),
            mux/safety (SafetyEvent)
Services    ~/hold, ~/resume (std_srvs/Trigger): the operator freezes the robot, and lets it go. Anyone
            who can reach this node on the DDS domain may call them (see the README: discovery range, SROS2).
Parameters  joint_lower, joint_upper, max_step, stale_after_s, reanchor_steps change at once (the next
            command obeys them) or are refused with the reason; the others are read-only.
Lifecycle   a managed node (`ros2 lifecycle get|set /intervention_mux`): configure checks the limits (refused ones
            leave it unconfigured, with the reason), activate lets commands out, deactivate holds: the last safe
            command goes out once more and then none (the robot's controller keeps it) until activate.
            autostart (default true) goes to active at start; limits refused then are exit 2.
The rules are in vla_il_core.mux; this node only converts messages and calls them.
"""

from __future__ import annotations

import time

import rclpy.duration
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Header
from std_srvs.srv import Trigger
from vla_il_msgs.msg import InterventionEvent, SafetyEvent

from vla_il_core.mux import (
    EXPERT,
    POLICY,
    InterventionMux,
    MuxConfig,
    MuxOutput,
    order_by_names,
)
from vla_il_nodes.node_runtime import AUTOSTART, ParameterError, apply_on_set, autostart, declare, exit_line, run

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


# Limiting that happens many times a run by design (a step or a joint limit clipped, the command re-anchored):
# logged at its first onset, counted after, summed up at exit. Every other rule is logged at every onset.
ROUTINE = ("joint_limit", "max_step", "reanchor")

class InterventionMuxNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__("intervention_mux")
        self._names = declare(self, "joint_names", [""], "Joints in command order (the robot's names).")
        self._lower = declare(self, "joint_lower", [0.0], "Lower joint limits, one per joint (rad, or gripper units).",
                              live=True)
        self._upper = declare(self, "joint_upper", [0.0], "Upper joint limits, one per joint.", live=True)
        self._max_step = declare(self, "max_step", [0.0], "Largest change of each joint's command per command.",
                                 live=True)
        self._stale = declare(self, "stale_after_s", 0.1, "Hold when observations or the driver are older than this.",
                              live=True)
        watchdog_hz = declare(self, "watchdog_rate_hz", 100.0, "How often the watchdog checks for stale inputs.")
        self._reanchor = declare(self, "reanchor_steps", 3.0,
                                 "A joint measured this many max_steps from its last value jumped: walk to it.",
                                 live=True)
        self._lockstep = declare(self, "one_command_per_observation", False,
                                 "Lockstep: exactly one command per joint state, also in the tick of a switch.")
        start = declare(self, "autostart", True, AUTOSTART)
        if watchdog_hz <= 0:
            raise ParameterError(f"parameter 'watchdog_rate_hz': must be > 0, got {watchdog_hz}")
        self.mux: InterventionMux | None = None  # configured
        self.active = False
        self.transition_error: str | None = None
        self._held_by_lifecycle = False
        self.onsets: dict[tuple[str, str], int] = {}  # safety rule onsets per (rule, source), for the log

        self.command_pub = self.create_lifecycle_publisher(JointState, "command", RELIABLE)  # only while active
        self.intervention_pub = self.create_publisher(InterventionEvent, "intervention", LATCHED)
        self.safety_pub = self.create_publisher(SafetyEvent, "mux/safety", RELIABLE)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, RELIABLE)
        self.create_subscription(JointState, "policy/action", lambda m: self._on_action(POLICY, m), RELIABLE)
        self.create_subscription(JointState, "teleop/action", lambda m: self._on_action(EXPERT, m), RELIABLE)
        self.create_subscription(Bool, "teleop/engaged", self._on_engaged, RELIABLE)
        self.create_service(Trigger, "~/hold", self._on_hold)
        self.create_service(Trigger, "~/resume", self._on_resume)
        # staleness is measured on the steady clock, and so is the watchdog paced: with use_sim_time (lockstep) a
        # timer on the sim's clock stands still with it (and an rclpy executor waiting on one misses wake-ups)
        self.create_timer(1.0 / watchdog_hz, self._watchdog, clock=Clock(clock_type=ClockType.STEADY_TIME))
        # Safety parameters change at once (the next command obeys them) or are refused with the reason.
        apply_on_set(self, self._apply_parameters)
        autostart(self, start)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            names = tuple(n for n in self._names if n)
            config = MuxConfig(names, tuple(self._lower), tuple(self._upper), tuple(self._max_step), self._stale,
                               self._reanchor, self._lockstep)
        except ValueError as exc:
            self.transition_error = f"parameter {exc}"
            self.get_logger().error(f"cannot configure: {self.transition_error}")
            return TransitionCallbackReturn.FAILURE
        self.mux = InterventionMux(config)
        self._publish_driver(reason="started", previous="none", previous_since=self._now())
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._held_by_lifecycle:  # deactivate held it; an operator's own hold stays
            self._held_by_lifecycle = False
            self._emit(self.mux.resume(self._now()))
        self.active = True
        result = super().on_activate(state)
        until = "the expert engages" if self.mux.driver == POLICY else "it hands back"
        joints = len(self.mux.config.joint_names)
        self.get_logger().info(f"driving {joints} joints; {self.mux.driver} drives until {until}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if not self.mux.operator_hold:
            self._held_by_lifecycle = True
            self._emit(self.mux.hold(self._now()))  # the last safe command, once more, while still active
        self.active = False
        self.get_logger().info("inactive: holding (no commands until activate)")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.mux = None
        self._held_by_lifecycle = False
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.active = False
        return TransitionCallbackReturn.SUCCESS

    def _apply_parameters(self, changes: dict) -> None:
        if self.mux is not None:
            self.mux.reconfigure(**changes)  # ValueError/TypeError with the reason: refused, nothing changes
        attributes = {"joint_lower": "_lower", "joint_upper": "_upper", "max_step": "_max_step",
                      "stale_after_s": "_stale", "reanchor_steps": "_reanchor"}
        for name, value in changes.items():  # what the next configure uses
            setattr(self, attributes[name], value)

    def _watchdog(self) -> None:
        if self.active:
            self._emit(self.mux.check_watchdog(self._now()))

    @staticmethod
    def _now() -> float:
        # Monotonic: staleness must not jump with wall-clock corrections.
        return time.monotonic()

    def _positions(self, msg: JointState, source: str) -> list[float] | None:
        try:
            return order_by_names(list(msg.name), list(msg.position), self.mux.config.joint_names)
        except ValueError as exc:
            what = "joint_states" if source == "observation" else f"{source} action"
            self.get_logger().warning(f"dropping {what} message: {exc}", throttle_duration_sec=1.0)
            self._emit(self.mux.reject(source, "joint_names", f"message refused: {exc}"))
            return None

    def _on_joint_states(self, msg: JointState) -> None:
        if not self.active:
            return
        positions = self._positions(msg, "observation")
        if positions is not None:
            self._emit(self.mux.on_observation(positions, self._now()))

    def _on_action(self, source: str, msg: JointState) -> None:
        if not self.active:
            return
        positions = self._positions(msg, source)
        if positions is not None:
            self._emit(self.mux.on_action(source, positions, self._now()))

    def _on_engaged(self, msg: Bool) -> None:
        if not self.active:
            return
        self._emit(self.mux.on_engaged(bool(msg.data), self._now()))

    def _on_hold(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        if self.mux is None:
            resp.success, resp.message = False, "not configured (ros2 lifecycle set /intervention_mux configure)"
            return resp
        self._held_by_lifecycle = False  # the operator's hold now: activate does not lift it
        self._emit(self.mux.hold(self._now()))
        resp.success, resp.message = True, "holding the last safe command until resume"
        return resp

    def _on_resume(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        if self.mux is None:
            resp.success, resp.message = False, "not configured (ros2 lifecycle set /intervention_mux configure)"
            return resp
        self._emit(self.mux.resume(self._now()))
        resp.success, resp.message = True, f"resumed: {self.mux.driver} drives"
        return resp

    def _emit(self, out: MuxOutput) -> None:
        stamp = self.get_clock().now().to_msg()
        if out.command is not None:
            self.command_pub.publish(
                JointState(name=list(self.mux.config.joint_names), position=out.command, header=_header(stamp))
            )
        for ev in out.events:
            if ev.first:
                key = (ev.rule, ev.source)
                self.onsets[key] = self.onsets.get(key, 0) + 1
                if ev.rule not in ROUTINE or self.onsets[key] == 1:
                    more = " (later onsets of this rule are counted: summary at exit)" if ev.rule in ROUTINE else ""
                    self.get_logger().warning(f"safety: {ev.rule} ({ev.source}): {ev.detail}{more}")
            self.safety_pub.publish(
                SafetyEvent(header=_header(stamp), rule=ev.rule, source=ev.source, detail=ev.detail, count=ev.count)
            )
        if out.switch is not None:
            sw = out.switch
            self.get_logger().info(f"{sw.driver} drives ({sw.reason})")
            self._publish_driver(sw.reason, sw.previous, sw.previous_since)

    def destroy_node(self) -> None:
        if getattr(self, "onsets", None):
            counts = ", ".join(f"{rule} ({source}) {n}" for (rule, source), n in sorted(self.onsets.items()))
            exit_line(self, f"safety rule onsets this run: {counts}")
        super().destroy_node()

    def _publish_driver(self, reason: str, previous: str, previous_since: float) -> None:
        msg = InterventionEvent(
            header=_header(self.get_clock().now().to_msg()),
            driver=self.mux.driver,
            previous_driver=previous,
            reason=reason,
            switch_count=self.mux.switch_count,
        )
        # previous_since is monotonic; express it on the ROS clock by its age (not before the clock's start: sim
        # time, use_sim_time, begins near 0)
        now = self.get_clock().now()
        age_ns = min(int((self._now() - previous_since) * 1e9), now.nanoseconds)
        msg.previous_since = (now - rclpy.duration.Duration(nanoseconds=age_ns)).to_msg()
        self.intervention_pub.publish(msg)


def _header(stamp) -> Header:
    return Header(stamp=stamp)


def main(args: list[str] | None = None) -> int:
    return run(InterventionMuxNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
