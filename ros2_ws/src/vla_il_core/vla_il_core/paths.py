"""Where vla-il's configuration is: the bringup package's installed share/vla_il/config (found through
the ament index, as `ros2 launch vla_il ...` finds it), else the config/ of the checkout this package runs
from (a pip install -e or PYTHONPATH without a built workspace).

VLA_IL_CONFIG_DIR names another directory (a robot's own profiles and parameter files) above both.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT_CONFIG = Path(__file__).resolve().parents[4] / "config"  # ros2_ws/src/vla_il_core/vla_il_core/


def config_dir() -> Path:
    """The directory of vla-il's parameter files (robots/ holds the robot profiles)."""
    override = os.environ.get("VLA_IL_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:  # no ROS 2 here (a pip install of the core alone)
        pass
    else:
        try:
            installed = Path(get_package_share_directory("vla_il")) / "config"
        except PackageNotFoundError:
            installed = None
        if installed is not None and installed.is_dir():
            return installed
    if _CHECKOUT_CONFIG.is_dir():
        return _CHECKOUT_CONFIG
    raise FileNotFoundError(
        "vla-il's config directory was not found: install the vla_il bringup package (colcon build), "
        "or set VLA_IL_CONFIG_DIR to a directory with robots/<name>.yaml and the nodes' parameter files")
