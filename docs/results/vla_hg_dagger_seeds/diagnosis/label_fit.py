"""Does HG-DAgger's last policy predict the expert better than BC's where help is needed? The first action of each
chunk against the expert's label (mean squared error in the model's normalised units; right gripper open against
close) for round 0, the last round and BC at equal labels, on: 2,000 demo frames, the segments the rounds trained
on, and new segments of 20 gated episodes driven by the last round's bundle (seeds from 10000 * (rounds + 1)) and
by BC's (from 10000 * (rounds + 2)).

    python docs/results/vla_hg_dagger_seeds/diagnosis/label_fit.py output/hg80mux 0
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from common import ROUND_SEEDS, first_action_errors, pool_of, record, round_segments, run_args

from training.checkpoint import load_checkpoint
from training.datasets.lerobot_dataset import AlohaDataset
from training.il.vla_rollouts import RolloutDataset
from vla_il_core.schema import EXPERT_ACTION


def as_dataset(seg: dict[str, np.ndarray], camera: str, chunk: int, instruction: str) -> RolloutDataset:
    data = RolloutDataset((camera,), chunk)
    for e in np.unique(seg["ep"]):
        m = seg["ep"] == e
        data.add_episode(seg["st"][m], {camera: seg["img"][m]}, seg["lab"][m], instruction)
    return data


def main(run: Path, seed: int) -> None:
    from sim.aloha.tasks import TASKS

    args = run_args(run)
    runs, cam = run / "runs" / f"seed_{seed}", args.cameras[0]
    if len(args.cameras) > 1:
        raise SystemExit("one camera only (the segments keep the first camera's frames)")
    instruction = TASKS[args.task].instruction
    last = f"round_{args.rounds}"
    sets: dict[str, torch.utils.data.Dataset] = {}
    demos = AlohaDataset(pool_of(run, args), episodes=range(args.demos), split="all", chunk_size=args.chunk,
                         cameras=(cam,), labels="intervention", action_key=EXPERT_ACTION, progress=False)
    pick = np.random.default_rng(0).choice(len(demos), min(2000, len(demos)), replace=False)
    sets["demo frames"] = torch.utils.data.Subset(demos, pick.tolist())
    segments = round_segments(run, args, seed, run / f"diagnosis_segments_seed{seed}.npz")
    sets["segments trained on"] = as_dataset(segments, cam, args.chunk, instruction)
    for name, policy, first in ((f"new segments, {last} drives", last, (args.rounds + 1) * ROUND_SEEDS),
                                ("new segments, BC drives", "bc_equal_labels", (args.rounds + 2) * ROUND_SEEDS)):
        sets[name] = as_dataset(record(runs / policy / "bundle", args, seed, first), cam, args.chunk, instruction)
    for policy in ("round_0", last, "bc_equal_labels"):
        model = load_checkpoint(runs / policy / "best")[0].eval()
        for name, data in sets.items():
            squared, wrong = first_action_errors(model, data)
            mse = squared.mean(-1)
            print(f"{policy:16s} {name:32s} n={len(mse):5d} mse {mse.mean():.3f} "
                  f"gripper wrong {wrong.mean():.3f}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
