"""Metrics as the specification names them (train/loss, val/loss, disc_loss, mean_reward, ...):
to metrics.jsonl, TensorBoard, and wandb when asked (offline when there is no network), plus a PNG
of the learning curves."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_metrics(output_dir: Path) -> list[dict[str, Any]]:
    """The rows a MetricsLogger wrote to output_dir/metrics.jsonl (none when it wrote nothing)."""
    path = Path(output_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_value(rows: list[dict[str, Any]], key: str) -> float | None:
    """The last value logged under key, or None."""
    return next((r[key] for r in reversed(rows) if key in r), None)


class MetricsLogger:
    def __init__(self, output_dir: Path, run_name: str, use_wandb: bool = False, config: dict | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.output_dir / "metrics.jsonl"
        self.history: list[dict[str, Any]] = []
        self._file = open(self.path, "a")  # noqa: SIM115 - closed in close()
        from torch.utils.tensorboard import SummaryWriter

        self._tb = SummaryWriter(str(self.output_dir / "tensorboard"))
        self._wandb = None
        if use_wandb:
            import wandb

            # Offline unless the user configured an online run: no network must never hang training.
            mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
            self._wandb = wandb.init(project="vla-il", name=run_name, config=config or {}, mode=mode,
                                     dir=str(self.output_dir), settings=wandb.Settings(init_timeout=30))

    def log(self, step: int, values: dict[str, float]) -> None:
        row = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        self.history.append(row)
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        for k, v in values.items():
            self._tb.add_scalar(k, float(v), step)
        if self._wandb is not None:
            self._wandb.log(values, step=step)

    def plot(self, filename: str = "learning_curves.png") -> Path | None:
        """One panel per metric, against the step; written beside the metrics."""
        keys = sorted({k for row in self.history for k in row if k != "step"})
        if not keys:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        cols = min(3, len(keys))
        rows = (len(keys) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
        for ax, key in zip(axes.flat, keys):
            pts = [(r["step"], r[key]) for r in self.history if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 50 else None)
            ax.set_title(key)
            ax.set_xlabel("step")
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        fig.tight_layout()
        path = self.output_dir / filename
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return path

    def close(self) -> None:
        self._file.close()
        self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
