"""Record PushT episodes from gym-pusht with a scripted (optionally noisy) pusher, in lerobot/pusht's layout.

    python -m training.datasets.pusht_record --out ~/.cache/vla-il/datasets/pusht --episodes 50

lerobot/pusht cannot be downloaded here, so PushTDataset's data comes from this. Frames:
`observation.image` (96x96 RGB video), `observation.state` (agent x, y), `action` (target x, y),
`next.success`, and the instruction as the task.

The pusher's quality: it gets behind the T (on the side away from the goal, walking around the
block), then pushes the T's centre toward the goal's centre; it ignores the T's orientation. It
moves the T toward the target in most episodes but rarely reaches the 95 % coverage gym-pusht
counts as success: it is data for loaders and pipelines, not for a strong PushT policy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from training.datasets.lerobot_dataset import PUSHT_TASK
from training.datasets.writer import EpisodeWriter

FPS = 10
IMAGE_KEY = "observation.image"


class ScriptedPusher:
    """Get behind the block relative to the goal, then push its centre toward the goal."""

    def __init__(self, noise: float = 0.0, seed: int = 0, standoff: float = 120.0) -> None:
        self.noise, self.standoff = noise, standoff
        self.rng = np.random.default_rng(seed)

    def __call__(self, agent: np.ndarray, block: np.ndarray, goal: np.ndarray) -> np.ndarray:
        to_goal = goal[:2] - block[:2]
        dist = np.linalg.norm(to_goal)
        direction = to_goal / dist if dist > 1e-6 else np.array([1.0, 0.0])
        behind = np.clip(block[:2] - direction * self.standoff, 15.0, 497.0)  # reachable inside the arena
        if np.linalg.norm(agent - behind) > 25.0:
            # Walk around the block: through a point beside it when the straight path would cross it.
            to_agent = agent - block[:2]
            if np.dot(to_agent, direction) > -10.0:
                side = np.array([-direction[1], direction[0]])
                side = side if np.dot(to_agent, side) >= 0 else -side
                target = block[:2] + side * self.standoff * 1.3 - direction * 20.0
            else:
                target = behind
        else:
            target = block[:2] + direction * 30.0
        target = target + self.rng.normal(0.0, self.noise, 2) if self.noise else target
        return np.clip(target, 0.0, 512.0).astype(np.float32)


def features(image_size: tuple[int, int]) -> dict:
    return {
        IMAGE_KEY: {"dtype": "video", "shape": (*image_size, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
        "next.success": {"dtype": "bool", "shape": (1,), "names": None},
    }


def record(
    out: Path,
    episodes: int,
    max_steps: int = 300,
    noise: float = 5.0,
    seed: int = 0,
    image_size: tuple[int, int] = (96, 96),
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write `episodes` scripted PushT episodes; returns counts and the pusher's success rate."""
    import gym_pusht  # noqa: F401 - registers gym_pusht/PushT-v0
    import gymnasium as gym

    from training.progress import trange

    env = gym.make(
        "gym_pusht/PushT-v0",
        obs_type="pixels_agent_pos",
        observation_height=image_size[0],
        observation_width=image_size[1],
        max_episode_steps=max_steps,
    )
    writer = EpisodeWriter(out, features(image_size), fps=FPS, robot_type="pusht", overwrite=overwrite)
    pusher = ScriptedPusher(noise=noise, seed=seed)
    successes, frames, coverage = 0, 0, []
    try:
        for ep in trange(episodes, desc="record pusht", disable=not progress):
            obs, info = env.reset(seed=seed + ep)
            success = False
            while True:
                action = pusher(obs["agent_pos"], info["block_pose"], info["goal_pose"])
                frame = {IMAGE_KEY: obs["pixels"], "observation.state": obs["agent_pos"], "action": action}
                obs, _reward, terminated, truncated, info = env.step(action)
                success = success or bool(info["is_success"])
                frame["next.success"] = bool(info["is_success"])
                writer.add(frame, task=PUSHT_TASK)
                if terminated or truncated:
                    break
            frames += writer.frames_in_episode
            coverage.append(float(info.get("coverage", 0.0)))
            writer.save_episode()
            successes += success
    finally:
        writer.close()
        env.close()
    return {
        "out": str(out),
        "episodes": episodes,
        "frames": frames,
        "success_rate": successes / max(episodes, 1),
        "mean_final_coverage": float(np.mean(coverage)) if coverage else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record scripted PushT episodes into a LeRobot dataset (v3).")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--max_steps", type=int, default=300)
    parser.add_argument("--noise", type=float, default=5.0, help="std of the pusher's target noise (pixels)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    result = record(args.out, args.episodes, args.max_steps, args.noise, args.seed, overwrite=args.overwrite)
    print(", ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
