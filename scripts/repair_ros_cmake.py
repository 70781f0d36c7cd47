"""Repair CMake files of the ROS 2 wheels that carry include paths of the machine that built them.

The `ros-*` wheels export targets such as `std_msgs::std_msgs__rosidl_generator_py` whose
INTERFACE_INCLUDE_DIRECTORIES name the build machine's Python and NumPy include directories
(e.g. /opt/python/cp311-cp311/include/python3.11). CMake refuses a target with a missing include
directory, so colcon cannot build our interfaces against the wheels until those paths point at this
environment's. Idempotent: files already repaired are left alone.

Usage: python scripts/repair_ros_cmake.py <prefix>   (prints what it changed)
"""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from pathlib import Path

# An absolute path that starts a CMake list item that ends in a Python or NumPy include directory.
_PYTHON_INCLUDE = re.compile(r"(?<=[\";])/[^;\"\s]*?/include/python3\.\d+")
_NUMPY_INCLUDE = re.compile(r"(?<=[\";])/[^;\"\s]*?/site-packages/numpy/(?:_core|core)/include")


def _replacement_dirs() -> tuple[str, str]:
    import numpy  # imported here: the script must say what is missing rather than fail at import

    return sysconfig.get_paths()["include"], numpy.get_include()


def repair(prefix: Path) -> list[Path]:
    """Rewrite foreign Python/NumPy include dirs in `prefix`'s CMake files; return the files changed."""
    py_inc, np_inc = _replacement_dirs()
    changed = []
    for cmake_file in sorted(prefix.glob("share/*/cmake/*.cmake")):
        text = cmake_file.read_text()
        if "/include/python3" not in text and "numpy" not in text:
            continue
        new = _NUMPY_INCLUDE.sub(lambda m: m.group(0) if Path(m.group(0)).is_dir() else np_inc, text)
        new = _PYTHON_INCLUDE.sub(lambda m: m.group(0) if Path(m.group(0)).is_dir() else py_inc, new)
        if new != text:
            # Write a new file and rename it over the old one: the installer may have hard-linked
            # the original from its cache, and writing in place would alter the cache for every
            # environment made from it.
            tmp = cmake_file.with_suffix(".cmake.vla-il-tmp")
            tmp.write_text(new)
            os.replace(tmp, cmake_file)
            changed.append(cmake_file)
    return changed


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    prefix = Path(sys.argv[1])
    changed = repair(prefix)
    if changed:
        print(f"repaired foreign Python/NumPy include paths in {len(changed)} CMake files under {prefix}/share")
    return 0


if __name__ == "__main__":
    sys.exit(main())
