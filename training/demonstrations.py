"""Demonstrations: (observation, action) pairs with their episodes, the unit BC and DAgger learn from.

Aggregation (DAgger's D = D u D_i), the specification's return-percentile filter, a train/val split
by episode, and targets for action chunks (the next k actions of the same episode, with a mask).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Demonstrations:
    obs: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32, or (N,) int64 for discrete actions
    episode: np.ndarray  # (N,) int64: which episode each pair belongs to
    returns: dict[int, float] = field(default_factory=dict)  # episode -> return

    def __post_init__(self) -> None:
        n = len(self.obs)
        if len(self.actions) != n or len(self.episode) != n:
            raise ValueError(f"obs, actions and episode must have the same length ({n}, {len(self.actions)}, "
                             f"{len(self.episode)})")

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def episodes(self) -> np.ndarray:
        return np.unique(self.episode)

    @classmethod
    def empty(cls, obs_dim: int, action_shape: tuple[int, ...], discrete: bool) -> Demonstrations:
        dtype = np.int64 if discrete else np.float32
        return cls(np.zeros((0, obs_dim), np.float32), np.zeros((0, *action_shape), dtype), np.zeros(0, np.int64))

    def aggregate(self, other: Demonstrations) -> Demonstrations:
        """D u other, with the other's episodes renumbered after ours."""
        offset = int(self.episode.max()) + 1 if len(self) else 0
        return Demonstrations(
            np.concatenate([self.obs, other.obs]),
            np.concatenate([self.actions, other.actions]),
            np.concatenate([self.episode, other.episode + offset]),
            {**self.returns, **{e + offset: r for e, r in other.returns.items()}},
        )

    def select_episodes(self, episodes: np.ndarray) -> Demonstrations:
        keep = np.isin(self.episode, episodes)
        return Demonstrations(self.obs[keep], self.actions[keep], self.episode[keep],
                              {e: r for e, r in self.returns.items() if e in set(episodes.tolist())})

    def filter_by_return(self, percentile: float) -> Demonstrations:
        """Keep the episodes whose return is at or above the given percentile of all returns."""
        if not self.returns:
            raise ValueError("demonstration filtering needs episode returns, and these demonstrations have none")
        values = np.array(list(self.returns.values()))
        threshold = np.percentile(values, percentile)
        kept = np.array([e for e, r in self.returns.items() if r >= threshold])
        result = self.select_episodes(kept)
        if len(result) == 0:
            raise ValueError(f"filtering at the {percentile}th return percentile left no demonstrations")
        return result

    def split(self, val_fraction: float, seed: int = 0) -> tuple[Demonstrations, Demonstrations | None]:
        """Split by whole episodes (frames of one episode are never on both sides)."""
        episodes = self.episodes
        n_val = int(round(len(episodes) * val_fraction))
        if val_fraction <= 0 or n_val == 0 or n_val >= len(episodes):
            return self, None
        rng = np.random.default_rng(seed)
        val_eps = rng.choice(episodes, n_val, replace=False)
        return self.select_episodes(np.setdiff1d(episodes, val_eps)), self.select_episodes(val_eps)

    def chunk_targets(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        """For each pair, the next `chunk` actions of its episode (N, chunk, ...) and a validity mask."""
        n = len(self)
        idx = np.arange(n)[:, None] + np.arange(chunk)[None, :]
        idx_clipped = np.minimum(idx, n - 1)
        mask = (idx < n) & (self.episode[idx_clipped] == self.episode[:, None])
        # Past the episode's end, repeat its last action (masked out of the loss anyway).
        last_valid = np.where(mask, idx_clipped, -1).max(axis=1, keepdims=True)
        idx_final = np.where(mask, idx_clipped, last_valid)
        return self.actions[idx_final], mask


def label_segments(keep: np.ndarray, intervention: np.ndarray, episode: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where segments start, and each frame's segment id, for frames in episode order.

    A new segment where a kept stretch starts (or the episode changes). A kept frame the policy drove is
    a segment of its own: the expert's label is right for its state, but the labels after it were given
    on states the policy's actions led to, not the expert's, so they are no action chunk the expert would
    have executed from it (only the chunk's first action is a target there).
    """
    keep, intervention = np.asarray(keep, bool), np.asarray(intervention, bool)
    policy_driven = keep & ~intervention
    starts = keep & np.concatenate([[True], ~keep[:-1] | policy_driven[:-1] | (episode[1:] != episode[:-1])])
    starts |= policy_driven
    return starts, np.cumsum(starts) - 1
