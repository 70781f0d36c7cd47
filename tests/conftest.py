"""Test session set-up: an isolated ROS 2 domain on localhost, and the real-rclpy fixtures."""

from __future__ import annotations

import os
import random
import time

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # A unique domain per session (0..101 are safe port ranges on Linux) and localhost-only
    # discovery: set before any rclpy context exists, inherited by every node process we start.
    domain = os.environ.get("VLA_IL_TEST_DOMAIN_ID") or str(random.Random(os.getpid() ^ time.time_ns()).randint(1, 101))
    os.environ["ROS_DOMAIN_ID"] = domain
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_STATIC_PEERS", None)
    os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; would conflict with the range above


def pytest_report_header(config: pytest.Config) -> str:
    env = os.environ
    return f"ROS_DOMAIN_ID={env.get('ROS_DOMAIN_ID')} (localhost only), RMW={env.get('RMW_IMPLEMENTATION')}"


@pytest.fixture
def probe():
    """An in-process rclpy node spun in the background (a fresh context per test)."""
    from tests.ros_harness import Probe

    p = Probe()
    try:
        yield p
    finally:
        p.close()


@pytest.fixture
def node_process(request: pytest.FixtureRequest, tmp_path):
    """Start our nodes as real processes; they are stopped, and their logs attached, whatever happens."""
    from tests.ros_harness import NodeProcess

    started: list[NodeProcess] = []

    def start(executable: str, **kwargs) -> NodeProcess:
        proc = NodeProcess(executable, tmp_path, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        code = proc.stop()
        request.node.add_report_section("teardown", f"{proc.log_path.name} (exit {code})", proc.log())
