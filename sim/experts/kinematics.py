"""Kinematics of the two ViperX arms for the scripted experts: tool poses and inverse kinematics.

The experts are functions of the measured state, so they keep their own MjData: they write the
joint positions and object poses in, read tool poses out, and solve IK for the next target.
"""

from __future__ import annotations

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from sim.aloha import robot

# The tool centre point: between the finger pads, in the gripper_link frame (x points out of the hand).
TCP_OFFSET = np.array([0.125, 0.0, 0.0])
ARM_QPOS = {"left": slice(0, 6), "right": slice(8, 14)}


class BimanualKinematics:
    """Forward and inverse kinematics on a private copy of the task's model."""

    def __init__(self, xml_file: str) -> None:
        self.model = mujoco.MjModel.from_xml_path(str(robot.assets_dir() / xml_file))
        self.data = mujoco.MjData(self.model)
        self._body = {s: self.model.body(f"vx300s_{s}/gripper_link").id for s in robot.SIDES}
        self._lower = {s: self.model.jnt_range[ARM_QPOS[s], 0].copy() for s in robot.SIDES}
        self._upper = {s: self.model.jnt_range[ARM_QPOS[s], 1].copy() for s in robot.SIDES}

        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))

    def set_state(self, agent_pos: np.ndarray, env_state: np.ndarray) -> None:
        self.data.qpos[:16] = robot.state_to_qpos16(agent_pos)
        self.data.qpos[16:] = env_state
        self.data.qvel[:] = 0
        mujoco.mj_kinematics(self.model, self.data)

    def tcp(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Position and rotation matrix of the tool centre point, from the last set state."""
        b = self._body[side]
        rot = self.data.xmat[b].reshape(3, 3)
        return self.data.xpos[b] + rot @ TCP_OFFSET, rot.copy()

    def arm_q(self, side: str) -> np.ndarray:
        return self.data.qpos[ARM_QPOS[side]].copy()

    def solve(
        self,
        side: str,
        target_pos: np.ndarray,
        target_rot: np.ndarray,
        iterations: int = 12,
        damping: float = 0.05,
        rot_weight: float = 0.5,
        max_joint_step: float | None = None,
        seed: np.ndarray | None = None,
    ) -> np.ndarray:
        """Joint positions that put the tool at the target pose, starting from `seed` (default: now).

        Damped least squares; the state of the other arm and the objects is left as it was.
        `max_joint_step` bounds how far any joint may move from its current position.
        """
        q, _ = self.solve_pose(side, target_pos, target_rot, iterations, damping, rot_weight, seed)
        if max_joint_step is not None:
            start = self.data.qpos[ARM_QPOS[side]]
            q = start + np.clip(q - start, -max_joint_step, max_joint_step)
        return q

    def solve_pose(
        self,
        side: str,
        target_pos: np.ndarray,
        target_rot: np.ndarray,
        iterations: int = 30,
        damping: float = 0.05,
        rot_weight: float = 0.5,
        seed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, float]:
        """(joint positions, weighted pose error) of damped least squares from `seed`."""
        qs = ARM_QPOS[side]
        dofs = np.arange(qs.start, qs.stop)
        saved = self.data.qpos.copy()
        q = saved[qs].copy() if seed is None else np.clip(seed, self._lower[side], self._upper[side])
        weights = np.array([1, 1, 1, rot_weight, rot_weight, rot_weight])
        err_norm = np.inf
        for _ in range(iterations + 1):
            self.data.qpos[qs] = q
            mujoco.mj_kinematics(self.model, self.data)
            mujoco.mj_comPos(self.model, self.data)
            pos, rot = self.tcp(side)
            err = np.concatenate([target_pos - pos, Rotation.from_matrix(target_rot @ rot.T).as_rotvec()]) * weights
            err_norm = float(np.linalg.norm(err))
            if err_norm < 1e-5:
                break
            mujoco.mj_jac(self.model, self.data, self._jacp, self._jacr, pos, self._body[side])
            jac = np.vstack([self._jacp[:, dofs], self._jacr[:, dofs]]) * weights[:, None]
            dq = jac.T @ np.linalg.solve(jac @ jac.T + damping**2 * np.eye(6), err)
            q = np.clip(q + dq, self._lower[side], self._upper[side])
        self.data.qpos[:] = saved
        mujoco.mj_kinematics(self.model, self.data)
        return q, err_norm

    def reach(self, side: str, target_pos: np.ndarray, target_rot: np.ndarray, tolerance: float = 2e-3) -> np.ndarray:
        """Joint positions for a goal pose: from the current joints, else from nominal postures.

        Of the solutions within `tolerance`, the one nearest the current joints; else the best one.
        The nominal seeds cover the wrist's roll, so a hand that must turn over finds the way.
        """
        now = self.data.qpos[ARM_QPOS[side]].copy()
        best_q, best_err = self.solve_pose(side, target_pos, target_rot)
        if best_err < tolerance:
            return best_q
        candidates = [(best_err, best_q)]
        for seed in _NOMINAL_SEEDS:
            q, err = self.solve_pose(side, target_pos, target_rot, seed=seed)
            candidates.append((err, q))
        good = [(np.abs(q - now).max(), q) for err, q in candidates if err < tolerance]
        if good:
            return min(good, key=lambda c: c[0])[1]
        return min(candidates, key=lambda c: c[0])[1]


# Postures the arm solves from when the current joints do not lead to the goal: arm raised in
# front, the wrist rolled four ways.
_NOMINAL_SEEDS = [np.array([0.0, -0.3, 0.6, 0.0, 0.5, roll]) for roll in (0.0, np.pi / 2, -np.pi / 2, np.pi - 0.01)]


def rotation_from_axes(approach: np.ndarray, closing: np.ndarray) -> np.ndarray:
    """A gripper rotation whose x axis is `approach` and y axis (finger closing) is near `closing`."""
    x = approach / np.linalg.norm(approach)
    y = closing - x * (closing @ x)
    y /= np.linalg.norm(y)
    return np.column_stack([x, y, np.cross(x, y)])


def yaw_of(quat_wxyz: np.ndarray) -> float:
    """Rotation of an object about the world z axis (rad)."""
    w, x, y, z = quat_wxyz
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def rotation_of(quat_wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrix of an object's orientation (MuJoCo's w, x, y, z quaternion)."""
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat_wxyz, dtype=np.float64))
    return mat.reshape(3, 3)
