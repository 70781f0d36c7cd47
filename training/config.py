"""ILConfig: every hyperparameter of the imitation-learning side, with the specification's defaults.

One dataclass for BC, DAgger and GAIL (the specification's `config.training_config.ILConfig`),
validated at construction, saved as JSON (and YAML) beside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BETA_SCHEDULES = ("constant", "linear", "exponential")
DAGGER_MODES = ("online", "human_gated")
DAGGER_LABELS = ("intervention", "expert")
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class ILConfig:
    # --- Behavioral Cloning ---
    bc_epochs: int = 100
    bc_validation_split: float = 0.1
    # keep the weights of the epoch with the lowest validation loss (True), or the last epoch's (False; with
    # lr_schedule cosine the rate has annealed to 0 by then). On a validation split of a few short correction
    # segments the lowest loss can come in the first epochs, long before the policy is good: restrict it to
    # the later epochs with bc_early_stopping_after
    bc_early_stopping: bool = True
    bc_early_stopping_after: float = 0.0  # only epochs past this fraction of the fit may be kept
    # --- training ---
    learning_rate: float = 1e-4
    batch_size: int = 64
    weight_decay: float = 0.01
    grad_clip_norm: float = 1.0
    # cosine: every fit anneals the learning rate to 0 over its epochs (a settled last iterate instead of
    # one of Adam's noisy ones: less spread between runs)
    lr_schedule: str = "constant"
    # > 0: keep an exponential moving average of the weights (this decay per optimiser step) beside the trained
    # ones; validation, early stopping, the saved checkpoints and what a fit leaves behind are the average's.
    # 0: the weights as trained
    ema_decay: float = 0.0
    hidden_dim: int = 256  # width of the MLP policies
    # BC / DAgger / HG-DAgger: an ensemble of this many MLPs, each fit on its own, outputs averaged (less
    # run-to-run swing of a fit; costs this many times the compute)
    ensemble_size: int = 1
    action_residual: bool = False  # MLP: predict actions relative to the joint positions at the start of the state
    renormalize: bool = True  # MLP: refresh the normalisation statistics on every fit (function-preserving)
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    # --- DAgger ---
    dagger_iterations: int = 10
    dagger_episodes_per_iter: int = 20
    dagger_beta_schedule: str = "linear"
    dagger_initial_beta: float = 1.0
    dagger_initial_episodes: int = 0  # expert episodes that seed D0 (0: the first iteration, beta=1, does)
    # online: the specification's DAgger (roll out, the expert labels every state); human_gated:
    # HG-DAgger from recorded datasets (the dagger_recorder's), whose labels are the expert's frames
    dagger_mode: str = "online"
    dagger_labels: str = "intervention"  # human_gated: intervention (expert-driven frames) | expert (every label)
    intervention_weight: float = 1.0  # human_gated: expert-driven frames count this many times (oversampled)
    # --- GAIL ---
    gail_disc_hidden_dim: int = 256
    gail_disc_updates: int = 5
    gail_disc_lr: float = 3e-4
    gail_reward_scale: float = 1.0
    gail_disc_noise: float = 0.0  # std of Gaussian noise on discriminator inputs (regularisation)
    gail_bc_warmstart_epochs: int = 0  # BC epochs on the demonstrations before GAIL (warm start)
    gail_value_warmup_updates: int = 0  # first PPO updates train the critic only (keeps a warm-started actor)
    # weight of a BC loss on the demonstrations added to every PPO minibatch: when the warm-started policy is
    # already expert-like the discriminator has no signal and PPO alone random-walks away from it
    gail_bc_coef: float = 0.0
    num_expert_episodes: int = 50
    total_timesteps: int = 100_000
    # --- PPO (the policy optimiser inside GAIL) ---
    ppo_epochs: int = 4
    ppo_clip_range: float = 0.2
    ppo_gae_lambda: float = 0.95
    ppo_gamma: float = 0.99
    ppo_rollout_steps: int = 2048  # env steps per PPO update, over all the envs
    ppo_num_envs: int = 1  # environments stepped side by side (one batched policy forward per step for all)
    ppo_minibatch_size: int = 64
    ppo_value_coef: float = 0.5
    ppo_entropy_coef: float = 0.0
    ppo_init_log_std: float = -0.5  # continuous actions: initial log std of the Gaussian (normalised units)
    # --- best practices ---
    action_chunk_size: int = 1  # predict this many future actions (ACT-style chunking)
    temporal_aggregation: bool = False  # blend overlapping chunks with exponential weights
    temporal_aggregation_k: float = 0.01  # weight exp(-k * i), i = 0 for the oldest prediction (ACT)
    demo_filter_percentile: float | None = None  # keep demonstrations at or above this return percentile
    # --- evaluation and output ---
    eval_episodes: int = 20
    output_dir: str = "./output/il"
    use_wandb: bool = False

    def __post_init__(self) -> None:
        positive_ints = ("bc_epochs", "batch_size", "hidden_dim", "ensemble_size", "dagger_iterations",
                         "dagger_episodes_per_iter", "gail_disc_hidden_dim", "gail_disc_updates", "num_expert_episodes",
                         "total_timesteps", "ppo_epochs", "ppo_rollout_steps", "ppo_num_envs", "ppo_minibatch_size",
                         "action_chunk_size")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ILConfig.{name} must be a positive integer, got {value!r}")
        for name in ("dagger_initial_episodes", "gail_bc_warmstart_epochs", "gail_value_warmup_updates",
                     "eval_episodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"ILConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if not self.gail_bc_coef >= 0:
            raise ValueError(f"ILConfig.gail_bc_coef must be >= 0, got {self.gail_bc_coef!r}")
        for name in ("learning_rate", "gail_disc_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ILConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.bc_early_stopping_after < 1.0:
            raise ValueError(f"ILConfig.bc_early_stopping_after must be in [0, 1), got {self.bc_early_stopping_after}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ILConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.bc_validation_split < 1.0:
            raise ValueError(f"ILConfig.bc_validation_split must be in [0, 1), got {self.bc_validation_split}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"ILConfig.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.dagger_beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"ILConfig.dagger_beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, "
                             f"got {self.dagger_beta_schedule!r}")
        if self.dagger_mode not in DAGGER_MODES:
            raise ValueError(f"ILConfig.dagger_mode must be one of {', '.join(DAGGER_MODES)}, got {self.dagger_mode!r}")
        if self.dagger_labels not in DAGGER_LABELS:
            raise ValueError(f"ILConfig.dagger_labels must be one of {', '.join(DAGGER_LABELS)}, "
                             f"got {self.dagger_labels!r}")
        if not self.intervention_weight >= 1.0:
            raise ValueError(f"ILConfig.intervention_weight must be >= 1, got {self.intervention_weight}")
        if not 0.0 <= self.dagger_initial_beta <= 1.0:
            raise ValueError(f"ILConfig.dagger_initial_beta must be in [0, 1], got {self.dagger_initial_beta}")
        for name in ("ppo_clip_range", "ppo_gae_lambda", "ppo_gamma"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"ILConfig.{name} must be in (0, 1], got {getattr(self, name)}")
        if self.weight_decay < 0 or self.gail_disc_noise < 0 or self.gail_reward_scale <= 0:
            raise ValueError("ILConfig: weight_decay and gail_disc_noise must be >= 0, gail_reward_scale > 0")
        if self.demo_filter_percentile is not None and not 0 <= self.demo_filter_percentile <= 100:
            raise ValueError(f"ILConfig.demo_filter_percentile must be in [0, 100], got {self.demo_filter_percentile}")
        if self.temporal_aggregation and self.action_chunk_size < 2:
            raise ValueError("ILConfig.temporal_aggregation needs action_chunk_size >= 2")

    # --- the specification's named constructors ---
    @classmethod
    def behavioral_cloning(cls, **overrides: Any) -> ILConfig:
        return cls(**{"output_dir": "./output/bc", **overrides})

    @classmethod
    def dagger(cls, **overrides: Any) -> ILConfig:
        return cls(**{"bc_epochs": 20, "output_dir": "./output/dagger", **overrides})

    @classmethod
    def gail(cls, **overrides: Any) -> ILConfig:
        return cls(**{"learning_rate": 3e-4, "output_dir": "./output/gail", **overrides})

    # --- persistence: the config travels with every checkpoint ---
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2))
        try:
            import yaml

            (directory / "config.yaml").write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        except ImportError:  # pragma: no cover - pyyaml is in the lock
            pass
        return path

    @classmethod
    def load(cls, path: Path) -> ILConfig:
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        data = json.loads(path.read_text())
        data.pop("extra", None)  # checkpoints written before provenance.json kept it here (read_provenance)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown ILConfig fields {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]
