"""HG-DAgger against BC at equal expert labels, over several training seeds, without ROS.

    python benchmarks/hg_dagger_seeds.py [--seeds 3] [--rounds 4] [--episodes-per-round 12]
        [--drift-threshold 0.3] [--gripper-drift-ticks 15] [--handback-ticks 60] [--agree-ticks 0]
        [--labels intervention] [--ensemble 1] [--eval-episodes 100] [--out output/hg_dagger_seeds]
        [--continue]
    (or: vla-il bench hg-dagger-seeds ...)

`vla-il demo` runs HG-DAgger once, through the ROS graph; one training run of either method swings by
10-20 points, so one demo cannot say whether HG-DAgger beats BC. This runs the demo's loop in one
process, several times: the same gate (vla_il_core.teleop.ExpertGate, the teleop_sim_expert
node's rule and parameters), the same safety core between the drivers and the sim
(vla_il_core.mux.InterventionMux: joint limits, step limit), the same
learner and recipe as the demo (a state-based MLP, 5-step chunks, temporal ensembling; each round
trains on the expert's segments of all rounds plus the demos: a new network, or with --continue the
last one). Per training
seed: BC on the demos; rounds of HG-DAgger; BC from scratch on as many expert labels (whole expert
episodes); both evaluated on the same held-out seeds. Printed as a table with the mean gap and its
spread; written as results.json, table.txt and hg_vs_bc.png (checkpoints in --out/checkpoints).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

# the gate's options a run may override (defaults: the teleop_sim_expert node's parameter file)
GATE_OPTIONS = ("drift_threshold", "drift_ticks", "gripper_drift_ticks", "stall_ticks", "handback_ticks", "agree_ticks")

def _sim_expert_rollouts(policy, task: str, n: int, first_seed: int, gate_config, mux_config,
                         episode_length: int) -> tuple[Any, dict[str, float]]:
    """The learner drives; the gate hands control to the expert and back; every command passes the mux core
    (sim.evaluation.GatedPolicy: the demo's graph without ROS). Returns the frames as (state, expert label,
    expert drove?) per episode and the round's statistics."""
    from benchmarks.aloha_dagger import _StatePolicy
    from sim.aloha.env import AlohaEnv
    from sim.evaluation import GatedPolicy
    from training.rollouts import PolicyActor

    gated = GatedPolicy(_StatePolicy(PolicyActor(policy, temporal_aggregation=policy.chunk_size > 1)), task,
                        gate_config, mux_config)
    env = AlohaEnv(task, cameras=(), episode_length=episode_length, clamp_actions=True)
    states, labels, driven, episode = [], [], [], []
    engagements, successes = [], []
    for i in range(n):
        obs, info = env.reset(seed=first_seed + i)
        gated.reset()
        done = False
        while not done:
            command = gated(obs, info)
            states.append(np.concatenate([obs["agent_pos"], info["env_state"]]).astype(np.float32))
            labels.append(gated.label)
            driven.append(gated.engaged)
            episode.append(i)
            obs, _reward, terminated, truncated, info = env.step(command)
            done = terminated or truncated
        engagements.append(gated.episode_interventions)
        successes.append(bool(info["is_success"]))
    env.close()
    frames = (np.stack(states), np.stack(labels).astype(np.float32), np.array(driven), np.array(episode))
    return frames, {"interventions_per_episode": float(np.mean(engagements)),
                    "attempt_success": float(np.mean(successes)), "intervention_frames": int(np.sum(driven))}


def _labelled(frames, labels: str):
    """The round's training labels as segments, cut as training.il.hg_dagger.load_labelled cuts a recording."""
    from training.demonstrations import Demonstrations, label_segments

    states, actions, driven, episode = frames
    keep = driven if labels == "intervention" else np.ones_like(driven)
    _, segment = label_segments(keep, driven, episode)
    idx = np.flatnonzero(keep)
    return Demonstrations(states[idx], actions[idx], segment[idx].astype(np.int64), {})


def _fit(args: argparse.Namespace, demos, seed: int, out: Path, previous=None, epochs: int | None = None):
    from training.checkpoint import save_checkpoint
    from training.config import ILConfig
    from training.il.behavioral_cloning import BehavioralCloning

    config = ILConfig(bc_epochs=epochs or args.epochs, learning_rate=args.learning_rate, batch_size=256,
                      hidden_dim=args.hidden_dim, ensemble_size=args.ensemble, action_chunk_size=args.chunk,
                      temporal_aggregation=args.chunk > 1,
                      lr_schedule="cosine", bc_early_stopping=args.early_stopping_after is not None,
                      bc_early_stopping_after=args.early_stopping_after or 0.0, eval_episodes=0, seed=seed,
                      output_dir=str(out))
    bc = BehavioralCloning(None, config, previous, False, f"aloha:{args.task}", run_name="hg_seeds")
    bc.fit(demos, config.bc_epochs)
    bc.close()
    save_checkpoint(out / "policy", bc.policy, config)
    return bc.policy, out / "policy"


def run_seed(args: argparse.Namespace, seed: int, demos, pool, out: Path) -> dict[str, Any]:
    from benchmarks.aloha_dagger import evaluate_checkpoint, first_episodes_with
    from sim.evaluation import default_gate_config, default_mux_config

    mux_config = default_mux_config()
    gate_config = dataclasses.replace(default_gate_config(), **{name: getattr(args, name) for name in GATE_OPTIONS},
                                      seed=seed)
    start = time.perf_counter()
    runs = out / "checkpoints" / f"seed_{seed}"
    policy, path = _fit(args, demos, seed, runs / "round_0")
    data, rounds = demos, []
    for k in range(1, args.rounds + 1):
        frames, stats = _sim_expert_rollouts(policy, args.task, args.episodes_per_round, 10_000 * k, gate_config,
                                             mux_config, args.episode_length)
        data = data.aggregate(_labelled(frames, args.labels))
        if not args.continue_training:  # every round fits a new network on all labels, with BC's recipe
            policy, path = _fit(args, data, seed, runs / f"round_{k}")
        else:
            policy, path = _fit(args, data, seed, runs / f"round_{k}", policy, args.round_epochs)
        rounds.append({"round": k, "labels": len(data), **stats})
    # the help each round's policy needs on held-out seeds (the in-round counts above are a few episodes)
    help_needed = [evaluate_checkpoint(args.task, runs / f"round_{k}" / "policy", args, f"round {k} + expert",
                                       temporal_aggregation=args.chunk > 1, gate=gate_config,
                                       episodes=args.gated_episodes)["interventions_per_episode"]
                   for k in range(args.rounds + 1)] if args.gated_episodes else []
    hg = evaluate_checkpoint(args.task, path, args, f"hg-{seed}", temporal_aggregation=args.chunk > 1)
    # BC from scratch on whole expert episodes, in order, until they hold as many labels
    bc_data = first_episodes_with(pool, len(data))
    _, bc_path = _fit(args, bc_data, seed, runs / "bc_equal_labels")
    bc = evaluate_checkpoint(args.task, bc_path, args, f"bc-{seed}", temporal_aggregation=args.chunk > 1)
    return {"seed": seed, "hg_labels": len(data), "bc_labels": len(bc_data), "hg": hg, "bc": bc,
            "gap_points": 100 * (hg["success_rate"] - bc["success_rate"]), "rounds": rounds,
            "help_needed": help_needed,
            "seconds": time.perf_counter() - start}


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'seed':>5}{'labels HG/BC':>15}{'HG-DAgger':>18}{'BC':>18}{'gap':>8}   takeovers/ep: in the rounds"
             " | held-out, policy 0 (BC)..last", "-" * 120]
    for r in rows:
        hg, bc = r["hg"], r["bc"]

        def fmt(s: dict[str, Any]) -> str:
            lo, hi = s["success_rate_wilson95"]
            return f"{100 * s['success_rate']:.0f}% ({100 * lo:.0f}-{100 * hi:.0f})"

        ivs = " ".join(f"{x['interventions_per_episode']:.2f}" for x in r["rounds"])
        if r.get("help_needed"):
            ivs += " | " + " ".join(f"{h:.2f}" for h in r["help_needed"])
        labels = f"{r['hg_labels']}/{r['bc_labels']}"
        lines.append(f"{r['seed']:>5}{labels:>15}{fmt(hg):>18}{fmt(bc):>18}{r['gap_points']:>+7.0f}   {ivs}")
    gaps = np.array([r["gap_points"] for r in rows])
    spread = f", sd {gaps.std(ddof=1):.0f}" if len(gaps) > 1 else ""
    lines.append(f"HG-DAgger - BC at equal labels: mean {gaps.mean():+.1f} points over {len(gaps)} training seeds"
                 f"{spread}")
    trend = takeover_trend(rows)
    if trend is not None:
        slopes, mean, (lo, hi) = trend
        lines.append(f"held-out takeovers/ep over the HG-DAgger rounds (policy 1..last), slope per round: "
                     f"{' '.join(f'{x:+.3f}' for x in slopes)}; mean {mean:+.3f} (95% t-interval {lo:+.3f} to "
                     f"{hi:+.3f}), {int((np.array(slopes) < 0).sum())} of {len(slopes)} seeds falling")
    return "\n".join(lines)


def takeover_trend(rows: list[dict[str, Any]]) -> tuple[list[float], float, tuple[float, float]] | None:
    """Whether the help each round's policy needs falls round over round: per seed, the least-squares slope
    of held-out takeovers per episode against the round over the HG-DAgger policies (BC's is left out: its
    fall to round 1 would dominate); the mean over seeds with its 95% t-interval (None: too few)."""
    from scipy import stats

    series = [np.asarray(r["help_needed"][1:], dtype=float) for r in rows if len(r.get("help_needed", [])) >= 3]
    if len(series) < 2:
        return None
    slopes = [float(np.polyfit(np.arange(len(y)), y, 1)[0]) for y in series]
    mean, sem = float(np.mean(slopes)), float(np.std(slopes, ddof=1) / np.sqrt(len(slopes)))
    half = float(stats.t.ppf(0.975, len(slopes) - 1)) * sem
    return slopes, mean, (mean - half, mean + half)


def plot(rows: list[dict[str, Any]], path: Path, title: str, episodes_per_round: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(rows))
    for offset, key, label, color in ((-0.15, "hg", "HG-DAgger (last round)", "tab:red"),
                                      (0.15, "bc", "BC, equal labels", "tab:blue")):
        y = [100 * r[key]["success_rate"] for r in rows]
        lo = [100 * (r[key]["success_rate"] - r[key]["success_rate_wilson95"][0]) for r in rows]
        hi = [100 * (r[key]["success_rate_wilson95"][1] - r[key]["success_rate"]) for r in rows]
        ax1.errorbar(x + offset, y, yerr=[lo, hi], fmt="o", capsize=4, color=color, label=label)
    ax1.set_xticks(x, [f"seed {r['seed']}" for r in rows])
    ax1.set_xlim(-0.5, len(rows) - 0.5)  # each seed's pair beside its tick, however few seeds
    ax1.set_ylabel("success (%), Wilson 95%")
    ax1.set_ylim(0, 100)
    ax1.legend()
    ax1.grid(alpha=0.3)
    for i, r in enumerate(rows):  # plotted at the policy that drove: round k ran policy k - 1
        ax2.plot([x["round"] - 1 for x in r["rounds"]], [x["interventions_per_episode"] for x in r["rounds"]], "o--",
                 mfc="none", color=f"C{i}", alpha=0.5)
        if r.get("help_needed"):
            ax2.plot(range(len(r["help_needed"])), r["help_needed"], "o-", color=f"C{i}", label=f"seed {r['seed']}")
    ax2.set_xlabel("policy (0: BC, k: after round k)")
    ax2.set_title(f"solid: on the held-out seeds; dashed: in the round it drove ({episodes_per_round} episodes)",
                  fontsize=9)
    ax2.set_xticks(range(len(rows[0]["rounds"]) + 1))
    ax2.set_ylabel("expert takeovers per episode")
    ax2.grid(alpha=0.3)
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from benchmarks.aloha_dagger import add_evaluation_args
    from sim.evaluation import default_gate_config

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="transfer_cube", choices=("transfer_cube", "insertion"))
    p.add_argument("--seeds", type=int, default=3, help="training seeds (each: the whole loop and its BC baseline)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--demos", type=int, default=10)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--episodes-per-round", type=int, default=12)
    p.add_argument("--labels", default="intervention", choices=("intervention", "expert"))
    gate = default_gate_config()  # the demo's rule (config/teleop_sim_expert.yaml) unless overridden here
    for name in GATE_OPTIONS:
        p.add_argument(f"--{name.replace('_', '-')}", type=type(getattr(gate, name)), default=getattr(gate, name),
                       help="see config/teleop_sim_expert.yaml")
    p.add_argument("--chunk", type=int, default=5)
    p.add_argument("--hidden-dim", type=int, default=512)
    p.add_argument("--ensemble", type=int, default=1, help="MLPs per policy, each fit on its own, outputs averaged")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=60, help="epochs of a fit from scratch (BC)")
    p.add_argument("--round-epochs", type=int, default=30, help="epochs of each round's continued fit")
    p.add_argument("--continue", dest="continue_training", action="store_true",
                   help="each round continues the last network (--round-epochs) instead of training a new one on all "
                        "labels with BC's recipe (--epochs), as `vla-il demo --round-init continue`")
    p.add_argument("--early-stopping-after", type=float, default=0.5, metavar="FRACTION",
                   help="each fit keeps its epoch of lowest validation loss past this fraction (as the demo)")
    p.add_argument("--no-early-stopping", dest="early_stopping_after", action="store_const", const=None,
                   help="each fit keeps its last (annealed) epoch")
    add_evaluation_args(p)
    p.add_argument("--gated-episodes", type=int, default=60,
                   help="held-out episodes on which the expert watches each round's policy (0: skip)")
    p.add_argument("--out", default="output/hg_dagger_seeds")
    p.add_argument("--report", nargs="+", type=Path, metavar="RESULTS_JSON",
                   help="no runs: one table and plot (in --out) of earlier runs' results.json files, seeds together")
    return p.parse_args(argv)


def report(paths: list[Path], out: Path) -> int:
    """Several runs (e.g. --first-seed 0 and 3) as one table and plot: the seeds of all, in order."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    rows = sorted((r for run in runs for r in run["rows"]), key=lambda r: r["seed"])
    seeds = [r["seed"] for r in rows]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"--report: a seed appears in more than one run ({seeds}); each seed once")
    first = runs[0]["args"]
    differ = {k for run in runs[1:] for k, v in run["args"].items()
              if k not in ("seeds", "first_seed", "out") and first.get(k) != v}
    if differ:
        raise SystemExit(f"--report: the runs differ in {', '.join(sorted(differ))}; they are not one experiment")
    out.mkdir(parents=True, exist_ok=True)
    text = table(rows)
    print(text)
    (out / "table.txt").write_text(text + "\n")
    plot(rows, out / "hg_vs_bc.png", f"{first['task']}: HG-DAgger vs BC at equal labels, "
                                     f"{first['eval_episodes']} held-out seeds", first["episodes_per_round"])
    print(f"wrote {out / 'table.txt'} and {out / 'hg_vs_bc.png'} from {len(paths)} run(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from training.envs import make_env
    from training.experts import expert_for
    from training.progress import tqdm
    from training.rollouts import run_episodes

    args = parse_args(argv)
    out = Path(args.out)
    if args.report:
        return report(args.report, out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    env_name = f"aloha:{args.task}"
    env = make_env(env_name, episode_length=args.episode_length)
    expert = expert_for(env_name)
    demos, _ = run_episodes(env, args.demos, expert, seed=0, expert=expert, beta=1.0, progress="expert demos")
    # the BC baseline's pool: the same first demos, then more, enough for any label count the rounds reach
    per_episode = len(demos) / args.demos
    need = args.demos + math.ceil(args.rounds * args.episodes_per_round * args.episode_length / per_episode)
    more, _ = run_episodes(env, need - args.demos, expert, seed=args.demos, expert=expert, beta=1.0,
                           progress="BC expert pool")
    pool = demos.aggregate(more)
    env.close()
    rows = []
    for seed in tqdm(range(args.first_seed, args.first_seed + args.seeds), desc="training seeds"):
        rows.append(run_seed(args, seed, demos, pool, out))
        (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    text = table(rows)
    print(text)
    gaps = [r["gap_points"] for r in rows]
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows, "mean_gap_points":
                                                  float(np.mean(gaps)), "seconds": time.perf_counter() - start},
                                                 indent=2))
    (out / "table.txt").write_text(text + "\n")
    plot(rows, out / "hg_vs_bc.png", f"{args.task}: HG-DAgger vs BC at equal labels, "
                                     f"{args.eval_episodes} held-out seeds", args.episodes_per_round)
    print(f"wrote {out / 'results.json'}, {out / 'table.txt'} and {out / 'hg_vs_bc.png'} "
          f"({(time.perf_counter() - start) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
