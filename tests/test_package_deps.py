"""The node package declares what its nodes import: every third-party module imported under
ros2_ws/src/vla_il_nodes maps to an exec_depend of its package.xml (by rosdep key), or is one of the known
gaps named here, which a robot install must bring another way (today: the project's environment)."""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ros2_ws/src/vla_il_nodes"
# module -> the rosdep key that provides it
ROSDEP = {"rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces", "ament_index_python": "ament_index_python",
          "std_msgs": "std_msgs", "std_srvs": "std_srvs", "sensor_msgs": "sensor_msgs", "vla_il_msgs": "vla_il_msgs",
          "builtin_interfaces": "builtin_interfaces", "numpy": "python3-numpy", "cv2": "python3-opencv",
          "yaml": "python3-yaml"}
# no rosdep key verified, or not a package yet (issue 21: a ROS-free core): installed with the environment
KNOWN_GAPS = {"onnxruntime", "rerun", "lerobot", "training", "sim", "vla_il"}


def imported_modules() -> set[str]:
    found = set()
    for path in (PACKAGE / "vla_il_nodes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "vla_il_nodes"}


def test_every_imported_module_is_declared_or_a_known_gap():
    declared = {e.text for e in ET.parse(PACKAGE / "package.xml").getroot().iter("exec_depend")}
    missing = sorted(m for m in imported_modules() - KNOWN_GAPS if ROSDEP.get(m) not in declared)
    assert missing == [], f"imported by the nodes, not in package.xml: {missing}"
    assert KNOWN_GAPS & imported_modules() == KNOWN_GAPS  # a gap that closed leaves this list
