"""Policies for the imitation trainers, behind one small interface the VLA implements too.

`ILPolicy` (what BC and DAgger need):
    loss(batch) -> scalar      batch: obs (B, obs_dim), action (B, chunk, ...), mask (B, chunk)
    predict(obs) -> actions    (B, chunk, act_dim) continuous, or (B, chunk) discrete indices
    spec() -> dict             enough to rebuild the module: saved beside every checkpoint
Normalisation of observations and actions lives inside the module (buffers), so a checkpoint and
an exported ONNX graph carry it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal


def mlp(inp: int, hidden: int, out: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    dim = inp
    for _ in range(layers):
        mods += [nn.Linear(dim, hidden), nn.ReLU()]
        dim = hidden
    mods.append(nn.Linear(dim, out))
    return nn.Sequential(*mods)


def binary_actions(actions: np.ndarray) -> dict[str, np.ndarray]:
    """Action dimensions the data only ever sets to two values (a gripper commanded open or closed), or to one
    (a gripper the task never opens: transfer_cube's left), with those values (low = high for one); rows are
    actions (at least 20 of them for a dimension to count). A regression head's near-constant output for a
    constant dimension strays past it (the sim then clamps at the joint limit and warns in every evaluation,
    the mux on a robot fires its joint_limit rule): snapped, it is the value demonstrated."""
    actions = np.asarray(actions).reshape(len(actions), -1)
    dim = actions.shape[1]
    mask, low, high = np.zeros(dim, dtype=bool), np.zeros(dim), np.zeros(dim)
    if len(actions) >= 20:
        for d in range(dim):
            values = np.unique(actions[:, d])
            if len(values) <= 2:
                mask[d], low[d], high[d] = True, values[0], values[-1]
    return {"binary_mask": mask, "binary_low": low, "binary_high": high}


class ILPolicy(nn.Module):
    """Base: normalisation buffers and the interface."""

    discrete: bool
    chunk_size: int

    # ------------------------------------------------------------------ binary actions (grippers)
    # An action dimension the demonstrations only set to two values snaps to the nearer one: a regressed
    # half-closed gripper drops what it holds.
    _BINARY = ("binary_mask", "binary_low", "binary_high")

    def _register_binary_actions(self, dim: int) -> None:
        self.register_buffer("binary_mask", torch.zeros(dim, dtype=torch.bool))
        self.register_buffer("binary_low", torch.zeros(dim))
        self.register_buffer("binary_high", torch.zeros(dim))

    def set_binary_actions(self, binary_mask, binary_low, binary_high) -> None:
        """The values of `binary_actions(...)`."""
        self.binary_mask.copy_(torch.as_tensor(np.asarray(binary_mask, dtype=bool).reshape(-1)))
        self.binary_low.copy_(torch.as_tensor(np.asarray(binary_low, dtype=np.float32).reshape(-1)))
        self.binary_high.copy_(torch.as_tensor(np.asarray(binary_high, dtype=np.float32).reshape(-1)))

    def snap_binary(self, action: torch.Tensor) -> torch.Tensor:
        snapped = torch.where(action > (self.binary_low + self.binary_high) / 2, self.binary_high, self.binary_low)
        return torch.where(self.binary_mask, snapped, action)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints from before binary actions were detected: no dimension is binary
        if "binary_mask" in self._buffers:
            for name in self._BINARY:
                state_dict.setdefault(prefix + name, getattr(self, name).clone().zero_())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError


def _robust_stats(x: np.ndarray, floor: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std of x clipped to its 1st..99th percentiles; std at least `floor`."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.percentile(x, [1, 99], axis=0)
    clipped = np.clip(x, lo, hi)
    return clipped.mean(0), np.maximum(clipped.std(0), floor)


class MLPPolicy(ILPolicy):
    """An MLP from a state vector to one action or a chunk of actions; discrete or continuous."""

    # Normalised inputs are clipped to this many standard deviations of the training data: a feature
    # that hardly moved in the demonstrations (the cube's tilt) would otherwise put a knocked cube at
    # hundreds of sigmas and the output anywhere (seen: DAgger validation loss 36-55 after one round).
    OBS_CLIP = 5.0

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, hidden_dim: int = 256,
                 chunk_size: int = 1, layers: int = 2, residual: bool = False, members: int = 1) -> None:
        super().__init__()
        if not isinstance(members, int) or members < 1:
            raise ValueError(f"members: a positive number of networks, got {members!r}")
        if residual and (discrete or obs_dim < action_dim):
            raise ValueError("a residual policy needs continuous actions and the action's own values at the start "
                             f"of the observation (obs_dim {obs_dim} >= action_dim {action_dim})")
        # residual: actions are predicted relative to the first action_dim observation entries (joint
        # positions -> joint targets): the net learns where to move, not where the arm already is
        self.residual = residual
        self.obs_dim, self.action_dim, self.discrete = obs_dim, action_dim, discrete
        self.hidden_dim, self.chunk_size, self.layers = hidden_dim, chunk_size, layers
        # members > 1: an ensemble of networks of the same shape, each fit to the data on its own (its own
        # initialisation, the same batches), whose outputs are averaged: one fit's run-to-run swing shrinks
        self.members = members
        if members == 1:
            self.net = mlp(obs_dim, hidden_dim, chunk_size * action_dim, layers)
        else:
            self.nets = nn.ModuleList(mlp(obs_dim, hidden_dim, chunk_size * action_dim, layers) for _ in range(members))
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        act_norm_dim = 1 if discrete else action_dim
        self.register_buffer("act_mean", torch.zeros(act_norm_dim))
        self.register_buffer("act_std", torch.ones(act_norm_dim))
        self._register_binary_actions(act_norm_dim)

    def spec(self) -> dict[str, Any]:
        return {"class": "MLPPolicy", "obs_dim": self.obs_dim, "action_dim": self.action_dim,
                "discrete": self.discrete, "hidden_dim": self.hidden_dim, "chunk_size": self.chunk_size,
                "layers": self.layers, "residual": self.residual, "members": self.members}

    def networks(self) -> list[nn.Sequential]:
        """The member networks (one unless this is an ensemble)."""
        return [self.net] if self.members == 1 else list(self.nets)

    def set_normalization(self, obs: np.ndarray, actions: np.ndarray | None = None) -> None:
        """Statistics from the training data: robust to a few wild values (computed on the data clipped to
        its 1st..99th percentiles: one episode whose cube fell hundreds of metres must not squash every
        other cube height to nothing), std floored so constant features do not explode."""
        mean, std = _robust_stats(obs)
        self.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(std, dtype=torch.float32))
        if actions is not None and not self.discrete:
            flat = actions.reshape(len(obs), -1, self.action_dim)
            if self.residual:
                flat = flat - obs[:, None, : self.action_dim]
            mean, std = _robust_stats(flat.reshape(-1, self.action_dim))
            self.act_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.act_std.copy_(torch.as_tensor(std, dtype=torch.float32))
            self.set_binary_actions(**binary_actions(actions.reshape(-1, self.action_dim)))

    @torch.no_grad()
    def update_normalization(self, obs: np.ndarray, actions: np.ndarray | None = None) -> None:
        """New statistics (e.g. DAgger's aggregated data), with the first and last layers rescaled so the
        policy computes exactly the same actions as before: training goes on from where it was, but
        states far outside the first data (a knocked cube's orientation) no longer blow up the inputs."""
        old = {k: getattr(self, k).clone() for k in ("obs_mean", "obs_std", "act_mean", "act_std")}
        self.set_normalization(obs, actions)
        # input: W z_old + b with z_old = (z_new * s_new + m_new - m_old) / s_old
        scale = self.obs_std / old["obs_std"]
        shift = (self.obs_mean - old["obs_mean"]) / old["obs_std"]
        # output: y = o_old * s_old + m_old = o_new * s_new + m_new, per action dimension of every chunk step
        a_scale = (old["act_std"] / self.act_std).repeat(self.chunk_size)
        a_shift = ((old["act_mean"] - self.act_mean) / self.act_std).repeat(self.chunk_size)
        for net in self.networks():
            first, last = net[0], net[-1]
            first.bias += first.weight @ shift
            first.weight *= scale[None, :]
            if not (self.discrete or actions is None):
                last.weight *= a_scale[:, None]
                last.bias.mul_(a_scale).add_(a_shift)

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs - self.obs_mean) / self.obs_std).clamp(-self.OBS_CLIP, self.OBS_CLIP)

    def member_outputs(self, obs: torch.Tensor) -> torch.Tensor:
        """Every member's output: (members, B, chunk, n) logits or normalised actions."""
        z = self.normalize_obs(obs)
        return torch.stack([net(z).view(obs.shape[0], self.chunk_size, self.action_dim) for net in self.networks()])

    def raw(self, obs: torch.Tensor) -> torch.Tensor:
        """Network output (an ensemble's mean): logits (B, chunk, n) or normalised actions (B, chunk, A)."""
        if self.members == 1:
            return self.net(self.normalize_obs(obs)).view(obs.shape[0], self.chunk_size, self.action_dim)
        return self.member_outputs(obs).mean(0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions in the environment's units (the graph that is exported)."""
        out = self.raw(obs)
        if self.discrete:
            return out.argmax(-1)
        return self.snap_binary(out * self.act_std + self.act_mean + self._base(obs))

    predict = forward

    def _base(self, obs: torch.Tensor) -> torch.Tensor | float:
        return obs[:, None, : self.action_dim] if self.residual else 0.0

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training (module in train mode): the members' mean loss, so each member fits the data on its own.
        Evaluation: the loss of what the policy outputs (an ensemble's mean)."""
        if self.members > 1 and self.training:
            outs = self.member_outputs(batch["obs"])
            return torch.stack([self._loss(out, batch) for out in outs]).mean()
        return self._loss(self.raw(batch["obs"]), batch)

    def _loss(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["mask"].float()
        if self.discrete:
            per = nn.functional.cross_entropy(out.flatten(0, 1), batch["action"].flatten().long(), reduction="none")
            per = per.view(mask.shape)
        else:
            target = (batch["action"] - self._base(batch["obs"]) - self.act_mean) / self.act_std
            per = ((out - target) ** 2).mean(-1)
        return (per * mask).sum() / mask.sum().clamp(min=1.0)


class ActorCritic(nn.Module):
    """PPO's policy: an MLPPolicy actor (one action) plus a value head; Gaussian for continuous actions."""

    def __init__(self, actor: MLPPolicy, hidden_dim: int = 256, init_log_std: float = -0.5) -> None:
        super().__init__()
        if actor.chunk_size != 1:
            raise ValueError("PPO/GAIL act one step at a time: the actor must have chunk_size 1")
        self.actor = actor
        self.critic = mlp(actor.obs_dim, hidden_dim, 1)
        self.log_std = None if actor.discrete else nn.Parameter(torch.full((actor.action_dim,), float(init_log_std)))

    def distribution(self, obs: torch.Tensor):
        out = self.actor.raw(obs)[:, 0]
        if self.actor.discrete:
            return Categorical(logits=out)
        return Normal(out, self.log_std.exp())  # in the actor's normalised action units

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.actor.normalize_obs(obs)).squeeze(-1)

    def to_env(self, raw_action: torch.Tensor) -> torch.Tensor:
        """Normalised sample -> environment units (continuous); indices unchanged (discrete)."""
        if self.actor.discrete:
            return raw_action
        return raw_action * self.actor.act_std + self.actor.act_mean

    def from_env(self, action: torch.Tensor) -> torch.Tensor:
        if self.actor.discrete:
            return action
        return (action - self.actor.act_mean) / self.actor.act_std
