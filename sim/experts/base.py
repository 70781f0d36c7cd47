"""What the closed-loop scripted experts share: a per-arm command, turned into a 14-d action."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.aloha import robot
from sim.experts.kinematics import BimanualKinematics

GRIPPER_OPEN = 1.0
GRIPPER_CLOSED = 0.0


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

    # The tool moves at most this far (m) toward its goal per call: smooth motion, no jumps.
    max_lead = 0.015
    max_turn = 0.25  # rad per call
    max_joint_step = 0.08  # rad per call (4 rad/s at 50 Hz)

    def __init__(self, xml_file: str) -> None:
        self.kin = BimanualKinematics(xml_file)
        self.phase = ""

    def __call__(self, agent_pos: np.ndarray, env_state: np.ndarray) -> np.ndarray:
        agent_pos = np.asarray(agent_pos, dtype=np.float64)
        env_state = np.asarray(env_state, dtype=np.float64)
        self.kin.set_state(agent_pos, env_state)
        commands = self.plan(agent_pos, env_state)
        action = agent_pos.copy()
        for arm, side in enumerate(robot.SIDES):
            cmd = commands[side]
            pos, rot = self.kin.tcp(side)
            target = pos + _clip_norm(cmd.goal - pos, self.max_lead)
            target_rot = _turn_toward(rot, cmd.rot, self.max_turn)
            action[7 * arm : 7 * arm + 6] = self.kin.solve(side, target, target_rot, max_joint_step=self.max_joint_step)
            action[7 * arm + 6] = cmd.gripper
        return np.clip(action, robot.JOINT_LOWER, robot.JOINT_UPPER)

    def plan(self, agent_pos: np.ndarray, env_state: np.ndarray) -> dict[str, ArmCommand]:
        raise NotImplementedError


def _clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    n = np.linalg.norm(v)
    return v if n <= limit else v * (limit / n)


def _turn_toward(rot: np.ndarray, goal: np.ndarray, max_angle: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    delta = Rotation.from_matrix(goal @ rot.T).as_rotvec()
    return Rotation.from_rotvec(_clip_norm(delta, max_angle)).as_matrix() @ rot
