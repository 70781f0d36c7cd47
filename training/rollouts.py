"""Running policies and experts in an environment: evaluation returns, expert demonstrations, and
DAgger's mixed rollouts (execute the expert with probability beta, label every state with it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from training.demonstrations import Demonstrations, label_segments
from training.models.policies import ILPolicy
from vla_il_core.chunking import ChunkQueue, TemporalEnsembler

Act = Callable[[np.ndarray], np.ndarray | int]


class PolicyActor:
    """Steps an env with an ILPolicy: one action, a chunk queue, or ACT temporal ensembling."""

    def __init__(self, policy: ILPolicy, temporal_aggregation: bool = False, k: float = 0.01,
                 n_action_steps: int | None = None, device: str = "cpu") -> None:
        self.policy, self.device = policy, device
        chunk = policy.chunk_size
        self.ensembler = TemporalEnsembler(chunk, k) if temporal_aggregation and chunk > 1 else None
        self.queue = ChunkQueue(n_action_steps or chunk) if chunk > 1 and self.ensembler is None else None

    def reset(self) -> None:
        for helper in (self.ensembler, self.queue):
            if helper is not None:
                helper.reset()

    @torch.no_grad()
    def _chunk(self, obs: np.ndarray) -> np.ndarray:
        self.policy.eval()
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32)[None], device=self.device)
        return self.policy.predict(x)[0].cpu().numpy()

    def __call__(self, obs: np.ndarray):
        if self.ensembler is not None:
            self.ensembler.add(self._chunk(obs))
            action = self.ensembler.act()
        elif self.queue is not None:
            if self.queue.needs_chunk():
                self.queue.add(self._chunk(obs))
            action = self.queue.act()
        else:
            action = self._chunk(obs)[0]
        return int(action) if self.policy.discrete else np.asarray(action, dtype=np.float32)


def run_episodes(env: gym.Env, n: int, act: Act, seed: int, expert: Act | None = None, beta: float = 0.0,
                 rng: np.random.Generator | None = None, reset: Callable[[], None] | None = None,
                 progress: str | None = None, chunk_segments: bool = False) -> tuple[Demonstrations, dict[str, float]]:
    """Run n episodes. With an expert, every visited state is labelled with the expert's action, and
    the executed action is the expert's with probability beta (per step), else `act`'s. `act` is asked
    every step, also when the expert's action is executed (a chunking actor's history follows time).

    chunk_segments: for a chunking learner, a step the learner executed is a segment of its own (the
    labels after it were given on states the learner's action led to: no chunk the expert would have
    executed from it), and each stretch the expert executed is one segment.

    Returns the (state, label) pairs (labels: the expert's, or the executed action without an
    expert) and statistics: mean return, success rate where the env reports it, labels, env steps.
    """
    from training.progress import tqdm

    rng = rng or np.random.default_rng(seed)
    obs_list, act_list, ep_list, returns, successes, steps = [], [], [], {}, [], 0
    driven = []  # the expert's action was executed, per step
    for ep in tqdm(range(n), desc=progress, disable=progress is None, leave=False):
        obs, _ = env.reset(seed=seed + ep)
        if reset is not None:
            reset()
        total, done, success = 0.0, False, False
        while not done:
            label = expert(obs) if expert is not None else None
            use_expert = expert is not None and rng.random() < beta
            learner = act(obs) if expert is None or beta < 1.0 else None
            action = label if use_expert else learner
            obs_list.append(np.asarray(obs, dtype=np.float32))
            act_list.append(label if label is not None else action)
            ep_list.append(ep)
            driven.append(use_expert)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            success = success or bool(info.get("is_success", False))
            steps += 1
            done = terminated or truncated
        returns[ep] = total
        successes.append(success)
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    episode = np.asarray(ep_list, dtype=np.int64)
    if chunk_segments:  # the same cut as a recording's (training.il.hg_dagger): learner steps are segments of one
        starts, segment = label_segments(np.ones(len(episode), bool), np.asarray(driven, bool), episode)
        returns = {int(segment[i]): returns[int(episode[i])] for i in np.flatnonzero(starts)}
        episode = segment.astype(np.int64)
    demos = Demonstrations(np.stack(obs_list), np.asarray(act_list, dtype=np.int64 if discrete else np.float32),
                           episode, returns)
    stats = {"mean_reward": float(np.mean(list(returns.values()))), "success_rate": float(np.mean(successes)),
             "env_steps": float(steps), "expert_labels": float(steps if expert is not None else 0)}
    return demos, stats


def run_batched_episodes(envs: list, n: int, act, seed: int) -> dict[str, float]:
    """n episodes (seeds seed, seed + 1, ...) of a memoryless policy `act` (a batch of observations -> a
    batch of actions), len(envs) at a time in lockstep: one call of `act` per step for all of them. The
    outcome of each episode depends only on its seed, not on how many run side by side."""
    discrete = isinstance(envs[0].action_space, gym.spaces.Discrete)
    returns, successes = [0.0] * n, [False] * n
    next_episode = 0
    running: dict[int, tuple[int, Any]] = {}  # env index -> (episode, observation)

    def start(i: int) -> None:
        nonlocal next_episode
        if next_episode < n:
            obs, _ = envs[i].reset(seed=seed + next_episode)
            running[i] = (next_episode, obs)
            next_episode += 1

    for i in range(len(envs)):
        start(i)
    while running:
        order = sorted(running)
        actions = act(np.stack([np.asarray(running[i][1], np.float32) for i in order]))
        for i, action in zip(order, actions):
            episode = running[i][0]
            obs, reward, terminated, truncated, info = envs[i].step(int(action) if discrete else action)
            returns[episode] += float(reward)
            successes[episode] = successes[episode] or bool(info.get("is_success", False))
            if terminated or truncated:
                del running[i]
                start(i)
            else:
                running[i] = (episode, obs)
    return {"mean_reward": float(np.mean(returns)), "success_rate": float(np.mean(successes))}
