"""The VLA's HG-DAgger against the VLA's BC at equal expert labels, over several training seeds, without ROS.

    python benchmarks/vla_hg_dagger_seeds.py [--seeds 3] [--demos 40] [--rounds 2] [--episodes-per-round 8]
        [--epochs 8] [--round-init continue] [--round-epochs 4] [--eval-episodes 20] [--gated-episodes 20]
        [--pool-from DATASET] [--gate FIELD=VALUE ...] [--intervention-weight K] [--control]
        [--out output/vla_hg_dagger_seeds]
    (or: vla-il bench vla-hg-dagger-seeds ...)

`vla-il demo --policy vla` runs the loop once, through the ROS graph. This runs the same loop with the same parts,
in one process, once per training seed, as benchmarks/hg_dagger_seeds.py does for the MLP: the tiny VLA from the top
camera's pixels (--cameras: more views; the demo's recipe, training.il.vla_trainers.fit_vla), driving through its
exported bundle and the policy node's runner (sim.evaluation.BundlePolicy); the teleop_sim_expert's gate (its
settings as the demo's, or --gate's) and the mux's core between the drivers and the sim
(sim.evaluation.GatedPolicy); the expert's takeovers, with the frames the cameras saw, as each round's new labels.
Per seed: BC on the demos; rounds of HG-DAgger, each continuing the last VLA for --round-epochs on the demos plus
every round's expert segments (as the demo does; --round-init scratch: a new VLA each round; --intervention-weight
K: the segments' frames drawn K times as often as the demos'); BC on as many expert labels (the first whole expert
episodes of a larger pool), continued from round 0 for as many epochs as the rounds added (scratch: a new VLA), so
the two differ in which labels they saw, not in how many or how long they trained; both evaluated alone on the same
held-out seeds, and every round's policy with the expert watching (the takeovers it needs); --control: round 0 alone
too, and round 0 continued on its own demos as long as the rounds (what the epochs alone buy). The demonstrations
are recorded once and shared by all seeds (--pool-from: an existing recording instead). The table, results.json and
hg_vs_bc.png are those of benchmarks/hg_dagger_seeds.py. Run again into the same --out, it resumes: seeds measured
before are read back, and a seed stopped part way keeps its round 0 (the longest fit) when its checkpoint was
trained as this run would train it (trained_otherwise: seed, pool and frames, every training setting).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.hg_dagger_seeds import plot, table

EVAL_SEED = 100_000  # held out, as the demo's
BC_SEED_STEP = 1_000  # --bc-fits: fit k of a seed's BC trains with seed + k * this


def _gated_rollouts(bundle: Path, args: argparse.Namespace, first_seed: int, gate_config, mux_config, into):
    """The bundle drives; the gate hands control to the expert and back; every command passes the mux core.
    Each stretch the expert drove goes into `into` (a RolloutDataset) with its frames and labels."""
    from sim.aloha.env import AlohaEnv
    from sim.evaluation import BundlePolicy, GatedPolicy

    gated = GatedPolicy(BundlePolicy(bundle), args.task, gate_config, mux_config)
    env = AlohaEnv(args.task, cameras=tuple(args.cameras), image_size=tuple(args.image_size),
                   episode_length=args.episode_length, clamp_actions=True)
    engagements, successes, driven_frames = [], [], 0
    try:
        for i in range(args.episodes_per_round):
            obs, info = env.reset(seed=first_seed + i)
            gated.reset()
            stretch: list[tuple[Any, ...]] = []
            done = False
            while not done:
                command = gated(obs, info)
                if gated.engaged:
                    stretch.append((obs["agent_pos"], {c: obs["pixels"][c] for c in args.cameras}, gated.label,
                                    info["env_state"]))
                    driven_frames += 1
                else:
                    _add_stretch(into, stretch, info["instruction"])
                obs, _reward, terminated, truncated, info = env.step(command)
                done = terminated or truncated
            _add_stretch(into, stretch, info["instruction"])
            engagements.append(gated.episode_interventions)
            successes.append(bool(info["is_success"]))
    finally:
        env.close()
    return {"interventions_per_episode": float(np.mean(engagements)), "attempt_success": float(np.mean(successes)),
            "intervention_frames": driven_frames}


def _add_stretch(into, stretch: list[tuple[Any, ...]], instruction: str) -> None:
    """One stretch the expert drove, as its own episode: its chunks end where the stretch does."""
    if stretch:
        states, images, labels, envs = zip(*stretch, strict=True)
        into.add_episode(np.stack(states), {c: np.stack([i[c] for i in images]) for c in into.cameras},
                         np.stack(labels), instruction, np.stack(envs))
        stretch.clear()


def _evaluate(bundle: Path, args: argparse.Namespace, name: str, gate=None, episodes: int | None = None):
    from sim.evaluation import BundleFactory, GatedFactory, MuxedFactory, evaluate

    factory = BundleFactory(bundle)
    driver = GatedFactory(factory, gate) if gate is not None else MuxedFactory(factory) if args.through_mux else factory
    result = evaluate(args.task, driver,
                      range(EVAL_SEED, EVAL_SEED + (episodes or args.eval_episodes)), name, workers=args.workers,
                      env_kwargs=factory.env_kwargs() | {"episode_length": args.episode_length}, progress=False)
    print(result.line(), flush=True)
    return result.summary()


def gate_settings(pairs: list[str]) -> dict[str, Any]:
    """--gate's FIELD=VALUE pairs -> GateConfig fields, typed as the field's default (ValueError naming the
    pair that is not one; the combination is checked by GateConfig itself)."""
    from sim.evaluation import default_gate_config

    base = default_gate_config()
    settable = {f.name for f in dataclasses.fields(base)} - {"seed", "gripper_joints"}
    settings: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in settable:
            raise ValueError(f"--gate {pair}: FIELD=VALUE with FIELD one of {', '.join(sorted(settable))}")
        kind = type(getattr(base, name))
        try:
            settings[name] = kind(value) if kind is not int else int(value, 10)
        except ValueError:
            raise ValueError(f"--gate {pair}: {name} takes a {kind.__name__}") from None
    dataclasses.replace(base, **settings)  # GateConfig's own checks (e.g. gripper_drift_ticks >= drift_ticks)
    return settings


def run_seed(args: argparse.Namespace, seed: int, pool: Path, out: Path) -> dict[str, Any]:
    import torch

    from sim.evaluation import default_gate_config, default_mux_config
    from training.datasets.lerobot_dataset import AlohaDataset
    from training.export.onnx_export import export_checkpoint
    from training.il.vla_rollouts import RolloutDataset
    from training.il.vla_trainers import fit_vla
    from vla_il_core.schema import EXPERT_ACTION

    gate_config = dataclasses.replace(default_gate_config(), seed=seed, **gate_settings(args.gate))
    mux_config = default_mux_config()
    start = time.perf_counter()
    runs = out / "runs" / f"seed_{seed}"
    common = dict(split="all", chunk_size=args.chunk, cameras=tuple(args.cameras), labels="intervention",
                  action_key=EXPERT_ACTION, progress=False)

    def fit(data, name: str, previous: Path | None = None, epochs: int | None = None,
            weights: list[float] | None = None, train_seed: int | None = None) -> tuple[Path, int]:
        ckpt, labels = fit_vla(data, runs / name, cameras=tuple(args.cameras), image_size=tuple(args.image_size),
                                    chunk_size=args.chunk, epochs=epochs or args.epochs, task=args.task,
                                    learning_rate=args.learning_rate,
                                    seed=seed if train_seed is None else train_seed, previous=previous,
                                    state_keep=tuple(args.state_keep), state_keep_dropout=args.state_keep_dropout,
                                    camera_dropout=camera_dropout(args.camera_dropout, args.cameras),
                                    ema_decay=args.ema_decay, sample_weights=weights,
                                    action_head=args.action_head,  # a new VLA's, as the rest of the shape
                                    lr_schedule=args.lr_schedule)  # a continued fit anneals whatever this says
        bundle = runs / name / "bundle"
        export_checkpoint(ckpt, bundle, overwrite=True, temporal_ensembling=args.temporal_ensembling)
        return bundle, labels

    continued = args.round_init == "continue"
    demos = AlohaDataset(pool, episodes=range(args.demos), **common)
    kept = runs / "round_0"
    differs = trained_otherwise(kept / "best", args, seed, pool, len(demos))
    if differs is None:  # a stopped run's: the longest fit, exported again (seconds; a stop may have cut the export)
        print(f"seed {seed}: round 0 kept from {kept} (trained with these settings)", flush=True)
        bundle = kept / "bundle"
        export_checkpoint(kept / "best", bundle, overwrite=True, temporal_ensembling=args.temporal_ensembling)
    else:
        if (kept / "best").exists():
            print(f"seed {seed}: {kept} was trained with {differs}: training it again", flush=True)
        bundle, _ = fit(demos, "round_0")
    bundles = [bundle]
    segments = RolloutDataset(tuple(args.cameras), args.chunk, env_state=demos.env_state_dim > 0)
    rounds = []
    for k in range(1, args.rounds + 1):
        stats = _gated_rollouts(bundle, args, 10_000 * k, gate_config, mux_config, segments)
        data = torch.utils.data.ConcatDataset([demos, segments]) if len(segments) else demos
        # --intervention-weight: the segments drawn that many times as often as a demo's frame, in as many steps
        weights = [1.0] * len(demos) + [args.intervention_weight] * len(segments) \
            if args.intervention_weight != 1.0 and len(segments) else None
        if continued:  # the last VLA, trained on for --round-epochs on everything so far
            bundle, labels = fit(data, f"round_{k}", previous=runs / f"round_{k - 1}", epochs=args.round_epochs,
                                 weights=weights)
        else:  # a new VLA on everything so far, with BC's recipe
            bundle, labels = fit(data, f"round_{k}", weights=weights)
        bundles.append(bundle)
        rounds.append({"round": k, "labels": labels, **stats})
        print(f"seed {seed} round {k}: {stats['intervention_frames']} expert frames, "
              f"{stats['interventions_per_episode']:.2f} takeovers/ep, {labels} labels", flush=True)
    help_needed = [_evaluate(b, args, f"seed {seed} policy {k} + expert", gate=gate_config,
                             episodes=args.gated_episodes)["interventions_per_episode"]
                   for k, b in enumerate(bundles)] if args.gated_episodes else []
    hg = _evaluate(bundle, args, f"seed {seed} HG-DAgger {args.rounds}")
    hg_labels = rounds[-1]["labels"] if rounds else len(demos)
    # BC on the first whole expert episodes of the pool that hold as many labels
    sizes = np.bincount(demos.table["episode_index"].astype(int))  # the table holds the whole pool
    n = min(int(np.searchsorted(np.cumsum(sizes), hg_labels)) + 1, len(sizes))
    if n == len(sizes) and sizes.sum() < hg_labels:
        print(f"the pool's {len(sizes)} episodes hold {sizes.sum()} labels, fewer than HG-DAgger's {hg_labels}: "
              "record a larger --pool", flush=True)
    bc_data = AlohaDataset(pool, episodes=range(n), **common)
    added = args.rounds * args.round_epochs  # the epochs the rounds trained on after round 0
    bc_fits = []
    for k in range(args.bc_fits):  # --bc-fits: the same fit again with another training seed (data order, dropout)
        name, train_seed = ("bc_equal_labels", seed) if k == 0 else (f"bc_equal_labels_{k}", seed + BC_SEED_STEP * k)
        if continued:  # round 0 trained on as many steps as the rounds added, on whole demos instead: equal
            # labels and (about) equal steps, so that HG-DAgger's gain is not the longer training's (400 demos for
            # 24 epochs instead of 8: +14 points, docs/results/vla_transfer_cube)
            bc_bundle, bc_labels = fit(bc_data, name, previous=runs / "round_0", epochs=added, train_seed=train_seed)
        else:
            bc_bundle, bc_labels = fit(bc_data, name, train_seed=train_seed)
        bc_fits.append(_evaluate(bc_bundle, args, f"seed {seed} BC, equal labels"
                                 + (f", fit {k + 1} (training seed {train_seed})" if args.bc_fits > 1 else "")))
    bc = pooled(bc_fits)
    row = {"seed": seed, "hg_labels": hg_labels, "bc_labels": bc_labels, "hg": hg, "bc": bc,
           "gap_points": 100 * (hg["success_rate"] - bc["success_rate"]), "rounds": rounds,
           "help_needed": help_needed}
    if args.control:  # what round 0 reaches alone, and with the same steps on its own demos: the epochs' share
        row["round0"] = _evaluate(bundles[0], args, f"seed {seed} round 0")
        control, _ = fit(demos, "control_demos_only", previous=runs / "round_0", epochs=added)
        row["control"] = _evaluate(control, args, f"seed {seed} round 0 continued on its demos alone")
    return {**row, "seconds": time.perf_counter() - start}


def pooled(fits: list[dict[str, Any]]) -> dict[str, Any]:
    """One evaluation's summary, or several fits' on the same seeds as one: their mean success rate, the Wilson
    interval of all their episodes together (the fits' own spread is in `fits`, listed by bc_fit_lines)."""
    if len(fits) == 1:
        return fits[0]
    from sim.evaluation import wilson_interval

    successes, episodes = sum(f["successes"] for f in fits), sum(f["episodes"] for f in fits)
    return {"policy": "BC, equal labels, mean of the fits", "episodes": episodes, "successes": successes,
            "success_rate": float(np.mean([f["success_rate"] for f in fits])),
            "success_rate_wilson95": list(wilson_interval(successes, episodes)), "fits": fits}


def bc_fit_lines(rows: list[dict[str, Any]]) -> str:
    """--bc-fits' figures under the table: each BC fit's success and their spread, per seed."""
    lines = []
    for r in rows:
        fits = r["bc"].get("fits")
        if fits:
            rates = [100 * f["success_rate"] for f in fits]
            lines.append(f"seed {r['seed']}: BC at equal labels, {len(fits)} fits (training seeds differ): "
                         f"{' '.join(f'{x:.0f}%' for x in rates)}, spread {max(rates) - min(rates):.0f} points; "
                         f"the gap is against their mean {np.mean(rates):.1f}%")
    return "\n".join(lines)


def control_lines(rows: list[dict[str, Any]]) -> str:
    """--control's figures under the table: round 0 alone and continued on its own demos for the steps HG-DAgger
    and BC added (their gains over it are the new labels' worth; over round 0, the epochs' too)."""
    lines = []
    for r in rows:
        if "control" in r:
            pct = {k: 100 * r[k]["success_rate"] for k in ("round0", "control", "hg", "bc")}
            lines.append(f"seed {r['seed']}: round 0 alone {pct['round0']:.0f}%; continued on its demos alone (no new "
                         f"labels) {pct['control']:.0f}%; HG-DAgger {pct['hg'] - pct['control']:+.0f} and BC "
                         f"{pct['bc'] - pct['control']:+.0f} points over that")
    return "\n".join(lines)


def camera_dropout(pairs: list[str], cameras: list[str]) -> dict[str, float]:
    """--camera-dropout's CAMERA=P pairs -> VLAConfig.camera_dropout (ValueError naming the pair that is not one)."""
    from training.models.vla_config import camera_dropout_pairs

    return camera_dropout_pairs(pairs, cameras, "--camera-dropout")


def trained_otherwise(checkpoint: Path, args: argparse.Namespace, seed: int, pool: Path, frames: int) -> str | None:
    """What differs between how the round 0 kept at `checkpoint` was trained and how this run trains it (None:
    alike, and then it is not trained again). A checkpoint that is missing, unreadable or from before fits
    recorded their frames differs."""
    from training.checkpoint import read_provenance

    try:
        config = json.loads((checkpoint / "config.json").read_text())
        model = json.loads((checkpoint / "policy.json").read_text())["config"]
        provenance = read_provenance(checkpoint)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"no readable checkpoint ({type(exc).__name__})"
    had = {"seed": config.get("seed"), "epochs": config.get("bc_epochs"), "learning_rate": config.get("learning_rate"),
           "lr_schedule": config.get("lr_schedule"), "ema_decay": config.get("ema_decay", 0.0),
           "chunk": config.get("action_chunk_size"), "cameras": list(model.get("cameras", [])),
           "image_size": list(model.get("image_size", [])), "state_keep": list(model.get("state_keep", [])),
           "state_keep_dropout": model.get("state_keep_dropout", 0.0), "continued": provenance.get("model_path"),
           "camera_dropout": model.get("camera_dropout", {}), "action_head": model.get("action_head", "regression"),
           "frames": provenance.get("frames"),
           "pool": str(Path(provenance["dataset"]).resolve()) if provenance.get("dataset") else None}
    want = {"seed": seed, "epochs": args.epochs, "learning_rate": args.learning_rate, "lr_schedule": args.lr_schedule,
            "ema_decay": args.ema_decay, "chunk": args.chunk, "cameras": list(args.cameras),
            "image_size": list(args.image_size), "state_keep": list(args.state_keep),
            "state_keep_dropout": args.state_keep_dropout, "continued": None, "frames": frames,
            "camera_dropout": camera_dropout(args.camera_dropout, args.cameras), "action_head": args.action_head,
            "pool": str(Path(pool).resolve())}
    differ = [f"{k} {had[k]} (this run: {want[k]})" for k in want if had[k] != want[k]]
    return ", ".join(differ) or None


def pool_problem(pool: Path, args: argparse.Namespace) -> str | None:
    """Why a recording cannot be the benchmark's pool (None when it can)."""
    from training.datasets.lerobot_io import read_info, read_recording

    try:
        meta = read_info(pool)
        recording = read_recording(pool)
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)
    through_mux = recording.get("through_mux")
    if through_mux is not None and bool(through_mux) != args.through_mux:
        # a policy trained on commands the mux never lets through loses 46 points through it (docs/results)
        return ("recorded through the intervention mux, this run evaluates without it (add --through-mux)"
                if through_mux else "recorded without the intervention mux, this run evaluates through it "
                "(record with vla-il collect --through-mux)")
    for camera in args.cameras:
        feature = meta.get("features", {}).get(f"observation.images.{camera}")
        if feature is None:
            return f"has no {camera} camera"
        (h, w), (want_h, want_w) = feature["shape"][:2], args.image_size
        if (h, w) != (want_h, want_w):
            return f"its {camera} frames are {h}x{w}, the benchmark's {want_h}x{want_w} (--image-size)"
    episodes = meta.get("total_episodes", 0)
    if episodes <= args.demos:
        return f"{episodes} episodes: too few for the demos (--demos {args.demos}) and more for the BC baseline"
    return None


RUN_ONLY = ("seeds", "first_seed", "workers", "out")  # settings that do not change what a seed measures


def measured_seeds(results: Path, args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    """The rows of earlier runs into the same --out, by seed: a run of several hours stopped part way, or asked
    for more seeds later, resumes instead of measuring again. ValueError when they were measured otherwise
    (they are not overwritten: another --out)."""
    if not results.exists():
        return {}
    try:
        earlier = json.loads(results.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{results} is not readable JSON ({e}): move it away or choose another --out") from None
    same = {k: str(v) for k, v in vars(args).items() if k not in RUN_ONLY}
    # a setting added since those seeds ran: they ran with its default
    defaults = {k: str(v) for k, v in vars(parse_args([])).items() if k not in RUN_ONLY}
    earlier_args = dict(earlier.get("args", {}))
    if "camera" in earlier_args:  # one camera, before --cameras
        earlier_args.setdefault("cameras", [earlier_args.pop("camera")])
    before = {**defaults, **{k: str(v) for k, v in earlier_args.items() if k not in RUN_ONLY}}
    changed = sorted(k for k in same.keys() | before.keys() if same.get(k) != before.get(k))
    if changed:
        raise ValueError(f"{results} holds seeds measured with other settings ({', '.join(changed)}): "
                         "choose another --out")
    return {int(r["seed"]): r for r in earlier.get("rows", [])}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from vla_il.demo import POLICY_DEFAULTS

    d = POLICY_DEFAULTS["vla"]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", default="transfer_cube", choices=("transfer_cube", "insertion"))
    p.add_argument("--seeds", type=int, default=3, help="training seeds (each: the whole loop and its BC baseline)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--demos", type=int, default=d["demos"])
    p.add_argument("--pool", type=int, default=0,
                   help="expert episodes recorded for the BC baseline (0: twice --demos)")
    p.add_argument("--pool-from", type=Path, default=None, metavar="DATASET",
                   help="an expert recording of --task to use as the pool instead of recording one (e.g. vla-il\n"
                        "collect's or vla-il bench vla-target's): its first --demos episodes are the demos")
    p.add_argument("--rounds", type=int, default=d["rounds"])
    p.add_argument("--episodes-per-round", type=int, default=d["episodes_per_round"])
    p.add_argument("--cameras", "--camera", nargs="+", default=["top"], metavar="CAMERA",
                   help="the cameras the VLA reads (default top; the right hand's view: top right_wrist)")
    p.add_argument("--image-size", type=int, nargs=2, default=[96, 128])
    p.add_argument("--chunk", type=int, default=d["chunk_size"])
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument("--round-init", choices=("scratch", "continue"), default=d["round_init"],
                   help="each round: a new VLA on all labels (--epochs), or the last one continued for --round-epochs\n"
                        "(then BC at equal labels continues round 0 for rounds x --round-epochs: equal steps too)")
    p.add_argument("--round-epochs", type=int, default=d["round_epochs"])
    p.add_argument("--intervention-weight", type=float, default=1.0, metavar="K",
                   help="the rounds draw each expert segment's frame K times as often as a demo's, in as many\n"
                        "steps per epoch (weighted sampling with replacement; the MLP's HG-DAgger oversamples so);\n"
                        "default 1: every frame alike")
    p.add_argument("--learning-rate", type=float, default=d["learning_rate"])
    p.add_argument("--state-keep", type=int, nargs="*", default=[], metavar="INDEX",
                   help="state indices the vision-only VLA reads all the same (the grippers: 6 13); default none")
    p.add_argument("--state-keep-dropout", type=float, default=0.0, metavar="P",
                   help="share of training samples that do not see the --state-keep values either (default 0)")
    p.add_argument("--camera-dropout", nargs="*", default=[], metavar="CAMERA=P",
                   help="a new VLA does not see CAMERA in a share P of its training samples (e.g. right_wrist=0.5: "
                        "the wrist view shows the fingers' opening, the copycat input in pixels; run time sees it)")
    p.add_argument("--ema-decay", type=float, default=0.0, metavar="DECAY",
                   help="every fit keeps and leaves the weights' moving average (vla-il train bc --ema_decay; "
                        "default 0: the trained weights)")
    p.add_argument("--action-head", choices=("regression", "flow_matching"), default="regression",
                   help="a new VLA's action head (VLAConfig.action_head): a regression of the chunk, or flow\n"
                        "matching (integrated from a fixed noise at run time; in the bundle as in PyTorch)")
    p.add_argument("--lr-schedule", choices=("cosine", "constant"), default="cosine",
                   help="a new VLA's learning rate (round 0's; with --round-init scratch every fit's): annealed to\n"
                        "0 (default) or constant; a continued fit always anneals")
    p.add_argument("--temporal-ensembling", action="store_true",
                   help="every bundle plays its chunks with ACT's temporal ensembling (a chunk every tick, the\n"
                        "overlapping predictions blended), in the rounds and the evaluations: round 0 of seed 0\n"
                        "through the mux 76%% against 53%% playing each 10-step chunk out (docs/results)")
    p.add_argument("--gate", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="the expert gate's settings that differ from the demo's (config/teleop_sim_expert.yaml),\n"
                        "as vla_il_core.teleop.GateConfig fields: e.g. --gate agree_ticks=5 handback_ticks=30")
    p.add_argument("--through-mux", action="store_true",
                   help="HG-DAgger and BC alone are evaluated through the intervention mux's core, as the rounds'\n"
                        "policies drive and as the graph deploys them; a pool the benchmark records is recorded\n"
                        "through it too (vla-il collect --through-mux; a --pool-from recording: record it so)")
    p.add_argument("--bc-fits", type=int, default=1, metavar="K",
                   help="fit BC at equal labels K times (training seeds seed, seed+1000, ...) and compare HG-DAgger "
                        "with their mean: one fit's own spread is as large as the gap measured")
    p.add_argument("--control", action="store_true",
                   help="also evaluate round 0 alone, and round 0 continued on its own demos for the steps the rounds\n"
                        "added (--round-init continue): how much of HG-DAgger's and BC's gain the epochs alone buy")
    p.add_argument("--episode-length", type=int, default=400)
    p.add_argument("--eval-episodes", type=int, default=d["eval_episodes"])
    p.add_argument("--gated-episodes", type=int, default=d["eval_episodes"],
                   help="held-out episodes on which the expert watches each round's policy (0: skip)")
    p.add_argument("--workers", type=int, default=2, help="processes recording and evaluating episodes")
    p.add_argument("--out", default="output/vla_hg_dagger_seeds")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from sim.collect import collect_once

    args = parse_args(argv)
    out = Path(args.out)
    if not 0.0 <= args.state_keep_dropout <= 1.0 or (args.state_keep_dropout and not args.state_keep):
        print(f"--state-keep-dropout {args.state_keep_dropout}: a share in [0, 1] of the --state-keep values' "
              "samples (give --state-keep)", file=sys.stderr)
        return 2
    if args.control and args.round_init != "continue":
        print("--control continues round 0 on its demos as the rounds continue it: --round-init continue",
              file=sys.stderr)
        return 2
    if args.bc_fits < 1:
        print(f"--bc-fits {args.bc_fits}: at least one fit", file=sys.stderr)
        return 2
    if not (math.isfinite(args.intervention_weight) and args.intervention_weight >= 1.0):
        print(f"--intervention-weight {args.intervention_weight}: a weight >= 1 (the segments above the demos)",
              file=sys.stderr)
        return 2
    try:
        gate_settings(args.gate)
        camera_dropout(args.camera_dropout, args.cameras)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    n_pool = args.pool or 2 * args.demos
    pool = out / (f"pool_{args.task}_{n_pool}_{'_'.join(args.cameras)}_{args.image_size[0]}x{args.image_size[1]}"
                  + ("_mux" if args.through_mux else ""))
    if args.pool_from is not None:
        pool = args.pool_from
        problem = pool_problem(pool, args)
        if problem:
            print(f"--pool-from {pool}: {problem}", file=sys.stderr)
            return 2
    else:
        try:
            collect_once(args.task, n_pool, pool, cameras=tuple(args.cameras), image_size=tuple(args.image_size),
                         seed=0, workers=args.workers, through_mux=args.through_mux,
                         announce=f"recording {n_pool} expert demonstrations ({', '.join(args.cameras)}) into {pool}")
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    results = out / "results.json"
    try:
        measured = measured_seeds(results, args)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2

    def write(**extra: Any) -> None:  # whole or not at all: a stop mid-write keeps the earlier file
        tmp = results.with_suffix(".tmp")
        tmp.write_text(json.dumps({"args": vars(args), "rows": [measured[k] for k in sorted(measured)], **extra},
                                  indent=2, default=str))
        tmp.replace(results)

    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if seed in measured:  # by an earlier run of the same settings into --out (stopped, or fewer seeds)
            print(f"seed {seed}: measured before, in {results}", flush=True)
            continue
        print(f"\n== training seed {seed} ({(time.perf_counter() - start) / 60:.0f} min so far)", flush=True)
        measured[seed] = run_seed(args, seed, pool, out)
        write()
    rows = [measured[k] for k in sorted(measured)]  # every seed measured into --out, this run's and earlier ones
    text = "\n".join(t for t in (table(rows), bc_fit_lines(rows), control_lines(rows)) if t)
    print(text)
    gaps = [r["gap_points"] for r in rows]
    minutes = (time.perf_counter() - start) / 60
    write(mean_gap_points=float(np.mean(gaps)), minutes=minutes)
    (out / "table.txt").write_text(text + "\n")
    plot(rows, out / "hg_vs_bc.png", f"{args.task}, tiny VLA from pixels: HG-DAgger vs BC at equal labels, "
                                     f"{args.eval_episodes} held-out seeds", args.episodes_per_round)
    print(f"wrote {results}, {out / 'table.txt'} and {out / 'hg_vs_bc.png'} ({minutes:.1f} min)")
    return 0 if math.isfinite(float(np.mean(gaps))) else 1


if __name__ == "__main__":
    raise SystemExit(main())
