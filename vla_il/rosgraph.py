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
from rclpy.signals import SignalHandlerOptions

from vla_il_core.paths import config_dir

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ROOT / "ros2_ws" / "install"  # this checkout's colcon workspace (the tests check what it installs)
CONFIG = config_dir()  # the installed share/vla_il/config (vla_il_core.paths)
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
# For latched topics (the mux's driver, the bundle in use): late subscribers get the last value.
LATCHED = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


# How long a newly discovered server gets to finish matching before a request is sent to it again.
_SERVER_SETTLE_S = 0.5
# An idempotent call unanswered this long is sent again (then after twice as long, and so on).
_RESEND_AFTER_S = 1.0


def _request_topic(service: str) -> str:
    """The DDS topic a service's requests travel on (the ROS 2 DDS mapping: rq/<name>Request)."""
    return f"rq{service}Request"


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
        # rclpy's signal handlers would shut this context down from a thread of theirs while the caller's
        # KeyboardInterrupt runs close() (a race that crashed our nodes: node_runtime.run); close() does it
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self._stop = threading.Event()
        self.node = rclpy.create_node(name, context=self.context)
        self._subscriptions: dict[str, Any] = {}
        self._clients: dict[tuple[Any, str], tuple[Any, float]] = {}  # (client, when it was created)
        self._clients_lock = threading.Lock()
        self._server_seen: dict[bytes, float] = {}  # when this probe first saw each service server
        # One thread spins; callers wait on futures and events from theirs. (Measured: the
        # multi-threaded executor adds jitter to round trips, up to a lost wake-up of a second.)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok() and not self._stop.is_set():
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
        self._subscriptions[topic] = self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until a topic this probe collects is matched with `count` publishers (a message sent before
        the match is not delivered to a volatile subscription)."""
        sub = self._subscriptions[topic]
        if not wait_until(lambda: sub.get_publisher_count() >= count, timeout):
            raise TimeoutError(f"no publisher on {sub.topic_name} after {timeout} s")

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 10.0) -> None:
        if not wait_until(lambda: publisher.get_subscription_count() >= count, timeout):
            raise TimeoutError(f"no subscriber on {publisher.topic_name} after {timeout} s")

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 10.0, idempotent: bool = False):
        """Call a service and return its reply, within `timeout` seconds in all.

        A server answers only a client whose reply reader it has discovered: rmw_fastrtps waits 100 ms
        for that match, then drops the reply (the server warns "failed to send response (timeout)") and
        the call waits for nothing. A new client's endpoints reach the servers a little after the client
        sees them, and a new server's discovery of the client a little after the client sees it. So one
        client per service is kept for the probe's life, and a request waits until the client and every
        server it goes to have been known for a short settle; later calls to the same servers go at once.

        A server that was killed stays in discovery for the DDS lease (about 20 s), so a request
        sent just after its node restarted goes to the dead server and is never answered. The
        request is therefore sent again each time a new server appears on the service (after the
        same settle: discovery of an endpoint runs just ahead of its match). A server that is alive
        but slow is never asked twice: a second request goes only to a server the first could not
        have reached. The first reply wins.

        The settle cannot see the server's side: under load a server can take longer than it to match a new
        client's reply reader, and rmw_fastrtps then drops the reply of a request it did handle (seen in CI:
        a leader engaged, its reply lost, the call timed out). Nothing on the client shows that match, so a
        caller whose request may safely run twice (`idempotent`: an engage, a hold, a parameter read) has it
        sent again when no reply came after `_RESEND_AFTER_S`, then twice as long, and so on. A server handles
        one client's requests in order, so once one is answered, the requests sent after it will be too: the
        call waits for those replies (within its timeout) before it returns, so that no copy of the request
        runs after the call returned (a gate reset landing after the episode it was meant to precede did,
        in a first version of this).
        """
        deadline = time.monotonic() + timeout
        client, created = self._client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {name} not available after {timeout} s")
        request_topic = _request_topic(self.node.resolve_service_name(name))
        asked = self._servers(request_topic)
        newest = max([created, *(self._server_seen[g] for g in asked)])  # the client or a server, just known
        time.sleep(min(max(0.0, newest + _SERVER_SETTLE_S - time.monotonic()), max(0.0, deadline - time.monotonic())))
        futures = [client.call_async(request)]
        wait = _RESEND_AFTER_S
        resend_at = time.monotonic() + wait
        try:
            while time.monotonic() < deadline:
                done = next((i for i, f in enumerate(futures) if f.done()), None)
                if done is not None:
                    later = futures[done + 1:]
                    wait_until(lambda later=later: all(f.done() for f in later), max(0.0, deadline - time.monotonic()))
                    return futures[done].result()
                servers = self._servers(request_topic)
                if servers - asked:
                    time.sleep(_SERVER_SETTLE_S)
                    asked |= servers
                    futures.append(client.call_async(request))
                elif idempotent and time.monotonic() >= resend_at:
                    futures.append(client.call_async(request))
                    wait *= 2
                    resend_at = time.monotonic() + wait
                time.sleep(0.01)
            done = next((f for f in futures if f.done()), None)
            if done is not None:
                return done.result()
            raise TimeoutError(f"service {name} did not answer within {timeout} s")
        finally:
            for f in futures:
                if not f.done():
                    client.remove_pending_request(f)

    def wait_for_service(self, srv_type: Any, name: str, timeout: float) -> bool:
        """Whether a server of `name` is seen within `timeout` s, through the client `call` then uses."""
        return self._client(srv_type, name)[0].wait_for_service(timeout_sec=timeout)

    def _client(self, srv_type: Any, name: str) -> tuple[Any, float]:
        """The probe's client of a service (made on first use) and when it was made."""
        with self._clients_lock:
            if (srv_type, name) not in self._clients:
                self._clients[(srv_type, name)] = (self.node.create_client(srv_type, name), time.monotonic())
            return self._clients[(srv_type, name)]

    def _servers(self, request_topic: str) -> set[bytes]:
        """The endpoints that read this service's requests (one per server; a dead one until its lease ends)."""
        infos = self.node.get_subscriptions_info_by_topic(request_topic, no_mangle=True)
        servers = {bytes(i.endpoint_gid) for i in infos}
        now = time.monotonic()
        for gid in servers:
            self._server_seen.setdefault(gid, now)
        return servers

    def close(self) -> None:
        """Stop the spinning thread first (it leaves within one spin_once), then destroy what it spun."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)


DEPLOY_INSTALL = ROOT / "ros2_ws" / "deploy" / "install"


def node_executable(package: str, executable: str, install: Path | None = None) -> Path:
    """lib/<package>/<executable> of the installed package, as `ros2 run` finds it (the ament index), or of the
    colcon install space `install`."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    if install is not None:
        exe = install / package / "lib" / package / executable
    else:
        try:
            exe = Path(get_package_prefix(package)) / "lib" / package / executable
        except PackageNotFoundError:
            exe = INSTALL / package / "lib" / package / executable
    if not exe.exists():
        raise FileNotFoundError(f"{exe} is not installed: run scripts/setup.sh{' --deploy' if install else ''}")
    return exe


def deploy_environ(keep: tuple[str, ...] = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE")) -> dict[str, str]:
    """The environment of the robot install (scripts/setup.sh --deploy), as `source scripts/env.sh --deploy` makes
    it in a clean shell, with the variables `keep` of this process: no PyTorch, lerobot, transformers or MuJoCo,
    and none of this checkout's Python. FileNotFoundError (saying how to build it) when it is not built."""
    if not (ROOT / ".venv-deploy" / "bin" / "python").exists() or not DEPLOY_INSTALL.is_dir():
        raise FileNotFoundError("the deploy install is not built: run scripts/setup.sh --deploy")
    clean = {"HOME": os.environ.get("HOME", "/tmp"), "PATH": "/usr/bin:/bin"}
    clean.update({k: os.environ[k] for k in keep if k in os.environ})
    done = subprocess.run(["bash", "-c", 'source scripts/env.sh --deploy >/dev/null && env -0'], cwd=ROOT, env=clean,
                          capture_output=True, timeout=60, check=True)
    pairs = (item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    return dict(pairs)


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
        env: dict[str, str | None] | None = None,
        install: Path | None = None,
        base_env: dict[str, str] | None = None,
    ) -> None:
        """`env`: changes to the node's environment (None: unset that variable), which is `base_env` (default: this
        process's); `install`: the colcon install space to start it from (default: where the ament index says)."""
        exe = node_executable(package, executable, install)
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
        environ = dict(os.environ if base_env is None else base_env, RCUTILS_LOGGING_BUFFERED_STREAM="0",
                       RCUTILS_COLORIZED_OUTPUT="0", PYTHONUNBUFFERED="1")
        for key, value in (env or {}).items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=environ,
                                     preexec_fn=_stop_with_parent)

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


def _stop_with_parent() -> None:
    """In the child before exec: SIGINT (a node's clean stop) when the process that started it dies, however it
    dies (a demo killed with SIGTERM or SIGKILL runs no cleanup: its nodes would go on running and publishing)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)


def _param_text(value: Any) -> str:
    """A value as `-p name:=<text>` reads it (YAML): a string that YAML would read as another type ("0", "true")
    is quoted, as launch_ros keeps a string parameter a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_text(v) for v in value) + "]"
    if isinstance(value, str):
        import yaml

        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:
            plain = False
        return value if plain else "'" + value.replace("'", "''") + "'"
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
