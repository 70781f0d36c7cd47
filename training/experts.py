"""Experts the trainers query: the specification's CartPole rule, an energy-based swing-up
controller for Pendulum-v1, and the ALOHA scripted experts (through a flat state vector)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Expert = Callable[[np.ndarray], np.ndarray | int]


def cartpole_expert(state: np.ndarray) -> int:
    """The specification's expert: push toward the side the pole is falling to."""
    return 1 if state[2] + 0.1 * state[3] > 0 else 0


def pendulum_expert(obs: np.ndarray) -> np.ndarray:
    """Swing up by pumping energy, then balance with a PD law near the top (Pendulum-v1: g=10, m=l=1).

    obs = [cos(theta), sin(theta), theta_dot], theta = 0 upright; torque limited to [-2, 2].
    """
    cos_t, sin_t, theta_dot = obs
    theta = np.arctan2(sin_t, cos_t)
    if cos_t > 0.85:  # near upright: balance
        u = -10.0 * theta - 2.0 * theta_dot
    else:
        # Energy relative to upright (3g/2l = 15): pump along the motion while below, brake above.
        energy = 0.5 * theta_dot**2 + 15.0 * (cos_t - 1.0)
        direction = 1.0 if theta_dot >= 0 else -1.0  # at rest, any push starts the swing
        u = 2.0 * direction if energy < 0 else -0.5 * direction
    return np.array([np.clip(u, -2.0, 2.0)], dtype=np.float32)


class AlohaStateExpert:
    """The ALOHA scripted expert on the flat state [agent_pos (14) | object poses]."""

    def __init__(self, task: str) -> None:
        from sim.experts import make_expert

        self.expert = make_expert(task)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return self.expert(state[:14], state[14:]).astype(np.float32)


def expert_for(env_name: str) -> Expert:
    if env_name.startswith("CartPole"):
        return cartpole_expert
    if env_name.startswith("Pendulum"):
        return pendulum_expert
    if env_name.startswith("aloha:"):
        return AlohaStateExpert(env_name.split(":", 1)[1])
    raise ValueError(f"no expert for {env_name!r}; known: CartPole-v1, Pendulum-v1, aloha:transfer_cube, "
                     "aloha:insertion")
