"""`vla-il`: the single entry point. Each subcommand is filled by the part of vla-il it belongs to.

A user error (a value, a path, a damaged file) is one line on stderr, `vla-il <command>: error: ...`,
and exit 2: counts and paths are checked by the parser, and the errors the layers below raise for
what they were given (`_USER_ERRORS`) are caught here. Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.argtypes import (
    fraction,
    nonnegative_float,
    nonnegative_int,
    output_dir,
    positive_float,
    positive_int,
)

# Subcommands whose capability has not landed yet: what they will do, and where it is tracked.
_PLANNED: dict[str, tuple[str, int]] = {}


class UsageError(Exception):
    """What was asked cannot be done as asked (a path, a value): one line, exit 2."""


# The errors the layers raise for their input, by module: a bundle, checkpoint, bag, dataset or profile
# that cannot be used, a run that cannot go on with what it was given. Looked up in the modules this run
# imported only (an error type whose module was never imported cannot have been raised), so the command
# line stays fast to start.
_USER_ERRORS = (
    ("vla_il_core.bundle", "BundleError"),
    ("training.checkpoint", "CheckpointError"),
    ("training.datasets.rosbag_import", "BagImportError"),
    ("training.datasets.lerobot_dataset", "DatasetError"),
    ("training.datasets.writer", "DatasetExistsError"),
    ("training.il.behavioral_cloning", "TrainingError"),
    ("vla_il_core.profiles", "ProfileError"),
    ("vla_il.view", "ViewError"),
)


def _user_errors() -> tuple[type[BaseException], ...]:
    found = [sys.modules[m].__dict__.get(name) for m, name in _USER_ERRORS if m in sys.modules]
    return (UsageError, *(t for t in found if isinstance(t, type)))


def _build_parser() -> argparse.ArgumentParser:
    from sim.aloha.tasks import TASKS
    from vla_il_core.schema import IMAGE_STORAGES

    tasks = sorted(TASKS)

    parser = argparse.ArgumentParser(
        prog="vla-il",
        description="Demonstrations -> VLA policy on ROS 2 -> human corrections (HG-DAgger) -> better policy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    demo = sub.add_parser(
        "demo",
        help="the simulated HG-DAgger loop: sim, record, train, export, deploy, correct, retrain",
        description="Collects expert demonstrations, trains BC, exports a bundle, brings the ROS graph up in "
        "lockstep (sim_bridge, policy_node, intervention_mux, teleop_sim_expert, dagger_recorder), runs rounds of "
        "human-gated DAgger with the scripted expert playing the human, retrains and hot-loads the policy each "
        "round, evaluates every round on held-out seeds and writes a table, a plot and a report.",
    )
    from vla_il.demo import POLICY_DEFAULTS, DemoConfig

    d = DemoConfig()

    def per_policy(name: str) -> str:
        return "default: " + ", ".join(f"{v[name]} ({k})" for k, v in POLICY_DEFAULTS.items())

    demo.add_argument("--policy", default=d.policy, choices=list(POLICY_DEFAULTS),
                      help="mlp: a chunking MLP on the joint positions and the sim's object poses; vla: the tiny VLA "
                           "from a camera's pixels, published by the sim as sensor_msgs/Image (default: mlp)")
    demo.add_argument("--task", default=d.task, choices=tasks)
    demo.add_argument("--out", type=output_dir, default=d.out, help="where everything is written")
    demo.add_argument("--demos", type=positive_int, help="expert demonstrations for BC; " + per_policy("demos"))
    demo.add_argument("--rounds", type=positive_int, help="HG-DAgger rounds; " + per_policy("rounds"))
    demo.add_argument("--episodes-per-round", type=positive_int, help=per_policy("episodes_per_round"))
    demo.add_argument("--eval-episodes", type=positive_int,
                      help="held-out seeds per evaluation; " + per_policy("eval_episodes"))
    demo.add_argument("--chunk-size", type=positive_int,
                      help="actions per chunk (the MLP ensembles them); " + per_policy("chunk_size"))
    demo.add_argument("--camera", default=d.camera, help="(vla) the camera it sees (default: top)")
    demo.add_argument("--image-size", nargs=2, type=positive_int, default=list(d.image_size), metavar=("H", "W"),
                      help="(vla) rendered, recorded and seen at this size (default: 96 128)")
    demo.add_argument("--vla-backbones", nargs=2, metavar=("VISION", "LLM"),
                      help="(vla) SigLIP and Qwen2 weights, hub ids or local directories, instead of the tiny preset "
                           "(the GPU recipe: google/siglip-base-patch16-224 Qwen/Qwen2-0.5B-Instruct)")
    demo.add_argument("--vla-lora-rank", type=nonnegative_int, default=d.vla_lora_rank,
                      help="(vla, with --vla-backbones) LoRA adapters of this rank on the LLM, its base frozen")
    demo.add_argument("--vla-freeze-vision", action="store_true", help="(vla, with --vla-backbones)")
    demo.add_argument("--display", action="store_true",
                      help="the live view while the rounds run: cameras, joints, proposals, who drives, takeovers, "
                           "latency, in rerun's web viewer (http://localhost:--display-port)")
    demo.add_argument("--display-port", type=positive_int, default=d.display_port)
    demo.add_argument("--residual", action="store_true", help="predict joint targets relative to the joint positions")
    demo.add_argument("--epochs", type=positive_int, help="BC epochs; " + per_policy("epochs"))
    demo.add_argument("--round-init", choices=["scratch", "continue"],
                      help="each round trains a new network on all labels (--epochs, BC's recipe) or continues the "
                           "last one (--round-epochs); " + per_policy("round_init"))
    demo.add_argument("--round-epochs", type=positive_int,
                      help="epochs per HG-DAgger round with --round-init continue; " + per_policy("round_epochs"))
    demo.add_argument("--hidden-dim", type=positive_int, default=d.hidden_dim, help="width of the policy MLP")
    demo.add_argument("--ensemble", type=positive_int, default=d.ensemble,
                      help="MLPs per policy, each fit on its own, outputs averaged")
    demo.add_argument("--learning-rate", type=positive_float, help=per_policy("learning_rate"))
    demo.add_argument("--lr-schedule", choices=["constant", "cosine"],
                      help="the fits' learning-rate schedule (the VLA's continued fits anneal all the same); "
                      + per_policy("lr_schedule"))
    demo.add_argument("--early-stopping-after", type=fraction, default=d.early_stopping_after, metavar="FRACTION",
                      help="each fit keeps its epoch of lowest validation loss among those past this fraction")
    demo.add_argument("--no-early-stopping", dest="early_stopping_after", action="store_const", const=None,
                      help="each fit keeps its last (annealed) epoch")
    demo.add_argument("--temporal-ensembling", action=argparse.BooleanOptionalAction, default=d.temporal_ensembling,
                      help="play the chunks with ACT's temporal ensembling (a chunk every tick, the overlapping "
                           "predictions blended) or each one out (default: ensembling, either policy)")
    demo.add_argument("--labels", default=d.labels, choices=["intervention", "expert"],
                      help="train on the expert's takeovers (HG-DAgger) or on every state it labelled (DAgger)")
    demo.add_argument("--workers", type=positive_int, default=d.workers, help="evaluation processes")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    demo.set_defaults(func=_demo)

    doctor = sub.add_parser("doctor", help="check that every part of the environment works here")
    doctor.set_defaults(func=lambda _args: 1 if _run_doctor() else 0)

    collect = sub.add_parser(
        "collect",
        help="record scripted-expert demonstrations from the simulated ALOHA into a LeRobot dataset",
        description="Runs the task's closed-loop expert and writes each episode into a LeRobot dataset (v3).",
    )
    collect.add_argument("--task", default="transfer_cube", choices=tasks)
    collect.add_argument("--episodes", type=positive_int, default=50, help="episodes to save")
    collect.add_argument("--out", type=output_dir, required=True, help="dataset directory (created)")
    collect.add_argument("--cameras", nargs="*", default=["top"], help="cameras to record (none: state only)")
    collect.add_argument("--image-size", nargs=2, type=positive_int, default=[480, 640], metavar=("H", "W"))
    collect.add_argument("--keep-failed", action="store_true", help="keep episodes the expert failed")
    collect.add_argument("--seed", type=nonnegative_int, default=0, help="first seed")
    collect.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    collect.add_argument("--workers", type=positive_int, default=1,
                         help="processes that play the episodes while this one writes them (the same dataset, "
                              "faster on several cores; N + 1 episodes' frames held in memory at a time)")
    collect.add_argument(
        "--action-noise",
        type=nonnegative_float,
        default=0.0,
        metavar="RAD",
        help="DART-style: arm joints execute the expert's command plus a wandering offset of this step size "
        "(action = executed, expert_action = the label: train with --action_key expert_action)",
    )
    collect.add_argument(
        "--through-mux",
        action="store_true",
        help="the expert's commands pass the intervention mux's limits, as on the graph (action = the mux's "
        "command, as the graph's recorder records it; expert_action = the label)",
    )
    collect.add_argument(
        "--image-storage",
        choices=IMAGE_STORAGES,
        default="auto",
        help="camera frames as video (lossy AV1) or image (lossless PNG); auto: image up to 128x160 pixels",
    )
    collect.set_defaults(func=_collect)

    ev = sub.add_parser(
        "eval",
        help="evaluate a policy in the simulated ALOHA (success rate, Wilson 95%%)",
        description="Runs N episodes on seeds seed..seed+N-1 and reports the success rate.",
    )
    ev.add_argument("--task", default="transfer_cube", choices=tasks)
    ev.add_argument(
        "--policy",
        default="expert",
        help="expert (the scripted expert), a policy bundle directory, or a training checkpoint directory",
    )
    ev.add_argument("--episodes", type=positive_int, default=50)
    ev.add_argument("--seed", type=nonnegative_int, default=100_000, help="first seed (held out from collection)")
    ev.add_argument("--workers", type=positive_int, default=1, help="parallel processes")
    ev.add_argument("--videos", type=nonnegative_int, default=0, help="record MP4 videos of the first N episodes")
    ev.add_argument("--out", type=output_dir, default=None,
                    help="write episodes.jsonl, summary.json, success.png here")
    ev.add_argument(
        "--perturb-prefix",
        type=fraction,
        default=0.0,
        metavar="FRACTION",
        help="drive the first FRACTION of each episode with a perturbed policy (recovery test)",
    )
    ev.add_argument("--with-expert", action="store_true",
                    help="the sim expert watches and takes over as in the demo's rounds (the gate of "
                         "config/teleop_sim_expert.yaml): reports the takeovers per episode the policy needs")
    ev.add_argument("--through-mux", action="store_true",
                    help="every command passes the intervention mux's limits (the sim profile's joint and step "
                         "limits), as on the graph, where the policy reaches the robot only through the mux; "
                         "reports the commands it limited (--with-expert: always)")
    ev.set_defaults(func=_eval)

    view = sub.add_parser(
        "view",
        help="show a recorded dataset's episodes in rerun (cameras, joints, actions, who drove), or --summary",
        description="Shows a LeRobot dataset's episodes in rerun: every camera, the measured joints, the command, "
        "the expert's and the policy's proposals, who drove (a band while the expert did) and the outcome. "
        "Without a display (or with --web) it serves the web viewer; --save writes an .rrd file instead.",
    )
    view.add_argument("dataset", type=Path)
    view.add_argument("--episode", type=nonnegative_int, nargs="+", default=None,
                      help="episodes to show (default: all)")
    view.add_argument("--save", type=Path, default=None, help="write an .rrd file (open it with `rerun FILE`)")
    view.add_argument("--web", action="store_true", help="serve the web viewer even where there is a display")
    view.add_argument("--web-port", type=positive_int, default=9090)
    view.add_argument("--summary", action="store_true",
                      help="print per-episode frames, takeovers, expert share and success, and plot the takeovers")
    view.add_argument("--plot", type=Path, default=Path("takeovers.png"),
                      help="with --summary: the plot of takeovers per episode (default: takeovers.png)")
    view.set_defaults(func=_view)

    export = sub.add_parser(
        "export",
        help="export a trained checkpoint to an ONNX policy bundle",
        description="Writes policy.onnx + policy.json after a PyTorch / ONNX Runtime parity check.",
    )
    export.add_argument("--checkpoint", type=Path, required=True, nargs="+", metavar="CHECKPOINT",
                        help="checkpoint dir (or an output dir: best/); several VLA checkpoints trained alike (other "
                             "seeds) export as one ensemble whose chunks are their mean")
    export.add_argument("--out", type=output_dir, required=True, help="bundle directory to write")
    export.add_argument("--name", default=None, help="bundle name (default: the training run's folder)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    export.add_argument("--temporal-ensembling", action=argparse.BooleanOptionalAction, default=None,
                        help="the runner asks for a chunk every tick and blends the overlapping predictions (ACT), "
                             "or plays each chunk out (--no-temporal-ensembling); default: as the run was trained")
    export.set_defaults(func=_export)

    train = sub.add_parser(
        "train",
        help="train a policy: bc | dagger | gail (every ILConfig field is a flag)",
        description="The trainers of training/il/, as `python training/il/<method>.py` runs them.",
    )
    train.add_argument("method", choices=["bc", "dagger", "gail"])
    train.add_argument("rest", nargs=argparse.REMAINDER, help="the trainer's flags (vla-il train bc --help)")
    train.set_defaults(func=_train)

    imp = sub.add_parser(
        "import-bag",
        help="rosbag2 recordings (sqlite3 / MCAP) -> a LeRobot dataset, through a robot profile",
        description="Resamples the profile's joint states, cameras and commands onto the control clock and writes "
        "a LeRobot v3 dataset; reports gaps, skipped messages and the time skew of each stream. No ROS needed.",
    )
    imp.add_argument("bag", type=Path, help="rosbag2 directory (with metadata.yaml)")
    imp.add_argument("--profile", required=True, help="robot profile: a name in config/robots/ or a YAML path")
    imp.add_argument("--out", type=output_dir, required=True, help="dataset directory (created)")
    imp.add_argument("--task", required=True, help="the language instruction of these episodes")
    imp.add_argument("--fps", type=nonnegative_float, default=0.0, help="control clock (default: the profile's rate)")
    imp.add_argument("--sync", choices=["nearest", "interpolate"], default="nearest", help="joint-state resampling")
    imp.add_argument("--action", choices=["command", "next_state"], default="command", help="where actions come from")
    imp.add_argument("--split", choices=["gap", "topic", "length"], default="gap", help="how episodes end")
    imp.add_argument("--split-topic", default="", help="--split topic: each message on it ends an episode")
    imp.add_argument("--episode-length", type=nonnegative_float, default=0.0,
                     help="--split length: seconds per episode")
    imp.add_argument(
        "--max-skew",
        type=nonnegative_float,
        default=0.0,
        help="a sample further than this (s) from a tick is a gap (default: two control periods)",
    )
    imp.add_argument("--min-frames", type=positive_int, default=10, help="leave out shorter episodes")
    imp.add_argument("--time", choices=["header", "receive"], default="header", help="header stamps or bag times")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    imp.set_defaults(func=_import_bag)

    bench = sub.add_parser(
        "bench",
        help="run a benchmark and print its table (sim; more arrive with each part)",
        description="Benchmarks print tables with a baseline measured in the same run.",
    )
    bench.add_argument("which", choices=sorted(_BENCHMARKS), help="which benchmark")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark (see its --help)")
    bench.set_defaults(func=_bench)

    for name, (what, issue) in _PLANNED.items():
        p = sub.add_parser(name, help=f"{what} (arrives with issue #{issue})", description=what)
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=lambda _args, name=name, issue=issue: _not_yet(name, issue))
    return parser


def _run_doctor() -> int:
    from vla_il.doctor import run_doctor  # heavy imports only when asked for

    return run_doctor()


def _demo(args: argparse.Namespace) -> int:
    import dataclasses

    from vla_il.demo import DemoConfig, DemoError, run_demo

    fields = {f.name for f in dataclasses.fields(DemoConfig)}
    try:  # a flag left out (None) takes the policy's default (DemoConfig.__post_init__)
        run_demo(DemoConfig(**{k: v for k, v in vars(args).items() if k in fields}))
    except DemoError as exc:
        print(f"vla-il demo: {exc}", file=sys.stderr)
        return 1
    return 0


def _collect(args: argparse.Namespace) -> int:
    from sim.collect import collect

    _check_cameras(args.task, args.cameras)
    report = collect(
        args.task,
        args.episodes,
        args.out,
        cameras=tuple(args.cameras),
        image_size=tuple(args.image_size),
        keep_failed=args.keep_failed,
        seed=args.seed,
        overwrite=args.overwrite,
        image_storage=args.image_storage,
        action_noise=args.action_noise,
        workers=args.workers,
        through_mux=args.through_mux,
    )
    print(report.line())
    return 0


def _check_cameras(task: str, cameras: list[str]) -> None:
    """Refuse camera names the task's model does not have (before a dataset is started)."""
    if not cameras:
        return
    import mujoco

    from sim.aloha import robot
    from sim.aloha.tasks import get_task

    model = mujoco.MjModel.from_xml_path(str(robot.assets_dir() / get_task(task).xml))
    valid = [model.camera(i).name for i in range(model.ncam)]
    unknown = [c for c in cameras if c not in valid]
    if unknown:
        raise UsageError(f"--cameras: unknown camera(s) {', '.join(unknown)}; {task} has: {', '.join(valid)}")


def _policy_factory(spec: str):
    """(factory, env kwargs) for --policy: expert, a bundle directory, or a checkpoint directory."""
    from sim.evaluation import BundleFactory, ExpertPolicy

    if spec == "expert":
        return ExpertPolicy, {}
    path = Path(spec)
    if not (path / "policy.onnx").exists():
        checkpoint = next((c for c in (path, path / "best", path / "last") if (c / "model.pt").exists()), None)
        if checkpoint is None:
            raise UsageError(
                f"--policy {spec!r} is neither 'expert', a bundle (policy.json) nor a checkpoint directory"
            )
        path = _export_for_eval(checkpoint)
    factory = BundleFactory(path)
    return factory, factory.env_kwargs()  # the cameras and image size the bundle reads (a VLA's)


def _export_for_eval(path: Path) -> Path:
    """Export the checkpoint to a temporary bundle, so it is evaluated exactly as it would be deployed."""
    import tempfile

    from training.export.onnx_export import export_checkpoint

    out = Path(tempfile.mkdtemp(prefix="vla-il-eval-")) / "bundle"
    export_checkpoint(path, out)
    return out


def _eval(args: argparse.Namespace) -> int:
    from sim.evaluation import PerturbedPrefixFactory, evaluate, record_videos, write_report

    factory, env_kwargs = _policy_factory(args.policy)
    name = args.policy
    if args.perturb_prefix > 0:
        factory = PerturbedPrefixFactory(factory, args.perturb_prefix)
        name = f"{args.policy} after a {100 * args.perturb_prefix:.0f}% perturbed prefix"
    if args.with_expert:
        from sim.evaluation import GatedFactory, default_gate_config

        factory, name = GatedFactory(factory, default_gate_config()), f"{name}, the sim expert watching"
    elif args.through_mux:
        from sim.evaluation import MuxedFactory

        factory, name = MuxedFactory(factory), f"{name}, through the mux"
    seeds = range(args.seed, args.seed + args.episodes)
    result = evaluate(args.task, factory, seeds, policy_name=name, workers=args.workers, env_kwargs=env_kwargs)
    print(result.line())
    if args.out is not None:
        print(f"wrote {write_report(result, args.out)}")
        if args.videos:
            for path in record_videos(args.task, factory, list(seeds)[: args.videos], args.out / "videos"):
                print(f"wrote {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from training.export.onnx_export import export_checkpoint

    first, *members = args.checkpoint
    spec, diff = export_checkpoint(first, args.out, args.name, args.overwrite,
                                   temporal_ensembling=args.temporal_ensembling, members=tuple(members))
    playback = "temporal ensembling" if spec.temporal_ensembling else f"{spec.n_action_steps} actions per chunk"
    print(
        f"wrote {spec.path} ({spec.policy_id}): state {spec.state_dim} -> {spec.chunk_size} x {spec.action_dim} "
        f"at {spec.fps:g} Hz, {playback}; PyTorch vs ONNX Runtime max abs diff {diff:.2e}"
    )
    if members:
        print(f"an ensemble of {len(args.checkpoint)} VLAs: each chunk is their mean, the grippers their vote")
    if spec.cameras:  # the node's moved-camera check (vla_il_core.camera_view)
        print(f"camera views: {spec.raw['provenance'].get('camera_views')}")
    return 0


def _view(args: argparse.Namespace) -> int:
    from vla_il import view

    if args.summary:
        rows = view.summarise(args.dataset)
        print(view.summary_table(rows))
        print(f"wrote {view.plot_takeovers(rows, args.plot)}")
        return 0
    print(view.view(args.dataset, args.episode, save=args.save, web=True if args.web else None,
                    web_port=args.web_port), flush=True)
    if args.save is None and (args.web or view.no_display()):
        import time

        try:
            while True:  # the web viewer serves from this process
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def _train(args: argparse.Namespace) -> int:
    """The trainer's command line; with --load_policy_service (and --export_bundle), the bundle it exported is
    then hot-loaded into the running policy node: the ROS side of the command, kept out of training/."""
    from training.cli import build_parser, run_il_cli

    hot = argparse.ArgumentParser(add_help=False)
    hot.add_argument("--load_policy_service", default=None)
    known, rest = hot.parse_known_args(args.rest)
    service = known.load_policy_service
    bundle = build_parser(args.method).parse_args(rest).export_bundle if service else None
    if service and bundle is None:
        raise UsageError("--load_policy_service needs --export_bundle (the bundle to load)")
    code = run_il_cli(args.method, rest)
    if code != 0 or not service:
        return code
    from vla_il.rosgraph import call_load_policy

    # absolute: the node resolves a relative path in its own bundle_dir, not in our working directory
    ok, reply = call_load_policy(service, str(Path(bundle).resolve()))
    if not ok:
        raise UsageError(f"{service} refused {bundle}: {reply} (the node loads bundles only from under its "
                         "bundle_dir parameter)")
    print(f"{service}: {reply}")
    return 0


def _import_bag(args: argparse.Namespace) -> int:
    from training.datasets.rosbag_import import ImportOptions, import_bag
    from vla_il_core.profiles import load_profile

    profile = load_profile(args.profile)
    options = ImportOptions(
        task=args.task,
        fps=args.fps,
        sync=args.sync,
        action=args.action,
        split=args.split,
        split_topic=args.split_topic,
        episode_length_s=args.episode_length,
        max_skew_s=args.max_skew,
        min_episode_frames=args.min_frames,
        time_source=args.time,
        overwrite=args.overwrite,
    )
    report = import_bag(args.bag, profile, args.out, options, log=lambda m: print(f"import-bag: {m}"))
    print(report.text())
    return 0


_BENCHMARKS = {
    "sim": "benchmarks.sim_throughput",
    "il": "benchmarks.il_benchmark",
    "aloha-dagger": "benchmarks.aloha_dagger",
    "hg-dagger-seeds": "benchmarks.hg_dagger_seeds",
    "vla-hg-dagger-seeds": "benchmarks.vla_hg_dagger_seeds",
    "vla-target": "benchmarks.vla_target_runs",
    "vla-pipeline": "benchmarks.vla_pipeline",
    "policy": "benchmarks.policy_latency",
    "vla": "benchmarks.vla_train",
    "camera": "benchmarks.camera_rate",
    "recorder": "benchmarks.recorder_throughput",
    "graph": "benchmarks.graph_cameras",
    "deploy": "benchmarks.deploy_install",
}


def _bench(args: argparse.Namespace) -> int:
    import importlib

    return int(importlib.import_module(_BENCHMARKS[args.which]).main(args.rest))


def _not_yet(name: str, issue: int) -> int:
    print(f"vla-il {name}: not in this version yet (tracked in issue #{issue}).", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from training.progress import quiet_library_output

    quiet_library_output()
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise  # a bug: its traceback is what the report needs
        print(f"vla-il {args.command}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
