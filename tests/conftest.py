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


@pytest.fixture
def mux_graph(probe, node_process):
    """A running intervention_mux (ALOHA's limits, stale_after_s 0.5) with a probe publishing observations, policy
    and teleop, collecting its outputs."""
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool
    from vla_il_msgs.msg import InterventionEvent, SafetyEvent

    from tests.ros_harness import CONFIG, LATCHED, wait_until

    mux = node_process("intervention_mux", params_files=[CONFIG / "intervention_mux.yaml"],
                       params={"stale_after_s": 0.5})
    g = type("Graph", (), {})()
    g.mux, g.probe = mux, probe
    g.commands = probe.collect(JointState, "command")
    g.interventions = probe.collect(InterventionEvent, "intervention", qos=LATCHED)
    g.safety = probe.collect(SafetyEvent, "mux/safety")
    g.obs = probe.publisher(JointState, "joint_states")
    g.policy = probe.publisher(JointState, "policy/action")
    g.teleop = probe.publisher(JointState, "teleop/action")
    g.engaged = probe.publisher(Bool, "teleop/engaged")
    for pub in (g.obs, g.policy, g.teleop, g.engaged):
        probe.wait_for_subscribers(pub)
    for topic in ("command", "intervention", "mux/safety"):
        probe.wait_for_publishers(topic)
    # Matched on our side is not matched on the mux's (each participant's discovery runs on its own): CI saw a
    # first tick that the mux answered and the probe never received. Tick at HOME until a command comes back.
    home = [0.0, -0.96, 1.16, 0.0, -0.3, 0.0, 0.5] * 2
    names = [f"{side}_{j}" for side in ("left", "right")
             for j in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")]

    def tick() -> bool:
        g.obs.publish(JointState(name=names, position=home))
        g.policy.publish(JointState(name=names, position=home))
        return wait_until(lambda: bool(g.commands), 0.3)

    assert wait_until(tick, 15), f"the mux never answered a tick\n{mux.log()}"
    return g
