"""GAIL (Ho & Ermon, 2016): a discriminator tells expert (s, a) from the policy's; PPO maximises
the reward r(s, a) = -log(1 - D(s, a)) * gail_reward_scale.

    python training/il/gail.py --env CartPole-v1 --num_expert_episodes 50 --total_timesteps 100000 \
        --gail_disc_hidden_dim 256 --gail_disc_updates 5 --output_dir ./output/gail

The loop is written once (`GAILLoop`), CleanRL style: rollout in `ppo_num_envs` environments ->
discriminator updates -> GAIL rewards -> GAE -> clipped PPO epochs -> evaluate, save. What differs
between policies is the policy side, a handful of hooks: `GAIL` fills them for an MLP actor-critic on
any gymnasium env, `VLAGAIL` for the VLA in the simulated ALOHA (a Gaussian around its first action,
a value head on its action queries, a discriminator over pooled visual features and the state).

Episode ends: a terminated episode's return ends there; a truncated one (a time limit) is cut, not
ended: its last step bootstraps from the value of the episode's own last observation (the one the
env returned before the reset), and advantages never run from one episode into the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal

from training.checkpoint import save_checkpoint
from training.config import ILConfig
from training.demonstrations import Demonstrations
from training.envs import action_info, make_env
from training.il.behavioral_cloning import BehavioralCloning, TrainingError, resolve_device, to_device
from training.metrics import MetricsLogger
from training.models.policies import ActorCritic, MLPPolicy
from training.rollouts import run_batched_episodes, run_episodes

if TYPE_CHECKING:
    from training.models.vla import VLAModel


class Discriminator(nn.Module):
    """Classifies (state, action) pairs as expert (1) or policy (0) — the specification's network."""

    def __init__(self, state_dim: int, action_dim: int, hidden_dim: int = 256) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(state_dim + action_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
            nn.Linear(hidden_dim, 1),
        )

    def logits(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.network(torch.cat([state, action], dim=-1)).squeeze(-1)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(state, action))

    def forward_with_noise(self, state: torch.Tensor, action: torch.Tensor, noise_scale: float = 0.01) -> torch.Tensor:
        """Regularisation against an overconfident discriminator (the spec's best practice)."""
        return self.forward(state + torch.randn_like(state) * noise_scale,
                            action + torch.randn_like(action) * noise_scale)

    def get_reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """GAIL reward: -log(1 - D(s, a))."""
        d = self.forward(state, action)
        return -torch.log(1 - d + 1e-8)


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
        ended: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimation over a rollout, time first ((T,) or (T, envs)).

    next_values[t]: the value of the observation step t led to in the same episode (for a truncated
    step, the episode's own last observation; ignored for a terminated one). terminated[t]: the return
    ends after step t (no bootstrap). ended[t]: the episode ended after step t, terminated or
    truncated: the advantage does not run on into the next episode's steps."""
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_values[t] * (1.0 - terminated[t].float()) - values[t]
        running = delta + gamma * lam * (1.0 - ended[t].float()) * running
        adv[t] = running
    return adv


def ppo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, values: torch.Tensor,
             returns: torch.Tensor, clip: float, value_coef: float, entropy_coef: float,
             entropy: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate (advantages normalised per minibatch) + value loss - entropy bonus."""
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8) if len(advantages) > 1 else advantages
    ratio = (logp - old_logp).exp()
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    ent = entropy.sum(-1) if entropy.dim() > 1 else entropy
    value_loss = ((values - returns) ** 2).mean()
    loss = -surrogate.mean() + value_coef * value_loss - entropy_coef * ent.mean()
    return loss, {"clip_fraction": float(((ratio - 1).abs() > clip).float().mean()),
                  "policy_loss": float(-surrogate.mean()), "value_loss": float(value_loss),
                  "entropy": float(ent.mean())}


@dataclass
class Rollout:
    """One rollout of `steps` steps in each of `envs` environments; per-step tensors are time-major
    ((steps, envs)); `obs`, `raw` and `env_actions` hold the steps * envs samples flat, in the same order."""

    obs: Any  # the policy side's batch of observations
    raw: torch.Tensor  # sampled actions in the actor's units
    env_actions: torch.Tensor  # the same actions in the environment's units
    logp: torch.Tensor
    values: torch.Tensor
    next_values: torch.Tensor
    terminated: torch.Tensor
    ended: torch.Tensor
    finished_returns: list[float] = field(default_factory=list)
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None  # the discriminator's inputs, once computed

    @property
    def size(self) -> int:
        return int(self.values.numel())


class GAILLoop:
    """GAIL's algorithm for any policy. A subclass provides the policy side: the hooks below."""

    config: ILConfig
    device: str
    disc: Discriminator
    envs: list
    provenance: dict[str, Any]  # what the run trains on: saved as provenance.json beside each checkpoint
    run_name = "gail"

    # ------------------------------------------------------------------ the policy side (hooks)
    def observe(self, observations: list, infos: list) -> Any:
        """A batch of env observations, as the policy reads them."""
        raise NotImplementedError

    def forward(self, batch: Any) -> tuple[torch.distributions.Distribution, torch.Tensor]:
        """The action distribution (in the actor's units) and the value of every observation."""
        raise NotImplementedError

    def log_prob(self, dist: torch.distributions.Distribution, raw: torch.Tensor) -> torch.Tensor:
        return dist.log_prob(raw).sum(-1)

    def env_actions(self, raw: torch.Tensor) -> torch.Tensor:
        """Samples -> actions in the environment's units (what the discriminator sees and the env gets)."""
        raise NotImplementedError

    def step_action(self, env_action: np.ndarray) -> Any:
        return env_action

    def disc_inputs(self, batch: Any, env_actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The discriminator's (state features, action) for observations and actions."""
        raise NotImplementedError

    def expert_disc_inputs(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """About `size` expert pairs as discriminator inputs."""
        raise NotImplementedError

    def expert_bc_loss(self, size: int) -> torch.Tensor:
        """The actor's imitation loss on about `size` expert pairs (gail_bc_coef)."""
        raise NotImplementedError

    def select(self, batch: Any, index: torch.Tensor) -> Any:
        return batch[index]

    def concat(self, batches: list) -> Any:
        return torch.cat(batches)

    def trainable_parameters(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def set_training(self, mode: bool) -> None:
        pass

    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        raise NotImplementedError

    def checkpoint_modules(self) -> dict[str, nn.Module]:
        """Saved beside the policy (the discriminator, the critic)."""
        raise NotImplementedError

    @property
    def policy(self) -> nn.Module:
        raise NotImplementedError

    # ------------------------------------------------------------------ the loop
    def _start(self) -> None:
        c = self.config
        self._obs, self._info = [], []
        for i, env in enumerate(self.envs):
            obs, info = env.reset(seed=c.seed + i)
            self._obs.append(obs)
            self._info.append(info)
        self._episode_return = [0.0] * len(self.envs)

    @torch.no_grad()
    def collect_rollout(self, steps: int) -> Rollout:
        """`steps` steps of the stochastic policy in every env (episodes reset as they end)."""
        self.set_training(False)
        n_envs = len(self.envs)
        batches, raws, env_acts, logps, values = [], [], [], [], []
        terminated = torch.zeros(steps, n_envs, dtype=torch.bool)
        truncated = torch.zeros(steps, n_envs, dtype=torch.bool)
        finals: list[tuple[int, int, Any, Any]] = []  # (step, env, last observation, info) of truncated episodes
        finished = []
        for t in range(steps):
            batch = self.observe(self._obs, self._info)
            dist, value = self.forward(batch)
            raw = dist.sample()
            env_action = self.env_actions(raw)
            actions = env_action.cpu().numpy()
            batches.append(batch)
            raws.append(raw)
            env_acts.append(env_action)
            logps.append(self.log_prob(dist, raw))
            values.append(value)
            for i, env in enumerate(self.envs):
                obs, reward, term, trunc, info = env.step(self.step_action(actions[i]))
                self._episode_return[i] += float(reward)
                if term or trunc:
                    terminated[t, i], truncated[t, i] = bool(term), bool(trunc) and not term
                    if truncated[t, i]:
                        finals.append((t, i, obs, info))
                    finished.append(self._episode_return[i])
                    self._episode_return[i] = 0.0
                    obs, info = env.reset()
                self._obs[i], self._info[i] = obs, info
        values_t = torch.stack(values).float()
        ended = terminated | truncated
        next_values = torch.zeros_like(values_t)
        next_values[:-1] = values_t[1:]
        next_values[-1] = self.forward(self.observe(self._obs, self._info))[1].float()  # the rollout is cut here
        if finals:  # a time-limit cut bootstraps from its own episode's last observation, not the next one's first
            final_values = self.forward(self.observe([f[2] for f in finals], [f[3] for f in finals]))[1].float()
            for (t, i, _, _), v in zip(finals, final_values):
                next_values[t, i] = v
        device = values_t.device
        return Rollout(self.concat(batches), torch.cat(raws), torch.cat(env_acts), torch.cat(logps).float(),
                       values_t, next_values, terminated.to(device), ended.to(device), finished)

    def policy_pairs(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """The rollout's (state features, action) as the discriminator reads them: computed once per rollout
        (for the VLA a pass of its vision tower over every frame), for the discriminator's updates and the
        rewards alike."""
        if rollout.pairs is None:
            with torch.no_grad():
                rollout.pairs = self.disc_inputs(rollout.obs, rollout.env_actions)
        return rollout.pairs

    def advantages(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """GAIL rewards for the rollout and their GAE advantages (flat, in the rollout's order)."""
        c = self.config
        s, a = self.policy_pairs(rollout)
        with torch.no_grad():
            rewards = (self.disc.get_reward(s, a) * c.gail_reward_scale).view_as(rollout.values)
        adv = gae(rewards, rollout.values, rollout.next_values, rollout.terminated, rollout.ended,
                  c.ppo_gamma, c.ppo_gae_lambda)
        return rewards.reshape(-1), adv.reshape(-1)

    def update_discriminator(self, rollout: Rollout, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """gail_disc_updates steps: expert pairs -> 1, the rollout's -> 0."""
        c = self.config
        pol_s, pol_a = self.policy_pairs(rollout)
        bce = nn.functional.binary_cross_entropy_with_logits
        losses, acc_e, acc_p = [], 0.0, 0.0
        for _ in range(c.gail_disc_updates):
            s_e, a_e = self.expert_disc_inputs(len(pol_s))
            s_p, a_p = pol_s, pol_a
            if c.gail_disc_noise > 0:
                s_e, a_e, s_p, a_p = (x + torch.randn_like(x) * c.gail_disc_noise for x in (s_e, a_e, s_p, a_p))
            le, lp = self.disc.logits(s_e, a_e), self.disc.logits(s_p, a_p)
            loss = bce(le, torch.ones_like(le)) + bce(lp, torch.zeros_like(lp))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            acc_e, acc_p = (le > 0).float().mean().item(), (lp < 0).float().mean().item()
        return {"disc_loss": float(np.mean(losses)), "disc_acc_expert": acc_e, "disc_acc_policy": acc_p}

    def update_policy(self, rollout: Rollout, advantages: torch.Tensor, optimizer: torch.optim.Optimizer,
                      critic_only: bool) -> dict[str, float]:
        """ppo_epochs of clipped PPO over minibatches (critic only while the critic warms up). Returns the mean
        total loss (train/loss) and its parts: the clipped surrogate, the critic's squared error, the entropy,
        the BC term on expert data (the total alone is mostly the critic's error, which says little)."""
        c = self.config
        returns = advantages + rollout.values.reshape(-1)
        params = self.trainable_parameters()
        self.set_training(True)
        parts: dict[str, list[float]] = {}
        for _ in range(c.ppo_epochs):
            for mb in torch.randperm(rollout.size, device=advantages.device).split(c.ppo_minibatch_size):
                dist, value = self.forward(self.select(rollout.obs, mb))
                if critic_only:  # a fresh critic's advantages are noise: leave the actor alone
                    value_loss = ((value - returns[mb]) ** 2).mean()
                    loss, info = c.ppo_value_coef * value_loss, {"value_loss": float(value_loss)}
                else:
                    loss, info = ppo_loss(self.log_prob(dist, rollout.raw[mb]), rollout.logp[mb], advantages[mb],
                                          value, returns[mb], c.ppo_clip_range, c.ppo_value_coef,
                                          c.ppo_entropy_coef, dist.entropy())
                    if c.gail_bc_coef > 0:
                        bc = self.expert_bc_loss(len(mb))
                        loss, info["bc_loss"] = loss + c.gail_bc_coef * bc, float(bc)
                if not torch.isfinite(loss):
                    raise TrainingError(f"the PPO loss became {loss.item()} (update {self._update})")
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, 0.5)
                optimizer.step()
                for key, value in {"loss": loss.item(), **info}.items():
                    parts.setdefault(f"train/{key}", []).append(value)
        return {key: float(np.mean(values)) for key, values in parts.items()}

    def learn(self, total: int, first_checkpoint: bool = False) -> dict[str, Any]:
        """Run GAIL for `total` env steps; last/ and best/ (by evaluation return; the latest without one)
        every 5 updates and at the end. first_checkpoint: the starting policy is best/'s first candidate."""
        from training.progress import tqdm

        c = self.config
        self._start()
        if first_checkpoint:
            self.save({**self.evaluate(), "env_steps": 0})
        params = self.trainable_parameters()
        # fused: one kernel for all parameters (a fifth of a small network's update time on a CPU)
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float16, torch.bfloat16)
                    for p in [*params, *self.disc.parameters()])
        policy_opt = torch.optim.Adam(params, lr=c.learning_rate, eps=1e-5, fused=fused)
        disc_opt = torch.optim.Adam(self.disc.parameters(), lr=c.gail_disc_lr, fused=fused)
        n_envs = len(self.envs)
        steps, self._update, finished, result = 0, 0, [], {}
        bar = tqdm(total=total, desc=f"{self.run_name} env steps", unit="step")
        try:
            while steps < total:
                per_env = max(1, min(c.ppo_rollout_steps, total - steps) // n_envs)
                rollout = self.collect_rollout(per_env)
                steps += rollout.size
                finished += rollout.finished_returns
                bar.update(rollout.size)
                disc = self.update_discriminator(rollout, disc_opt)
                rewards, adv = self.advantages(rollout)
                losses = self.update_policy(rollout, adv, policy_opt, self._update < c.gail_value_warmup_updates)
                self._update += 1
                result = {**losses, **disc, "gail_reward": float(rewards.mean()), "env_steps": steps}
                if finished:
                    result["rollout/mean_reward"] = float(np.mean(finished[-10:]))
                if self._update % 5 == 0 or steps >= total:
                    result.update(self.evaluate())
                    self.save(result)
                self.logger.log(steps, result)
                bar.set_postfix({k: round(v, 2) for k, v in result.items() if k in ("mean_reward", "disc_loss")})
        finally:
            bar.close()
            self.logger.plot()
            self.logger.close()
        return result

    def save(self, metrics: dict[str, Any]) -> None:
        """last/ always; best/ when the evaluation return is the best so far (without evaluation: the latest)."""
        extra = self.checkpoint_modules()
        save_checkpoint(self.output_dir / "last", self.policy, self.config, metrics, extra, self.provenance)
        score = metrics.get("mean_reward", -math.inf)
        if score >= self.best_return:
            self.best_return = score
            save_checkpoint(self.output_dir / "best", self.policy, self.config, metrics, extra, self.provenance)


# ---------------------------------------------------------------------- an MLP on a gymnasium env
class GAIL(GAILLoop):
    """GAIL for an MLP actor-critic on a gymnasium env (the env given, plus ppo_num_envs - 1 copies)."""

    def __init__(self, env=None, config: ILConfig | None = None, policy: ActorCritic | MLPPolicy | None = None,
                 use_wandb: bool | None = None, env_name: str | None = None,
                 provenance: dict[str, Any] | None = None) -> None:
        self.config = config or ILConfig.gail()
        if use_wandb is not None:
            self.config.use_wandb = use_wandb
        self.env_name = env_name or (env.spec.id if env is not None and env.spec is not None else None)
        self.env = env if env is not None else make_env(env_name)
        self.provenance = {"env": self.env_name, **(provenance or {})}
        self.device = resolve_device(self.config.device)
        torch.manual_seed(self.config.seed)
        self.discrete, self.action_dim = action_info(self.env)
        obs_dim = int(np.prod(self.env.observation_space.shape))
        if isinstance(policy, ActorCritic):
            self.ac = policy
        else:  # a BC policy (warm start) or a fresh actor
            actor = policy or MLPPolicy(obs_dim, self.action_dim, self.discrete, self.config.hidden_dim)
            self.ac = ActorCritic(actor, self.config.hidden_dim, self.config.ppo_init_log_std)
        self.ac.to(self.device)
        self.warm_started = isinstance(policy, MLPPolicy)
        self.disc = Discriminator(obs_dim, self.action_dim, self.config.gail_disc_hidden_dim).to(self.device)
        self.output_dir = Path(self.config.output_dir)
        self.logger = MetricsLogger(self.output_dir, self.run_name, self.config.use_wandb, self.config.to_dict())
        self.best_return = -math.inf
        self.envs = [self.env] + [self._copy_env() for _ in range(self.config.ppo_num_envs - 1)]
        self._eval_envs: list = []

    def _copy_env(self):
        """Another env like the one given: made from its id, or a copy of it (an env without a registered id)."""
        import copy

        return make_env(self.env_name) if self.env_name is not None else copy.deepcopy(self.env)

    @property
    def policy(self) -> MLPPolicy:
        return self.ac.actor

    def train(self, expert_policy=None, num_expert_episodes: int | None = None, total_timesteps: int | None = None,
              expert_demonstrations: Demonstrations | None = None) -> dict[str, Any]:
        c = self.config
        if expert_demonstrations is None:
            if expert_policy is None:
                raise ValueError("GAIL.train needs an expert_policy or expert_demonstrations")
            expert_demonstrations, stats = run_episodes(self.env, num_expert_episodes or c.num_expert_episodes,
                                                        expert_policy, c.seed, expert=expert_policy, beta=1.0,
                                                        progress="expert demos")
            self.logger.log(0, {"expert/mean_reward": stats["mean_reward"]})
        if c.demo_filter_percentile is not None:
            expert_demonstrations = expert_demonstrations.filter_by_return(c.demo_filter_percentile)
        if not self.warm_started:
            self.ac.actor.set_normalization(expert_demonstrations.obs, expert_demonstrations.actions)
        if c.gail_bc_warmstart_epochs:
            self._bc_warm_start(expert_demonstrations)
        self._exp_obs = torch.as_tensor(expert_demonstrations.obs, device=self.device).float()
        self._exp_act = torch.as_tensor(expert_demonstrations.actions, device=self.device)
        self._exp_s, self._exp_a = self.disc_inputs(self._exp_obs, self._exp_act)
        # the warm-started actor is the first candidate for best/: PPO must beat it, not replace it
        return self.learn(total_timesteps or c.total_timesteps,
                          first_checkpoint=self.warm_started or bool(c.gail_bc_warmstart_epochs))

    # ------------------------------------------------------------------ hooks
    def observe(self, observations: list, infos: list) -> torch.Tensor:
        return torch.as_tensor(np.asarray(observations, np.float32).reshape(len(observations), -1),
                               device=self.device)

    def forward(self, obs: torch.Tensor):
        return self.ac.distribution(obs), self.ac.value(obs)

    def log_prob(self, dist, raw: torch.Tensor) -> torch.Tensor:
        return dist.log_prob(raw) if self.discrete else dist.log_prob(raw).sum(-1)

    def env_actions(self, raw: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return raw
        space = self.env.action_space
        low = torch.as_tensor(space.low, device=raw.device, dtype=torch.float32)
        high = torch.as_tensor(space.high, device=raw.device, dtype=torch.float32)
        return torch.maximum(torch.minimum(self.ac.to_env(raw), high), low)

    def step_action(self, env_action: np.ndarray):
        return int(env_action) if self.discrete else env_action

    def disc_inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised states (clipped as the actor clips them: a state far outside the demonstrations must not
        dominate the discriminator), and actions as one-hot (discrete) or normalised (continuous)."""
        actor = self.ac.actor
        s = actor.normalize_obs(obs.float())
        if self.discrete:
            a = nn.functional.one_hot(actions.long().reshape(-1), self.action_dim).float()
        else:
            a = (actions.float().reshape(len(obs), -1) - actor.act_mean) / actor.act_std
        return s, a

    def expert_disc_inputs(self, size: int):
        idx = torch.randint(0, len(self._exp_s), (min(len(self._exp_s), size),), device=self.device)
        return self._exp_s[idx], self._exp_a[idx]

    def expert_bc_loss(self, size: int) -> torch.Tensor:
        e = torch.randint(0, len(self._exp_obs), (size,), device=self.device)
        return self._bc_loss(self._exp_obs[e], self._exp_act[e])

    def trainable_parameters(self):
        return list(self.ac.parameters())

    def set_training(self, mode: bool) -> None:
        self.ac.train(mode)

    def checkpoint_modules(self):
        return {"discriminator": self.disc, "critic": self.ac.critic}

    # ------------------------------------------------------------------ pieces
    def _bc_loss(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The actor's imitation loss on expert pairs (cross-entropy, or MSE in normalised units)."""
        action = actions.reshape(-1, 1) if self.discrete else actions.float().reshape(len(obs), 1, -1)
        batch = {"obs": obs, "action": action, "mask": torch.ones(len(obs), 1, device=self.device)}
        return self.ac.actor.loss(batch)

    def _bc_warm_start(self, demos: Demonstrations) -> None:
        """Pre-train the actor with BC before GAIL (the spec's warm start)."""
        bc_config = ILConfig(**{**self.config.to_dict(), "output_dir": str(self.output_dir / "bc_warmstart"),
                                "eval_episodes": 0, "action_chunk_size": 1, "temporal_aggregation": False})
        bc = BehavioralCloning(self.env, bc_config, self.ac.actor, env_name=self.env_name, run_name="gail_bc")
        bc.fit(demos, self.config.gail_bc_warmstart_epochs)
        bc.close()

    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        """Mean return of the deterministic actor (the mean / most likely action) on held-out seeds, the
        episodes run side by side in up to 8 envs (one batched forward per step)."""
        n = self.config.eval_episodes if episodes is None else episodes
        if n == 0:
            return {}
        if not self._eval_envs:  # envs of its own: the rollout's envs stay mid-episode
            self._eval_envs = [self._copy_env() for _ in range(min(8, n))]
        actor = self.ac.actor

        @torch.no_grad()
        def act(obs: np.ndarray) -> np.ndarray:
            actor.eval()
            return actor.predict(torch.as_tensor(obs, device=self.device))[:, 0].cpu().numpy()

        stats = run_batched_episodes(self._eval_envs, n, act, seed=10_000)
        return {"mean_reward": stats["mean_reward"], "success_rate": stats["success_rate"]}


# ---------------------------------------------------------------------- the VLA in the simulated ALOHA
class VLAGAIL(GAILLoop):
    """GAIL with the VLA as PPO's actor (a Gaussian around its first action, a value head on its action
    queries) and a discriminator over (pooled visual features | state, action), in ppo_num_envs simulated
    ALOHAs.

        trainer = VLAGAIL(model, ILConfig.gail(), task="transfer_cube")
        trainer.train(expert_dataloader)
    """

    run_name = "vla_gail"

    def __init__(self, model: VLAModel, config: ILConfig | None = None, task: str = "transfer_cube",
                 use_wandb: bool | None = None, dataset_name: str | None = None, episode_length: int = 400,
                 provenance: dict[str, Any] | None = None) -> None:
        from training.distributed import init_distributed

        self.config = config or ILConfig.gail()
        if use_wandb is not None:
            self.config.use_wandb = use_wandb
        _, world, _ = init_distributed()
        if world > 1:
            raise TrainingError("VLAGAIL runs in one process (its rollouts are sequential); use torchrun for BC/DAgger")
        self.device = resolve_device(self.config.device)
        torch.manual_seed(self.config.seed)
        self.model = model.to(self.device)
        self.task, self.episode_length = task, episode_length
        hidden = model.action_queries.shape[1]
        self.log_std = nn.Parameter(torch.full((model.action_dim,), -1.0, device=self.device))
        self.value_head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)).to(self.device)
        feat_dim = model.vision.config.hidden_size * len(model.cameras)
        self.disc = Discriminator(feat_dim + model.state_dim, model.action_dim,
                                  self.config.gail_disc_hidden_dim).to(self.device)
        self.provenance = {"dataset": dataset_name, "task": task, "policy": "vla", **(provenance or {})}
        self.output_dir = Path(self.config.output_dir)
        self.logger = MetricsLogger(self.output_dir, self.run_name, self.config.use_wandb, self.config.to_dict())
        self.best_return = -math.inf
        self.envs: list = []

    @property
    def policy(self) -> VLAModel:
        return self.model

    def train(self, expert_dataloader, total_timesteps: int | None = None) -> dict[str, Any]:
        from sim.aloha.env import AlohaEnv
        from training.datasets.lerobot_dataset import dataset_stats

        m = self.model
        stats = dataset_stats(expert_dataloader.dataset)
        if stats is not None and bool((m.state_std == 1).all()):
            m.set_normalization(**stats)
        self._expert_loader, self._expert_iter = expert_dataloader, iter(expert_dataloader)
        self.envs = [AlohaEnv(self.task, cameras=m.cameras, image_size=m.image_size, clamp_actions=True,
                              episode_length=self.episode_length) for _ in range(self.config.ppo_num_envs)]
        try:
            return self.learn(total_timesteps or self.config.total_timesteps)
        finally:
            for env in self.envs:
                env.close()

    # ------------------------------------------------------------------ hooks
    def observe(self, observations: list, infos: list) -> dict[str, Any]:
        from training.il.vla_rollouts import observation_batch, stack_frames

        return to_device(stack_frames([observation_batch(self.model, o, i["instruction"])
                                        for o, i in zip(observations, infos)]), self.device)

    def forward(self, batch: dict[str, Any]):
        m = self.model
        state, images, ids, mask = m.prepare(batch)
        cond = m.query_states(state, images, ids, mask)
        mean = m.head(cond)[:, 0] if m.config.action_head == "regression" else \
            m.head.sample(cond, m.config.flow_steps)[:, 0]
        # the critic reads the actor's features but does not train them: a fresh critic's value error (returns
        # of tens) would otherwise move every weight of the BC-trained trunk, and with it the policy
        return Normal(mean, self.log_std.exp()), self.value_head(cond.detach().mean(1)).squeeze(-1)

    def env_actions(self, raw: torch.Tensor) -> torch.Tensor:
        return raw * self.model.action_std + self.model.action_mean

    def step_action(self, env_action: np.ndarray) -> np.ndarray:
        return env_action.astype(np.float64)

    def disc_inputs(self, batch: dict[str, Any], actions: torch.Tensor):
        m = self.model
        state, images, _, _ = m.prepare(batch)
        s = torch.cat([m.visual_features(images), (state - m.state_mean) / m.state_std], -1)
        return s, (actions - m.action_mean) / m.action_std

    def _expert_batch(self) -> dict[str, Any]:
        try:
            batch = next(self._expert_iter)
        except StopIteration:
            self._expert_iter = iter(self._expert_loader)
            batch = next(self._expert_iter)
        return to_device(batch, self.device)

    def expert_disc_inputs(self, size: int):
        batch = self._expert_batch()  # one batch of the expert dataloader
        with torch.no_grad():
            return self.disc_inputs(batch, batch["action"][:, 0].float())

    def expert_bc_loss(self, size: int) -> torch.Tensor:
        return self.model.loss(self._expert_batch())

    def select(self, batch: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
        rows = index.tolist()
        return {k: (v[index] if torch.is_tensor(v) else [v[i] for i in rows]) for k, v in batch.items()}

    def concat(self, batches: list) -> dict[str, Any]:
        from training.il.vla_rollouts import stack_frames

        return stack_frames(batches)

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad] + [self.log_std,
                                                                           *self.value_head.parameters()]

    def set_training(self, mode: bool) -> None:
        self.model.train(mode)

    def checkpoint_modules(self):
        return {"discriminator": self.disc, "value_head": self.value_head}

    def evaluate(self, episodes: int | None = None) -> dict[str, float]:
        from training.il.vla_rollouts import evaluate_in_sim

        n = self.config.eval_episodes if episodes is None else episodes
        if n == 0:
            return {}
        r = evaluate_in_sim(self.model, self.task, n, 100_000, self.config, self.episode_length)
        return {"success_rate": r.success_rate, "mean_reward": r.summary()["mean_max_reward"]}


if __name__ == "__main__":  # `python training/il/gail.py ...`: the CLI (which imports this module) runs it
    from training.cli import run_il_cli

    raise SystemExit(run_il_cli("gail"))
