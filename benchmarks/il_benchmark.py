"""BC, DAgger and GAIL on CartPole-v1 and Pendulum-v1, from one run, against the expert and random.

    python benchmarks/il_benchmark.py [--out output/il_benchmark] [--eval_episodes 100]
    (or: vla-il bench il)

For each method and task: mean return over held-out evaluation episodes, normalised
(policy - random) / (expert - random), expert labels used, env steps, wall time. Printed as a table
and written as results.json + il_benchmark.png. Budgets are the specification's defaults where it
gives them (GAIL: 100k env steps), and small ones for BC and DAgger.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

TASKS = {
    "CartPole-v1": {"bc": dict(bc_epochs=50, num_expert_episodes=20),
                    "dagger": dict(dagger_iterations=5, dagger_episodes_per_iter=4, bc_epochs=10),
                    "gail": dict(total_timesteps=100_000, num_expert_episodes=50, ppo_num_envs=8)},
    "Pendulum-v1": {"bc": dict(bc_epochs=100, num_expert_episodes=50, learning_rate=1e-3),
                    "dagger": dict(dagger_iterations=8, dagger_episodes_per_iter=10, bc_epochs=30,
                                   learning_rate=1e-3),
                    # an expert-like warm start leaves the discriminator without signal: a critic-only start and
                    # a BC term keep PPO from walking away from it (without: the PPO policy ends at -1400)
                    "gail": dict(total_timesteps=100_000, num_expert_episodes=50, gail_bc_warmstart_epochs=50,
                                 gail_value_warmup_updates=5, gail_bc_coef=1.0, ppo_num_envs=8)},
}


def _returns(env, act, episodes: int, seed: int) -> float:
    from training.rollouts import run_episodes

    _, stats = run_episodes(env, episodes, act, seed=seed)
    return stats["mean_reward"]


def run_one(task: str, method: str, budget: dict, out: Path, eval_episodes: int) -> dict:
    from training.config import ILConfig
    from training.envs import make_env
    from training.experts import expert_for
    from training.rollouts import PolicyActor

    env, expert = make_env(task), expert_for(task)
    constructor = {"bc": ILConfig.behavioral_cloning, "dagger": ILConfig.dagger, "gail": ILConfig.gail}[method]
    config = constructor(**budget, eval_episodes=10, output_dir=str(out / task / method))
    start = time.perf_counter()
    if method == "bc":
        from training.il.behavioral_cloning import BehavioralCloning

        trainer = BehavioralCloning(env, config, env_name=task)
        trainer.train(expert_policy=expert)
        trainer.close()
        policy, labels, steps = trainer.policy, trainer.labels_used, trainer.labels_used
    elif method == "dagger":
        from training.il.dagger import DAgger

        dagger = DAgger(env, expert, config, env_name=task)
        dagger.train()
        policy, labels, steps = dagger.policy, dagger.expert_labels, dagger.expert_labels
    else:
        from training.il.gail import GAIL

        gail = GAIL(env, config, env_name=task)
        gail.train(expert_policy=expert)
        policy, labels, steps = gail.policy, None, config.total_timesteps
    wall = time.perf_counter() - start
    # The policy as saved in best/ is what a user gets: evaluate that one.
    from training.checkpoint import load_checkpoint

    best, _, _ = load_checkpoint(out / task / method / "best")
    score = _returns(env, PolicyActor(best), eval_episodes, seed=50_000)
    return {"task": task, "method": method, "mean_return": score, "wall_s": wall, "expert_labels": labels,
            "env_steps": steps, "last_policy_return": _returns(env, PolicyActor(policy), 10, seed=60_000)}


def main(argv: list[str] | None = None) -> int:
    from training.envs import make_env
    from training.experts import expert_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("output/il_benchmark"))
    parser.add_argument("--eval_episodes", type=int, default=100)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--methods", nargs="*", default=["bc", "dagger", "gail"])
    args = parser.parse_args(argv)

    rows = []
    for task in args.tasks:
        env = make_env(task)
        expert_ret = _returns(env, expert_for(task), args.eval_episodes, seed=50_000)
        random_ret = _returns(env, lambda _obs, e=env: e.action_space.sample(), args.eval_episodes, seed=50_000)
        for method in args.methods:
            row = run_one(task, method, TASKS[task][method], args.out, args.eval_episodes)
            row.update(expert_return=expert_ret, random_return=random_ret,
                       normalised=(row["mean_return"] - random_ret) / (expert_ret - random_ret))
            rows.append(row)
            print(f"{task} {method}: {row['mean_return']:.1f} (normalised {row['normalised']:.2f}) "
                  f"in {row['wall_s']:.0f} s", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2, default=float))
    print(f"\n{'task':12s} {'method':7s} {'return':>8s} {'expert':>8s} {'random':>8s} {'normalised':>10s} "
          f"{'labels':>7s} {'env steps':>9s} {'wall s':>7s}")
    for r in rows:
        print(f"{r['task']:12s} {r['method']:7s} {r['mean_return']:8.1f} {r['expert_return']:8.1f} "
              f"{r['random_return']:8.1f} {r['normalised']:10.2f} {str(r['expert_labels'] or '-'):>7s} "
              f"{str(r['env_steps'] or '-'):>9s} {r['wall_s']:7.0f}")
    _plot(rows, args.out / "il_benchmark.png")
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'il_benchmark.png'} "
          f"({args.eval_episodes} evaluation episodes per row)")
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows})
    methods = [m for m in ("bc", "dagger", "gail") if any(r["method"] == m for r in rows)]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        vals = [next((r["normalised"] for r in rows if r["task"] == t and r["method"] == m), np.nan) for t in tasks]
        ax.bar(np.arange(len(tasks)) + i * width, vals, width, label=m)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(tasks)) + width * (len(methods) - 1) / 2, tasks)
    ax.set_ylabel("normalised return (1 = expert)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
