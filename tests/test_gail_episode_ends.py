"""GAIL at episode ends, for the MLP and the VLA alike (one loop serves both): a terminated episode's
return ends there; a truncated one (a time limit) bootstraps from the value of its own last observation,
never from the next episode's first; advantages never run from one episode into the next.

The advantages the trainer computes are compared with GAE worked out by hand, step by step, from the
rewards it used and the values of the exact observations the env returned. The envs are the real ones
(CartPole, the simulated ALOHA); a gymnasium wrapper decides where their episodes end, so that one
short rollout crosses a time-limit cut, a termination and the rollout's own end.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from training.config import ILConfig
from training.il.gail import GAIL, VLAGAIL, gae

GAMMA, LAM = 0.9, 0.8
# episode A: cut by the time limit after 3 steps; B: terminated after 2; C: still running when the 7-step
# rollout ends
ENDS = [(3, "truncated"), (2, "terminated"), (100, "truncated")]
STEPS = 7


class ScriptedEnds(gym.Wrapper):
    """Ends the wrapped env's episodes where ENDS says, and records every observation it hands out."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.episode, self.t, self.seen = -1, 0, []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.episode, self.t = self.episode + 1, 0
        self.seen.append(("reset", obs, info))
        return obs, info

    def step(self, action):
        obs, reward, _, _, info = self.env.step(action)
        self.t += 1
        length, how = ENDS[self.episode]
        terminated = self.t == length and how == "terminated"
        truncated = self.t == length and how == "truncated"
        self.seen.append(("step", obs, info))
        return obs, reward, terminated, truncated, info


def hand_advantages(r: list[float], v: list[float], v_final_a: float, v_after: float) -> list[float]:
    """GAE for the rollout A(0, 1, 2 | cut) B(3, 4 | terminated) C(5, 6 | rollout ends), written out."""
    a = [0.0] * STEPS
    # A: the cut step bootstraps from V(A's own last observation)
    a[2] = r[2] + GAMMA * v_final_a - v[2]
    a[1] = r[1] + GAMMA * v[2] - v[1] + GAMMA * LAM * a[2]
    a[0] = r[0] + GAMMA * v[1] - v[0] + GAMMA * LAM * a[1]
    # B: terminated, no bootstrap; nothing of C flows back into it
    a[4] = r[4] - v[4]
    a[3] = r[3] + GAMMA * v[4] - v[3] + GAMMA * LAM * a[4]
    # C: the rollout ends mid-episode: bootstrap from the observation it stopped at
    a[6] = r[6] + GAMMA * v_after - v[6]
    a[5] = r[5] + GAMMA * v[6] - v[5] + GAMMA * LAM * a[6]
    return a


def check(trainer, env: ScriptedEnds, value_of) -> None:
    trainer.envs = [env]
    trainer._start()
    rollout = trainer.collect_rollout(STEPS)
    assert rollout.terminated.reshape(-1).tolist() == [False, False, False, False, True, False, False]
    assert rollout.ended.reshape(-1).tolist() == [False, False, True, False, True, False, False]
    rewards, advantages = trainer.advantages(rollout)
    # what the env handed out: reset A, 3 steps (the last is A's final observation), reset B, 2 steps, reset C, 2
    kinds = [k for k, _, _ in env.seen]
    assert kinds == ["reset", "step", "step", "step", "reset", "step", "step", "reset", "step", "step"]
    acted_on = [0, 1, 2, 4, 5, 7, 8]  # the observations each of the 7 steps acted on
    trainer.set_training(False)
    with torch.no_grad():
        v = [value_of(env.seen[i][1], env.seen[i][2]) for i in acted_on]
        v_final_a = value_of(env.seen[3][1], env.seen[3][2])
        v_after = value_of(env.seen[9][1], env.seen[9][2])
        v_first_b = value_of(env.seen[4][1], env.seen[4][2])
    assert rollout.values.reshape(-1).tolist() == pytest.approx(v, abs=1e-5)
    # the cut bootstraps from A's own last observation, which is not B's first (the leak this guards against)
    assert abs(v_final_a - v_first_b) > 1e-4
    assert float(rollout.next_values.reshape(-1)[2]) == pytest.approx(v_final_a, abs=1e-5)
    expected = hand_advantages(rewards.tolist(), v, v_final_a, v_after)
    assert advantages.tolist() == pytest.approx(expected, abs=1e-4)


def test_gae_by_hand_across_a_cut_a_termination_and_the_rollout_end():
    r = [1.0, 0.5, 2.0, 1.0, 0.25, 1.5, 0.75]
    v = [0.3, 0.6, 0.9, 0.2, 0.4, 0.7, 0.1]
    v_final_a, v_after = 5.0, -2.0
    next_v = torch.tensor([v[1], v[2], v_final_a, v[4], 123.0, v[6], v_after])  # 123: ignored, terminated
    terminated = torch.tensor([0, 0, 0, 0, 1, 0, 0], dtype=torch.bool)
    ended = torch.tensor([0, 0, 1, 0, 1, 0, 0], dtype=torch.bool)
    adv = gae(torch.tensor(r), torch.tensor(v), next_v, terminated, ended, GAMMA, LAM)
    assert adv.tolist() == pytest.approx(hand_advantages(r, v, v_final_a, v_after))
    # time second: two envs side by side are two independent columns
    def pair(x):
        return torch.as_tensor(x)[:, None].repeat(1, 2)

    two = gae(pair(r), pair(v), pair(next_v), pair(terminated), pair(ended), GAMMA, LAM)
    assert two[:, 1].tolist() == pytest.approx(adv.tolist())


def test_mlp_gail_bootstraps_a_time_limit_cut_from_its_own_last_observation(tmp_path):
    config = ILConfig.gail(ppo_gamma=GAMMA, ppo_gae_lambda=LAM, output_dir=str(tmp_path), eval_episodes=0)
    trainer = GAIL(gym.make("CartPole-v1"), config)
    trainer.ac.actor.set_normalization(np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32))

    def value_of(obs, _info):
        return float(trainer.ac.value(torch.as_tensor(np.asarray(obs, np.float32)[None]))[0])

    check(trainer, ScriptedEnds(gym.make("CartPole-v1")), value_of)


def test_vla_gail_bootstraps_a_time_limit_cut_from_its_own_last_observation(tmp_path):
    from sim.aloha.env import AlohaEnv
    from training.models.vla import VLAModel

    torch.manual_seed(0)
    model = VLAModel.tiny(cameras=("top",), image_size=(32, 48), chunk_size=2, hidden=32)
    config = ILConfig.gail(ppo_gamma=GAMMA, ppo_gae_lambda=LAM, output_dir=str(tmp_path), eval_episodes=0)
    trainer = VLAGAIL(model, config, task="transfer_cube")

    def value_of(obs, info):
        return float(trainer.forward(trainer.observe([obs], [info]))[1][0])

    env = ScriptedEnds(AlohaEnv("transfer_cube", cameras=("top",), image_size=(32, 48), clamp_actions=True))
    try:
        check(trainer, env, value_of)
    finally:
        env.close()


def test_vla_gail_critic_does_not_train_the_policy(tmp_path):
    """The VLA's critic sits on the actor's features; its loss trains the value head only. (A run from a BC
    checkpoint went from 43% to 0% success in 5 critic-only warm-up updates when its gradient reached the
    trunk.)"""
    from sim.aloha.env import AlohaEnv
    from training.models.vla import VLAModel

    torch.manual_seed(0)
    model = VLAModel.tiny(cameras=("top",), image_size=(32, 48), chunk_size=2, hidden=32)
    trainer = VLAGAIL(model, ILConfig.gail(output_dir=str(tmp_path), eval_episodes=0), task="transfer_cube")
    env = AlohaEnv("transfer_cube", cameras=("top",), image_size=(32, 48))
    try:
        obs, info = env.reset(seed=0)
        dist, value = trainer.forward(trainer.observe([obs], [info]))
    finally:
        env.close()
    ((value - 40.0) ** 2).mean().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert any(p.grad is not None and p.grad.any() for p in trainer.value_head.parameters())
    dist.mean.sum().backward()  # the actor's own loss still reaches the model
    assert any(p.grad is not None and p.grad.any() for p in model.parameters())
