"""Environments the trainers run: any gymnasium id, and the ALOHA tasks as flat-state envs.

`aloha:transfer_cube` is the simulated ALOHA with a state observation: joint positions and object
poses in one vector (what a state-based policy and the scripted expert read), success as return.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class AlohaStateEnv(gym.ObservationWrapper):
    """ALOHA with observation = [agent_pos (14) | object poses]; reward 1 on the success step."""

    def __init__(self, task: str, episode_length: int = 400) -> None:
        from sim.aloha.env import AlohaEnv

        # joint limits clamped, as the intervention mux does on the robot
        env = AlohaEnv(task, cameras=(), privileged=True, episode_length=episode_length, clamp_actions=True)
        super().__init__(env)
        dim = 14 + env.task.env_state_dim
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    def observation(self, obs: dict) -> np.ndarray:
        return np.concatenate([obs["agent_pos"], obs["env_state"]]).astype(np.float32)

    def step(self, action):
        obs, _reward, terminated, truncated, info = self.env.step(np.asarray(action, dtype=np.float64))
        return self.observation(obs), float(info["is_success"]), terminated, truncated, info


def make_env(name: str, **kwargs) -> gym.Env:
    if name.startswith("aloha:"):
        return AlohaStateEnv(name.split(":", 1)[1], **kwargs)
    return gym.make(name, **kwargs)


def action_info(env: gym.Env) -> tuple[bool, int]:
    """(discrete?, action dimension or number of discrete actions)."""
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        return True, int(space.n)
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return False, int(space.shape[0])
    raise ValueError(f"unsupported action space {space}: Discrete or a 1-D Box")
