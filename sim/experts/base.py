"""What the closed-loop scripted experts share: a per-arm command, turned into a 14-d action."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.aloha import robot
from sim.experts.kinematics import BimanualKinematics

GRIPPER_OPEN = 1.0
GRIPPER_CLOSED = 0.0


def closed_on(opening: float, width: float, widest: float | None = None, tolerance: float = 0.12) -> bool:
    """Whether a gripper's normalised opening is what it is when closed on an object `width` wide
    (up to `widest`, for an object that may sit turned in the fingers).

    The fingers' inner faces meet at a finger position of 0.0224 m; each moves out by width / 2.
    A gripper still closing passes this opening only in its last step or two; one closed on nothing
    ends near 0, one held open stays near 1.
    """
    low = float(robot.gripper_to_normalized(0.0224 + width / 2)) - tolerance
    high = min(float(robot.gripper_to_normalized(0.0224 + (widest or width) / 2)) + tolerance, 0.9)
    return low < opening < high


@dataclass
class ArmCommand:
    """Where one arm's tool should go next, with which orientation, and its gripper."""

    goal: np.ndarray
    rot: np.ndarray
    gripper: float


class ScriptedExpert:
    """A function of the measured state: (agent_pos, env_state) -> 14-d joint target.

    It keeps no memory between calls, so it can label any state a learner visits and recover
    from wherever someone else left the arms. Subclasses decide `plan(...)`: per arm, a goal
    pose and a gripper command, from the tool and object poses. `phase` names the last decision.
    """

    # Each call moves the arm in a straight line in joint space toward the goal posture (the IK
    # solution of the goal pose), the fastest joint at most this far: smooth, and no sweeping
    # through the arm's near-redundant directions.
    max_joint_step = 0.06  # rad per call (3 rad/s at 50 Hz)
    overshoot = 2.0

    def __init__(self, xml_file: str) -> None:
        self.kin = BimanualKinematics(xml_file)
        self.phase = ""
        # How far (m) the last state's tool was off the course the expert would hold there: where a close
        # would miss, the sideways offset from its grasp axis; 0 where the expert has no course to compare
        # (a gate may take over on it before the miss, as a person watching the approach would)
        self.off_course = 0.0

    def __call__(self, agent_pos: np.ndarray, env_state: np.ndarray) -> np.ndarray:
        agent_pos = np.asarray(agent_pos, dtype=np.float64)
        env_state = np.asarray(env_state, dtype=np.float64)
        self.kin.set_state(agent_pos, env_state)
        self.off_course = 0.0
        commands = self.plan(agent_pos, env_state)
        action = agent_pos.copy()
        for arm, side in enumerate(robot.SIDES):
            cmd = commands[side]
            now = self.kin.arm_q(side)
            goal_q = self.kin.reach(side, cmd.goal, cmd.rot)
            # straight in joint space toward the goal posture, at most max_joint_step per joint
            # the position servos stop short of their targets (joint friction, gravity): aim past
            # the goal by `overshoot` times the remaining error, which a stateless expert can do
            step = (1.0 + self.overshoot) * (goal_q - now)
            scale = max(1.0, np.abs(step).max() / self.max_joint_step)
            action[7 * arm : 7 * arm + 6] = now + step / scale
            action[7 * arm + 6] = cmd.gripper
        return np.clip(action, robot.JOINT_LOWER, robot.JOINT_UPPER)

    def plan(self, agent_pos: np.ndarray, env_state: np.ndarray) -> dict[str, ArmCommand]:
        raise NotImplementedError
