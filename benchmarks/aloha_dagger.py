"""DAgger against BC on the simulated ALOHA, at equal numbers of expert-labelled frames.

    python benchmarks/aloha_dagger.py [--task transfer_cube] [--demos 10] [--iterations 5]
        [--episodes-per-iter 5] [--eval-episodes 100] [--out output/aloha_dagger]
    (or: vla-il bench aloha-dagger ...)

A state-based policy (joint positions + object poses -> joint targets) learns from the task's
scripted expert in two ways:

- DAgger: BC on `--demos` expert episodes (D0), then `--iterations` rounds in which the learner
  drives (the expert's action with probability beta) and the expert labels every visited state;
  the data is aggregated and the policy refitted. A snapshot after every fit.
- BC: from scratch on expert episodes only, with as many labelled frames as each DAgger snapshot.

Every policy is evaluated on the same `--eval-episodes` held-out seeds; success rates come with
Wilson 95% intervals. Printed as a table; written as results.json and success_vs_labels.png.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EVAL_SEED = 100_000  # disjoint from the demonstration (0..) and DAgger rollout (1000..) seeds


@dataclass
class CheckpointPolicy:
    """A picklable factory for sim.evaluation: an IL checkpoint acting on [agent_pos | env_state]."""

    path: str
    temporal_aggregation: bool = False

    def __call__(self, task: str) -> _StatePolicy:
        from training.checkpoint import load_checkpoint
        from training.rollouts import PolicyActor

        policy, _config, _ = load_checkpoint(Path(self.path))
        return _StatePolicy(PolicyActor(policy, self.temporal_aggregation))


class _StatePolicy:
    def __init__(self, actor) -> None:
        self.actor = actor

    def reset(self) -> None:
        self.actor.reset()

    def __call__(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray:
        state = np.concatenate([obs["agent_pos"], info["env_state"]]).astype(np.float32)
        return np.asarray(self.actor(state), dtype=np.float64)


def evaluate_checkpoint(task: str, path: Path, args: argparse.Namespace, name: str,
                        temporal_aggregation: bool | None = None, gate=None, episodes: int | None = None
                        ) -> dict[str, Any]:
    """Success on the held-out seeds (args: eval_episodes, workers, episode_length; temporal_aggregation
    defaults to args.temporal_aggregation). With a gate (GateConfig) the sim expert watches and takes over
    as in the demo's rounds (sim.evaluation.GatedPolicy): the summary then has the takeovers per episode."""
    from sim.evaluation import GatedFactory, evaluate

    if temporal_aggregation is None:
        temporal_aggregation = args.temporal_aggregation
    factory = CheckpointPolicy(str(path), temporal_aggregation)
    result = evaluate(task, factory if gate is None else GatedFactory(factory, gate),
                      range(EVAL_SEED, EVAL_SEED + (episodes or args.eval_episodes)), name, workers=args.workers,
                      env_kwargs={"clamp_actions": True, "episode_length": args.episode_length}, progress=False)
    return result.summary()


def config_for(args: argparse.Namespace, out: Path, **overrides):
    from training.config import ILConfig

    base = dict(learning_rate=args.learning_rate, batch_size=args.batch_size, hidden_dim=args.hidden_dim,
                action_chunk_size=args.chunk, temporal_aggregation=args.temporal_aggregation,
                action_residual=args.residual, eval_episodes=0, seed=args.seed, output_dir=str(out))
    base.update(overrides)
    return ILConfig(**base)


def run_dagger(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    from training.checkpoint import save_checkpoint
    from training.envs import make_env
    from training.experts import expert_for
    from training.il.dagger import DAgger

    env_name = f"aloha:{args.task}"
    env = make_env(env_name, episode_length=args.episode_length)
    config = config_for(args, out / "dagger", bc_epochs=args.dagger_epochs, dagger_initial_episodes=args.demos,
                        dagger_iterations=args.iterations, dagger_episodes_per_iter=args.episodes_per_iter,
                        dagger_beta_schedule=args.beta_schedule, dagger_initial_beta=args.initial_beta)
    snapshots: list[dict[str, Any]] = []
    start = time.perf_counter()

    def snapshot(i: int, policy, labels: int) -> None:
        path = out / "dagger" / f"iter_{i + 1:02d}"
        save_checkpoint(path, policy, config, {"expert_labels": labels})
        snapshots.append({"method": "dagger", "round": i + 1, "labels": labels, "path": str(path),
                          "train_s": time.perf_counter() - start})

    DAgger(env, expert_for(env_name), config, env_name=env_name).train(on_iteration=snapshot)
    env.close()
    return snapshots


def add_evaluation_args(p: argparse.ArgumentParser) -> None:
    """The options evaluate_checkpoint reads (both ALOHA benchmarks take them)."""
    p.add_argument("--episode-length", type=int, default=400)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--workers", type=int, default=2)


def first_episodes_with(pool, labels: int):
    """Whole episodes of `pool`, in order, until they hold at least `labels` frames (or all of them)."""
    sizes = np.bincount(pool.episode)
    n_ep = min(int(np.searchsorted(np.cumsum(sizes), labels)) + 1, len(sizes))
    return pool.select_episodes(np.arange(n_ep))


def run_bc(args: argparse.Namespace, out: Path, label_counts: list[int]) -> list[dict[str, Any]]:
    """BC from scratch on the first expert episodes whose frames add up to each label count."""
    from training.checkpoint import save_checkpoint
    from training.envs import make_env
    from training.experts import expert_for
    from training.il.behavioral_cloning import BehavioralCloning
    from training.rollouts import run_episodes

    env_name = f"aloha:{args.task}"
    env = make_env(env_name, episode_length=args.episode_length)
    expert = expert_for(env_name)
    # expert episodes end at success (~130 steps on transfer_cube): collect until the largest count is met
    pool, seed = None, args.seed
    while pool is None or len(pool) < max(label_counts):
        missing = max(label_counts) - (len(pool) if pool is not None else 0)
        more, _ = run_episodes(env, max(1, math.ceil(missing / 150)), expert, seed=seed, expert=expert, beta=1.0,
                               progress="BC expert demos")
        seed += len(more.episodes)
        pool = more if pool is None else pool.aggregate(more)
    rows = []
    for labels in label_counts:
        demos = first_episodes_with(pool, labels)
        n_ep = len(demos.episodes)
        path = out / "bc" / f"labels_{len(demos)}"
        config = config_for(args, path, bc_epochs=args.bc_epochs)
        start = time.perf_counter()
        bc = BehavioralCloning(env, config, env_name=env_name)
        bc.fit(demos, args.bc_epochs)
        bc.close()
        save_checkpoint(path / "policy", bc.policy, config, {"expert_labels": len(demos)})
        rows.append({"method": "bc", "round": n_ep, "labels": len(demos), "path": str(path / "policy"),
                     "train_s": time.perf_counter() - start})
    env.close()
    return rows


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, color in (("bc", "tab:blue"), ("dagger", "tab:red")):
        pts = sorted((r for r in rows if r["method"] == method), key=lambda r: r["labels"])
        if not pts:
            continue
        x = [r["labels"] for r in pts]
        y = [100 * r["success_rate"] for r in pts]
        lo = [100 * r["success_rate_wilson95"][0] for r in pts]
        hi = [100 * r["success_rate_wilson95"][1] for r in pts]
        ax.plot(x, y, "o-", color=color, label="DAgger" if method == "dagger" else "BC (expert demos only)")
        ax.fill_between(x, lo, hi, color=color, alpha=0.15)
    ax.set_xlabel("expert-labelled frames")
    ax.set_ylabel("success rate (%), Wilson 95% band")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'method':<8}{'round':>6}{'labels':>9}{'success':>10}{'Wilson 95%':>14}{'train s':>9}"]
    for r in rows:
        lo, hi = r["success_rate_wilson95"]
        lines.append(f"{r['method']:<8}{r['round']:>6}{r['labels']:>9}{100 * r['success_rate']:>9.0f}%"
                     f"{f'{100 * lo:.0f}-{100 * hi:.0f}%':>14}{r['train_s']:>9.0f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="transfer_cube", choices=("transfer_cube", "insertion"))
    p.add_argument("--demos", type=int, default=10, help="expert episodes in DAgger's D0")
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--episodes-per-iter", type=int, default=5)
    p.add_argument("--beta-schedule", default="linear", choices=("constant", "linear", "exponential"))
    p.add_argument("--initial-beta", type=float, default=1.0)
    p.add_argument("--dagger-epochs", type=int, default=100, help="epochs per DAgger refit (warm-started)")
    p.add_argument("--bc-epochs", type=int, default=100, help="epochs of each BC run (from scratch)")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden-dim", type=int, default=512)
    p.add_argument("--chunk", type=int, default=1)
    p.add_argument("--temporal-aggregation", action="store_true")
    p.add_argument("--residual", action="store_true", help="predict joint targets relative to the joints")
    add_evaluation_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="output/aloha_dagger")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from training.progress import tqdm

    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = run_dagger(args, out)
    rows += run_bc(args, out, [r["labels"] for r in rows])
    for r in tqdm(rows, desc="evaluate (held-out seeds)"):
        r.update(evaluate_checkpoint(args.task, Path(r["path"]), args, f"{r['method']}-{r['labels']}"))
        (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    rows.sort(key=lambda r: (r["method"] != "bc", r["labels"]))
    text = table(rows)
    dagger_final = max((r for r in rows if r["method"] == "dagger"), key=lambda r: r["labels"])
    bc_equal = next(r for r in rows
                    if r["method"] == "bc" and r["labels"] >= dagger_final["labels"] - args.episode_length)
    gap = 100 * (dagger_final["success_rate"] - bc_equal["success_rate"])
    # BC from scratch is noisy from one label count to the next: also compare with its best run at or below
    # DAgger's final label count, so a bad BC draw cannot make DAgger look better than it is
    bc_best = max((r for r in rows if r["method"] == "bc" and r["labels"] <= bc_equal["labels"]),
                  key=lambda r: r["success_rate"])
    best_gap = 100 * (dagger_final["success_rate"] - bc_best["success_rate"])
    summary = (f"at {dagger_final['labels']} labels: DAgger {100 * dagger_final['success_rate']:.0f}% vs BC "
               f"{100 * bc_equal['success_rate']:.0f}% ({bc_equal['labels']} labels): {gap:+.0f} points; "
               f"best BC at <= {bc_equal['labels']} labels {100 * bc_best['success_rate']:.0f}% "
               f"({bc_best['labels']} labels): "
               f"{best_gap:+.0f} points; "
               f"{args.eval_episodes} evaluation seeds, {time.perf_counter() - start:.0f} s in all")
    print(text + "\n" + summary)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary,
                                                  "dagger_minus_bc_points": gap,
                                                  "dagger_minus_best_bc_points": best_gap}, indent=2))
    plot(rows, out / "success_vs_labels.png",
         f"{args.task}: DAgger vs BC, {args.eval_episodes} held-out seeds")
    (out / "table.txt").write_text(text + "\n" + summary + "\n")
    print(f"wrote {out / 'results.json'} and {out / 'success_vs_labels.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
