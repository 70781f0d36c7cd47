"""Do frames that look alike carry different expert labels, more in the HG segments than in the demos?
For every segment frame and 3,000 demo frames: the nearest frame of another episode by the first camera's image;
how often its right-gripper label says the opposite (open against close) and how far its right-arm label is, by
image distance; among all frames, among pairs with the same gripper opening, and in the approach region.

    python docs/results/vla_hg_dagger_seeds/diagnosis/label_aliasing.py output/hg80mux 0
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from common import (
    approach_region,
    decode,
    features,
    label_gaps,
    nearest,
    pool_frames,
    pool_of,
    round_segments,
    run_args,
)

BINS = (0.0, 0.33, 0.48, 0.65)


def main(run: Path, seed: int) -> None:
    args = run_args(run)
    cam = f"observation.images.{args.cameras[0]}"
    demos = pool_frames(pool_of(run, args), range(args.demos),
                        [cam, "observation.state", "observation.environment_state", "expert_action"])
    d_img, d_lab = decode(demos[cam]), np.stack(demos.expert_action)
    d_st, d_env = np.stack(demos["observation.state"]), np.stack(demos["observation.environment_state"])
    d_ep = demos.episode_index.to_numpy()
    seg = round_segments(run, args, seed, run / f"diagnosis_segments_seed{seed}.npz")
    print(f"demo frames {len(d_img)}, segment frames {len(seg['img'])}", flush=True)
    d_f, s_f = features(d_img), features(seg["img"])
    pick = np.random.default_rng(0).choice(len(d_f), min(3000, len(d_f)), replace=False)
    d_in, _ = approach_region(d_st, d_env)
    s_in, _ = approach_region(seg["st"], seg["env"])
    pairs = {"demo -> demo": (d_f[pick], d_ep[pick], d_lab[pick], d_st[pick], d_in[pick], d_f, d_ep, d_lab, d_st),
             "segment -> demo": (s_f, seg["ep"], seg["lab"], seg["st"], s_in, d_f, d_ep, d_lab, d_st),
             "segment -> segment": (s_f, seg["ep"], seg["lab"], seg["st"], s_in, s_f, seg["ep"], seg["lab"], seg["st"])}
    for name, (qf, qep, qlab, qst, qin, rf, rep, rlab, rst) in pairs.items():
        dist, i = nearest(qf, qep, rf, rep)
        flip, arm = label_gaps(qlab, rlab[i])
        same_grip = np.abs(qst[:, 13] - rst[i, 13]) < 0.1
        print(f"{name}: {len(dist)} frames, median distance to the nearest {np.median(dist):.2f}")
        for lo, hi in zip(BINS, BINS[1:], strict=False):
            b = (dist >= lo) & (dist < hi)
            cells = []
            for label, m in (("all", b), ("same gripper opening", b & same_grip), ("approach region", b & qin)):
                cells.append(f"{label}: n={m.sum()} flip {flip[m].mean():.3f} |d arm| {arm[m].mean():.3f}"
                             if m.any() else f"{label}: none")
            print(f"  distance {lo:.2f}-{hi:.2f}  " + "; ".join(cells))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
