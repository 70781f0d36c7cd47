"""Action chunks at control time: an open-loop queue, or ACT-style temporal ensembling.

NumPy only: the policy node uses this too, without PyTorch in the loop.
"""

from __future__ import annotations

from collections import deque

import numpy as np


def ensemble_weights(n: int, k: float) -> np.ndarray:
    """ACT's weights for n predictions of the same step, oldest first: exp(-k * i), normalised."""
    w = np.exp(-k * np.arange(n))
    return w / w.sum()


class TemporalEnsembler:
    """Blend every chunk's prediction for the current step (ACT): predict each step, act on the blend."""

    def __init__(self, chunk_size: int, k: float = 0.01) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size, self.k = chunk_size, k
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (step it was predicted at, chunk)
        self._step = 0

    def reset(self) -> None:
        self._chunks.clear()
        self._step = 0

    def add(self, chunk: np.ndarray) -> None:
        """The chunk predicted at the current step (chunk_size x action_dim)."""
        if chunk.shape[0] != self.chunk_size:
            raise ValueError(f"expected a chunk of {self.chunk_size} actions, got {chunk.shape[0]}")
        self._chunks.append((self._step, np.asarray(chunk, dtype=np.float64)))

    def act(self) -> np.ndarray:
        """The action for the current step (oldest prediction first), then advance one step."""
        while self._chunks and self._step - self._chunks[0][0] >= self.chunk_size:
            self._chunks.popleft()
        if not self._chunks:
            raise RuntimeError("no chunk covers this step: add() one first")
        preds = np.stack([c[self._step - t] for t, c in self._chunks])
        self._step += 1
        return ensemble_weights(len(preds), self.k) @ preds


class ChunkQueue:
    """Execute the first `n_action_steps` of a chunk open loop, then ask for a new one."""

    def __init__(self, n_action_steps: int) -> None:
        self.n_action_steps = n_action_steps
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)

    def needs_chunk(self) -> bool:
        return not self._queue

    def add(self, chunk: np.ndarray) -> None:
        self._queue.clear()
        self._queue.extend(np.asarray(chunk)[: self.n_action_steps])

    def act(self) -> np.ndarray:
        return self._queue.popleft()
