"""What every vla-il node shares: typed, described parameters and a main() that cleans up.

Parameters mean what they say: every parameter is read-only (a SetParameters call is refused with
rclpy's reason) unless it is declared `live=True`, and a node with live parameters registers
`apply_on_set(node, apply)`, which validates a change and applies it before the call returns (or
refuses it with the reason, and nothing changes).
"""

from __future__ import annotations

import array
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import rclpy
import rclpy.executors
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

RCLError = _rclpy.RCLError


class ParameterError(ValueError):
    """A parameter with a bad value; the message starts with the parameter's name."""


def declare(node: Node, name: str, default: Any, description: str, *, live: bool = False) -> Any:
    """Declare a typed parameter (the type is the default's) and return its value.

    A value of the wrong type is refused with the parameter's name in the error. The parameter is
    read-only unless `live`: then the node must apply changes in its `apply_on_set` callback.
    """
    descriptor = ParameterDescriptor(description=description, read_only=not live)
    try:
        value = node.declare_parameter(name, default, descriptor).value
    except (ParameterException, TypeError, ValueError) as exc:  # rclpy's type errors name the parameter too
        raise ParameterError(f"parameter '{name}': {exc}") from exc
    if value is None and isinstance(default, list):
        return []  # `name: []` in YAML or on the command line has no type: an empty list was meant
    return value


def apply_on_set(node: Node, apply: Callable[[dict[str, Any]], None]) -> None:
    """Apply SetParameters calls at once: `apply(changes)` gets {name: new value} of one (atomic) call
    and applies them, or raises ValueError/TypeError whose message becomes the refusal's reason.

    Register it after every parameter is declared (rclpy runs these callbacks on declaration too).
    """

    def on_set(params: list) -> SetParametersResult:
        changes = {p.name: _plain(p.value) for p in params if p.name != "use_sim_time"}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            apply(changes)
        except (ValueError, TypeError) as exc:
            node.get_logger().warning(f"refused parameter change {sorted(changes)}: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        node.get_logger().info(f"parameters changed: {', '.join(f'{k}={v!r}' for k, v in changes.items())}")
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


def _plain(value: Any) -> Any:
    """A parameter's value as declare() returns it: arrays as lists (rclpy gives array.array for numbers)."""
    if value is None:
        return []
    if isinstance(value, array.array):
        return value.tolist()
    return value


def default_to_localhost_discovery() -> None:
    """Where nothing says otherwise, discover only participants on this machine: a node started by hand or
    by a launch file must not join the LAN's multicast, where any participant could drive the robot.
    ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET (or a ROS_LOCALHOST_ONLY of the user's) is honoured."""
    if not os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") and not os.environ.get("ROS_LOCALHOST_ONLY"):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"


def default_dds_profile() -> None:
    """Where the user names no Fast DDS profile, use vla-il's (config/fastdds.xml, installed under the vla_il
    package's share): a shared-memory segment that holds camera images, so best-effort frames are not lost
    (Fast DDS's default segment is smaller than one 480x640 image). Read when the participant is created."""
    if os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE"):
        return
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:  # pragma: no cover - ament_index_python comes with rclpy
        return
    try:
        profile = os.path.join(get_package_share_directory("vla_il"), "config", "fastdds.xml")
    except PackageNotFoundError:  # the nodes without the vla_il package: Fast DDS's defaults
        return
    if os.path.isfile(profile):
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = profile


def default_middleware() -> None:
    """The environment every node starts from where the user has not set it: localhost discovery, vla-il's
    Fast DDS profile."""
    default_to_localhost_discovery()
    default_dds_profile()


_stop_asked = False
SPIN_WAKE_S = 0.1


def _ask_stop(signum: int, _frame: Any) -> None:
    """SIGINT/SIGTERM: remember that a stop was asked for, then stop as Ctrl-C does. The KeyboardInterrupt
    can surface inside rclpy's C++ (e.g. while it converts a message it takes: pybind11 turns it into a
    RuntimeError) with rclpy's context not yet shut down: the flag tells that apart from a fault."""
    global _stop_asked
    _stop_asked = True
    raise KeyboardInterrupt


def _stopping() -> bool:
    return _stop_asked or not rclpy.ok()


def run(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Init rclpy, build the node, spin until SIGINT/SIGTERM (exit 0); a bad parameter exits 2 with one line.

    A node with work on threads of its own defines `stop_work()`: called once the spinning has stopped, before
    the node is destroyed, so that no thread is inside rclpy's (or a library's) C++ when the interpreter ends."""
    default_middleware()
    signal.signal(signal.SIGINT, _ask_stop)
    signal.signal(signal.SIGTERM, _ask_stop)
    try:
        # Without rclpy's signal handlers. Theirs shut the context down from a thread of their own, which
        # raced this thread's clean-up: with our handler's stop already under way, that thread triggered
        # the executor's destroyed guard condition or shut the context down under the node being
        # destroyed, and the process died of SIGSEGV (the recorder, 1 in 4 signals mid-episode under load).
        # Here the signal is ours alone and the clean-up below runs with no other thread in rclpy.
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except RCLError as exc:  # e.g. security enabled but its keystore or enclave missing
        print(f"[{make_node.__name__}] cannot start: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    node = None
    executor = rclpy.executors.SingleThreadedExecutor()
    try:
        node = make_node()
        executor.add_node(node)
        while not _stop_asked and rclpy.ok():
            # back in Python at least every SPIN_WAKE_S: a signal's handler runs only there, and no rclpy
            # thread wakes the wait for it any more
            executor.spin_once(timeout_sec=SPIN_WAKE_S)
    except ParameterError as exc:
        print(f"[{make_node.__name__}] refusing to start: {exc}", file=sys.stderr)
        return 2
    except RCLError as exc:
        if node is None and not _stopping():
            # the middleware refused the participant (e.g. SROS2 asked of a Fast DDS without DDS-Security)
            print(f"[{make_node.__name__}] cannot start: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 1
        if not _stopping():
            raise
        # SIGINT/SIGTERM shut the context down while the executor built its wait set or a callback
        # published ("context is not valid"): the stop that was asked for
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except Exception:
        if not _stopping():
            raise  # a real fault: its traceback, and a non-zero exit
        # SIGINT/SIGTERM arrived while a callback ran (its publish raised "context is invalid") or while
        # rclpy took a message (pybind11's "Unable to convert call argument"): the stop asked for, not a crash
    finally:
        # stopping: a second Ctrl-C (or the parent's death signal) must not cut the clean-up short with a
        # KeyboardInterrupt traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if node is not None and hasattr(node, "stop_work"):
            node.stop_work()
        executor.shutdown(timeout_sec=0)
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


AUTOSTART = "Configure and activate at start (false: wait for ros2 lifecycle)."


def autostart(node, enabled: bool) -> None:
    """A managed (lifecycle) node brings itself to active unless its parameter `autostart` is false (declared by the
    node with the others, before apply_on_set, with the description AUTOSTART): `ros2 run`,
    the launch files and the demo get a driving node, and `ros2 lifecycle set <node> deactivate|activate|...`
    works on it afterwards. With autostart false it waits unconfigured for `ros2 lifecycle set <node> configure`.
    A configure or activate that fails at start is a refusal to start (ParameterError, its one line): the node's
    on_configure/on_activate leave the reason in `node.transition_error`."""
    from rclpy.lifecycle import TransitionCallbackReturn

    if not enabled:
        node.get_logger().info("unconfigured: waiting for `ros2 lifecycle set` (autostart is false)")
        return
    for step in (node.trigger_configure, node.trigger_activate):
        if step() != TransitionCallbackReturn.SUCCESS:
            raise ParameterError(getattr(node, "transition_error", None) or f"{step.__name__} failed")


def exit_line(node: Node, text: str) -> None:
    """A last log line from destroy_node: straight to stderr in the console format (after a signal the
    context is gone, and the node's logger would add a "failed to publish to rosout" line of its own)."""
    print(f"[INFO] [{time.time():.9f}] [{node.get_name()}]: {text}", file=sys.stderr, flush=True)
