"""The imitation trainers for the VLA: the same BC / DAgger / GAIL, fed by LeRobot dataloaders.

    trainer = VLABehavioralCloning(model=model, config=ILConfig.behavioral_cloning(), use_wandb=False,
                                   dataset_name="transfer_cube")
    trainer.train(dataloader)                          # bc_epochs; best/ and last/ like BC's

VLABehavioralCloning *is* BehavioralCloning (same fit loop, early stopping, metrics, checkpoints);
only its data source (dataloaders), its evaluation (success in the simulated ALOHA) and its
distribution (DistributedDataParallel under torchrun: a sampler per rank, metrics averaged over
ranks, files written by rank 0) differ. VLADAgger aggregates expert-labelled sim rollouts with the
dataset and refits; VLAGAIL runs GAIL's discriminator + PPO with the VLA as the actor.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from training.config import ILConfig
from training.datasets.lerobot_dataset import create_lerobot_dataloader
from training.il.behavioral_cloning import BehavioralCloning, TrainingError
from training.il.dagger import get_beta
from training.il.vla_rollouts import RolloutDataset, VLASimPolicy, collect_labelled_episodes
from training.models.vla import VLAModel


# ---------------------------------------------------------------------- distribution
def init_distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); joins the process group torchrun / accelerate describe in the env."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def all_mean(value: float) -> float:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


class _PolicyLoss(nn.Module):
    """DDP wraps a module's forward: this one's forward is the policy's loss."""

    def __init__(self, policy: VLAModel) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.policy.loss(batch)


def _to_device(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


# ---------------------------------------------------------------------- BC
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
    ) -> None:
        self.rank, self.world, local_rank = init_distributed()
        config = config or ILConfig.behavioral_cloning()
        if config.device == "auto" and torch.cuda.is_available():
            config.device = f"cuda:{local_rank}"
        super().__init__(env=None, config=config, policy=model, use_wandb=use_wandb, run_name=run_name)
        self.dataset_name, self.eval_task, self.eval_episode_length = dataset_name, eval_task, eval_episode_length
        self.config.extra.update(
            {"dataset": dataset_name, "task": eval_task, "policy": "vla", "world_size": self.world}
        )
        self.env_name = f"aloha:{eval_task}" if eval_task else None
        self._ddp: nn.Module | None = None
        # A model from a checkpoint keeps its statistics; a fresh one takes the dataset's.
        self._normalized = not bool((model.state_std == 1).all() and (model.state_mean == 0).all())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def train(self, dataloader, val_dataloader=None) -> dict[str, Any]:
        """bc_epochs over `dataloader`, validating on `val_dataloader`; best/ and last/ in output_dir."""
        return self.fit((dataloader, val_dataloader), self.config.bc_epochs)

    def prepare(self, data) -> None:
        train_dl, val_dl = data if isinstance(data, tuple) else (data, None)
        if len(train_dl.dataset) == 0:
            raise TrainingError("no frames to train on (an empty dataset or split)")
        self._train, self._val = train_dl, val_dl
        self.labels_used = len(train_dl.dataset)
        if not self._normalized:
            stats = _dataset_stats(train_dl.dataset)
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

    def _batches(self, loader, shuffle: bool):
        sampler = getattr(loader, "sampler", None)
        if shuffle and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.step)  # a new order every epoch, the same on every rank
        for batch in loader:
            yield _to_device(batch, self.device)

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


def fit_vla(
    data: torch.utils.data.Dataset,
    output_dir: Path,
    *,
    cameras: tuple[str, ...],
    image_size: tuple[int, int],
    chunk_size: int,
    epochs: int,
    task: str,
    learning_rate: float = 1e-3,
    lr_schedule: str = "cosine",
    batch_size: int = 32,
    seed: int = 0,
    previous: Path | None = None,
    backbones: tuple[str, str] | None = None,
    **tuning: Any,
) -> tuple[Path, int]:
    """BC of a VLA on `data` (AlohaDataset / RolloutDataset items, or a ConcatDataset of them): vision only
    (state dropout 1.0: the robot state is never read, so the policy finds the cube in the image instead of
    reading the arm's progress off its joints), the last epoch of a cosine schedule. The model: the tiny
    preset with 16-pixel patches (the README's VLA table), or `backbones` (SigLIP, Qwen2: hub ids or local
    directories, through from_pretrained) tuned as `tuning` says (freeze_vision, lora_rank, ...); or
    `previous` (a checkpoint) continued. Returns (the checkpoint, the number of labelled frames)."""
    from training.checkpoint import load_checkpoint

    config = ILConfig.behavioral_cloning(
        bc_epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, lr_schedule=lr_schedule,
        action_chunk_size=chunk_size, bc_validation_split=0.0, bc_early_stopping=False, eval_episodes=0,
        seed=seed, output_dir=str(output_dir), use_wandb=False,
    )
    torch.manual_seed(seed)
    shape = dict(cameras=tuple(cameras), image_size=tuple(image_size), chunk_size=chunk_size, state_dropout=1.0)
    if previous is not None:
        model = load_checkpoint(previous)[0]
    elif backbones is not None:
        model = VLAModel(backbones[0], backbones[1], action_dim=14, state_dim=14, **shape, **tuning)
    else:
        model = VLAModel.tiny(patch_size=16, **shape)
    trainer = VLABehavioralCloning(model, config, use_wandb=False, eval_task=task)
    trainer.train(create_lerobot_dataloader(data, batch_size, seed=seed))
    trainer.close()
    return Path(output_dir) / "best", len(data)


def _dataset_stats(dataset) -> dict[str, np.ndarray] | None:
    for ds in getattr(dataset, "datasets", [dataset]):  # a ConcatDataset: the LeRobot part has the stats
        if hasattr(ds, "stats"):
            return ds.stats()
    return None


def evaluate_in_sim(model: VLAModel, task: str, episodes: int, seed: int, config: ILConfig, episode_length: int = 400):
    from sim.evaluation import evaluate

    policy = VLASimPolicy(model, temporal_ensembling=config.temporal_aggregation, k=config.temporal_aggregation_k)
    env_kwargs = {
        "cameras": model.cameras,
        "image_size": model.image_size,
        "clamp_actions": True,
        "episode_length": episode_length,
    }
    return evaluate(
        task,
        lambda _task: policy,
        range(seed, seed + episodes),
        policy_name="vla",
        env_kwargs=env_kwargs,
        progress=False,
    )


# ---------------------------------------------------------------------- DAgger
class VLADAgger:
    """DAgger with the VLA: roll out in the sim (the expert's action with probability beta), let the ALOHA
    scripted expert label every visited state, aggregate with the dataset, refit (bc_epochs)."""

    def __init__(
        self,
        model: VLAModel,
        config: ILConfig | None = None,
        task: str = "transfer_cube",
        dataset: torch.utils.data.Dataset | None = None,
        val_dataset=None,
        expert=None,
        use_wandb: bool | None = None,
        dataset_name: str | None = None,
        episode_length: int = 400,
    ) -> None:
        from sim.experts import make_expert

        self.config = config or ILConfig.dagger()
        self.bc = VLABehavioralCloning(
            model,
            self.config,
            use_wandb,
            dataset_name,
            eval_task=task,
            run_name="vla_dagger",
            eval_episode_length=episode_length,
        )
        self.task, self.dataset, self.val_dataset = task, dataset, val_dataset
        self.expert = expert or make_expert(task)
        self.episode_length = episode_length
        # the rollouts batch with the dataset's items: with its object poses when it has them (sim recordings)
        with_env_state = bool(getattr(dataset, "env_state_dim", 0))
        self.rollouts = RolloutDataset(model.cameras, model.chunk_size, env_state=with_env_state)
        self.history: list[dict[str, Any]] = []

    @property
    def policy(self) -> VLAModel:
        return self.bc.policy

    def train(self) -> dict[str, Any]:
        from tqdm import trange

        from sim.aloha.env import AlohaEnv

        c, model = self.config, self.policy
        env = AlohaEnv(
            self.task,
            cameras=model.cameras,
            image_size=model.image_size,
            clamp_actions=True,
            episode_length=self.episode_length,
        )
        rng = np.random.default_rng(c.seed + self.bc.rank)
        val_dl = create_lerobot_dataloader(self.val_dataset, c.batch_size, shuffle=False) if self.val_dataset else None
        try:
            for i in trange(c.dagger_iterations, desc="VLA DAgger iterations", disable=not self.bc.is_main):
                beta = get_beta(i, c.dagger_beta_schedule, c.dagger_initial_beta, c.dagger_iterations)
                policy = VLASimPolicy(model, temporal_ensembling=c.temporal_aggregation, k=c.temporal_aggregation_k)
                seed = c.seed + 1000 * (i + 1) + 100 * self.bc.rank  # each rank visits its own episodes
                stats = collect_labelled_episodes(
                    env, policy, self.expert, c.dagger_episodes_per_iter, beta, seed, rng, self.rollouts
                )
                parts = [d for d in (self.dataset, self.rollouts) if d is not None and len(d)]
                data = torch.utils.data.ConcatDataset(parts)
                loader = create_lerobot_dataloader(data, c.batch_size, seed=c.seed + i)
                result = self.bc.fit(
                    (loader, val_dl),
                    c.bc_epochs,
                    extra_metrics={
                        "dagger/beta": beta,
                        "dagger/iteration": i,
                        "dagger/dataset_size": len(data),
                        "dagger/expert_labels": len(self.rollouts),
                        "dagger/rollout_success_rate": stats["success_rate"],
                    },
                )
                self.history.append(result)
        finally:
            env.close()
            self.bc.close()
        return {"history": self.history, "final": self.history[-1] if self.history else {}}


# ---------------------------------------------------------------------- GAIL
class VLAGAIL:
    """GAIL with the VLA as PPO's actor (a Gaussian around its first action, a value head on its action
    queries) and a discriminator over (pooled visual features | state, action)."""

    def __init__(
        self,
        model: VLAModel,
        config: ILConfig | None = None,
        task: str = "transfer_cube",
        use_wandb: bool | None = None,
        dataset_name: str | None = None,
        episode_length: int = 400,
    ) -> None:
        from training.il.gail import Discriminator
        from training.metrics import MetricsLogger

        self.config = config or ILConfig.gail()
        if use_wandb is not None:
            self.config.use_wandb = use_wandb
        self.rank, self.world, _ = init_distributed()
        if self.world > 1:
            raise TrainingError("VLAGAIL runs in one process (its rollouts are sequential); use torchrun for BC/DAgger")
        self.device = (
            "cuda"
            if self.config.device == "auto" and torch.cuda.is_available()
            else ("cpu" if self.config.device == "auto" else self.config.device)
        )
        torch.manual_seed(self.config.seed)
        self.model = model.to(self.device)
        self.task, self.episode_length = task, episode_length
        hidden = model.action_queries.shape[1]
        self.log_std = nn.Parameter(torch.full((model.action_dim,), -1.0, device=self.device))
        self.value_head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)).to(self.device)
        feat_dim = model.vision.config.hidden_size * len(model.cameras)
        self.disc = Discriminator(feat_dim + model.state_dim, model.action_dim, self.config.gail_disc_hidden_dim).to(
            self.device
        )
        self.config.extra.update({"dataset": dataset_name, "task": task, "policy": "vla"})
        self.output_dir = Path(self.config.output_dir)
        self.logger = MetricsLogger(self.output_dir, "vla_gail", self.config.use_wandb, self.config.to_dict())
        self.best_return = -math.inf

    @property
    def policy(self) -> VLAModel:
        return self.model

    def _dist_and_value(self, batch: dict[str, Any]):
        from torch.distributions import Normal

        state, images, ids, mask = self.model.prepare(batch)
        cond = self.model.query_states(state, images, ids, mask)
        mean = (
            self.model.head(cond)[:, 0]
            if self.model.config.action_head == "regression"
            else self.model.head.sample(cond, self.model.config.flow_steps)[:, 0]
        )
        return Normal(mean, self.log_std.exp()), self.value_head(cond.mean(1)).squeeze(-1)

    def _disc_inputs(self, batch: dict[str, Any], action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state, images, _, _ = self.model.prepare(batch)
        s = torch.cat([self.model.visual_features(images), (state - self.model.state_mean) / self.model.state_std], -1)
        return s, (action - self.model.action_mean) / self.model.action_std

    def train(self, expert_dataloader, total_timesteps: int | None = None) -> dict[str, Any]:
        from tqdm import tqdm

        from sim.aloha.env import AlohaEnv
        from training.checkpoint import save_checkpoint
        from training.il.gail import gae, ppo_loss
        from training.il.vla_rollouts import observation_batch

        c, m = self.config, self.model
        total = total_timesteps or c.total_timesteps
        stats = _dataset_stats(expert_dataloader.dataset)
        if stats is not None and bool((m.state_std == 1).all()):
            m.set_normalization(**stats)
        expert_iter = iter(expert_dataloader)
        params = [p for p in m.parameters() if p.requires_grad] + [self.log_std, *self.value_head.parameters()]
        policy_opt = torch.optim.Adam(params, lr=c.learning_rate, eps=1e-5)
        disc_opt = torch.optim.Adam(self.disc.parameters(), lr=c.gail_disc_lr)
        env = AlohaEnv(
            self.task,
            cameras=m.cameras,
            image_size=m.image_size,
            clamp_actions=True,
            episode_length=self.episode_length,
        )
        obs, info = env.reset(seed=c.seed)
        steps, update, result = 0, 0, {}
        bar = tqdm(total=total, desc="VLA GAIL env steps", unit="step")
        try:
            while steps < total:
                n = min(c.ppo_rollout_steps, total - steps)
                frames, raws, logps, values, dones = [], [], [], [], []
                m.eval()
                for _ in range(n):  # 1. rollout with the stochastic policy
                    batch = observation_batch(m, obs, info["instruction"])
                    with torch.no_grad():
                        d, v = self._dist_and_value(_to_device(batch, self.device))
                        raw = d.sample()
                    env_action = (raw * m.action_std + m.action_mean)[0].cpu().numpy().astype(np.float64)
                    frames.append(batch)
                    raws.append(raw[0])
                    logps.append(d.log_prob(raw).sum(-1)[0])
                    values.append(v[0])
                    obs, _r, terminated, truncated, info = env.step(env_action)
                    dones.append(terminated or truncated)
                    steps += 1
                    if terminated or truncated:
                        obs, info = env.reset()
                bar.update(n)
                pol = _to_device(_stack_frames(frames), self.device)
                raw_t, logp_t, value_t = torch.stack(raws), torch.stack(logps), torch.stack(values)
                done_t = torch.as_tensor(dones, device=self.device)
                with torch.no_grad():
                    pol_s, pol_a = self._disc_inputs(pol, raw_t * m.action_std + m.action_mean)
                disc_losses = []
                for _ in range(c.gail_disc_updates):  # 2. discriminator: expert -> 1, policy -> 0
                    try:
                        exp = next(expert_iter)
                    except StopIteration:
                        expert_iter = iter(expert_dataloader)
                        exp = next(expert_iter)
                    exp = _to_device(exp, self.device)
                    with torch.no_grad():
                        exp_s, exp_a = self._disc_inputs(exp, exp["action"][:, 0].float())
                    le, lp = self.disc.logits(exp_s, exp_a), self.disc.logits(pol_s, pol_a)
                    bce = nn.functional.binary_cross_entropy_with_logits
                    loss = bce(le, torch.ones_like(le)) + bce(lp, torch.zeros_like(lp))
                    disc_opt.zero_grad()
                    loss.backward()
                    disc_opt.step()
                    disc_losses.append(loss.item())
                with torch.no_grad():  # 3. GAIL rewards, GAE
                    rewards = self.disc.get_reward(pol_s, pol_a) * c.gail_reward_scale
                    _, last_value = self._dist_and_value(
                        _to_device(observation_batch(m, obs, info["instruction"]), self.device)
                    )
                adv = gae(rewards, value_t, done_t, last_value[0], c.ppo_gamma, c.ppo_gae_lambda)
                returns = adv + value_t
                m.train()
                pol_losses = []
                for _ in range(c.ppo_epochs):  # 4. PPO
                    for mb in torch.randperm(n, device=self.device).split(c.ppo_minibatch_size):
                        sub = {
                            k: (v[mb] if torch.is_tensor(v) else [v[i] for i in mb.tolist()]) for k, v in pol.items()
                        }
                        d, v = self._dist_and_value(sub)
                        logp = d.log_prob(raw_t[mb]).sum(-1)
                        loss, _ = ppo_loss(
                            logp,
                            logp_t[mb],
                            adv[mb],
                            v,
                            returns[mb],
                            c.ppo_clip_range,
                            c.ppo_value_coef,
                            c.ppo_entropy_coef,
                            d.entropy(),
                        )
                        if not torch.isfinite(loss):
                            raise TrainingError(f"the PPO loss became {loss.item()} after {steps} env steps")
                        policy_opt.zero_grad()
                        loss.backward()
                        nn.utils.clip_grad_norm_(params, 0.5)
                        policy_opt.step()
                        pol_losses.append(loss.item())
                update += 1
                result = {
                    "train/loss": float(np.mean(pol_losses)),
                    "disc_loss": float(np.mean(disc_losses)),
                    "gail_reward": float(rewards.mean()),
                    "env_steps": steps,
                }
                if update % 5 == 0 or steps >= total:
                    if c.eval_episodes:
                        r = evaluate_in_sim(m, self.task, c.eval_episodes, 100_000, c, self.episode_length)
                        result.update({"success_rate": r.success_rate, "mean_reward": r.summary()["mean_max_reward"]})
                    extra = {"discriminator": self.disc, "value_head": self.value_head}
                    save_checkpoint(self.output_dir / "last", m, c, result, extra)
                    if result.get("mean_reward", -result["train/loss"]) >= self.best_return:
                        self.best_return = result.get("mean_reward", -result["train/loss"])
                        save_checkpoint(self.output_dir / "best", m, c, result, extra)
                self.logger.log(steps, result)
        finally:
            bar.close()
            env.close()
            self.logger.plot()
            self.logger.close()
        return result


def _stack_frames(frames: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in frames[0]:
        if key == "task":
            out[key] = [t for f in frames for t in f[key]]
        else:
            out[key] = torch.cat([f[key] for f in frames])
    return out
