"""The bimanual ALOHA as vla-il sees it: joint names, limits, grippers, and the MJCF assets.

Actions and joint states are 14 numbers per step: for each arm (left, then right) six joint
positions (rad) and the gripper, normalised to 0 = closed, 1 = open. The MuJoCo model has two
finger joints per gripper (16 actuators); this module converts between the two.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
SIDES = ("left", "right")
# Our /joint_states names (ROS) and the order of every 14-vector.
JOINT_NAMES: tuple[str, ...] = tuple(f"{s}_{j}" for s in SIDES for j in (*ARM_JOINTS, "gripper"))
STATE_DIM = len(JOINT_NAMES)
GRIPPER_INDICES = (6, 13)

# vx300s limits from the MJCF; grippers normalised.
_ARM_LOWER = (-3.14158, -1.85005, -1.76278, -3.14158, -1.8675, -3.14158)
_ARM_UPPER = (3.14158, 1.25664, 1.6057, 3.14158, 2.23402, 3.14158)
JOINT_LOWER = np.array((*_ARM_LOWER, 0.0) * 2)
JOINT_UPPER = np.array((*_ARM_UPPER, 1.0) * 2)

# The ALOHA puppet gripper: finger position (m) <-> normalised opening (ACT's constants).
GRIPPER_OPEN_M = 0.05800
GRIPPER_CLOSED_M = 0.01844

# Both arms at rest, in the model's 16 arm coordinates (6 joints + 2 fingers per arm).
START_QPOS_16 = np.array([0, -0.96, 1.16, 0, -0.3, 0, 0.02239, -0.02239] * 2)


def gripper_to_normalized(finger_m: np.ndarray | float) -> np.ndarray | float:
    return (finger_m - GRIPPER_CLOSED_M) / (GRIPPER_OPEN_M - GRIPPER_CLOSED_M)


def gripper_from_normalized(x: np.ndarray | float) -> np.ndarray | float:
    return x * (GRIPPER_OPEN_M - GRIPPER_CLOSED_M) + GRIPPER_CLOSED_M


def qpos16_to_state(qpos16: np.ndarray) -> np.ndarray:
    """The model's 16 arm coordinates -> our 14-vector (normalised grippers)."""
    left, right = qpos16[:8], qpos16[8:16]
    return np.concatenate([left[:6], [gripper_to_normalized(left[6])], right[:6], [gripper_to_normalized(right[6])]])


def state_to_qpos16(state: np.ndarray) -> np.ndarray:
    """Our 14-vector -> the model's 16 arm coordinates (fingers mirrored)."""
    out = np.empty(16)
    for arm in range(2):
        s = state[7 * arm : 7 * arm + 7]
        finger = gripper_from_normalized(s[6])
        out[8 * arm : 8 * arm + 8] = (*s[:6], finger, -finger)
    return out


START_STATE = qpos16_to_state(START_QPOS_16)


@cache
def assets_dir() -> Path:
    """The ALOHA MJCF assets that gym-aloha ships (we reuse its model files, not its env)."""
    try:
        import gym_aloha
    except ImportError as exc:  # pragma: no cover - the lock installs it
        raise RuntimeError("the ALOHA MJCF assets come from the gym-aloha package: pip install gym-aloha") from exc
    path = Path(gym_aloha.__file__).parent / "assets"
    if not (path / "scene.xml").exists():
        raise RuntimeError(f"gym-aloha is installed but has no MJCF assets at {path}")
    return path
