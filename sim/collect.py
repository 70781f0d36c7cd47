"""`vla-il collect`: scripted-expert demonstrations from the simulated ALOHA into a LeRobot dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sim.aloha import robot
from sim.aloha.env import FPS, AlohaEnv
from sim.experts import make_expert
from training.datasets.writer import EpisodeWriter
from vla_il_core import schema


@dataclass
class CollectReport:
    out: Path
    saved: int = 0
    failed: int = 0
    frames: int = 0
    seeds_failed: list[int] = field(default_factory=list)
    kept_failed: bool = False  # the failed episodes are among the saved ones (keep_failed)

    def line(self) -> str:
        return (f"wrote {self.saved} episodes ({self.frames} frames) to {self.out}; "
                f"{self.failed} expert failures {'kept' if self.kept_failed and self.failed else 'left out'}"
                + (f" (seeds {self.seeds_failed[:10]})" if self.failed else ""))


def collect(task: str, episodes: int, out: Path, cameras: tuple[str, ...] = ("top",),
            image_size: tuple[int, int] = (480, 640), keep_failed: bool = False, seed: int = 0,
            overwrite: bool = False, episode_length: int = 400, progress: bool = True,
            image_storage: str = "auto", action_noise: float = 0.0, noise_correlation: float = 0.9) -> CollectReport:
    """Record `episodes` expert episodes (seeds seed, seed+1, ...). Failed episodes are left out
    unless `keep_failed`; either way they are counted, and more seeds are drawn to reach the number.
    `image_storage`: schema.image_dtype (auto: small frames lossless, large ones as video).

    `action_noise` > 0 (radians): the arm joints execute the expert's command plus a slowly wandering
    offset (AR(1): offset = noise_correlation * offset + N(0, action_noise)), grippers untouched; the
    frame's `action` is what was executed, `expert_action` the expert's label for the state (DART-style
    noise injection: the data shows the expert recovering from the small errors a learner makes, so
    train on `expert_action`)."""
    if action_noise < 0 or not 0 <= noise_correlation < 1:
        raise ValueError(f"action_noise must be >= 0 and noise_correlation in [0, 1), got {action_noise}, "
                         f"{noise_correlation}")
    import numpy as np

    from training.progress import tqdm

    env = AlohaEnv(task, cameras=cameras, image_size=image_size, episode_length=episode_length)
    expert = make_expert(task)
    features = schema.features(robot.JOINT_NAMES, cameras, image_size, env.task.env_state_dim,
                               image_storage=image_storage)
    writer = EpisodeWriter(out, features, fps=FPS, overwrite=overwrite)
    arm = np.ones(robot.STATE_DIM, dtype=bool)
    arm[list(robot.GRIPPER_INDICES)] = False  # the grippers: their commands are open / closed decisions, not noised
    report = CollectReport(out=Path(out), kept_failed=keep_failed)
    bar = tqdm(total=episodes, desc=f"collect {task}", unit="ep", disable=not progress)
    s = seed
    try:
        while report.saved < episodes:
            if s - seed > 3 * episodes + 10:
                raise RuntimeError(f"the expert failed {report.failed} of {s - seed} episodes: stopping")
            obs, info = env.reset(seed=s)
            rng = np.random.default_rng(s)
            offset = np.zeros(robot.STATE_DIM)
            while True:
                label = expert(obs["agent_pos"], info["env_state"])
                action = label
                if action_noise:
                    offset = noise_correlation * offset + rng.normal(0.0, action_noise, robot.STATE_DIM) * arm
                    action = np.clip(label + offset, robot.JOINT_LOWER, robot.JOINT_UPPER)
                frame = {
                    schema.STATE: obs["agent_pos"],
                    schema.ENV_STATE: info["env_state"],
                    schema.ACTION: action,
                    schema.EXPERT_ACTION: label,
                    schema.POLICY_ACTION: action,  # no policy ran: the executed action
                    schema.INTERVENTION: True,
                }
                for cam in cameras:
                    frame[schema.image_key(cam)] = obs["pixels"][cam]
                obs, _reward, terminated, truncated, info = env.step(action)
                frame[schema.SUCCESS] = info["is_success"]
                writer.add(frame, task=env.task.instruction)
                if terminated or truncated:
                    break
            if info["is_success"] or keep_failed:
                report.frames += writer.frames_in_episode
                writer.save_episode()
                report.saved += 1
                bar.update()
            else:
                writer.discard_episode()
            if not info["is_success"]:
                report.failed += 1
                report.seeds_failed.append(s)
            bar.set_postfix(failed=report.failed)
            s += 1
    finally:
        bar.close()
        writer.close()
        env.close()
    return report


def load(root: Path):
    """Load a dataset written by `collect` (offline; videos decoded with PyAV)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(f"local/{Path(root).name}", root=root, video_backend="pyav")


__all__ = ["CollectReport", "collect", "load"]
