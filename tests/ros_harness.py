"""Real-rclpy test harness: the graph helpers of vla_il.rosgraph, used by the tests.

Every test session gets its own ROS_DOMAIN_ID and discovery limited to localhost (conftest.py), so
parallel runs on one machine do not hear each other and nothing leaves the machine.
"""

from vla_il.rosgraph import CONFIG, INSTALL, LATCHED, RELIABLE, ROOT, NodeProcess, Probe, wait_until

__all__ = ["CONFIG", "INSTALL", "LATCHED", "RELIABLE", "ROOT", "NodeProcess", "Probe", "wait_until"]
