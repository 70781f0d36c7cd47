"""Closed-loop expert for transfer_cube: the right arm picks the cube, the left arm takes it over.

Every call reads the situation from the state alone:
  left holds the cube     -> right opens and backs away; left keeps it
  right holds the cube    -> right carries it to the meeting point; left, once it is there, grasps
  nobody holds it         -> right approaches along its grasp axis, descends, closes; left waits
so a dropped cube is picked up again and a pushed arm finds its way back.
"""

from __future__ import annotations

import numpy as np

from sim.experts.base import GRIPPER_CLOSED, GRIPPER_OPEN, ArmCommand, ScriptedExpert, closed_on
from sim.experts.kinematics import rotation_from_axes, yaw_of

MEET = np.array([0.0, 0.5, 0.22])
TILT = np.deg2rad(60)  # the right hand comes down at 60 degrees from the horizontal
# The left hand comes in level along +x, fingers closed, their closing axis vertical with the "left"
# finger (the one ALOHA's reward watches) on top. The right hand's fingers cover the cube's top and
# sides, so the left slides its closed fingers under the cube and lifts it off the right hand's
# fingers from below: ALOHA counts the transfer when that finger holds the cube up in the air.
# It waits with its fingers closed too: open or closed does not matter while it waits, and where a
# label is arbitrary a learner that closes them a little early "drifts" from the expert (the sim
# expert's gate took over for it in episodes the learner went on to win).
LEFT_ROT = rotation_from_axes(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]))
LEFT_WAIT = MEET + np.array([-0.12, 0.0, 0.0])  # where the left hand waits for the cube
# Closed fingers reach 2.4 cm above and below the tool point: this far below the cube's centre they
# pass under its bottom face, and at UNDER_LIFT they press against it.
UNDER_CLEAR = -0.052
UNDER_LIFT = -0.03
UNDER_X = -0.012  # tool point behind the cube's centre: the fingers reach under most of it
# The tool point sits 3 cm behind the finger tips, and the tilted fingers are 6 cm wide: this high
# above the cube's centre, the finger tips close around the cube without touching the table.
GRASP_HEIGHT = 0.024
HOLD_DIST = 0.045  # a cube this close to the tool, with the gripper not open, is held
# ... and one up in the air this close, with the gripper closed on it, is held by the finger tips (a
# learner's shallower grasp): carry it on rather than open and pick it again
HOLD_DIST_LIFTED = 0.08
CUBE_REST_Z = 0.02  # the cube's centre resting on the table (it spawns at 0.05 and drops)
LIFTED = 0.015
CUBE_WIDTH = 0.04
CUBE_DIAGONAL = 0.056  # a cube turned in the fingers holds them this far apart
# Within this far of the grasp point along the approach axis (or past it, and this near overall) with the
# fingers open, the tool's sideways offset from the axis is what a close there would miss by: `off_course`
OFF_COURSE_ALONG = 0.04
OFF_COURSE_NEAR = 0.1


def _tilted(yaw: float) -> np.ndarray:
    """The right hand's grasp orientation: pointing down at TILT, fingers closing across the cube."""
    closing = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    approach = np.array([-np.cos(TILT) * np.cos(yaw), -np.cos(TILT) * np.sin(yaw), -np.sin(TILT)])
    return rotation_from_axes(approach, closing)


class TransferCubeExpert(ScriptedExpert):
    def __init__(self) -> None:
        super().__init__("bimanual_viperx_transfer_cube.xml")
        # while the right hand picks: the tool's offset (m) from the grasp point, along the approach axis (> 0:
        # before it) and beside the axis, as the last call measured it; None in the other phases
        self.grasp_offset: tuple[float, float] | None = None

    def plan(self, agent_pos: np.ndarray, env_state: np.ndarray) -> dict[str, ArmCommand]:
        self.grasp_offset = None
        cube, quat = env_state[:3], env_state[3:7]
        right_tcp, _ = self.kin.tcp("right")
        left_tcp, _ = self.kin.tcp("left")
        g_left, g_right = agent_pos[6], agent_pos[13]
        left_near, right_near = np.linalg.norm(cube - left_tcp), np.linalg.norm(cube - right_tcp)
        left_holds = left_near < HOLD_DIST and closed_on(g_left, CUBE_WIDTH, CUBE_DIAGONAL)
        lifted = cube[2] > CUBE_REST_Z + LIFTED and left_near > HOLD_DIST  # and not by the left hand
        right_holds = closed_on(g_right, CUBE_WIDTH, CUBE_DIAGONAL) and (
            right_near < HOLD_DIST or (lifted and right_near < HOLD_DIST_LIFTED))

        # The right hand's grasp pose follows the cube's yaw (a cube's faces repeat every 90 deg).
        yaw = (yaw_of(quat) + np.pi / 4) % (np.pi / 2) - np.pi / 4
        right_rot = _tilted(yaw)
        approach = right_rot[:, 0]

        if left_holds:
            self.phase = "handover: right releases"
            right = ArmCommand(right_tcp, right_rot, GRIPPER_OPEN)
            if g_right > 0.9:  # released: back away without dragging the cube
                right = ArmCommand(MEET + np.array([0.15, 0.0, 0.05]), right_rot, GRIPPER_OPEN)
            left = ArmCommand(left_tcp, LEFT_ROT, GRIPPER_CLOSED)
            return {"left": left, "right": right}

        if right_holds:
            # carry the cube (not the tool) to the meeting point: it hangs where the fingers hold it
            # keep the hand's orientation as it is: the cube may have turned in the fingers
            right = ArmCommand(MEET + (right_tcp - cube), _tilted(0.0), GRIPPER_CLOSED)
            # the left hand comes in once the cube has arrived (or when it is already there)
            at_meet = np.linalg.norm(cube - MEET) < 0.015 or left_near < 0.05
            if not at_meet:
                self.phase = "carry to the meeting point"
                left = ArmCommand(LEFT_WAIT, LEFT_ROT, GRIPPER_CLOSED)
            else:
                self.phase = "left lifts it from below"
                left = self._from_below(left_tcp, cube)
            return {"left": left, "right": right}

        self.phase = "right picks"
        grasp = cube + np.array([0.0, 0.0, GRASP_HEIGHT])
        right = self._approach(right_tcp, grasp, approach, right_rot, g_right)
        left = ArmCommand(LEFT_WAIT, LEFT_ROT, GRIPPER_CLOSED)
        return {"left": left, "right": right}

    @staticmethod
    def _from_below(tcp: np.ndarray, cube: np.ndarray) -> ArmCommand:
        """Slide the closed fingers in under the cube, level, then press up against its bottom."""
        under = cube + np.array([UNDER_X, 0.0, UNDER_CLEAR])
        offset = tcp - under
        if abs(offset[1]) < 0.008 and -0.008 < offset[2] < UNDER_LIFT - UNDER_CLEAR + 0.008 and offset[0] > -0.01:
            return ArmCommand(cube + np.array([UNDER_X, 0.0, UNDER_LIFT]), LEFT_ROT, GRIPPER_CLOSED)
        # line up in y and z first, behind the cube; then go in along +x
        behind = offset[0] < -0.01 and (abs(offset[1]) > 0.008 or abs(offset[2]) > 0.008)
        goal = under + np.array([-0.06, 0.0, 0.0]) if behind and offset[0] < -0.03 else under
        if offset[0] > -0.03 and (abs(offset[1]) > 0.015 or abs(offset[2]) > 0.015):
            goal = under + np.array([-0.06, 0.0, 0.0])  # off the line near the cube: back out
        return ArmCommand(goal, LEFT_ROT, GRIPPER_CLOSED)

    def _approach(
        self,
        tcp: np.ndarray, grasp: np.ndarray, approach: np.ndarray, rot: np.ndarray, opening: float
    ) -> ArmCommand:
        """Come in along the approach axis, then close at the grasp point; re-open if it missed."""
        offset = tcp - grasp
        along = -offset @ approach  # how far before the grasp point, along the approach (>0: before)
        lateral = np.linalg.norm(offset + along * approach)
        self.grasp_offset = (float(along), float(lateral))
        near = along < OFF_COURSE_ALONG and np.linalg.norm(offset) < OFF_COURSE_NEAR and opening >= 0.9
        self.off_course = float(lateral) if near else 0.0
        if abs(along) < 0.01 and lateral < 0.012:
            return ArmCommand(grasp, rot, GRIPPER_CLOSED)
        if opening < 0.9 and np.linalg.norm(offset) > 0.02:
            # closed (or closing) away from the object: open before coming in again
            return ArmCommand(tcp + np.array([0.0, 0.0, 0.01]), rot, GRIPPER_OPEN)
        # a funnel along the approach axis: the further off the axis, the further back the aim
        back = 0.08 if along < -0.005 else float(np.clip(4.0 * (lateral - 0.008), 0.0, 0.08))
        return ArmCommand(grasp - back * approach, rot, GRIPPER_OPEN)
