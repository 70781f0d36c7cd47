"""Closed-loop expert for insertion: the left arm takes the socket, the right arm the peg, in the air.

Both arms work at once. Every call reads the situation from the state alone:
  right holds the peg, left holds the socket at the meeting point
                          -> the right hand lines the peg up with the socket's axis, then pushes it in
  an arm holds its object -> it lifts it (the socket to the meeting point, the peg beside it)
  an arm holds nothing    -> it comes down over its object, closes; re-opens if it missed
so a dropped object is picked up again and a pushed arm finds its way back.

Geometry (the ALOHA MJCF): the peg is a 12 x 2 x 2 cm bar along its x axis; the socket a 12 cm tube
along its x axis with a 3.6 cm square opening and a pin filling its middle 8 cm. The peg counts as
inserted when its end touches the pin, 2 cm inside the socket's mouth.
"""

from __future__ import annotations

import numpy as np

from sim.experts.base import GRIPPER_CLOSED, GRIPPER_OPEN, ArmCommand, ScriptedExpert, closed_on
from sim.experts.kinematics import rotation_from_axes, rotation_of

DOWN = np.array([0.0, 0.0, -1.0])
SOCKET_MEET = np.array([-0.08, 0.5, 0.2])  # where the socket's centre is held for the insertion
PEG_HALF = 0.06
PIN_END = 0.04  # the pin's end, from the socket's centre, along its axis
STANDOFF = 0.05  # the peg's tip waits this far outside the socket's mouth while it lines up
PUSH_PAST = 0.012  # how far past the pin's end the tip is aimed, so that it surely touches
ALIGNED = 0.006  # lateral error (m) under which the peg goes in
# The tool point sits 3 cm behind the finger tips: these heights above each object's centre put the
# tips just above the table with the pads on the object.
PEG_GRASP_HEIGHT = 0.022
PEG_GRASP_ALONG = 0.025  # grasp the peg toward its +x end: the free end goes into the socket
SOCKET_GRASP_HEIGHT = 0.026
HOLD_DIST = 0.04
PEG_WIDTH = 0.02
SOCKET_WIDTH = 0.044


class InsertionExpert(ScriptedExpert):
    def __init__(self) -> None:
        super().__init__("bimanual_viperx_insertion.xml")

    def plan(self, agent_pos: np.ndarray, env_state: np.ndarray) -> dict[str, ArmCommand]:
        peg, peg_rot = env_state[:3], rotation_of(env_state[3:7])
        socket, socket_rot = env_state[7:10], rotation_of(env_state[10:14])
        left_tcp, left_now = self.kin.tcp("left")
        right_tcp, right_now = self.kin.tcp("right")
        peg_axis = _level_axis(peg_rot[:, 0], toward=np.array([1.0, 0.0, 0.0]))
        socket_axis = _level_axis(socket_rot[:, 0], toward=np.array([1.0, 0.0, 0.0]))

        peg_grasp = peg + PEG_GRASP_ALONG * peg_axis + np.array([0.0, 0.0, PEG_GRASP_HEIGHT])
        socket_grasp = socket + np.array([0.0, 0.0, SOCKET_GRASP_HEIGHT])
        # held: the gripper closed to the object's width, with the tool near the object's axis
        left_holds = _to_segment(left_tcp, socket, socket_rot[:, 0], PEG_HALF) < HOLD_DIST and closed_on(
            agent_pos[6], SOCKET_WIDTH
        )
        right_holds = _to_segment(right_tcp, peg, peg_rot[:, 0], PEG_HALF) < HOLD_DIST and closed_on(
            agent_pos[13], PEG_WIDTH
        )

        # left: the socket
        mouth_axis = socket_rot[:, 0] if socket_rot[0, 0] >= 0 else -socket_rot[:, 0]
        tip_dir = _tip_direction(peg_rot, peg, right_tcp)
        if left_holds:
            # hold the socket level with its axis along x (a held object turns in the fingers: this
            # turns the hand by what the object is off, so nothing drifts)
            level = _rotation_between(mouth_axis, np.array([1.0, 0.0, 0.0])) @ left_now
            left = ArmCommand(SOCKET_MEET + (left_tcp - socket), level, GRIPPER_CLOSED)
        else:
            rot = rotation_from_axes(DOWN, _closing_across(socket_axis, left_now))
            left = _come_down(left_tcp, socket_grasp, rot, agent_pos[6])
        socket_ready = left_holds and np.linalg.norm(socket - SOCKET_MEET) < 0.02

        # right: the peg
        if right_holds and socket_ready:
            # the peg's tip (its -x end, away from the hand) goes along the socket's axis into its +x mouth
            tip = peg + PEG_HALF * tip_dir
            offset = tip - socket
            depth_now = offset @ mouth_axis
            lateral = np.linalg.norm(offset - depth_now * mouth_axis)
            entering = depth_now < PIN_END + 0.03 and lateral < 0.01  # already in the mouth, well enough
            if lateral < ALIGNED or entering:
                self.phase = "insert"
                depth = PIN_END - PUSH_PAST
            else:
                self.phase = "line the peg up"
                depth = PIN_END + 0.02 + STANDOFF
            tip_goal = socket + depth * mouth_axis
            # turn the hand so the peg's axis matches the socket's, then move the tip to its goal
            fix = _rotation_between(tip_dir, -mouth_axis)
            right = ArmCommand(right_tcp + (tip_goal - tip), fix @ right_now, GRIPPER_CLOSED)
        elif right_holds:
            self.phase = "lift"
            wait = SOCKET_MEET + np.array([PIN_END + 0.02 + STANDOFF + PEG_HALF, 0.0, 0.0])
            level = _rotation_between(tip_dir, np.array([-1.0, 0.0, 0.0])) @ right_now
            right = ArmCommand(wait + (right_tcp - peg), level, GRIPPER_CLOSED)
        else:
            self.phase = "grasp"
            rot = rotation_from_axes(DOWN, _closing_across(peg_axis, right_now))
            right = _come_down(right_tcp, peg_grasp, rot, agent_pos[13])
        if not left_holds and self.phase != "grasp":
            self.phase = "grasp"
        return {"left": left, "right": right}


def _level_axis(axis: np.ndarray, toward: np.ndarray) -> np.ndarray:
    """An object's long axis projected onto the table plane, signed toward `toward`."""
    flat = np.array([axis[0], axis[1], 0.0])
    n = np.linalg.norm(flat)
    flat = toward if n < 1e-6 else flat / n
    return flat if flat @ toward >= 0 else -flat


def _closing_across(axis: np.ndarray, hand_rot: np.ndarray) -> np.ndarray:
    """Fingers close across the object's long axis, in the sense nearest the hand's current one."""
    across = np.array([-axis[1], axis[0], 0.0])
    return across if across @ hand_rot[:, 1] >= 0 else -across


def _to_segment(point: np.ndarray, centre: np.ndarray, axis: np.ndarray, half_length: float) -> float:
    """Distance from a point to an object's centre line (a segment along its axis)."""
    along = float(np.clip((point - centre) @ axis, -half_length, half_length))
    return float(np.linalg.norm(point - (centre + along * axis)))


def _tip_direction(peg_rot: np.ndarray, peg: np.ndarray, tcp: np.ndarray) -> np.ndarray:
    """Unit vector from the peg's centre to its free end: the end away from the right hand."""
    ax = peg_rot[:, 0]
    return ax if ax @ (peg - tcp) >= 0 else -ax


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction a onto direction b."""
    from scipy.spatial.transform import Rotation

    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(a @ b)
    if s < 1e-9:
        return np.eye(3)
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c)).as_matrix()


def _come_down(tcp: np.ndarray, grasp: np.ndarray, rot: np.ndarray, opening: float) -> ArmCommand:
    """Come down on the grasp point from above, close there; re-open if it closed on nothing."""
    offset = tcp - grasp
    lateral = np.linalg.norm(offset[:2])
    if lateral < 0.008 and abs(offset[2]) < 0.008:
        return ArmCommand(grasp, rot, GRIPPER_CLOSED)
    if opening < 0.9 and np.linalg.norm(offset) > 0.02:
        return ArmCommand(tcp + np.array([0.0, 0.0, 0.02]), rot, GRIPPER_OPEN)
    above = float(np.clip(4.0 * (lateral - 0.005), 0.0, 0.08))
    return ArmCommand(grasp + np.array([0.0, 0.0, above]), rot, GRIPPER_OPEN)
