"""GAIL (Ho & Ermon, 2016): a discriminator tells expert (s, a) from the policy's; PPO maximises
the reward r(s, a) = -log(1 - D(s, a)) * gail_reward_scale.

    python training/il/gail.py --env CartPole-v1 --num_expert_episodes 50 --total_timesteps 100000 \
        --gail_disc_hidden_dim 256 --gail_disc_updates 5 --output_dir ./output/gail

Reads top to bottom, CleanRL style: expert demonstrations -> (optional BC warm start) -> loop:
rollout -> discriminator updates -> GAIL rewards -> GAE -> clipped PPO epochs -> evaluate, save.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.checkpoint import save_checkpoint
from training.config import ILConfig
from training.demonstrations import Demonstrations
from training.envs import action_info, make_env
from training.il.behavioral_cloning import BehavioralCloning, TrainingError, resolve_device
from training.metrics import MetricsLogger
from training.models.policies import ActorCritic, MLPPolicy
from training.rollouts import PolicyActor, run_episodes


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


class GAIL:
    def __init__(self, env=None, config: ILConfig | None = None, policy: ActorCritic | MLPPolicy | None = None,
                 use_wandb: bool | None = None, env_name: str | None = None) -> None:
        self.config = config or ILConfig.gail()
        if use_wandb is not None:
            self.config.use_wandb = use_wandb
        self.env_name = env_name or (env.spec.id if env is not None and env.spec is not None else None)
        self.env = env if env is not None else make_env(env_name)
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
        self.logger = MetricsLogger(self.output_dir, "gail", self.config.use_wandb, self.config.to_dict())
        self.best_return = -math.inf

    @property
    def policy(self) -> MLPPolicy:
        return self.ac.actor

    # ------------------------------------------------------------------ the algorithm
    def train(self, expert_policy=None, num_expert_episodes: int | None = None, total_timesteps: int | None = None,
              expert_demonstrations: Demonstrations | None = None) -> dict[str, Any]:
        from tqdm import tqdm

        c = self.config
        total = total_timesteps or c.total_timesteps
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
        exp_obs = torch.as_tensor(expert_demonstrations.obs, device=self.device).float()
        exp_act = torch.as_tensor(expert_demonstrations.actions, device=self.device)
        exp_s, exp_a = self._disc_inputs(exp_obs, exp_act)

        if self.warm_started or c.gail_bc_warmstart_epochs:
            # the warm-started actor is the first candidate for best/: PPO must beat it, not replace it
            self._save({**self.evaluate(), "env_steps": 0})
        policy_opt = torch.optim.Adam(self.ac.parameters(), lr=c.learning_rate, eps=1e-5)
        disc_opt = torch.optim.Adam(self.disc.parameters(), lr=c.gail_disc_lr)
        obs, _ = self.env.reset(seed=c.seed)
        episode_return, finished_returns, steps, update = 0.0, [], 0, 0
        bar = tqdm(total=total, desc="GAIL env steps", unit="step")
        result: dict[str, Any] = {}
        while steps < total:
            # 1. rollout with the stochastic policy
            n = min(c.ppo_rollout_steps, total - steps)
            buf = {k: [] for k in ("obs", "raw", "env_act", "logp", "value", "done", "bootstrap")}
            for _ in range(n):
                obs_t = torch.as_tensor(np.asarray(obs, np.float32)[None], device=self.device)
                with torch.no_grad():
                    dist = self.ac.distribution(obs_t)
                    raw = dist.sample()
                    logp = dist.log_prob(raw) if self.discrete else dist.log_prob(raw).sum(-1)
                    value = self.ac.value(obs_t)
                    env_action = self.ac.to_env(raw)[0].cpu().numpy()
                if self.discrete:
                    step_action = int(env_action)
                else:
                    step_action = np.clip(env_action, self.env.action_space.low, self.env.action_space.high)
                next_obs, env_reward, terminated, truncated, _ = self.env.step(step_action)
                buf["obs"].append(np.asarray(obs, np.float32))
                buf["raw"].append(raw[0].cpu().numpy())
                buf["env_act"].append(np.asarray(step_action, np.float32 if not self.discrete else np.int64))
                buf["logp"].append(float(logp))
                buf["value"].append(float(value))
                buf["done"].append(bool(terminated))
                # On a time-limit cut, bootstrap from the value of the state the episode did not finish in.
                boot = 0.0
                if truncated and not terminated:
                    with torch.no_grad():
                        boot = float(self.ac.value(torch.as_tensor(np.asarray(next_obs, np.float32)[None],
                                                                   device=self.device)))
                buf["bootstrap"].append(boot)
                episode_return += float(env_reward)
                steps += 1
                if terminated or truncated:
                    finished_returns.append(episode_return)
                    episode_return = 0.0
                    next_obs, _ = self.env.reset()
                obs = next_obs
            bar.update(n)
            t = {k: torch.as_tensor(np.array(v), device=self.device) for k, v in buf.items()}
            pol_s, pol_a = self._disc_inputs(t["obs"], t["env_act"])

            # 2. discriminator: expert -> 1, policy -> 0
            disc_losses, acc_e, acc_p = [], 0.0, 0.0
            for _ in range(c.gail_disc_updates):
                idx_e = torch.randint(0, len(exp_s), (min(len(exp_s), len(pol_s)),), device=self.device)
                s_e, a_e, s_p, a_p = exp_s[idx_e], exp_a[idx_e], pol_s, pol_a
                if c.gail_disc_noise > 0:
                    s_e, a_e, s_p, a_p = (x + torch.randn_like(x) * c.gail_disc_noise for x in (s_e, a_e, s_p, a_p))
                le, lp = self.disc.logits(s_e, a_e), self.disc.logits(s_p, a_p)
                bce = nn.functional.binary_cross_entropy_with_logits
                loss = bce(le, torch.ones_like(le)) + bce(lp, torch.zeros_like(lp))
                disc_opt.zero_grad()
                loss.backward()
                disc_opt.step()
                disc_losses.append(loss.item())
                acc_e, acc_p = (le > 0).float().mean().item(), (lp < 0).float().mean().item()

            # 3. GAIL rewards and GAE
            with torch.no_grad():
                rewards = self.disc.get_reward(pol_s, pol_a) * c.gail_reward_scale
                rewards = rewards + c.ppo_gamma * t["bootstrap"]
                last_value = self.ac.value(torch.as_tensor(np.asarray(obs, np.float32)[None], device=self.device))[0]
            advantages = gae(rewards, t["value"].float(), t["done"], last_value, c.ppo_gamma, c.ppo_gae_lambda)
            returns = advantages + t["value"].float()

            # 4. PPO: clipped surrogate + value loss, ppo_epochs over minibatches
            pol_losses = []
            critic_only = update < c.gail_value_warmup_updates  # a fresh critic's advantages are noise
            for _ in range(c.ppo_epochs):
                for mb in torch.randperm(n, device=self.device).split(c.ppo_minibatch_size):
                    dist = self.ac.distribution(t["obs"][mb])
                    logp = dist.log_prob(t["raw"][mb]) if self.discrete else dist.log_prob(t["raw"][mb]).sum(-1)
                    loss, _ = ppo_loss(logp, t["logp"][mb].float(), advantages[mb], self.ac.value(t["obs"][mb]),
                                       returns[mb], c.ppo_clip_range, c.ppo_value_coef,
                                       c.ppo_entropy_coef, dist.entropy())
                    if critic_only:
                        loss = c.ppo_value_coef * ((self.ac.value(t["obs"][mb]) - returns[mb]) ** 2).mean()
                    elif c.gail_bc_coef > 0:
                        e = torch.randint(0, len(exp_obs), (len(mb),), device=self.device)
                        loss = loss + c.gail_bc_coef * self._bc_loss(exp_obs[e], exp_act[e])
                    if not torch.isfinite(loss):
                        raise TrainingError(f"the PPO loss became {loss.item()} after {steps} env steps")
                    policy_opt.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(self.ac.parameters(), 0.5)
                    policy_opt.step()
                    pol_losses.append(loss.item())
            update += 1
            result = {"train/loss": float(np.mean(pol_losses)), "disc_loss": float(np.mean(disc_losses)),
                      "disc_acc_expert": acc_e, "disc_acc_policy": acc_p,
                      "gail_reward": float(rewards.mean()), "env_steps": steps}
            if finished_returns:
                result["rollout/mean_reward"] = float(np.mean(finished_returns[-10:]))
            if update % 5 == 0 or steps >= total:
                result.update(self.evaluate())
                self._save(result)
            self.logger.log(steps, result)
            bar.set_postfix({k: round(v, 2) for k, v in result.items() if k in ("mean_reward", "disc_loss")})
        bar.close()
        self.logger.plot()
        self.logger.close()
        return result

    # ------------------------------------------------------------------ pieces
    def _disc_inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised states (clipped as the actor clips them: a state far outside the demonstrations must not
        dominate the discriminator), and actions as one-hot (discrete) or normalised (continuous)."""
        actor = self.ac.actor
        s = actor.normalize_obs(obs.float())
        if self.discrete:
            a = nn.functional.one_hot(actions.long().reshape(-1), self.action_dim).float()
        else:
            a = (actions.float().reshape(len(obs), -1) - actor.act_mean) / actor.act_std
        return s, a

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
        n = self.config.eval_episodes if episodes is None else episodes
        if n == 0:
            return {}
        actor = PolicyActor(self.ac.actor, device=self.device)  # the mean / most likely action
        _, stats = run_episodes(self.env, n, actor, seed=10_000, reset=actor.reset)
        return {"mean_reward": stats["mean_reward"], "success_rate": stats["success_rate"]}

    def _save(self, metrics: dict[str, Any]) -> None:
        self.config.extra.setdefault("env", self.env_name)
        extra = {"discriminator": self.disc, "critic": self.ac.critic}
        save_checkpoint(self.output_dir / "last", self.ac.actor, self.config, metrics, extra)
        # without evaluation (eval_episodes 0) every save is the best so far: best/ is the latest policy
        if metrics.get("mean_reward", -math.inf) >= self.best_return:
            self.best_return = metrics.get("mean_reward", -math.inf)
            save_checkpoint(self.output_dir / "best", self.ac.actor, self.config, metrics, extra)


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
        gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimation over one rollout (dones: the episode ended after that step)."""
    adv = torch.zeros_like(rewards)
    running = torch.zeros((), device=rewards.device)
    for i in reversed(range(len(rewards))):
        next_value = last_value if i == len(rewards) - 1 else values[i + 1]
        not_done = 1.0 - dones[i].float()
        delta = rewards[i] + gamma * next_value * not_done - values[i]
        running = delta + gamma * lam * not_done * running
        adv[i] = running
    return adv


def ppo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, values: torch.Tensor,
             returns: torch.Tensor, clip: float, value_coef: float, entropy_coef: float,
             entropy: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate (advantages normalised per minibatch) + value loss - entropy bonus."""
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8) if len(advantages) > 1 else advantages
    ratio = (logp - old_logp).exp()
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    ent = entropy.sum(-1) if entropy.dim() > 1 else entropy
    loss = -surrogate.mean() + value_coef * ((values - returns) ** 2).mean() - entropy_coef * ent.mean()
    return loss, {"clip_fraction": float(((ratio - 1).abs() > clip).float().mean())}


def main(argv: list[str] | None = None) -> int:
    from training.cli import run_il_cli

    return run_il_cli("gail", argv)


if __name__ == "__main__":
    raise SystemExit(main())
