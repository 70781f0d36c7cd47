"""The VLA side of the trainers' command lines (`python training/il/<method>.py`, `vla-il train <method>`).

    python training/il/behavioral_cloning.py --dataset <local LeRobot dataset> --bc_epochs 50 --batch_size 32 \
        --learning_rate 1e-4 --output_dir ./output/vla_bc            # a dataset with cameras and no --env: the VLA
    python training/il/dagger.py --model_path ./output/vla_bc/best --dagger_iterations 5 \
        --dagger_beta_schedule exponential --output_dir ./output/vla_dagger
    python training/il/gail.py --model_path ./output/vla_dagger/best --total_timesteps 10000 \
        --output_dir ./output/vla_gail
    vla-il train dagger --dagger_mode human_gated --dataset <record_dir>/dataset --extra_dataset <demos> \
        --model_path ./output/vla_bc/best --output_dir ./output/vla_r1 --export_bundle ./bundles/vla_r1
                                    # HG-DAgger: the next VLA on the expert's recorded segments

The model: `--vla tiny` (the CPU preset; the default for a new model), or `--vision_model_name` /
`--llm_model_name` (hub ids or local directories, through from_pretrained), or `--model_path`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from training.argtypes import add_dataclass_arguments, nonnegative_float, nonnegative_int, positive_int, unit_interval
from training.config import ILConfig
from training.models.vla_config import VLAConfig, camera_dropout_pairs

DEFAULT_CHUNK = 10
# VLAConfig fields that are flags of the same name (the rest come from the data or the preset); the earlier
# --vla_* names still work
VLA_FLAGS = ("action_head", "flow_steps", "max_instruction_tokens", "freeze_vision", "freeze_llm",
             "llm_train_last_n_layers", "lora_rank", "lora_alpha", "gradient_checkpointing", "precision",
             "aux_state_weight", "state_dropout", "image_shift")
VLA_ALIASES = {"action_head": ["--vla_action_head"], "aux_state_weight": ["--vla_aux_state_weight"],
               "state_dropout": ["--vla_state_dropout"]}
VLA_TYPES = {"flow_steps": positive_int, "max_instruction_tokens": positive_int, "llm_train_last_n_layers":
             nonnegative_int, "lora_rank": nonnegative_int, "lora_alpha": positive_int,
             "aux_state_weight": nonnegative_float, "state_dropout": unit_interval, "image_shift": nonnegative_int}

VLA_HELP = {
    "aux_state_weight": "> 0: a training-only head predicts the recorded object poses (observation."
    "environment_state) from the decoder, weighted this much in the loss (sim datasets; default: no such head)",
    "state_dropout": "fraction of training samples that see a learned 'no state' token instead of the robot state "
    "(so the model learns to see the scene, not to read it off the arm); 1.0: vision only (default: 0.0)",
    "image_shift": "training images shifted by up to this many pixels each way, per sample (random-shift "
    "augmentation; run time unaffected; default: 0, off). Measured on the vision-only recipe "
    "(docs/results/vla_transfer_cube): 4 px harmful (5%% against 23%%); 1 px kept policies working with the "
    "camera moved by 1 px (49-50%% where the same seeds without it fell to 0-12%%), over three seeds 51, 64, 7%% "
    "against 46, 15, 23%% as recorded",
}


def add_vla_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("VLA (vision-language-action model)")
    g.add_argument(
        "--vla",
        choices=["tiny", "pretrained"],
        default=None,
        help="train the VLA: the tiny CPU preset, or pretrained backbones (--vision_model_name/--llm_model_name)",
    )
    g.add_argument("--vision_model_name", default=None, help="SigLIP weights: hub id or local dir")
    g.add_argument("--llm_model_name", default=None, help="Qwen2 weights: hub id or local dir")
    g.add_argument("--task", default=None, help="ALOHA task for evaluation, DAgger and GAIL (default: transfer_cube)")
    g.add_argument("--cameras", nargs="+", default=None, help="cameras the VLA sees (default: the dataset's)")
    g.add_argument(
        "--image_size",
        nargs=2,
        type=positive_int,
        default=None,
        metavar=("H", "W"),
        help="image size the VLA takes (resized from the dataset's, with a log line)",
    )
    # None when not given: a continued fit (--model_path) tells them from its checkpoint's (TINY_DEFAULTS otherwise)
    g.add_argument("--vla_hidden", type=positive_int, default=None, help="width of the tiny preset (default: 64)")
    g.add_argument("--vla_layers", type=positive_int, default=None,
                   help="layers of the tiny preset's SigLIP and Qwen2 (default: 2)")
    g.add_argument(
        "--vla_patch_size",
        type=positive_int,
        default=None,
        help="the tiny preset's SigLIP patch size in pixels (16 at 96x128: the tokens of 8 at 48x64, finer pixels; "
        "default: 8)",
    )
    v = parser.add_argument_group("VLAConfig (a new model's)")
    add_dataclass_arguments(v, VLAConfig, VLA_FLAGS, aliases=VLA_ALIASES, types_=VLA_TYPES, helps=VLA_HELP)
    v.add_argument("--state_keep", nargs="+", type=nonnegative_int, default=None, metavar="INDEX",
                   help="state indices the model reads however --state_dropout hides the rest (ALOHA's grippers: 6 13)")
    v.add_argument("--state_keep_dropout", type=unit_interval, default=None, metavar="P",
                   help="fraction of training samples that do not see the --state_keep values either (run time "
                        "always reads them; against copying the gripper's own motion; default: 0.0)")
    v.add_argument("--camera_dropout", nargs="+", default=None, metavar="CAMERA=P",
                   help="a share P of the training samples does not see CAMERA (run time sees every camera; e.g. "
                        "right_wrist=0.5: the wrist view shows the fingers' opening, which a model copies)")
    g.add_argument(
        "--action_key",
        default=None,
        help="the dataset column to imitate: action (executed; the default) or expert_action (the expert's labels, "
        "e.g. of noise-injected demos: vla-il collect --action-noise); --dagger_mode human_gated imitates "
        "expert_action where every recording has it",
    )
    g.add_argument("--num_workers", type=nonnegative_int, default=None,
                   help="dataloader workers (default: by core count)")
    g.add_argument("--episode_length", type=positive_int, default=400, help="sim episode length (evaluation, rollouts)")


TINY_DEFAULTS = {"vla_hidden": 64, "vla_layers": 2, "vla_patch_size": 8}


def continued_model_conflicts(args: argparse.Namespace, model) -> list[str]:
    """The flags that shape a new model, given with --model_path at values other than its checkpoint's (a continued
    fit keeps the checkpoint's model: such a flag would be ignored), each as `--flag X (the checkpoint's: Y)`."""
    c = model.config
    given: list[tuple[str, Any, Any]] = [
        (f"--{f}", getattr(args, f), getattr(c, f)) for f in VLA_FLAGS if getattr(args, f, None) is not None
    ]
    backbone = {"vla_hidden": model.vision.config.hidden_size, "vla_layers": model.vision.config.num_hidden_layers,
                "vla_patch_size": model.vision.config.patch_size}
    given += [(f"--{f}", getattr(args, f), v) for f, v in backbone.items() if getattr(args, f, None) is not None]
    if getattr(args, "vla", None) is not None:
        given.append(("--vla", args.vla, "tiny" if c.vision_model_name is None else "pretrained"))
    for flag in ("vision_model_name", "llm_model_name"):
        if getattr(args, flag, None) is not None:
            given.append((f"--{flag}", getattr(args, flag), getattr(c, flag)))
    if getattr(args, "cameras", None) is not None:
        given.append(("--cameras", " ".join(args.cameras), " ".join(model.cameras)))
    if getattr(args, "image_size", None) is not None:
        given.append(("--image_size", " ".join(map(str, args.image_size)), " ".join(map(str, model.image_size))))
    if getattr(args, "action_chunk_size", None) is not None:
        given.append(("--action_chunk_size", args.action_chunk_size, model.chunk_size))
    if getattr(args, "state_keep", None) is not None:
        given.append(("--state_keep", " ".join(map(str, args.state_keep)), " ".join(map(str, c.state_keep))))
    if getattr(args, "state_keep_dropout", None) is not None:
        given.append(("--state_keep_dropout", args.state_keep_dropout, c.state_keep_dropout))
    if getattr(args, "camera_dropout", None):
        pairs = camera_dropout_pairs(args.camera_dropout, model.cameras, "--camera_dropout")
        given.append(("--camera_dropout", _pairs_text(pairs), _pairs_text(c.camera_dropout)))
    return [f"{flag} {value} (the checkpoint's: {theirs})" for flag, value, theirs in given
            if str(value) != str(theirs)]


def _pairs_text(pairs: dict[str, float]) -> str:
    return " ".join(f"{cam}={share:g}" for cam, share in sorted(pairs.items())) or "none"


def _is_vla_checkpoint(path: Path | None) -> bool:
    if path is None:
        return False
    for d in (Path(path), Path(path) / "best"):
        if (d / "policy.json").is_file():
            try:
                spec = json.loads((d / "policy.json").read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                return False  # load_checkpoint names the damaged file
            return isinstance(spec, dict) and spec.get("class") == "VLAModel"
    return False


def _has_cameras(root: Path | None) -> bool:
    """Whether the dataset at `root` records images (False where there is none; read_info's ValueError when its
    info.json is damaged)."""
    from training.datasets.lerobot_io import read_info

    if root is None:
        return False
    try:
        features = read_info(root)["features"]
    except FileNotFoundError:
        return False
    return any(isinstance(f, dict) and f.get("dtype") in ("video", "image") for f in features.values())


def asks_for_vla(args: argparse.Namespace) -> bool:
    """--vla, a backbone's name, or a VLA checkpoint to continue."""
    return bool(
        getattr(args, "vla", None)
        or getattr(args, "vision_model_name", None)
        or getattr(args, "llm_model_name", None)
        or _is_vla_checkpoint(args.model_path)
    )


def wants_vla(args: argparse.Namespace) -> bool:
    """The VLA path: asked for, a VLA checkpoint, or a dataset with cameras and no --env (the spec's command)."""
    return asks_for_vla(args) or (args.dataset is not None and args.env is None and _has_cameras(args.dataset))


# the flags only a VLA reads (besides --vla and the backbones' names, which choose the VLA)
VLA_ONLY = (*VLA_FLAGS, *TINY_DEFAULTS, "cameras", "image_size", "state_keep", "state_keep_dropout",
            "camera_dropout", "action_key", "task")


def refuse_vla_flags(args: argparse.Namespace, why: str) -> None:
    """A run that trains the MLP policy refuses the VLA's flags by name instead of ignoring them."""
    given = [f"--{f}" for f in VLA_ONLY if getattr(args, f, None) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: {'flags' if len(given) > 1 else 'a flag'} of the VLA, and this run "
                         f"trains the MLP policy ({why}); give --vla tiny (or a VLA --model_path) to train the VLA, "
                         "or drop them")


def _label_key(args: argparse.Namespace, roots: list[Path], human_gated: bool) -> str:
    """The column the VLA imitates: --action_key; for HG-DAgger the expert's labels where every recording has
    them (the dagger_recorder and `vla-il collect` write expert_action), the executed command otherwise."""
    from training.datasets.lerobot_io import read_info
    from vla_il_core.schema import ACTION, EXPERT_ACTION

    if args.action_key is not None:
        return args.action_key
    if human_gated and all(EXPERT_ACTION in read_info(r)["features"] for r in roots):
        return EXPERT_ACTION
    return ACTION


def run_vla(method: str, args: argparse.Namespace, config: ILConfig,
            provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    from training.checkpoint import load_checkpoint
    from training.datasets.lerobot_dataset import create_lerobot_dataloader, open_recordings
    from training.distributed import init_distributed
    from training.il.behavioral_cloning import VLABehavioralCloning
    from training.il.dagger import VLADAgger
    from training.il.gail import VLAGAIL
    from training.models.vla import VLAModel

    rank, _, _ = init_distributed()
    hg = method == "dagger" and config.dagger_mode == "human_gated"  # from recordings, not the sim expert
    task = args.task or (args.env.split(":", 1)[1] if args.env and args.env.startswith("aloha:") else "transfer_cube")
    if args.action_chunk_size is None:
        config.action_chunk_size = DEFAULT_CHUNK
    model = None
    if args.model_path is not None:
        model, _, _ = load_checkpoint(args.model_path)
        if not isinstance(model, VLAModel):
            raise ValueError(f"{args.model_path} holds a {type(model).__name__}, not a VLAModel")
        conflicts = continued_model_conflicts(args, model)
        if conflicts:
            raise ValueError(f"--model_path {args.model_path} continues that model as it is: {'; '.join(conflicts)}; "
                             "drop these flags, or train a new model without --model_path")
        config.action_chunk_size = model.chunk_size
    pretrained = bool(args.vision_model_name or args.llm_model_name or args.vla == "pretrained")
    sizes = [f"--{f} {getattr(args, f)}" for f in TINY_DEFAULTS if getattr(args, f) is not None]
    if model is None and pretrained and sizes:
        raise ValueError(f"{', '.join(sizes)}: the tiny preset's size; a pretrained VLA takes its size from its "
                         "backbones (--vision_model_name, --llm_model_name)")
    train_ds = val_ds = None
    if args.dataset is not None:
        roots = [args.dataset, *args.extra_dataset]
        cams = model.cameras if model is not None else args.cameras
        size = model.image_size if model is not None else args.image_size
        common = dict(
            chunk_size=config.action_chunk_size,
            cameras=cams,
            val_fraction=config.bc_validation_split,
            seed=config.seed,
            image_size=size,
            action_key=_label_key(args, roots, hg),
            # HG-DAgger: the expert's segments (or every expert-labelled frame), each chunk within its segment
            labels=config.dagger_labels if hg else "all",
        )
        train_ds = open_recordings(roots, "train", **common)
        if hg and len(train_ds) == 0:
            raise ValueError(f"no expert labels in the training episodes of {', '.join(map(str, roots))} (no frame "
                             "there was expert-driven: nothing for HG-DAgger to learn)")
        # a recording of one episode has none to spare for validation
        val_roots = [p.root for p in getattr(train_ds, "parts", [train_ds]) if p.meta.total_episodes > 1]
        if config.bc_validation_split > 0 and val_roots:
            val_ds = open_recordings(val_roots, "val", **common)
    if model is None:
        if train_ds is None:
            raise ValueError("a new VLA needs --dataset (its cameras, state and action sizes); or give --model_path")
        shape = dict(
            action_dim=train_ds.action_dim,
            state_dim=train_ds.state_dim,
            cameras=train_ds.cameras,
            image_size=train_ds.image_size,
            chunk_size=config.action_chunk_size,
            **{f: getattr(args, f) for f in VLA_FLAGS if getattr(args, f) is not None and f != "aux_state_weight"},
        )
        if args.state_keep:
            bad = [i for i in args.state_keep if i >= train_ds.state_dim]
            if bad:
                raise ValueError(f"--state_keep {' '.join(map(str, bad))}: the dataset's state has "
                                 f"{train_ds.state_dim} values (indices 0..{train_ds.state_dim - 1})")
            shape["state_keep"] = tuple(args.state_keep)
        if args.state_keep_dropout is not None:
            if not args.state_keep:
                raise ValueError("--state_keep_dropout drops the --state_keep values: give --state_keep")
            shape["state_keep_dropout"] = args.state_keep_dropout
        if args.camera_dropout:
            shape["camera_dropout"] = camera_dropout_pairs(args.camera_dropout, train_ds.cameras, "--camera_dropout")
        if args.aux_state_weight:
            if not train_ds.env_state_dim:
                raise ValueError(f"--aux_state_weight: {args.dataset} has no observation.environment_state")
            shape.update(aux_state_dim=train_ds.env_state_dim, aux_state_weight=args.aux_state_weight)
        if pretrained:
            model = VLAModel(
                args.vision_model_name or "google/siglip-base-patch16-224",
                args.llm_model_name or "Qwen/Qwen2-1.5B-Instruct",
                **shape,
            )
        else:
            tiny = {f: TINY_DEFAULTS[f] if getattr(args, f) is None else getattr(args, f) for f in TINY_DEFAULTS}
            model = VLAModel.tiny(
                hidden=tiny["vla_hidden"], layers=tiny["vla_layers"], patch_size=tiny["vla_patch_size"], **shape
            )
    if rank == 0:
        counts = model.parameter_counts()
        print(
            f"VLA: {counts['total'] / 1e6:.2f} M parameters ({counts['trainable'] / 1e6:.2f} M trainable), "
            f"cameras {', '.join(model.cameras)} at {model.image_size[0]}x{model.image_size[1]}, "
            f"chunk {model.chunk_size}" + (f"; data: {train_ds.describe()}" if train_ds is not None else "")
        )
    eval_task = task if model.action_dim == 14 else None  # the ALOHA sim evaluates 14-d policies
    name = " + ".join(str(d) for d in [args.dataset, *args.extra_dataset]) if args.dataset else None
    loader = lambda ds, shuffle=True, weights=None: create_lerobot_dataloader(  # noqa: E731
        ds, config.batch_size, shuffle=shuffle, num_workers=args.num_workers, seed=config.seed, weights=weights
    )
    if method == "bc" or hg:
        if train_ds is None:
            raise ValueError(f"VLA {'HG-DAgger' if hg else 'BC'} needs --dataset")
        weights = None
        if hg:
            drove = train_ds.expert_drove()
            provenance = {**(provenance or {}), "dagger_labels": config.dagger_labels, "labels": len(train_ds),
                          "expert_driven_labels": int(drove.sum()), "datasets": [str(r) for r in roots]}
            if config.intervention_weight != 1.0 and not drove.all():  # labels 'expert': the segments drawn more
                weights = np.where(drove, config.intervention_weight, 1.0)
                provenance["intervention_weight"] = config.intervention_weight
            if rank == 0:
                print(f"HG-DAgger: {len(train_ds)} labels ({int(drove.sum())} of them expert-driven) from "
                      f"{len(roots)} recording(s), imitating {common['action_key']}")
        trainer = VLABehavioralCloning(
            model, config, dataset_name=name, eval_task=eval_task, eval_episode_length=args.episode_length,
            provenance=provenance, run_name="vla_hg_dagger" if hg else "vla_bc",
        )
        result = trainer.train(loader(train_ds, weights=weights), loader(val_ds, False) if val_ds is not None else None)
        trainer.close()
    elif method == "dagger":
        result = VLADAgger(
            model,
            config,
            task,
            dataset=train_ds,
            val_dataset=val_ds,
            dataset_name=name,
            episode_length=args.episode_length,
            provenance=provenance,
        ).train()["final"]
    else:
        trainer = VLAGAIL(model, config, task, dataset_name=name, episode_length=args.episode_length,
                          provenance=provenance)
        expert_data = train_ds if train_ds is not None else expert_rollouts(model, task, config, args.episode_length)
        result = trainer.train(loader(expert_data))
    if rank == 0:
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.output_dir) / "results.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def expert_rollouts(model, task: str, config: ILConfig, episode_length: int):
    """num_expert_episodes of the scripted expert, seen through the model's cameras (GAIL without a dataset)."""
    import numpy as np

    from sim.aloha.env import AlohaEnv
    from sim.experts import make_expert
    from training.il.vla_rollouts import RolloutDataset, VLASimPolicy, collect_labelled_episodes

    data = RolloutDataset(model.cameras, model.chunk_size)
    env = AlohaEnv(task, cameras=model.cameras, image_size=model.image_size, episode_length=episode_length)
    try:
        collect_labelled_episodes(
            env,
            VLASimPolicy(model),
            make_expert(task),
            config.num_expert_episodes,
            1.0,
            config.seed,
            np.random.default_rng(config.seed),
            data,
        )
    finally:
        env.close()
    return data
