"""Behavioral Cloning: supervised learning of the expert's actions (the specification's Algorithm 1).

    python training/il/behavioral_cloning.py --env CartPole-v1 --bc_epochs 100 --batch_size 64 \
        --learning_rate 1e-4 --output_dir ./output/bc
    python training/il/behavioral_cloning.py --dataset ./data/transfer_cube --env aloha:transfer_cube ...

Reads top to bottom: demonstrations (from an expert or a dataset) -> optional filtering -> split by
episode -> epochs of minibatch updates with validation -> evaluation in the env -> best/ and last/.
Any ILPolicy trains here (the MLP, a chunking policy, the VLA through its own data path).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from training.checkpoint import save_checkpoint
from training.config import ILConfig
from training.demonstrations import Demonstrations
from training.distributed import all_mean, init_distributed
from training.envs import action_info, make_env
from training.metrics import MetricsLogger
from training.models.policies import ILPolicy, MLPPolicy
from training.rollouts import PolicyActor, run_episodes

if TYPE_CHECKING:
    from training.models.vla import VLAModel


@dataclass
class _WeightAverage:
    """The exponential moving average of a fit's trainable weights (ILConfig.ema_decay)."""

    params: list[torch.nn.Parameter]
    average: list[torch.Tensor]
    decay: float
    updates: int = 0


class TrainingError(RuntimeError):
    """A run that cannot go on (NaN loss, no data): nothing saved before it is touched."""


def resolve_device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def new_policy(config: ILConfig, obs_dim: int, action_dim: int, discrete: bool) -> MLPPolicy:
    """A fresh MLP policy of `config`'s shape (hidden size, chunk, residual, ensemble)."""
    return MLPPolicy(obs_dim, action_dim, discrete, config.hidden_dim, config.action_chunk_size,
                     residual=config.action_residual, members=config.ensemble_size)


class BehavioralCloning:
    """BC on an env (expert rollouts or given demonstrations), for any ILPolicy."""

    def __init__(self, env=None, config: ILConfig | None = None, policy: ILPolicy | None = None,
                 use_wandb: bool | None = None, env_name: str | None = None, run_name: str = "bc",
                 provenance: dict[str, Any] | None = None) -> None:
        self.config = config or ILConfig.behavioral_cloning()
        # what the run trains on (dataset, the checkpoint it started from, ...): saved as provenance.json
        self.provenance: dict[str, Any] = dict(provenance or {})
        if use_wandb is not None:
            self.config.use_wandb = use_wandb
        self.env_name = env_name or (env.spec.id if env is not None and env.spec is not None else None)
        self.env = env if env is not None else (make_env(env_name) if env_name else None)
        self.device = resolve_device(self.config.device)
        torch.manual_seed(self.config.seed)
        given_policy = policy is not None
        if policy is None:
            if self.env is None:
                raise ValueError("BehavioralCloning needs an env or a policy")
            discrete, action_dim = action_info(self.env)
            policy = new_policy(self.config, int(np.prod(self.env.observation_space.shape)), action_dim, discrete)
        self.policy = policy.to(self.device)
        self.output_dir = Path(self.config.output_dir)
        self.logger: MetricsLogger | None = None
        self.run_name = run_name
        self.step = 0  # optimiser steps so far (the x axis of every metric)
        self._fit_span: tuple[int, int] | None = None  # (epoch, epochs) while fit() runs an epoch
        self.labels_used = 0  # (state, action) pairs in the last fit
        self.best_score = -math.inf
        self._optimizer: torch.optim.Optimizer | None = None
        self._ema: _WeightAverage | None = None  # while a fit with ema_decay > 0 runs
        # A loaded policy keeps its statistics; a fresh one (default buffers) gets them from the data.
        self._normalized = given_policy and isinstance(policy, MLPPolicy) and not (
            bool((policy.obs_mean == 0).all()) and bool((policy.obs_std == 1).all()))
        self._train: Demonstrations | None = None
        self._val: Demonstrations | None = None

    # ------------------------------------------------------------------ public API (the specification's)
    def train(self, expert_policy=None, demonstrations: Demonstrations | None = None,
              num_expert_episodes: int | None = None) -> dict[str, Any]:
        """Collect expert rollouts (or take `demonstrations`), then fit for bc_epochs."""
        if demonstrations is None:
            if expert_policy is None or self.env is None:
                raise ValueError("train() needs an expert_policy (with an env) or demonstrations")
            n = num_expert_episodes or self.config.num_expert_episodes
            demonstrations, stats = run_episodes(self.env, n, expert_policy, seed=self.config.seed,
                                                 expert=expert_policy, beta=1.0, progress="expert demos")
            self._log({"expert/mean_reward": stats["mean_reward"]})
        return self.fit(demonstrations, self.config.bc_epochs)

    def fit(self, demonstrations: Demonstrations, epochs: int, extra_metrics: dict[str, float] | None = None
            ) -> dict[str, Any]:
        """Prepare the data and train `epochs` epochs; save last/, keep the weights of the epoch with the
        lowest validation loss (early stopping, among the epochs past bc_early_stopping_after of the fit; the
        last epoch's with bc_early_stopping off), evaluate them, and save them as best/ when they beat every
        earlier fit of this trainer (by evaluation return, else by validation loss)."""
        import copy

        from training.progress import trange

        self.prepare(demonstrations)
        result: dict[str, Any] = {}
        best_val, best_state = math.inf, None
        self._ema = self._ema_start()
        try:
            for epoch in trange(epochs, desc=f"{self.run_name} epochs", leave=False):
                self._fit_span = (epoch, epochs)  # train_epoch sets the rate batch by batch from it
                try:
                    result = self.train_epoch()
                finally:
                    self._fit_span = None
                eligible = self.config.bc_early_stopping and epoch + 1 > self.config.bc_early_stopping_after * epochs
                if eligible and result.get("val/loss", math.inf) < best_val:
                    with self._averaged():
                        best_val, best_state = result["val/loss"], copy.deepcopy(self.policy.state_dict())
            if self._ema is not None:  # the fit leaves the average behind: last/, evaluation, the next fit
                self._swap_average()
        finally:
            self._ema = None
        self.save_last(result)
        if best_state is not None:
            self.policy.load_state_dict(best_state)
            result["val/loss"] = best_val
        result.update(self.evaluate())
        extra_metrics = extra_metrics or {}
        result.update(extra_metrics)
        self._log({k: v for k, v in result.items() if k in ("mean_reward", "success_rate") or k in extra_metrics})
        self.save(result)
        return result

    def _set_learning_rate(self, progress: float) -> None:
        """The rate at `progress` (0..1) through the fit: with lr_schedule cosine it falls batch by batch and
        reaches 0 with the fit's last batch, however few its epochs. (It once stepped per epoch: a fit of 2
        epochs ran its last epoch at half the rate, and a VLA continued for 2 epochs fell from 62% to 24%.)"""
        lr = self.config.learning_rate
        if self.config.lr_schedule == "cosine":
            lr *= 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        for group in self._optimizer.param_groups:
            group["lr"] = lr

    def prepare(self, demonstrations: Demonstrations) -> None:
        if len(demonstrations) == 0:
            raise TrainingError("no demonstrations to train on (empty dataset, or everything was filtered out)")
        if self.config.demo_filter_percentile is not None:
            demonstrations = demonstrations.filter_by_return(self.config.demo_filter_percentile)
        self._check_shapes(demonstrations)
        self.labels_used = len(demonstrations)
        self._train, self._val = demonstrations.split(self.config.bc_validation_split, self.config.seed)
        if isinstance(self.policy, MLPPolicy):
            if not self._normalized:
                self.policy.set_normalization(self._train.obs, self._train.actions)
                self._normalized = True
            elif self.config.renormalize:
                # Later fits (DAgger's iterations, fine-tuning) continue training: the statistics follow
                # the data, the network is rescaled so that what it learned is kept.
                self.policy.update_normalization(self._train.obs, self._train.actions)
        if self._optimizer is None:
            self._optimizer = torch.optim.AdamW(self.policy.parameters(), lr=self.config.learning_rate,
                                                weight_decay=self.config.weight_decay)

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training split; returns train/loss and val/loss."""
        if self._train is None:
            raise RuntimeError("call prepare(demonstrations) (or train/fit) first")
        from training.progress import tqdm

        self.policy.train()
        batches = self._batches(self._train, shuffle=True)
        losses = []
        # an epoch of the VLA takes minutes on a CPU: its batches show progress (on the main rank)
        count = self._batch_count(self._train)
        bar = tqdm(batches, desc=f"{self.run_name} epoch", unit="batch", total=count,
                   leave=False, disable=not getattr(self, "is_main", True))
        span, count = self._fit_span, max(count, 1)
        for i, batch in enumerate(bar):
            if span is not None:
                self._set_learning_rate((span[0] + i / count) / span[1])
            loss = self.loss(batch)
            if not torch.isfinite(loss):
                raise TrainingError(f"the loss became {loss.item()} at step {self.step}: lower --learning_rate or "
                                    "check the data for NaN; the checkpoints already saved are untouched")
            self._optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.grad_clip_norm)
            self._optimizer.step()
            self.step += 1
            if self._ema is not None:
                self._ema_update()
            losses.append(loss.item())
            if len(losses) % 50 == 0:
                bar.set_postfix(loss=float(np.mean(losses[-50:])))
        metrics = {"train/loss": float(np.mean(losses))}
        if self._val is not None:
            if self._ema is not None:  # both, so a run shows what the average buys
                metrics["val/loss_trained_weights"] = self.validation_loss()
            with self._averaged():
                metrics["val/loss"] = self.validation_loss()
        self._log(metrics)
        return metrics

    # ------------------------------------------------------------------ the weights' moving average (ema_decay)
    def _ema_start(self) -> _WeightAverage | None:
        """A fresh average of the weights the fit starts from (None with ema_decay 0)."""
        decay = self.config.ema_decay
        if decay <= 0:
            return None
        params = [p for p in self.policy.parameters() if p.requires_grad]
        return _WeightAverage(params, [p.detach().clone() for p in params], decay)

    def _ema_update(self) -> None:
        """After the fit's n-th optimiser step: average += (1 - d) * (weights - average), d = min(ema_decay,
        (1 + n) / (10 + n)) (0.18 after the first step, growing), so the average of a short fit is not mostly its
        start."""
        ema = self._ema
        ema.updates += 1
        d = min(ema.decay, (1 + ema.updates) / (10 + ema.updates))
        with torch.no_grad():
            for a, p in zip(ema.average, ema.params):
                a.lerp_(p.detach(), 1.0 - d)

    def _swap_average(self) -> None:
        """Exchange the weights in the policy with the average (twice: back as they were)."""
        ema = self._ema
        with torch.no_grad():
            for p, a in zip(ema.params, ema.average):
                held = p.detach().clone()
                p.copy_(a)
                a.copy_(held)

    @contextlib.contextmanager
    def _averaged(self):
        """The average's weights in the policy inside the block (the trained ones without ema_decay)."""
        if self._ema is None:
            yield
            return
        self._swap_average()
        try:
            yield
        finally:
            self._swap_average()

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of one batch (a subclass routes it through DistributedDataParallel)."""
        return self.policy.loss(batch)

    @torch.no_grad()
    def validation_loss(self) -> float:
        self.policy.eval()
        losses = [self.policy.loss(b).item() for b in self._batches(self._val, shuffle=False)]
        return float(np.mean(losses))

    def evaluate(self, episodes: int | None = None, seed: int = 10_000) -> dict[str, float]:
        """Mean return (and success rate) of the current policy in the env, on held-out seeds."""
        n = self.config.eval_episodes if episodes is None else episodes
        if self.env is None or n == 0:
            return {}
        actor = self.actor()
        _, stats = run_episodes(self.env, n, actor, seed=seed, reset=actor.reset, progress="evaluate")
        return {"mean_reward": stats["mean_reward"], "success_rate": stats["success_rate"]}

    def actor(self) -> PolicyActor:
        c = self.config
        return PolicyActor(self.policy, c.temporal_aggregation, c.temporal_aggregation_k, device=self.device)

    def save_last(self, metrics: dict[str, Any]) -> None:
        save_checkpoint(self.output_dir / "last", self.policy, self.config, metrics, provenance=self._provenance())

    def save(self, metrics: dict[str, Any]) -> None:
        """best/ when this policy is the best so far (evaluation return, else -val/loss); the curves."""
        score = metrics.get("mean_reward", -metrics.get("val/loss", metrics.get("train/loss", math.inf)))
        if score >= self.best_score:
            self.best_score = score
            save_checkpoint(self.output_dir / "best", self.policy, self.config, metrics,
                            provenance=self._provenance())
        if self.logger is not None:
            self.logger.plot()

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()

    # ------------------------------------------------------------------ helpers
    def _provenance(self) -> dict[str, Any]:
        return {"env": self.env_name, **self.provenance}

    def _log(self, values: dict[str, float]) -> None:
        if self.logger is None:
            self.logger = MetricsLogger(self.output_dir, self.run_name, self.config.use_wandb, self.config.to_dict())
        if values:
            self.logger.log(self.step, values)

    def _check_shapes(self, demos: Demonstrations) -> None:
        policy = self.policy
        obs_dim = getattr(policy, "obs_dim", None)
        if obs_dim is not None and demos.obs.shape[1] != obs_dim:
            raise TrainingError(f"the demonstrations' observations have {demos.obs.shape[1]} values, "
                                f"the policy expects {obs_dim}")
        if not policy.discrete and demos.actions.shape[1:] != (policy.action_dim,):
            raise TrainingError(f"the demonstrations' actions have shape {demos.actions.shape[1:]}, the policy "
                                f"(and env) act with {policy.action_dim} values")
        if not np.all(np.isfinite(demos.obs)) or (not policy.discrete and not np.all(np.isfinite(demos.actions))):
            raise TrainingError("the demonstrations contain NaN or infinite values")

    def _batch_count(self, demos: Demonstrations) -> int:
        return math.ceil(len(demos) / self.config.batch_size)

    def _batches(self, demos: Demonstrations, shuffle: bool):
        targets, mask = demos.chunk_targets(self.policy.chunk_size)
        n = len(demos)
        order = np.random.default_rng(self.step).permutation(n) if shuffle else np.arange(n)
        bs = self.config.batch_size
        obs_t = torch.as_tensor(demos.obs, device=self.device)
        act_t = torch.as_tensor(targets, device=self.device)
        mask_t = torch.as_tensor(mask, device=self.device)
        for i in range(0, n, bs):
            idx = torch.as_tensor(order[i : i + bs], device=self.device)
            yield {"obs": obs_t[idx], "action": act_t[idx], "mask": mask_t[idx]}


# ---------------------------------------------------------------------- the VLA
@dataclass
class DataLoaders:
    """What VLABehavioralCloning fits (BC's fit loop, its data): a training dataloader, an optional validation one."""

    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader | None = None


class _PolicyLoss(nn.Module):
    """DDP wraps a module's forward: this one's forward is the policy's loss."""

    def __init__(self, policy: ILPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.policy.loss(batch)


def to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}



class VLABehavioralCloning(BehavioralCloning):
    """BC for a VLAModel from dataloaders (the spec's `trainer.train(dataloader)`)."""

    def __init__(
        self,
        model: VLAModel,
        config: ILConfig | None = None,
        use_wandb: bool | None = None,
        dataset_name: str | None = None,
        eval_task: str | None = None,
        run_name: str = "vla_bc",
        eval_episode_length: int = 400,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.rank, self.world, local_rank = init_distributed()
        config = config or ILConfig.behavioral_cloning()
        if config.device == "auto" and torch.cuda.is_available():
            config.device = f"cuda:{local_rank}"
        super().__init__(env=None, config=config, policy=model, use_wandb=use_wandb, run_name=run_name,
                         provenance={"dataset": dataset_name, "task": eval_task, "policy": "vla",
                                     "world_size": self.world, **(provenance or {})})
        self.dataset_name, self.eval_task, self.eval_episode_length = dataset_name, eval_task, eval_episode_length
        self.env_name = f"aloha:{eval_task}" if eval_task else None
        self._ddp: nn.Module | None = None
        # A model from a checkpoint keeps its statistics; a fresh one takes the dataset's.
        self._normalized = not bool((model.state_std == 1).all() and (model.state_mean == 0).all())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def train(self, dataloader, val_dataloader=None) -> dict[str, Any]:
        """bc_epochs over `dataloader`, validating on `val_dataloader`; best/ and last/ in output_dir."""
        return self.fit(DataLoaders(dataloader, val_dataloader), self.config.bc_epochs)

    def prepare(self, data: DataLoaders) -> None:
        """BC's fit loop calls this with its data: here a training dataloader and an optional validation one."""
        if not isinstance(data, DataLoaders):
            raise TypeError(f"VLABehavioralCloning fits DataLoaders(train, val), got {type(data).__name__}")
        train_dl, val_dl = data.train, data.val
        if len(train_dl.dataset) == 0:
            raise TrainingError("no frames to train on (an empty dataset or split)")
        self._train, self._val = train_dl, val_dl
        self.labels_used = len(train_dl.dataset)
        if not self._normalized:
            from training.datasets.lerobot_dataset import dataset_stats

            stats = dataset_stats(train_dl.dataset)
            if stats is not None:
                self.policy.set_normalization(**stats)
            self._normalized = True
        if self._optimizer is None:
            params = [p for p in self.policy.parameters() if p.requires_grad]
            self._optimizer = torch.optim.AdamW(
                params, lr=self.config.learning_rate, weight_decay=self.config.weight_decay
            )
        if self.world > 1 and self._ddp is None:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.policy.device.index] if self.policy.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(_PolicyLoss(self.policy), device_ids=ids)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return self._ddp(batch) if self._ddp is not None else self.policy.loss(batch)

    def _batch_count(self, loader) -> int:
        return len(loader)

    def _batches(self, loader, shuffle: bool):
        sampler = getattr(loader, "sampler", None)
        if shuffle and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.step)  # a new order every epoch, the same on every rank
        for batch in loader:
            yield to_device(batch, self.device)

    def train_epoch(self) -> dict[str, float]:
        metrics = super().train_epoch()
        return {k: all_mean(v) for k, v in metrics.items()}

    @torch.no_grad()
    def validation_loss(self) -> float:
        self.policy.eval()
        losses = [self.policy.loss(b).item() for b in self._batches(self._val, shuffle=False)]
        # Every rank takes the same early-stopping decision from the mean over ranks.
        return all_mean(float(np.mean(losses)) if losses else math.nan)

    def evaluate(self, episodes: int | None = None, seed: int = 100_000) -> dict[str, float]:
        """Success of the VLA in the simulated ALOHA task (rank 0; held-out seeds)."""
        n = self.config.eval_episodes if episodes is None else episodes
        if not self.eval_task or n == 0 or not self.is_main:
            return {}
        from training.il.vla_rollouts import evaluate_in_sim

        result = evaluate_in_sim(self.policy, self.eval_task, n, seed, self.config, self.eval_episode_length)
        lo, hi = result.interval
        return {
            "success_rate": result.success_rate,
            "success_wilson_low": lo,
            "success_wilson_high": hi,
            "mean_reward": result.summary()["mean_max_reward"],
        }

    def save_last(self, metrics: dict[str, Any]) -> None:
        if self.is_main:
            super().save_last(metrics)

    def save(self, metrics: dict[str, Any]) -> None:
        if self.is_main:
            super().save(metrics)

    def _log(self, values: dict[str, float]) -> None:
        if self.is_main:
            super()._log(values)


if __name__ == "__main__":  # `python training/il/behavioral_cloning.py ...`: the CLI (which imports this module)
    from training.cli import run_il_cli

    raise SystemExit(run_il_cli("bc"))
