"""The sim bridge's logic without ROS: it makes the simulated ALOHA behave like a robot's drivers.

A driver holds the last good command and reports what the robot measures. Commands arrive by joint
name (any order); a command with unknown or missing joints, non-finite values or values outside
the limits is refused with the reason and the last good command stays. Like a robot's driver it
limits velocity: the position target each physics step moves toward the command by at most the
joint's `max_velocity` x the step's duration, so no command, however far, moves a joint faster than
the robot could. At the end of an episode the robot holds still until it is reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.aloha import robot
from sim.aloha.env import CONTROL_DT, AlohaEnv


@dataclass
class SimStep:
    """What the robot measures after a step (or a reset)."""

    step: int
    agent_pos: np.ndarray
    env_state: np.ndarray
    images: dict[str, np.ndarray]
    reward: float
    success: bool
    done: bool
    max_reward: float


class SimBridgeCore:
    def __init__(self, task: str, cameras: tuple[str, ...], image_size: tuple[int, int],
                 episode_length: int = 400, terminate_on_success: bool = False,
                 max_velocity: tuple[float, ...] | None = None) -> None:
        """`max_velocity`: per joint (JOINT_NAMES order), per second; None: no limit (not a robot's driver)."""
        self._env_kwargs: dict[str, Any] = dict(cameras=cameras, image_size=image_size, episode_length=episode_length,
                                                terminate_on_success=terminate_on_success)
        self.env = AlohaEnv(task, **self._env_kwargs)
        self.command = robot.START_STATE.copy()
        self.target = robot.START_STATE.copy()  # what the physics is given: the command, velocity-limited
        self.max_step: np.ndarray | None = None
        if max_velocity is not None:
            v = np.asarray(max_velocity, dtype=np.float64)
            if v.shape != (robot.STATE_DIM,) or not np.all(np.isfinite(v) & (v > 0)):
                raise ValueError(f"max_velocity: expected {robot.STATE_DIM} finite values > 0, got {max_velocity}")
            self.max_step = v * CONTROL_DT
        self.limited_steps = 0  # physics steps in which the velocity limit held a joint back
        self.episode = 0
        self.last: SimStep | None = None

    @property
    def task(self) -> str:
        return self.env.task.name

    def reset(self, task: str = "", seed: int | None = None) -> SimStep:
        """Start an episode (optionally of another task); the arms go to rest and hold there."""
        if task and task != self.task:
            new_env = AlohaEnv(task, **self._env_kwargs)  # raises on an unknown task: the old one stays
            self.env.close()
            self.env = new_env
        obs, info = self.env.reset(seed=seed)
        self.command = robot.START_STATE.copy()
        self.target = robot.START_STATE.copy()
        self.episode += 1
        self.last = self._measure(obs, info, reward=0.0, done=False)
        return self.last

    def set_command(self, names: list[str], positions: list[float]) -> str | None:
        """Take a command by joint name; return why it was refused, or None when accepted."""
        if len(names) != len(positions):
            return f"{len(names)} names but {len(positions)} positions"
        if names:
            index = {n: i for i, n in enumerate(names)}
            missing = [j for j in robot.JOINT_NAMES if j not in index]
            if missing:
                return f"missing joints {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
            values = np.array([positions[index[j]] for j in robot.JOINT_NAMES], dtype=np.float64)
        elif len(positions) == robot.STATE_DIM:
            values = np.asarray(positions, dtype=np.float64)
        else:
            return f"expected {robot.STATE_DIM} positions, got {len(positions)}"
        if not np.all(np.isfinite(values)):
            bad = np.flatnonzero(~np.isfinite(values))
            return "non-finite values for " + ", ".join(robot.JOINT_NAMES[i] for i in bad)
        outside = (values < robot.JOINT_LOWER - 1e-6) | (values > robot.JOINT_UPPER + 1e-6)
        if outside.any():
            return "outside the joint limits: " + ", ".join(robot.JOINT_NAMES[i] for i in np.flatnonzero(outside))
        self.command = values
        return None

    def step(self) -> SimStep:
        """One control step with the current command; after the episode ends, nothing moves."""
        if self.last is None:
            raise RuntimeError("reset() first")
        if self.last.done:
            return self.last
        if self.max_step is None:
            self.target = self.command.copy()
        else:
            delta = np.clip(self.command - self.target, -self.max_step, self.max_step)
            self.limited_steps += int(np.max(np.abs(self.target + delta - self.command)) > 1e-9)
            self.target = self.target + delta
        obs, reward, terminated, truncated, info = self.env.step(self.target)
        self.last = self._measure(obs, info, reward, done=terminated or truncated)
        return self.last

    def close(self) -> None:
        self.env.close()

    def _measure(self, obs: dict, info: dict, reward: float, done: bool) -> SimStep:
        return SimStep(
            step=info["step"],
            agent_pos=obs["agent_pos"],
            env_state=info["env_state"],
            images=obs.get("pixels", {}),
            reward=float(reward),
            success=bool(info["is_success"]),
            done=bool(done),
            max_reward=float(info["max_reward"]),
        )
