"""Round 0, the last round and BC at equal labels on the demos' approach-and-close frames (the 15 ticks before the
expert's first close of the right gripper and 3 after): right-arm error of the first action (normalised units) and
how often the gripper is wrong, on the demos they trained on and on held-out episodes of the pool (FIRST LAST).

    python docs/results/vla_hg_dagger_seeds/diagnosis/approach_error.py output/hg80mux 0 250 300
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from common import first_action_errors, pool_frames, pool_of, run_args

from training.checkpoint import load_checkpoint
from training.datasets.lerobot_dataset import AlohaDataset
from vla_il_core.schema import EXPERT_ACTION


def approach_items(frames) -> list[int]:
    """Dataset items (row numbers of `frames`) around each episode's first close of the right gripper."""
    items = []
    for _episode, rows in frames.groupby("episode_index"):
        gripper = np.stack(rows.expert_action)[:, 13]
        closes = np.flatnonzero((gripper[:-1] > 0.5) & (gripper[1:] < 0.5))
        if len(closes):
            items += list(rows.index[max(0, closes[0] - 15): closes[0] + 4])
    return items


def main(run: Path, seed: int, first: int, last: int) -> None:
    args = run_args(run)
    pool, runs = pool_of(run, args), run / "runs" / f"seed_{seed}"
    models = {n: load_checkpoint(runs / n / "best")[0].eval() for n in ("round_0", f"round_{args.rounds}",
                                                                         "bc_equal_labels")}
    for name, episodes in (("training demos", range(args.demos)), ("held-out demos", range(first, last))):
        data = AlohaDataset(pool, episodes=episodes, split="all", chunk_size=args.chunk, cameras=tuple(args.cameras),
                            labels="intervention", action_key=EXPERT_ACTION, progress=False)
        items = approach_items(pool_frames(pool, episodes, ["expert_action"]))
        print(f"{name} ({episodes.start}-{episodes.stop - 1}): {len(items)} approach frames of {len(data)}")
        for policy, model in models.items():
            squared, wrong = first_action_errors(model, torch.utils.data.Subset(data, items))
            arm = squared[:, 7:13].mean(-1)
            print(f"  {policy:16s} right arm mse {arm.mean():.4f}  gripper wrong "
                  f"{wrong.mean():.3f}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
