"""What every vla-il node shares: typed, described parameters and a main() that cleans up."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import rclpy
import rclpy.executors
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node


class ParameterError(ValueError):
    """A parameter with a bad value; the message starts with the parameter's name."""


def declare(node: Node, name: str, default: Any, description: str) -> Any:
    """Declare a typed parameter (the type is the default's) and return its value.

    A value of the wrong type is refused with the parameter's name in the error.
    """
    try:
        value = node.declare_parameter(name, default, ParameterDescriptor(description=description)).value
    except (ParameterException, TypeError, ValueError) as exc:  # rclpy's type errors name the parameter too
        raise ParameterError(f"parameter '{name}': {exc}") from exc
    if value is None and isinstance(default, list):
        return []  # `name: []` in YAML or on the command line has no type: an empty list was meant
    return value


def run(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Init rclpy, build the node, spin until shutdown; a bad parameter exits 2 with one line."""
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except ParameterError as exc:
        print(f"[{make_node.__name__}] refusing to start: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
