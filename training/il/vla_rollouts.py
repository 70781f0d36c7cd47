"""The VLA in the simulated ALOHA: a policy for `sim.evaluation`, DAgger's expert-labelled rollouts,
and the in-memory dataset those rollouts become (the same items as the LeRobot datasets)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from training.models.vla import VLAModel
from vla_il_core import schema
from vla_il_core.chunking import ChunkQueue, TemporalEnsembler


def observation_batch(model: VLAModel, obs: dict[str, Any], instruction: str) -> dict[str, Any]:
    """One env observation (agent_pos, pixels HWC uint8) -> a batch of one in the model's keys."""
    batch: dict[str, Any] = {
        schema.STATE: torch.as_tensor(np.asarray(obs["agent_pos"], np.float32)[None]),
        "task": [instruction],
    }
    pixels = obs.get("pixels", {})
    for cam in model.cameras:
        if cam not in pixels:
            raise ValueError(f"the model sees camera {cam}; the env renders {', '.join(pixels) or 'no cameras'}")
        batch[schema.image_key(cam)] = torch.from_numpy(np.ascontiguousarray(pixels[cam])).permute(2, 0, 1)[None]
    return batch


class VLASimPolicy:
    """Drives the sim with a VLAModel: a chunk every `n_action_steps` steps, or ACT temporal ensembling."""

    def __init__(
        self, model: VLAModel, n_action_steps: int | None = None, temporal_ensembling: bool = False, k: float = 0.01
    ) -> None:
        self.model = model
        chunk = model.chunk_size
        self.ensembler = TemporalEnsembler(chunk, k) if temporal_ensembling and chunk > 1 else None
        self.queue = ChunkQueue(n_action_steps or chunk) if self.ensembler is None else None

    def reset(self) -> None:
        for helper in (self.ensembler, self.queue):
            if helper is not None:
                helper.reset()

    @torch.no_grad()
    def chunk(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        self.model.eval()
        return self.model.predict(observation_batch(self.model, obs, info["instruction"]))[0].cpu().numpy()

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        if self.ensembler is not None:
            self.ensembler.add(self.chunk(obs, info))
            return self.ensembler.act()
        if self.queue.needs_chunk():
            self.queue.add(self.chunk(obs, info))
        return np.asarray(self.queue.act(), dtype=np.float64)


class RolloutDataset(torch.utils.data.Dataset):
    """Frames visited in the sim with the expert's labels; items like LeRobotVLADataset's (chunks of the
    next labels of the same episode, padded at its end)."""

    def __init__(self, cameras: tuple[str, ...], chunk_size: int, env_state: bool = False) -> None:
        # env_state: keep the sim's object poses per frame (observation.environment_state), so these items
        # batch with a recorded sim dataset's (which have them: a VLA's auxiliary target)
        self.cameras, self.chunk_size, self.env_state = tuple(cameras), chunk_size, env_state
        self.env_states: list[np.ndarray] = []
        self.states: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.images: dict[str, list[np.ndarray]] = {c: [] for c in self.cameras}
        self.tasks: list[str] = []
        self.index: list[tuple[int, int]] = []  # (episode, frame)

    def add_episode(
        self,
        states: np.ndarray,
        images: dict[str, np.ndarray],
        labels: np.ndarray,
        task: str,
        env_states: np.ndarray | None = None,
    ) -> None:
        if len(states) == 0:
            return
        if self.env_state:
            if env_states is None or len(env_states) != len(states):
                raise ValueError("this RolloutDataset keeps env_state: give one per frame")
            self.env_states.append(np.asarray(env_states, np.float32))
        self.states.append(np.asarray(states, np.float32))
        self.labels.append(np.asarray(labels, np.float32))
        for cam in self.cameras:
            self.images[cam].append(np.asarray(images[cam], np.uint8))
        self.tasks.append(task)
        ep = len(self.states) - 1
        self.index.extend((ep, t) for t in range(len(states)))

    @property
    def episodes(self) -> int:
        return len(self.states)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ep, t = self.index[i]
        labels = self.labels[ep]
        idx = np.arange(t, t + self.chunk_size)
        pad = idx >= len(labels)
        item: dict[str, Any] = {
            schema.STATE: torch.from_numpy(self.states[ep][t]),
            "task": self.tasks[ep],
            "action": torch.from_numpy(labels[np.minimum(idx, len(labels) - 1)]),
            "action_is_pad": torch.from_numpy(pad),
            "episode_index": torch.tensor(-1 - ep),  # negative: not an episode of the LeRobot dataset
        }
        for cam in self.cameras:
            item[schema.image_key(cam)] = torch.from_numpy(self.images[cam][ep][t]).permute(2, 0, 1).float() / 255
        if self.env_state:
            item[schema.ENV_STATE] = torch.from_numpy(self.env_states[ep][t])
        return item


def collect_labelled_episodes(
    env,
    policy: VLASimPolicy,
    expert,
    episodes: int,
    beta: float,
    seed: int,
    rng: np.random.Generator,
    into: RolloutDataset,
) -> dict[str, float]:
    """DAgger's rollouts: the expert labels every visited state; its action is executed with probability
    beta (per step), the VLA's otherwise. Returns success rate, steps and labels."""
    successes, steps = [], 0
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        policy.reset()
        states, labels, env_states, images = [], [], [], {c: [] for c in into.cameras}
        while True:
            label = np.asarray(expert(obs["agent_pos"], info["env_state"]), np.float64)
            learner = policy(obs, info)  # the learner always runs: its chunk queue stays in step
            action = label if rng.random() < beta else learner
            states.append(obs["agent_pos"])
            env_states.append(info["env_state"])
            labels.append(label)
            for cam in into.cameras:
                images[cam].append(obs["pixels"][cam])
            obs, _reward, terminated, truncated, info = env.step(action)
            steps += 1
            if terminated or truncated:
                break
        into.add_episode(
            np.stack(states),
            {c: np.stack(v) for c, v in images.items()},
            np.stack(labels),
            info["instruction"],
            np.stack(env_states),
        )
        successes.append(bool(info["is_success"]))
    return {
        "success_rate": float(np.mean(successes)) if successes else 0.0,
        "env_steps": float(steps),
        "expert_labels": float(steps),
    }


def stack_frames(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Batches of observations (observation_batch's) -> one batch, in order."""
    out: dict[str, Any] = {}
    for key in frames[0]:
        if key == "task":
            out[key] = [t for f in frames for t in f[key]]
        else:
            out[key] = torch.cat([f[key] for f in frames])
    return out


def evaluate_in_sim(model: VLAModel, task: str, episodes: int, seed: int, config, episode_length: int = 400):
    """Success of the VLA in the simulated ALOHA on seeds seed .. seed + episodes - 1 (a sim.evaluation
    EvalResult); chunks played as `config` (an ILConfig) says: queued, or temporally ensembled."""
    from sim.evaluation import evaluate

    policy = VLASimPolicy(model, temporal_ensembling=config.temporal_aggregation, k=config.temporal_aggregation_k)
    env_kwargs = {
        "cameras": model.cameras,
        "image_size": model.image_size,
        "clamp_actions": True,
        "episode_length": episode_length,
    }
    return evaluate(task, lambda _task: policy, range(seed, seed + episodes), policy_name="vla",
                    env_kwargs=env_kwargs, progress=False)
