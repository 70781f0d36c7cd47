"""Success-rate evaluation in the simulated ALOHA: the function training calls and `vla-il eval` runs.

A policy is anything with `reset()` and `__call__(obs, info) -> action14`; it is built in each
worker process from a picklable factory, so episodes run in parallel (`workers`), one env each.
Results: success rate with a Wilson 95% interval, mean max reward, episode lengths; written as
per-episode JSON, a summary, a PNG, and optional MP4 videos of the first episodes.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sim.aloha.env import FPS, AlohaEnv


class Policy(Protocol):
    def reset(self) -> None: ...
    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray: ...


PolicyFactory = Callable[[str], Policy]  # task name -> a fresh policy


class ExpertPolicy:
    """The task's closed-loop scripted expert, reading the privileged state from `info`."""

    def __init__(self, task: str) -> None:
        from sim.experts import make_expert

        self.expert = make_expert(task)

    def reset(self) -> None:
        pass

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        return self.expert(obs["agent_pos"], info["env_state"])


class BundlePolicy:
    """An exported policy bundle, run by the policy node's own core (ONNX Runtime, chunk queue or
    temporal ensembling) on simulated time: what the robot would do, without ROS."""

    def __init__(self, path: str | Path, task: str | None = None) -> None:
        from vla_il_core.runner import load_policy

        self.path = str(path)
        self.loaded = load_policy(self.path, prefer_gpu=False)
        self.spec = self.loaded.spec
        self.runner = None
        self.tick = 0

    def reset(self) -> None:
        from vla_il_core.runner import PolicyRunner

        self.runner = PolicyRunner(self.loaded, async_inference=False)
        self.tick = 0

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        now = self.tick / FPS
        self.tick += 1
        sources = {"joint_positions": obs["agent_pos"], "env_state": info["env_state"]}
        for component in self.spec.state_components:
            if component.name not in sources:
                raise ValueError(
                    f"bundle input {component.name!r} has no source in the simulated ALOHA "
                    f"(known: {', '.join(sources)})"
                )
            self._observe(component.name, sources[component.name], now)
        for cam in self.spec.cameras:
            self._observe(f"image_{cam}", obs["pixels"][cam], now)
        action = self.runner.tick(now)
        if action is None:
            raise RuntimeError(f"bundle {self.path} produced no action at tick {self.tick - 1}")
        return np.asarray(action, dtype=np.float64)

    def _observe(self, name: str, value: np.ndarray, now: float) -> None:
        problem = self.runner.observe(name, value, now)
        if problem is not None:
            raise ValueError(f"bundle {self.path}: {problem}")



class BundleFactory:
    """Picklable: builds a BundlePolicy in each evaluation worker."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def __call__(self, task: str) -> BundlePolicy:
        return BundlePolicy(self.path, task)

    def env_kwargs(self) -> dict[str, Any]:
        """The cameras and image size this bundle reads (from policy.json: no ONNX session opened); actions
        clamped to the joint limits, as the intervention mux does on the robot (a learned policy's gripper may
        overshoot 0..1 slightly)."""
        from vla_il_core.bundle import read_bundle

        spec = read_bundle(Path(self.path))
        if not spec.cameras:
            return {"cameras": (), "clamp_actions": True}
        return {"cameras": tuple(spec.cameras), "image_size": tuple(spec.image_size), "clamp_actions": True}


class PerturbedPrefixPolicy:
    """The first `prefix_steps` of the episode are driven by a perturbed policy: the base policy's action
    plus a slowly wandering joint offset (Ornstein-Uhlenbeck, `sigma` rad per step; the base policy
    re-plans from the measured joints every step, so the offset accumulates into a drift of a few
    tenths of a radian) and random gripper flips. Then the base policy alone must recover from
    wherever that left the arms and the objects. The perturbation of an episode is drawn from
    (seed, the episode's seed): the same episode is perturbed the same way whichever process runs it."""

    def __init__(self, base: Policy, prefix_steps: int, sigma: float = 0.04, seed: int = 0) -> None:
        self.base = base
        self.prefix_steps = prefix_steps
        self.sigma = sigma
        self.seed = seed
        self.episodes = 0  # episodes begun without an episode seed: numbered instead

    def reset(self, seed: int | None = None) -> None:
        """Begin an episode; `seed`: the episode's (the env's reset seed)."""
        reset_policy(self.base, seed)
        if seed is None:
            seed, self.episodes = -1 - self.episodes, self.episodes + 1
        self.rng = np.random.default_rng([self.seed, seed % 2**63, 7])
        self.offset = np.zeros(14)
        self.t = 0

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        from sim.aloha import robot

        action = np.asarray(self.base(obs, info), dtype=np.float64)
        self.t += 1
        if self.t > self.prefix_steps:
            return action
        theta = 0.05  # OU mean reversion per step: the offset wanders for ~20 steps at a time
        self.offset += -theta * self.offset + self.sigma * np.sqrt(2 * theta) * self.rng.standard_normal(14)
        out = action + self.offset
        for g in robot.GRIPPER_INDICES:
            out[g] = action[g] if self.rng.random() > 0.05 else 1.0 - action[g]
        return np.clip(out, robot.JOINT_LOWER, robot.JOINT_UPPER)


def reset_policy(policy: Policy, seed: int | None) -> None:
    """Begin an episode: policy.reset(seed=seed) for a policy whose episodes draw random numbers of their
    own (a perturbation: seeded per episode, not per process), policy.reset() for any other."""
    import inspect

    if seed is not None and "seed" in inspect.signature(policy.reset).parameters:
        policy.reset(seed=seed)
    else:
        policy.reset()


class PerturbedPrefixFactory:
    """Picklable: wraps a policy factory so every episode starts with a perturbed prefix."""

    def __init__(self, base: PolicyFactory, fraction: float, episode_length: int = 400, sigma: float = 0.04) -> None:
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"perturbed prefix fraction must be in [0, 1), got {fraction}")
        self.base, self.fraction, self.episode_length, self.sigma = base, fraction, episode_length, sigma

    def __call__(self, task: str) -> PerturbedPrefixPolicy:
        return PerturbedPrefixPolicy(self.base(task), int(self.fraction * self.episode_length), self.sigma)


class GatedPolicy:
    """A policy with the sim expert watching over it, as in `vla-il demo`'s HG-DAgger rounds: the gate
    (vla_il_core.teleop.ExpertGate, the teleop_sim_expert node's rule) hands control to the scripted
    expert when the policy drifts from it or stalls, and back after its hand-back ticks; every command
    passes the intervention mux's core (joint limits, step limit). Evaluated on
    held-out seeds, `episode_interventions` is the help the policy needs: takeovers per episode measured
    on many episodes, where a round's own few episodes only hint at it.

    After each call, `engaged` says who drove and `label` holds the expert's action for that state."""

    def __init__(self, base: Policy, task: str, gate_config=None, mux_config=None) -> None:
        from sim.experts import make_expert
        from vla_il_core.teleop import ExpertGate, GateConfig

        self.base = base
        self.expert = make_expert(task)
        self.gate = ExpertGate(gate_config or GateConfig())
        self.mux_config = mux_config or default_mux_config()
        self.session = MuxSession(self.mux_config)
        self.engaged, self.label = False, None
        self.t = 0
        self.episode_interventions = 0
        self.episode_intervention_frames = 0

    def reset(self, seed: int | None = None) -> None:
        reset_policy(self.base, seed)
        self.gate.reset()
        self.session = MuxSession(self.mux_config)
        self.t = 0
        self.episode_interventions = 0
        self.episode_intervention_frames = 0

    @property
    def episode_step_limited(self) -> dict[str, int]:
        return self.session.step_limited

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        from vla_il_core.mux import EXPERT, POLICY

        label = np.asarray(self.expert(obs["agent_pos"], info["env_state"]), dtype=np.float64)
        proposal = np.asarray(self.base(obs, info), dtype=np.float64)
        self.gate.on_policy_action(proposal, label)
        if self.t > 0:
            self.gate.step(progress=float(info["max_reward"]), success=bool(info["is_success"]),
                           off_course=self.expert.off_course)
        self.t += 1
        command = self.session.command(obs["agent_pos"], EXPERT if self.gate.engaged else POLICY,
                                       label if self.gate.engaged else proposal)
        self.engaged, self.label = self.gate.engaged, label
        self.episode_interventions = self.gate.engagements
        self.episode_intervention_frames += int(self.gate.engaged)
        return command


def mux_command(mux, driver: str, action: np.ndarray, now: float, limited: dict[str, int] | None = None) -> np.ndarray:
    """One driver's action through the mux core -> the command the robot gets. `limited` (if given) counts, per
    joint, the ticks whose command differs from the action within the joint limits (the step limit, or a hold)."""
    out = mux.on_action(driver, action.tolist(), now)
    command = out.command
    if command is None:  # the mux refused (e.g. a NaN from the policy): it holds, as on the robot
        if mux.last_command is None:
            raise RuntimeError(f"the mux refused the first command: {[e.detail for e in out.events]}")
        command = list(mux.last_command)
    cfg = mux.config
    command = np.asarray(command, dtype=np.float64)
    if limited is None:
        return command
    changed = ~(np.abs(command - np.clip(action, cfg.joint_lower, cfg.joint_upper)) <= 1e-9)  # NaN: changed
    for j in np.flatnonzero(changed):
        limited[cfg.joint_names[j]] = limited.get(cfg.joint_names[j], 0) + 1
    return command


class MuxedPolicy:
    """A policy alone with every command passing the intervention mux's core (joint limits, step limit,
    holds), as on the graph, where the policy node's actions reach the robot only through the mux
    (`vla-il eval --through-mux`); the limits are the sim profile's, as the demo runs them.
    `episode_step_limited`: per joint, the ticks of the episode whose command the mux changed."""

    def __init__(self, base: Policy, mux_config=None) -> None:
        self.base = base
        self.mux_config = mux_config or default_mux_config()
        self.session = MuxSession(self.mux_config)

    def reset(self, seed: int | None = None) -> None:
        reset_policy(self.base, seed)
        self.session = MuxSession(self.mux_config)

    @property
    def episode_step_limited(self) -> dict[str, int]:
        return self.session.step_limited

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        from vla_il_core.mux import POLICY

        return self.session.command(obs["agent_pos"], POLICY, self.base(obs, info))


class MuxSession:
    """The intervention mux's core for one episode, as on the graph, where every command passes it: a robot
    session of its own, at rest (on the ROS graph a sim reset is a jump, and the mux walks the command from the
    last episode's to it), on a clock of 1/FPS per command that starts at 0 every episode (its outcome depends
    on its seed, not on the episodes before). `step_limited`: per joint, the ticks whose command the mux changed."""

    def __init__(self, mux_config=None) -> None:
        from vla_il_core.mux import InterventionMux

        self.mux = InterventionMux(mux_config or default_mux_config())
        self.now = 0.0
        self.step_limited: dict[str, int] = {}

    def command(self, agent_pos, driver: str, action) -> np.ndarray:
        """`driver`'s action for the observed `agent_pos` -> the command the robot gets (the expert engaged when
        it drives)."""
        from vla_il_core.mux import EXPERT

        self.now += 1.0 / FPS
        self.mux.on_observation(np.asarray(agent_pos).tolist(), self.now)
        self.mux.on_engaged(driver == EXPERT, self.now)
        return mux_command(self.mux, driver, np.asarray(action, dtype=np.float64), self.now, self.step_limited)


class MuxedFactory:
    """Picklable: wraps a policy factory in a MuxedPolicy in each evaluation worker."""

    def __init__(self, base: PolicyFactory) -> None:
        self.base = base

    def __call__(self, task: str) -> MuxedPolicy:
        return MuxedPolicy(self.base(task))


SIM_PROFILE = "aloha_sim"  # the robot profile (config/robots) of the simulated ALOHA


def default_mux_config():
    """The intervention mux's limits for the simulated ALOHA (the aloha_sim profile), as the demo runs it."""
    from vla_il_core.mux import MuxConfig
    from vla_il_core.profiles import load_profile

    return MuxConfig(**{k: tuple(v) for k, v in load_profile(SIM_PROFILE).mux_parameters().items()})


def default_gate_config():
    """The teleop_sim_expert node's gate, from its parameter file (config/teleop_sim_expert.yaml), as the demo's
    graph runs it."""
    import dataclasses

    import yaml

    from sim.aloha.robot import GRIPPER_INDICES
    from vla_il_core.paths import config_dir
    from vla_il_core.teleop import GateConfig

    params = yaml.safe_load((config_dir() / "teleop_sim_expert.yaml").read_text())["/**"]["ros__parameters"]
    return GateConfig(**{f.name: params[f.name] for f in dataclasses.fields(GateConfig) if f.name in params},
                      gripper_joints=GRIPPER_INDICES)


class GatedFactory:
    """Picklable: wraps a policy factory in a GatedPolicy in each evaluation worker."""

    def __init__(self, base: PolicyFactory, gate_config=None) -> None:
        self.base, self.gate_config = base, gate_config

    def __call__(self, task: str) -> GatedPolicy:
        return GatedPolicy(self.base(task), task, self.gate_config)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    max_reward: float
    length: int
    interventions: int | None = None  # expert takeovers (a GatedPolicy ran), else None
    intervention_frames: int | None = None
    clamped: dict[str, int] = field(default_factory=dict)  # steps whose action was clamped, per joint
    # commands the intervention mux changed (step limit, holds), per joint; None: no mux ran
    step_limited: dict[str, int] | None = None


@dataclass
class EvalResult:
    task: str
    policy: str
    episodes: list[EpisodeResult] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.episodes)

    @property
    def successes(self) -> int:
        return sum(e.success for e in self.episodes)

    @property
    def clamped(self) -> dict[str, int]:
        """Steps whose action was clamped to the joint limits, per joint, over all episodes."""
        return dict(sum((Counter(e.clamped) for e in self.episodes), Counter()))

    @property
    def step_limited(self) -> dict[str, float] | None:
        """Commands per episode the mux changed, per joint, most first; None where no mux ran."""
        ran = [e.step_limited for e in self.episodes if e.step_limited is not None]
        if not ran:
            return None
        total = sum((Counter(counts) for counts in ran), Counter())
        return {k: v / len(ran) for k, v in total.most_common()}

    @property
    def success_rate(self) -> float:
        return self.successes / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.n)

    @property
    def interventions(self) -> tuple[float, float] | None:
        """Expert takeovers per episode: (mean, half-width of its normal 95% interval); None if no gate ran."""
        counts = [e.interventions for e in self.episodes if e.interventions is not None]
        if not counts:
            return None
        half = 1.96 * float(np.std(counts, ddof=1)) / math.sqrt(len(counts)) if len(counts) > 1 else math.inf
        return float(np.mean(counts)), half

    def summary(self) -> dict[str, Any]:
        lo, hi = self.interval
        gated = {}
        if self.interventions is not None:
            mean, half = self.interventions
            gated = {"interventions_per_episode": mean, "interventions_per_episode_95": half,
                     "intervention_frames_per_episode": float(np.mean([e.intervention_frames for e in self.episodes]))}
        return {
            "task": self.task,
            "policy": self.policy,
            "episodes": self.n,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "success_rate_wilson95": [lo, hi],
            "clamped_steps": self.clamped,
            "mean_max_reward": float(np.mean([e.max_reward for e in self.episodes])) if self.n else 0.0,
            "mean_length": float(np.mean([e.length for e in self.episodes])) if self.n else 0.0,
            **gated,
            **({"mux_limited_per_episode": self.step_limited} if self.step_limited is not None else {}),
        }

    def line(self) -> str:
        lo, hi = self.interval
        return (
            f"{self.task} / {self.policy}: success {self.successes}/{self.n} = {100 * self.success_rate:.0f}% "
            f"(Wilson 95%: {100 * lo:.0f}-{100 * hi:.0f}%), mean max reward "
            f"{self.summary()['mean_max_reward']:.2f}, mean length {self.summary()['mean_length']:.0f}"
            + (f", expert takeovers per episode {self.interventions[0]:.2f} +- {self.interventions[1]:.2f}"
               if self.interventions is not None else "")
            + (", commands the mux limited per episode: " + (", ".join(
                f"{k} {v:.1f}" for k, v in list(self.step_limited.items())[:3]) or "none")
               if self.step_limited is not None else "")
        )


def run_episode(env: AlohaEnv, policy: Policy, seed: int, video: list | None = None) -> EpisodeResult:
    obs, info = env.reset(seed=seed)
    reset_policy(policy, seed)
    clamped_before = dict(getattr(env, "clamped", {}))
    steps = 0
    while True:
        obs, _reward, terminated, truncated, info = env.step(policy(obs, info))
        steps += 1
        if video is not None:
            video.append(env.render())
        if terminated or truncated:
            break
    return EpisodeResult(seed, success=bool(info["is_success"]), max_reward=float(info["max_reward"]), length=steps,
                         interventions=getattr(policy, "episode_interventions", None),
                         intervention_frames=getattr(policy, "episode_intervention_frames", None),
                         step_limited=(dict(policy.episode_step_limited)
                                       if hasattr(policy, "episode_step_limited") else None),
                         clamped={k: v - clamped_before.get(k, 0) for k, v in getattr(env, "clamped", {}).items()
                                  if v > clamped_before.get(k, 0)})


def _worker(args: tuple) -> list[EpisodeResult]:
    task, factory, seeds, env_kwargs = args
    env = AlohaEnv(task, **env_kwargs)
    policy = factory(task)
    try:
        return [run_episode(env, policy, s) for s in seeds]
    finally:
        env.close()


def evaluate(
    task: str,
    policy_factory: PolicyFactory,
    seeds: Sequence[int],
    policy_name: str = "policy",
    workers: int = 1,
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
) -> EvalResult:
    """Run one episode per seed; in `workers` processes (spawned: no GL context crosses a fork). Clamped
    actions are reported once, at the end, with their counts (not a warning per env)."""
    from training.progress import tqdm

    env_kwargs = {"cameras": (), "privileged": False, **(env_kwargs or {}), "warn_clamp": False}
    result = EvalResult(task=task, policy=policy_name)
    seeds = list(seeds)
    bar = tqdm(total=len(seeds), desc=f"eval {task}", unit="ep", disable=not progress)
    if workers <= 1:
        env = AlohaEnv(task, **env_kwargs)
        policy = policy_factory(task)
        try:
            for s in seeds:
                result.episodes.append(run_episode(env, policy, s))
                bar.update()
        finally:
            env.close()
    else:
        chunks = [seeds[i :: workers * 4] for i in range(workers * 4) if seeds[i :: workers * 4]]
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            for episodes in pool.map(_worker, [(task, policy_factory, c, env_kwargs) for c in chunks]):
                result.episodes.extend(episodes)
                bar.update(len(episodes))
        result.episodes.sort(key=lambda e: seeds.index(e.seed))
    bar.close()
    clamped = result.clamped
    if clamped:
        import warnings

        episodes = sum(1 for e in result.episodes if e.clamped)
        warnings.warn(f"{policy_name} on {task}: actions clamped to the joint limits in {episodes} of {result.n} "
                      f"episodes ({', '.join(f'{k} {v} steps' for k, v in sorted(clamped.items()))})", stacklevel=2)
    return result


def write_report(result: EvalResult, out_dir: Path) -> Path:
    """Per-episode JSON lines, summary.json and success.png in `out_dir`; returns the summary path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "episodes.jsonl", "w") as f:
        for e in result.episodes:
            f.write(json.dumps(asdict(e)) + "\n")
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(result.summary(), indent=2))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    lo, hi = result.interval
    p = result.success_rate
    ax1.bar([0], [p], yerr=[[max(0.0, p - lo)], [max(0.0, hi - p)]], capsize=8)
    ax1.set_ylim(0, 1)
    ax1.set_xticks([0], [result.policy])
    ax1.set_ylabel("success rate (Wilson 95%)")
    ax1.set_title(f"{result.task}: {result.successes}/{result.n}")
    rewards = [e.max_reward for e in result.episodes]
    ax2.hist(rewards, bins=np.arange(-0.5, 5.5, 1.0), rwidth=0.8)
    ax2.set_xlabel("max reward per episode")
    ax2.set_ylabel("episodes")
    fig.tight_layout()
    fig.savefig(out_dir / "success.png", dpi=100)
    plt.close(fig)
    return summary_path


def record_videos(
    task: str,
    policy_factory: PolicyFactory,
    seeds: Sequence[int],
    out_dir: Path,
    camera: str = "top",
    image_size: tuple[int, int] = (240, 320),
) -> list[Path]:
    """MP4 videos (OpenCV) of the given episodes, seen from `camera`."""
    import cv2

    out_dir.mkdir(parents=True, exist_ok=True)
    env = AlohaEnv(task, cameras=(camera,), image_size=image_size)
    policy = policy_factory(task)
    paths = []
    try:
        for s in seeds:
            frames: list[np.ndarray] = []
            ep = run_episode(env, policy, s, video=frames)
            path = out_dir / f"episode_seed{s}_{'success' if ep.success else 'failure'}.mp4"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, image_size[::-1])
            for frame in frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            writer.release()
            paths.append(path)
    finally:
        env.close()
    return paths
