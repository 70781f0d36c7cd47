"""Each Python package of ros2_ws declares what it imports: every third-party module imported under
ros2_ws/src/<package> maps to an exec_depend of its package.xml (by rosdep key), or is one of the known gaps
named here, which an install must bring another way (pip; the project's environment for the training side)."""

from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "ros2_ws/src"
# module -> the rosdep key that provides it
ROSDEP = {"rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces", "ament_index_python": "ament_index_python",
          "std_msgs": "std_msgs", "std_srvs": "std_srvs", "sensor_msgs": "sensor_msgs", "vla_il_msgs": "vla_il_msgs",
          "builtin_interfaces": "builtin_interfaces", "numpy": "python3-numpy", "cv2": "python3-opencv",
          "yaml": "python3-yaml", "vla_il_core": "vla_il_core", "rosgraph_msgs": "rosgraph_msgs",
          "lifecycle_msgs": "lifecycle_msgs"}
# no verified rosdep key (onnxruntime, rerun-sdk: pip), or the training side that only the recorder and the
# sim's nodes use (lerobot, training/, sim/: the project's full environment)
KNOWN_GAPS = {
    "vla_il_nodes": {"rerun", "lerobot", "training", "sim"},
    "vla_il_core": {"onnxruntime", "rerun"},
}


def imported_modules(package: str) -> set[str]:
    found = set()
    for path in (SRC / package / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != package}


@pytest.mark.parametrize("package", sorted(KNOWN_GAPS))
def test_every_imported_module_is_declared_or_a_known_gap(package):
    declared = {e.text for e in ET.parse(SRC / package / "package.xml").getroot().iter("exec_depend")}
    imported = imported_modules(package)
    missing = sorted(m for m in imported - KNOWN_GAPS[package] if ROSDEP.get(m) not in declared)
    assert missing == [], f"imported by {package}, not in its package.xml: {missing}"
    assert KNOWN_GAPS[package] & imported == KNOWN_GAPS[package]  # a gap that closed leaves this list
