"""Shared by the diagnosis scripts (records of the measurements in ../README.md, not part of the test suite).
Run from the repository root with `source scripts/env.sh`: a benchmark run's --out (RUN) and one of its seeds."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

ROUND_SEEDS = 10_000  # the bench's gated episodes of round k start at seed ROUND_SEEDS * k
HELD_OUT = 100_000  # its held-out evaluation seeds


def run_args(run: Path) -> argparse.Namespace:
    return argparse.Namespace(**json.loads((run / "results.json").read_text())["args"])


def pool_of(run: Path, args: argparse.Namespace) -> Path:
    if args.pool_from:
        return Path(args.pool_from)
    pools = sorted(run.glob("pool_*"))
    if not pools:
        raise SystemExit(f"{run}: no pool (neither --pool-from nor a pool_* directory)")
    return pools[0]


def pool_frames(pool: Path, episodes, columns: list[str]) -> pd.DataFrame:
    """The pool's frames of these episodes (None: all), in dataset order (a LeRobot v3 dataset's parquet files)."""
    files = sorted(glob.glob(str(pool / "data" / "**" / "*.parquet"), recursive=True))
    df = pd.concat([pd.read_parquet(f, columns=[*columns, "episode_index", "frame_index", "index"]) for f in files])
    if episodes is not None:
        df = df[df.episode_index.isin(list(episodes))]
    return df.sort_values("index").reset_index(drop=True)


def decode(column: pd.Series) -> np.ndarray:
    """A camera column stored as images (vla-il collect's default at these sizes) -> uint8 (N, H, W, 3)."""
    return np.stack([np.asarray(Image.open(io.BytesIO(v["bytes"])).convert("RGB")) for v in column])


def gate(args: argparse.Namespace, seed: int):
    from benchmarks.vla_hg_dagger_seeds import gate_settings
    from sim.evaluation import default_gate_config

    return dataclasses.replace(default_gate_config(), seed=seed, **gate_settings(args.gate))


def record(bundle: Path, args: argparse.Namespace, seed: int, first: int) -> dict[str, np.ndarray]:
    """The expert's segments of args.episodes_per_round gated episodes from `first`, as the bench records them."""
    from benchmarks.vla_hg_dagger_seeds import _gated_rollouts
    from sim.evaluation import default_mux_config
    from training.il.vla_rollouts import RolloutDataset

    r = RolloutDataset(tuple(args.cameras), args.chunk, env_state=True)
    stats = _gated_rollouts(bundle, args, first, gate(args, seed), default_mux_config(), r)
    print(f"{bundle}: {stats}", flush=True)
    return {"img": np.concatenate(r.images[args.cameras[0]]), "lab": np.concatenate(r.labels),
            "st": np.concatenate(r.states), "env": np.concatenate(r.env_states),
            "ep": np.concatenate([np.full(len(s), first + e) for e, s in enumerate(r.states)])}


def round_segments(run: Path, args: argparse.Namespace, seed: int, cache: Path) -> dict[str, np.ndarray]:
    """The segments rounds 1..R trained on, recorded again with rounds 0..R-1's bundles (kept in `cache`)."""
    if not cache.exists():
        parts = [record(run / "runs" / f"seed_{seed}" / f"round_{k}" / "bundle", args, seed, ROUND_SEEDS * (k + 1))
                 for k in range(args.rounds)]
        np.savez(cache, **{key: np.concatenate([p[key] for p in parts]) for key in parts[0]})
    return dict(np.load(cache))


def approach_region(states: np.ndarray, env_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the cube on the table and the right tool within 8 cm of the expert's grasp point; the tool's
    horizontal offset from that point (m)."""
    from sim.experts import make_expert
    from sim.experts.transfer_cube import GRASP_HEIGHT

    expert = make_expert("transfer_cube")
    inside, sideways = [], []
    for state, env in zip(states, env_states, strict=True):
        expert(state, env)  # sets the kinematics to this state
        tcp, _ = expert.kin.tcp("right")
        offset = tcp - env[:3] - np.array([0.0, 0.0, GRASP_HEIGHT])
        inside.append(env[2] < 0.03 and np.linalg.norm(offset) < 0.08)
        sideways.append(np.linalg.norm(offset[:2]))
    return np.array(inside), np.array(sideways)


def features(images: np.ndarray):
    """Images -> the vectors nearest frames are found by: 4x4 average-pooled RGB in [0, 1]."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float().permute(0, 3, 1, 2) / 255
    return torch.nn.functional.avg_pool2d(x, 4).flatten(1)


def nearest(queries, query_episodes: np.ndarray, reference, reference_episodes: np.ndarray):
    """For each query, its nearest reference vector of another episode: (distances, indices)."""
    import torch

    d = torch.cdist(queries, reference)
    d[torch.from_numpy(query_episodes[:, None] == reference_episodes[None, :])] = float("inf")
    v, i = d.min(1)
    return v.numpy(), i.numpy()


def label_gaps(labels: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of ALOHA action labels: does the right gripper say the opposite (open against close), and how far
    apart are the right arm's joints."""
    return np.abs(labels[:, 13] - others[:, 13]) > 0.5, np.linalg.norm(labels[:, 7:13] - others[:, 7:13], axis=1)


def first_action_errors(model, data) -> tuple[np.ndarray, np.ndarray]:
    """A VLA checkpoint's first action of each chunk against the label, per item: squared error per action value in
    the model's normalised units (N, action_dim), and whether the right gripper says the opposite (N,)."""
    import torch

    squared, wrong = [], []
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(data, batch_size=64):
            predicted, label = model.predict(batch)[:, 0], batch["action"][:, 0]
            squared.append((((predicted - label) / model.action_std.cpu()) ** 2).numpy())
            wrong.append(((predicted[:, 13] - label[:, 13]).abs() > 0.5).numpy())
    return np.concatenate(squared), np.concatenate(wrong)
