"""Our ROS 2 graph from Python: node processes from the colcon install space, and a probe node.

`ros2 launch` is not installable from PyPI, so the demo, the benchmarks and the tests bring nodes up
with these helpers, using the same executables and parameter files as the launch files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "ros2_ws" / "install"
CONFIG = ROOT / "config"
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
# For latched topics (the mux's driver, the bundle in use): late subscribers get the last value.
LATCHED = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class Probe:
    """A node in this process, spun by a background executor: publish, collect, call services."""

    def __init__(self, name: str = "test_probe") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        # One thread spins; callers wait on futures and events from theirs. (Measured: the
        # multi-threaded executor adds jitter to round trips, up to a lost wake-up of a second.)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutdown races end the loop
                if not self.context.ok():
                    return
                raise

    def publisher(self, msg_type: Any, topic: str, qos: QoSProfile = RELIABLE):
        return self.node.create_publisher(msg_type, topic, qos)

    def collect(self, msg_type: Any, topic: str, qos: QoSProfile = RELIABLE) -> list:
        """Subscribe and return the list that incoming messages are appended to."""
        received: list = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 10.0) -> None:
        if not wait_until(lambda: publisher.get_subscription_count() >= count, timeout):
            raise TimeoutError(f"no subscriber on {publisher.topic_name} after {timeout} s")

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {name} not available after {timeout} s")
        future = client.call_async(request)
        if not wait_until(future.done, timeout):
            raise TimeoutError(f"service {name} did not answer within {timeout} s")
        return future.result()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._thread.join(timeout=2.0)


class NodeProcess:
    """One of our nodes as a real process, started from the colcon install space."""

    def __init__(
        self,
        executable: str,
        log_dir: Path,
        params_files: list[Path] | None = None,
        params: dict[str, Any] | None = None,
        remaps: dict[str, str] | None = None,
        package: str = "vla_il_nodes",
    ) -> None:
        exe = INSTALL / package / "lib" / package / executable
        if not exe.exists():
            raise FileNotFoundError(f"{exe} is not installed: run scripts/setup.sh")
        cmd = [str(exe), "--ros-args"]
        for f in params_files or []:
            cmd += ["--params-file", str(f)]
        for key, value in (params or {}).items():
            cmd += ["-p", f"{key}:={_param_text(value)}"]
        for src, dst in (remaps or {}).items():
            cmd += ["-r", f"{src}:={dst}"]
        self.cmd = cmd
        self.log_path = log_dir / f"{executable}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        # Unbuffered, uncoloured logs: a test reads them while the node runs.
        env = dict(os.environ, RCUTILS_LOGGING_BUFFERED_STREAM="0", RCUTILS_COLORIZED_OUTPUT="0", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 15.0) -> bool:
        return wait_until(lambda: text in self.log() or self.proc.poll() is not None, timeout) and text in self.log()

    def stop(self) -> int | None:
        """Ask the node to stop (SIGINT), then kill it; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_text(v) for v in value) + "]"
    return str(value)


def call_load_policy(service: str, bundle: str, timeout: float = 10.0, probe: Probe | None = None) -> tuple[bool, str]:
    """Ask a running policy node to load a bundle: (accepted, its message)."""
    from vla_il_msgs.srv import LoadPolicy

    own = probe is None
    probe = probe or Probe("vla_il_load_policy")
    try:
        reply = probe.call(LoadPolicy, service, LoadPolicy.Request(bundle_path=bundle), timeout)
        return bool(reply.success), reply.message
    finally:
        if own:
            probe.close()
