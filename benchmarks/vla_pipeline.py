"""The specification's pipeline for the VLA (its "Stage 3a"): BC -> DAgger -> GAIL, each stage starting from the
last one's checkpoint (`--model_path`) on a recorded dataset with cameras, each stage's policy evaluated
through its exported bundle on the same held-out seeds.

    python benchmarks/vla_pipeline.py --dataset <recording with cameras> [--bc <BC output dir>]
        [--dagger-episodes 20] [--dagger-epochs 1] [--gail-timesteps 2000] [--eval-episodes 100]
        [--out output/vla_pipeline]
    (or: vla-il bench vla-pipeline ...)

Without --bc the BC stage trains the README's recipe (tiny VLA, vision only, 8 epochs) on the dataset;
`benchmarks/vla_target_runs.py`'s run directories hold one (`--bc output/vla_target_runs/run0/bc --dataset
output/vla_target_runs/run0/data`). DAgger: `vla-il train dagger --model_path <bc>/best --dataset <data>`,
the BC policy driving (beta 0), the sim expert labelling every visited state, aggregated with the dataset and
refit. GAIL: `vla-il train gail --model_path <dagger>/best --dataset <data>` (the dataset is the
discriminator's expert data), PPO on the VLA as actor in the simulated ALOHA. The table gives each stage's
success (Wilson 95%), its wall time and its expert labels; results.json and stages.png beside it; a stage
whose checkpoint exists is not trained again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.success_plots import rate, success_errorbars

STAGES = ("bc", "dagger", "gail")


def _stage_args(stage: str, args: argparse.Namespace, previous: Path | None, out: Path) -> list[str]:
    if stage == "bc":
        from benchmarks.vla_target_runs import recipe_args

        return recipe_args(Path(args.dataset), out, seed=args.seed)
    common = ["--dataset", str(args.dataset), "--model_path", str(previous / "best"), "--batch_size", "32",
              "--eval_episodes", "0", "--seed", str(args.seed), "--output_dir", str(out)]
    if stage == "dagger":
        return common + ["--dagger_iterations", "1", "--dagger_episodes_per_iter", str(args.dagger_episodes),
                         "--dagger_initial_beta", "0", "--dagger_beta_schedule", "constant",
                         "--bc_epochs", str(args.dagger_epochs), "--learning_rate", "3e-4"]
    return common + ["--total_timesteps", str(args.gail_timesteps), "--ppo_rollout_steps", str(args.gail_rollout),
                     "--ppo_minibatch_size", "64", "--ppo_epochs", "2", "--learning_rate", "1e-4",
                     "--gail_bc_coef", str(args.gail_bc_coef), "--gail_value_warmup_updates", "1"]


def run_stage(stage: str, args: argparse.Namespace, previous: Path | None) -> dict[str, Any]:
    from sim.evaluation import BundleFactory, evaluate
    from training.cli import run_il_cli
    from training.export.onnx_export import export_checkpoint
    from training.metrics import last_value, read_metrics

    out = Path(args.bc) if stage == "bc" and args.bc else Path(args.out) / stage
    row: dict[str, Any] = {"stage": stage, "checkpoint": str(out)}
    if not (out / "best" / "model.pt").exists():
        print(f"{stage}: training from {previous / 'best' if previous else 'scratch'}", flush=True)
        t = time.perf_counter()
        if run_il_cli(stage, _stage_args(stage, args, previous, out)) != 0:
            raise SystemExit(f"{stage}: training failed")
        row["train_s"] = time.perf_counter() - t
    bundle = Path(args.out) / f"bundle_{stage}"
    if not (bundle / "policy.onnx").exists():
        export_checkpoint(out / "best", bundle, overwrite=True)
    factory = BundleFactory(bundle)
    seeds = range(args.eval_seed, args.eval_seed + args.eval_episodes)
    t = time.perf_counter()
    result = evaluate(args.task, factory, seeds, policy_name=stage, workers=args.workers,
                      env_kwargs=factory.env_kwargs())
    row["eval_s"] = time.perf_counter() - t
    print(f"{stage}: {result.line()}", flush=True)
    row["outcomes"] = [bool(e.success) for e in result.episodes]
    metrics = read_metrics(out)
    row["expert_labels"] = last_value(metrics, "dagger/expert_labels")
    row["last_metrics"] = {k: v for k, v in (metrics[-1] if metrics else {}).items() if isinstance(v, int | float)}
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'stage':<8}{'success, bundle (Wilson 95%)':>32}{'train (min)':>13}{'new expert labels':>19}",
             "-" * 72]
    for r in rows:
        train = f"{r['train_s'] / 60:.1f}" if "train_s" in r else "(kept)"
        labels = str(int(r["expert_labels"])) if r["expert_labels"] is not None else "-"
        lines.append(f"{r['stage']:<8}{rate(sum(r['outcomes']), len(r['outcomes'])):>32}{train:>13}{labels:>19}")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    success_errorbars(ax, range(len(rows)), [r["outcomes"] for r in rows], color="tab:blue")
    ax.set_xticks(range(len(rows)), [r["stage"] for r in rows])
    ax.set_ylabel("transfer_cube success (%), Wilson 95%")
    ax.set_ylim(0, 100)
    ax.set_title("tiny VLA: BC -> DAgger -> GAIL (--model_path)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="a recorded LeRobot dataset with cameras (vla-il collect)")
    p.add_argument("--bc", default=None, help="a BC output dir to start from (default: train the recipe)")
    p.add_argument("--task", default="transfer_cube")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dagger-episodes", type=int, default=20, help="DAgger: episodes the BC policy drives")
    p.add_argument("--dagger-epochs", type=int, default=1, help="DAgger: epochs over the aggregated data")
    p.add_argument("--gail-timesteps", type=int, default=2000)
    p.add_argument("--gail-rollout", type=int, default=400, help="GAIL: env steps per PPO update")
    p.add_argument("--gail-bc-coef", type=float, default=1.0, help="GAIL: weight of the BC loss on expert data")
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=200_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="output/vla_pipeline")
    args = p.parse_args(argv)
    if not (Path(args.dataset) / "meta" / "info.json").exists():
        p.error(f"--dataset {args.dataset}: not a LeRobot dataset (no meta/info.json)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    previous = None
    for stage in STAGES:
        rows.append(run_stage(stage, args, previous))
        previous = Path(rows[-1]["checkpoint"])
        (out / "results.json").write_text(json.dumps({"args": vars(args), "stages": rows}, indent=1))
        (out / "table.txt").write_text(table(rows) + "\n")
        plot(rows, out / "stages.png")
    print(table(rows))
    print(f"wrote {out / 'table.txt'}, {out / 'results.json'}, {out / 'stages.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
