"""Closed-loop expert for transfer_cube: the right arm picks the cube, the left arm takes it over.

Every call reads the situation from the state alone:
  left holds the cube     -> right opens and backs away; left keeps it
  right holds the cube    -> right carries it to the meeting point; left, once it is there, grasps
  nobody holds it         -> right approaches along its grasp axis, descends, closes; left waits
so a dropped cube is picked up again and a pushed arm finds its way back.
"""

from __future__ import annotations

import numpy as np

from sim.experts.base import GRIPPER_CLOSED, GRIPPER_OPEN, ArmCommand, ScriptedExpert
from sim.experts.kinematics import rotation_from_axes, yaw_of

MEET = np.array([0.0, 0.5, 0.22])
TILT = np.deg2rad(60)  # the right hand comes down at 60 degrees from the horizontal
LEFT_ROT = rotation_from_axes(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]))  # fingers close vertically
HOLD_DIST = 0.045  # a cube this close to the tool, with the gripper not open, is held
HELD_OPENING = 0.85  # normalised gripper opening below which a gripper counts as closed on something


class TransferCubeExpert(ScriptedExpert):
    def __init__(self) -> None:
        super().__init__("bimanual_viperx_transfer_cube.xml")

    def plan(self, agent_pos: np.ndarray, env_state: np.ndarray) -> dict[str, ArmCommand]:
        cube, quat = env_state[:3], env_state[3:7]
        right_tcp, _ = self.kin.tcp("right")
        left_tcp, _ = self.kin.tcp("left")
        g_left, g_right = agent_pos[6], agent_pos[13]
        left_holds = np.linalg.norm(cube - left_tcp) < HOLD_DIST and g_left < HELD_OPENING
        right_holds = np.linalg.norm(cube - right_tcp) < HOLD_DIST and g_right < HELD_OPENING

        # The right hand's grasp pose follows the cube's yaw (a cube's faces repeat every 90 deg).
        yaw = (yaw_of(quat) + np.pi / 4) % (np.pi / 2) - np.pi / 4
        closing = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        approach = np.array([-np.cos(TILT) * np.cos(yaw), -np.cos(TILT) * np.sin(yaw), -np.sin(TILT)])
        right_rot = rotation_from_axes(approach, closing)

        if left_holds:
            self.phase = "handover: right releases"
            right = ArmCommand(right_tcp, right_rot, GRIPPER_OPEN)
            if g_right > 0.9:  # released: back away without dragging the cube
                right = ArmCommand(MEET + np.array([0.15, 0.0, 0.05]), right_rot, GRIPPER_OPEN)
            left = ArmCommand(left_tcp, LEFT_ROT, GRIPPER_CLOSED)
            return {"left": left, "right": right}

        if right_holds:
            right = ArmCommand(MEET, right_rot, GRIPPER_CLOSED)
            at_meet = np.linalg.norm(cube - MEET) < 0.03
            if not at_meet:
                self.phase = "carry to the meeting point"
                left = ArmCommand(MEET + np.array([-0.12, 0.0, 0.0]), LEFT_ROT, GRIPPER_OPEN)
            else:
                self.phase = "left grasps"
                left = self._approach(left_tcp, cube + np.array([-0.025, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]),
                                      LEFT_ROT, g_left)
            return {"left": left, "right": right}

        self.phase = "right picks"
        grasp = cube + np.array([0.0, 0.0, 0.005]) - 0.01 * approach
        right = self._approach(right_tcp, grasp, approach, right_rot, g_right)
        left = ArmCommand(MEET + np.array([-0.12, 0.0, 0.0]), LEFT_ROT, GRIPPER_OPEN)
        return {"left": left, "right": right}

    @staticmethod
    def _approach(tcp: np.ndarray, grasp: np.ndarray, approach: np.ndarray, rot: np.ndarray,
                  opening: float) -> ArmCommand:
        """Come in along the approach axis, then close at the grasp point; re-open if it missed."""
        offset = tcp - grasp
        along = -offset @ approach  # how far before the grasp point, along the approach (>0: before)
        lateral = np.linalg.norm(offset + along * approach)
        if np.linalg.norm(offset) < 0.012:
            return ArmCommand(grasp, rot, GRIPPER_CLOSED)
        if opening < 0.9 and np.linalg.norm(offset) > 0.02:
            # closed (or closing) away from the object: open before coming in again
            return ArmCommand(tcp + np.array([0.0, 0.0, 0.01]), rot, GRIPPER_OPEN)
        if lateral > 0.01 or along < 0.0:
            return ArmCommand(grasp - 0.08 * approach, rot, GRIPPER_OPEN)
        return ArmCommand(grasp, rot, GRIPPER_OPEN)
