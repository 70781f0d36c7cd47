"""`vla-il collect`: scripted-expert demonstrations from the simulated ALOHA into a LeRobot dataset."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sim.aloha import robot
from sim.aloha.env import FPS, AlohaEnv
from sim.experts import make_expert
from training.datasets.lerobot_io import write_recording
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


class _ExpertEpisodes:
    """One env and expert that play whole episodes by seed: the same frames for a seed whichever process
    plays it and whatever it played before (reset re-seeds the scene and the noise)."""

    def __init__(self, task: str, cameras: tuple[str, ...], image_size: tuple[int, int], episode_length: int,
                 action_noise: float, noise_correlation: float, through_mux: bool = False) -> None:
        import numpy as np

        from sim.evaluation import default_mux_config

        self.env = AlohaEnv(task, cameras=cameras, image_size=image_size, episode_length=episode_length)
        self.expert = make_expert(task)
        self.cameras = cameras
        self.action_noise, self.noise_correlation = action_noise, noise_correlation
        self.arm = np.ones(robot.STATE_DIM, dtype=bool)
        self.arm[list(robot.GRIPPER_INDICES)] = False  # the grippers: open / closed decisions, not noised
        self.mux_config = default_mux_config() if through_mux else None

    def play(self, seed: int, emit: Callable[[dict], None]) -> bool:
        """Play the episode of `seed`, each frame (the schema's keys) to `emit` as it happens; whether the
        expert succeeded."""
        import numpy as np

        from sim.evaluation import MuxSession
        from vla_il_core.mux import EXPERT

        obs, info = self.env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        offset = np.zeros(robot.STATE_DIM)
        # a session of its own per episode, the expert engaged: the commands the graph's recorder would record
        mux = MuxSession(self.mux_config) if self.mux_config is not None else None
        while True:
            label = self.expert(obs["agent_pos"], info["env_state"])
            action = label
            if self.action_noise:
                step = rng.normal(0.0, self.action_noise, robot.STATE_DIM) * self.arm
                offset = self.noise_correlation * offset + step
                action = np.clip(label + offset, robot.JOINT_LOWER, robot.JOINT_UPPER)
            if mux is not None:
                action = mux.command(obs["agent_pos"], EXPERT, action)
            frame = {
                schema.STATE: obs["agent_pos"],
                schema.ENV_STATE: info["env_state"],
                schema.ACTION: action,
                schema.EXPERT_ACTION: label,
                schema.POLICY_ACTION: action,  # no policy ran: the executed action
                schema.INTERVENTION: True,
            }
            for cam in self.cameras:
                frame[schema.image_key(cam)] = obs["pixels"][cam]
            obs, _reward, terminated, truncated, info = self.env.step(action)
            frame[schema.SUCCESS] = info["is_success"]
            emit(frame)
            if terminated or truncated:
                return bool(info["is_success"])

    def close(self) -> None:
        self.env.close()


_worker_episodes: _ExpertEpisodes | None = None


def _worker_init(*args) -> None:
    global _worker_episodes
    _worker_episodes = _ExpertEpisodes(*args)


def _worker_play(seed: int) -> tuple[list[dict], bool]:
    assert _worker_episodes is not None
    frames: list[dict] = []
    return frames, _worker_episodes.play(seed, frames.append)


def _played(local: _ExpertEpisodes, emit: Callable[[dict], None], setup: tuple, seed: int, workers: int
            ) -> Iterator[tuple[int, list[dict], bool]]:
    """(seed, frames, success) for seed, seed+1, ... in order, for as long as the caller asks: played by
    `local` here, each frame to `emit` as it happens (frames then empty), or with workers > 1 by spawned
    processes (no GL context crosses a fork) that play ahead of the caller by at most workers + 1 episodes,
    each held in memory until written."""
    if workers <= 1:
        s = seed
        while True:
            yield s, [], local.play(s, emit)
            s += 1
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                               initargs=setup)
    pending: deque = deque()
    try:
        s = seed
        while True:
            while len(pending) < workers + 1:
                pending.append((s, pool.submit(_worker_play, s)))
                s += 1
            done_seed, future = pending.popleft()
            yield (done_seed, *future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def collect(task: str, episodes: int, out: Path, cameras: tuple[str, ...] = ("top",),
            image_size: tuple[int, int] = (480, 640), keep_failed: bool = False, seed: int = 0,
            overwrite: bool = False, episode_length: int = 400, progress: bool = True,
            image_storage: str = "auto", action_noise: float = 0.0, noise_correlation: float = 0.9,
            workers: int = 1, through_mux: bool = False) -> CollectReport:
    """Record `episodes` expert episodes (seeds seed, seed+1, ...). Failed episodes are left out
    unless `keep_failed`; either way they are counted, and more seeds are drawn to reach the number.
    `image_storage`: schema.image_dtype (auto: small frames lossless, large ones as video).

    `action_noise` > 0 (radians): the arm joints execute the expert's command plus a slowly wandering
    offset (AR(1): offset = noise_correlation * offset + N(0, action_noise)), grippers untouched; the
    frame's `action` is what was executed, `expert_action` the expert's label for the state (DART-style
    noise injection: the data shows the expert recovering from the small errors a learner makes, so
    train on `expert_action`).

    `through_mux`: the executed commands (the frame's `action`) pass the intervention mux's core with the sim
    profile's limits (joint and step limits), as on the graph, where the recorder records the mux's commands;
    `expert_action` stays the expert's label. Without it the expert's gripper commands jump from open to
    closed in one step, which the graph's mux never lets through: a policy trained on such a recording meets
    other dynamics when it is deployed through the mux (`vla-il eval --through-mux`).

    `workers` > 1: episodes are played in that many processes while this one writes them, in seed
    order: the dataset is the one `workers=1` writes, episode for episode and frame for frame."""
    if action_noise < 0 or not 0 <= noise_correlation < 1:
        raise ValueError(f"action_noise must be >= 0 and noise_correlation in [0, 1), got {action_noise}, "
                         f"{noise_correlation}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    from sim.evaluation import SIM_PROFILE
    from training.progress import tqdm

    setup = (task, tuple(cameras), tuple(image_size), episode_length, action_noise, noise_correlation, through_mux)
    local = _ExpertEpisodes(*setup)  # here too with workers: a bad task or camera fails before the dataset exists
    if workers > 1:
        local.close()
    features = schema.features(robot.JOINT_NAMES, cameras, image_size, local.env.task.env_state_dim,
                               image_storage=image_storage)
    instruction = local.env.task.instruction
    try:
        writer = EpisodeWriter(out, features, fps=FPS, overwrite=overwrite)
        # how: what info.json does not tell (a recording through the mux or not differs by 46 points through it)
        write_recording(out, {"recorded_by": "vla-il collect", "task": task, "first_seed": seed,
                              "episode_length": episode_length, "kept_failed": keep_failed,
                              "through_mux": through_mux, "mux_profile": SIM_PROFILE if through_mux else None,
                              "action_noise": action_noise, "noise_correlation": noise_correlation})
    except BaseException:
        local.close()
        raise
    report = CollectReport(out=Path(out), kept_failed=keep_failed)
    bar = tqdm(total=episodes, desc=f"collect {task}", unit="ep", disable=not progress)

    def emit(frame: dict) -> None:
        writer.add(frame, task=instruction)

    played = _played(local, emit, setup, seed, workers)
    try:
        for s, frames, success in played:
            if success or keep_failed:
                for frame in frames:  # a worker's episode (played here: already in the writer)
                    emit(frame)
                report.frames += writer.frames_in_episode
                writer.save_episode()
                report.saved += 1
                bar.update()
            elif writer.frames_in_episode:
                writer.discard_episode()
            if not success:
                report.failed += 1
                report.seeds_failed.append(s)
            bar.set_postfix(failed=report.failed)
            if report.saved >= episodes:
                break
            if s + 1 - seed > 3 * episodes + 10:
                raise RuntimeError(f"the expert failed {report.failed} of {s + 1 - seed} episodes: stopping")
    finally:
        played.close()
        bar.close()
        writer.close()
        local.close()
    return report


def recorded_episodes(out: Path) -> int | None:
    """How many episodes the dataset at `out` holds (None: no dataset there)."""
    from training.datasets.lerobot_io import read_info

    try:
        meta = read_info(out)
    except FileNotFoundError:
        return None
    except ValueError as exc:  # its message names the file
        raise ValueError(f"{exc}: remove {out} to record again") from exc
    try:
        return int(meta.get("total_episodes", 0))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{Path(out) / 'meta' / 'info.json'} holds no number of episodes ({exc}): remove {out} "
                         "to record again") from exc


def collect_once(task: str, episodes: int, out: Path, announce: str | None = None, **kwargs) -> CollectReport | None:
    """`collect` for a benchmark that resumes: None when `out` already holds a recording of `episodes`; else
    `announce` is printed and the episodes go to `<out>.partial`, renamed to `out` once all are written, so a
    recording stopped part way (whose dataset lerobot still finalises with the episodes it had) is never taken
    for a finished one: the next call records it again. ValueError when `out` holds another number of episodes
    (another run's settings, or a recording stopped part way before recordings went through `.partial`): not
    overwritten."""
    out = Path(out)
    have = recorded_episodes(out)
    if have == episodes:
        return None
    if have is not None or (out.exists() and any(out.iterdir())):
        held = "no dataset" if have is None else f"{have} episodes"
        raise ValueError(f"{out} holds {held}, this run records {episodes}: remove it to record again, "
                         f"or give another output directory")
    if announce:
        print(announce, flush=True)
    partial = out.with_name(out.name + ".partial")
    report = collect(task, episodes, partial, overwrite=True, **kwargs)
    if out.exists():
        out.rmdir()  # empty (checked above)
    partial.rename(out)
    report.out = out
    return report


def load(root: Path):
    """Load a dataset written by `collect` (offline; videos decoded with PyAV)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(f"local/{Path(root).name}", root=root, video_backend="pyav")


__all__ = ["CollectReport", "collect", "load"]
