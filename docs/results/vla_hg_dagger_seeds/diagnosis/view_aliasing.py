"""Which camera resolves the grasp? In a recording with several views (vla-il collect --cameras top right_wrist
--through-mux), the frames of the approach region (cube on the table, right tool within 8 cm of the expert's grasp
point): the nearest frame of another episode by each view, alone and together, and how often its right-gripper label
disagrees (open against close), how far its right-arm label is.

    vla-il collect --task transfer_cube --episodes 60 --cameras top right_wrist --image-size 96 128 --through-mux \\
        --out output/views60
    python docs/results/vla_hg_dagger_seeds/diagnosis/view_aliasing.py output/views60
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from common import approach_region, decode, features, label_gaps, nearest, pool_frames

from training.datasets.lerobot_io import read_info


def main(dataset: Path) -> None:
    cams = [k for k in read_info(dataset)["features"] if k.startswith("observation.images.")]
    frames = pool_frames(dataset, None, [*cams, "observation.state", "observation.environment_state",
                                                  "expert_action"])
    states, labels = np.stack(frames["observation.state"]), np.stack(frames.expert_action)
    episodes = frames.episode_index.to_numpy()
    inside, _ = approach_region(states, np.stack(frames["observation.environment_state"]))
    views = {c.removeprefix("observation.images."): features(decode(frames[c])) for c in cams}
    if len(views) > 1:
        views[" + ".join(views)] = torch.cat(list(views.values()), 1)
    first = next(iter(views))
    views[f"{first}, with the same gripper opening"] = torch.cat(
        [views[first], 1000 * torch.from_numpy(states[:, 13:14]).float()], 1)
    q = np.flatnonzero(inside)
    print(f"{len(states)} frames of {len(np.unique(episodes))} episodes; {len(q)} in the approach region")
    for name, f in views.items():
        _, i = nearest(f[q], episodes[q], f, episodes)
        flip, arm = label_gaps(labels[q], labels[i])
        print(f"  nearest by {name:40s} open/close disagrees {flip.mean():.3f}, arm label distance {arm.mean():.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
