"""teleop_keyboard: the operator's keyboard: engage / hand back, and start / end episodes.

Keys (vla_il_core.teleop.KEYMAP): e engage (the robot holds where it is while engaged), h hand back,
n start recording, s end the episode as a success, f as a failure, d discard it.
Keys come from this node's terminal when it has one, and from teleop/key (std_msgs/String) always
(another terminal: `ros2 topic pub --once /teleop/key std_msgs/String "{data: s}"`).
Subscribes  joint_states (JointState: the pose to hold), teleop/key (String)
Publishes   teleop/action (JointState: the held pose, at rate_hz while engaged), teleop/engaged (Bool)
Calls       <recorder>/start_episode, <recorder>/stop_episode
"""

from __future__ import annotations

import sys
import threading

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Header, String
from vla_il_msgs.srv import StartEpisode, StopEpisode

from vla_il_core.teleop import KEYMAP
from vla_il_nodes.node_runtime import ParameterError, declare, run

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class KeyboardTeleopNode(Node):
    def __init__(self) -> None:
        super().__init__("teleop_keyboard")
        recorder = declare(self, "recorder", "/dagger_recorder", "Name of the recorder node whose services to call.")
        rate = declare(self, "rate_hz", 50.0, "Rate of teleop/action while engaged (Hz).")
        read_terminal = declare(self, "read_terminal", True, "Read keys from this process's terminal, if any.")
        if rate <= 0:
            raise ParameterError(f"parameter 'rate_hz': must be > 0, got {rate}")
        self.engaged = False
        self.state: JointState | None = None
        self.hold: JointState | None = None
        self.action_pub = self.create_publisher(JointState, "teleop/action", RELIABLE)
        self.engaged_pub = self.create_publisher(Bool, "teleop/engaged", RELIABLE)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, RELIABLE)
        self.create_subscription(String, "teleop/key", lambda m: self.on_key(m.data), RELIABLE)
        self.start_client = self.create_client(StartEpisode, f"{recorder}/start_episode")
        self.stop_client = self.create_client(StopEpisode, f"{recorder}/stop_episode")
        self.create_timer(1.0 / rate, self._tick, clock=Clock(clock_type=ClockType.STEADY_TIME))  # the terminal's pace
        if read_terminal and sys.stdin.isatty():
            threading.Thread(target=self._read_terminal, daemon=True).start()
        self.get_logger().info("keys: " + ", ".join(f"{k} {v}" for k, v in KEYMAP.items()))

    def _on_joint_states(self, msg: JointState) -> None:
        self.state = msg

    def on_key(self, key: str) -> None:
        command = KEYMAP.get(key.strip().lower()[:1])
        if command is None:
            self.get_logger().warning(f"unknown key {key!r}; keys: {', '.join(KEYMAP)}")
            return
        if command == "engage":
            if self.state is None:
                self.get_logger().warning("no joint state yet: cannot hold a pose")
                return
            self.hold, self.engaged = self.state, True
        elif command == "hand_back":
            self.engaged = False
        elif command == "start":
            self._call(self.start_client, StartEpisode.Request(task=""))
        else:
            self.engaged = False
            req = StopEpisode.Request(task_success=command == "success", discard=command == "discard")
            self._call(self.stop_client, req)
        self.get_logger().info(f"key {key!r}: {command}")
        self.engaged_pub.publish(Bool(data=self.engaged))

    def _call(self, client, request) -> None:
        if not client.service_is_ready():
            self.get_logger().error(f"{client.srv_name} is not available (is the recorder running?)")
            return
        client.call_async(request).add_done_callback(
            lambda f: self.get_logger().info(f"{client.srv_name}: {f.result().message}")
        )

    def _tick(self) -> None:
        self.engaged_pub.publish(Bool(data=self.engaged))
        if self.engaged and self.hold is not None:
            self.action_pub.publish(
                JointState(
                    header=Header(stamp=self.get_clock().now().to_msg()),
                    name=list(self.hold.name),
                    position=list(self.hold.position),
                )
            )

    def _read_terminal(self) -> None:
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while True:
                key = sys.stdin.read(1)
                if not key:
                    return
                self.on_key(key)  # publishing from this thread is safe in rclpy
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def main(args: list[str] | None = None) -> int:
    return run(KeyboardTeleopNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
