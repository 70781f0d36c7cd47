"""The command lines of the trainers: `python training/il/<method>.py ...` and `vla-il train <method>`.

Every ILConfig field is a flag of the same name (--bc_epochs, --dagger_beta_schedule, ...), plus
--env, --dataset (a local LeRobot dataset) and --model_path (start from a checkpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from training.argtypes import add_dataclass_arguments, output_dir
from training.config import ILConfig

METHODS = ("bc", "dagger", "gail")
_CONSTRUCTORS = {"bc": ILConfig.behavioral_cloning, "dagger": ILConfig.dagger, "gail": ILConfig.gail}


def build_parser(method: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"vla-il train {method}", description=f"Train a policy with {method}.")
    parser.add_argument("--env", default=None, help="gymnasium id, or aloha:transfer_cube / aloha:insertion: "
                        "where the policy is evaluated (DAgger and GAIL also collect there); default CartPole-v1, "
                        "none with --dataset (BC on a robot's dataset: its joints and rate come from the dataset)")
    parser.add_argument("--dataset", type=Path, default=None, help="a local LeRobot dataset of demonstrations")
    parser.add_argument("--extra_dataset", type=Path, action="append", default=[],
                        help="another recording to train on with --dataset (more demonstrations of the same robot "
                             "and cameras; for human-gated DAgger the initial demos and earlier rounds); repeatable")
    parser.add_argument("--model_path", type=Path, default=None, help="start from this checkpoint (or output dir)")
    if method == "dagger":
        g = parser.add_argument_group("human-gated DAgger (--dagger_mode human_gated): recorded rounds")
        g.add_argument("--export_bundle", type=output_dir, default=None,
                       help="export the trained policy to this bundle directory")
        g.add_argument("--load_policy_service", default=None,
                       help="then ask the running policy node to load it (e.g. /policy_node/load_policy; "
                            "`vla-il train` only: it talks to the ROS graph)")
    add_dataclass_arguments(parser.add_argument_group("ILConfig (the trainers' hyperparameters)"), ILConfig)
    from training.il.vla_cli import add_vla_arguments

    add_vla_arguments(parser)
    return parser


def config_from_args(method: str, args: argparse.Namespace) -> ILConfig:
    given = {f: getattr(args, f) for f in ILConfig.field_names() if getattr(args, f, None) is not None}
    return _CONSTRUCTORS[method](**given)


def run_il_cli(method: str, argv: list[str] | None = None) -> int:
    args = build_parser(method).parse_args(argv)
    try:
        result = run(method, args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"vla-il train {method}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    summary = {k: v for k, v in result.items() if isinstance(v, int | float)}
    print(f"{method} done: " + ", ".join(f"{k}={v:.4g}" for k, v in summary.items()))
    return 0


def run(method: str, args: argparse.Namespace) -> dict[str, Any]:
    from training.checkpoint import load_checkpoint
    from training.envs import action_info, make_env
    from training.experts import expert_for

    config = config_from_args(method, args)
    if Path(config.output_dir).exists() and not Path(config.output_dir).is_dir():
        raise ValueError(f"--output_dir {config.output_dir} exists and is not a directory")
    for dataset in [args.dataset, *args.extra_dataset]:
        if dataset is not None:
            check_dataset(dataset)
    # what the run trains on, saved beside its checkpoints (provenance.json)
    provenance = {"dataset": str(args.dataset) if args.dataset else None,
                  "model_path": str(args.model_path) if args.model_path else None}
    if args.extra_dataset:
        if args.dataset is None:
            raise ValueError("--extra_dataset adds to --dataset: give --dataset too")
        provenance["extra_datasets"] = [str(d) for d in args.extra_dataset]
    if args.dataset is not None:  # what the policy drives (its joints, rate, cameras): no robot is assumed
        from training.datasets.lerobot_io import robot_of_dataset

        provenance["robot"] = robot_of_dataset(args.dataset)
    if method == "dagger" and config.dagger_mode == "human_gated":
        return _run_hg_dagger(args, config, provenance)
    from training.il.vla_cli import refuse_vla_flags, run_vla, wants_vla

    if wants_vla(args):  # images + instruction + state: the VLA's data path
        return run_vla(method, args, config, provenance)
    refuse_vla_flags(args, f"--model_path {args.model_path} is not a VLA" if args.model_path is not None
                     else f"--env {args.env}" if args.env is not None else "no --vla and no cameras in the data")
    # --env: the env to evaluate in (and, for DAgger/GAIL, to collect in); the specification's CartPole
    # without a dataset; none with one (a robot's dataset has no env: BC trains and validates on it alone)
    env_name = args.env or (None if args.dataset is not None else "CartPole-v1")
    if env_name is None and method != "bc":
        raise ValueError(f"{method} collects in an env: give --env (e.g. aloha:transfer_cube); on a robot, "
                         "use --dagger_mode human_gated with the recorded datasets")
    env = make_env(env_name) if env_name else None
    policy = None
    demos = None
    if args.dataset is not None:
        from training.datasets.lerobot_io import load_demonstrations

        demos = load_demonstrations(args.dataset)
        for extra in args.extra_dataset:  # more recordings: their episodes numbered after the ones before
            demos = demos.aggregate(load_demonstrations(extra))
    if args.model_path is not None:
        if env is not None:
            discrete, action_dim = action_info(env)
            obs_dim = env.observation_space.shape[0]
        else:
            discrete, action_dim, obs_dim = False, demos.actions.shape[1], demos.obs.shape[1]
        policy, _, _ = load_checkpoint(args.model_path, expect={"obs_dim": obs_dim, "action_dim": action_dim,
                                                                 "discrete": discrete})
    elif env is None:
        from training.il.behavioral_cloning import new_policy

        policy = new_policy(config, demos.obs.shape[1], demos.actions.shape[1], discrete=False)
    expert = None if (demos is not None and method == "bc") else expert_for(env_name)

    if method == "bc":
        from training.il.behavioral_cloning import BehavioralCloning

        trainer = BehavioralCloning(env, config, policy, env_name=env_name, provenance=provenance)
        result = trainer.train(expert_policy=expert, demonstrations=demos)
        trainer.close()
    elif method == "dagger":
        from training.il.dagger import DAgger

        result = DAgger(env, expert, config, policy, env_name=env_name,
                        provenance=provenance).train(initial_demonstrations=demos)["final"]
    else:
        from training.il.gail import GAIL

        trainer = GAIL(env, config, policy, env_name=env_name, provenance=provenance)
        result = trainer.train(expert_policy=expert if demos is None else None, expert_demonstrations=demos)
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(config.output_dir) / "results.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def check_dataset(root: Path) -> None:
    """Refuse, by name, a --dataset that is not a LeRobot dataset or holds no episode (before lerobot,
    which takes an empty local dataset for a hub id and fails on the network)."""
    from training.datasets.lerobot_io import read_info

    if not read_info(root).get("total_episodes"):
        raise ValueError(f"{root} holds no episodes (an empty dataset: record or collect some first)")


def _run_hg_dagger(args: argparse.Namespace, config: ILConfig, provenance: dict[str, Any]) -> dict[str, Any]:
    """HG-DAgger from recorded datasets: train on the expert's segments (the MLP, or the VLA with --vla or a VLA
    --model_path), export."""
    from training.checkpoint import load_checkpoint
    from training.il.hg_dagger import HGDAgger, export_bundle

    if args.dataset is None:
        raise ValueError("--dagger_mode human_gated needs --dataset (the recording: <record_dir>/dataset)")
    if args.load_policy_service:  # `vla-il train` takes it off the command line and hot-loads after training
        raise ValueError("--load_policy_service talks to the ROS graph: run this as `vla-il train dagger ...`")
    from training.il.vla_cli import asks_for_vla, refuse_vla_flags, run_vla

    if asks_for_vla(args):  # the next VLA on the expert's segments and their camera frames
        result = run_vla("dagger", args, config, provenance)
    else:
        refuse_vla_flags(args, f"--model_path {args.model_path} is not a VLA" if args.model_path is not None
                         else "human-gated DAgger trains the MLP without --vla or a VLA --model_path")
        env_name = args.env or "aloha:transfer_cube"
        policy = load_checkpoint(args.model_path)[0] if args.model_path is not None else None
        trainer = HGDAgger(config, policy, env_name=env_name, provenance=provenance)
        result = trainer.train([args.dataset, *args.extra_dataset])
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.output_dir) / "results.json").write_text(json.dumps(result, indent=2, default=float))
    if args.export_bundle is not None:
        print(export_bundle(Path(config.output_dir) / "best", args.export_bundle))
    return result
