"""Messages to a robot's (or a leader arm's) drivers, in the types a profile's command targets name:
sensor_msgs/JointState, std_msgs/Float64MultiArray (ros2_control forward controllers), and
interbotix_xs_msgs/JointGroupCommand / JointSingleCommand (ALOHA's drivers, imported where installed)."""

from __future__ import annotations

import importlib
import time

from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, Header

from vla_il_core.profiles import CommandTarget, StateJoiner
from vla_il_nodes.node_runtime import ParameterError


def message_type(kind: str):
    """The message class of a command target's type; ParameterError saying which package to source."""
    package, name = kind.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as exc:
        raise ParameterError(
            f"parameter 'profile': a command target needs {kind}, which is not installed here "
            f"(source the workspace that provides {package})"
        ) from exc


def command_message(target: CommandTarget, kind, command: dict[str, float], header: Header):
    """`command` (our joint -> value) as this target's message: its joints, order and units."""
    values = [float(v) for v in target.values(command)]
    if target.type == "sensor_msgs/JointState":
        return JointState(header=header, name=[m.joint for m in target.joints.values()], position=values)
    if target.type == "std_msgs/Float64MultiArray":
        return Float64MultiArray(data=values)
    if target.type.endswith("JointGroupCommand"):
        return kind(name=target.group, cmd=values)
    return kind(name=next(iter(target.joints.values())).joint, cmd=values[0])  # JointSingleCommand


def joined_state(node, joiner: StateJoiner, source, msg: JointState, what: str):
    """One message of `source` into `joiner`: the joined state (our joints, in order), or None. A message that lacks
    a joint, or another source gone stale, is logged (throttled) as `what`."""
    now = time.monotonic()
    try:
        joined = joiner.update(source, list(msg.name), list(msg.position), now)
    except ValueError as exc:
        node.get_logger().warning(f"{what}: dropping a message: {exc}", throttle_duration_sec=2.0)
        return None
    if joined is None and source is joiner.sources[0] and (stale := joiner.stale(now)):
        node.get_logger().warning(f"{what}: no fresh {', '.join(stale)}", throttle_duration_sec=2.0)
    return joined
