"""Diagnosis script (not part of the product; run from the repository root with PYTHONPATH=.).

How the policy node's moved-camera check (vla_il_core.camera_view) reads a recording's frames: the view is the
median first frame of the first 360 episodes (the export takes up to 256 training episodes); the first frames of
the other episodes are checked as recorded, moved by whole and half pixels (a half pixel: the mean of the frame
moved by 0 and by 1, bilinear interpolation's value), dimmed, and mid-episode (frames 60 and 100: the arm away
from its start).

    python docs/results/vla_transfer_cube/camera_view/check_frames.py <dataset> <out.json>
"""
import json
import sys
from pathlib import Path

import numpy as np

from training.datasets.lerobot_dataset import AlohaDataset
from vla_il_core.camera_view import check_view, reference_view


def moved(img, dy, dx):
    h, w = img.shape[:2]
    p = max(abs(dy), abs(dx))
    padded = np.pad(img, ((p, p), (p, p), (0, 0)), mode="edge")
    return np.ascontiguousarray(padded[p - dy:p - dy + h, p - dx:p - dx + w])


def half(img, dy, dx):  # moved by (dy/2, dx/2): between the frame and the frame moved by (dy, dx)
    return ((img.astype(np.uint16) + moved(img, dy, dx)) // 2).astype(np.uint8)


def main(dataset: str, out: str) -> None:
    data = AlohaDataset(dataset, cameras=["top"], chunk_size=1, image_size=(96, 128), progress=False,
                        episodes=range(0, 400))
    t, frames = data.table, data._frames["top"]
    first = t["index"][t["frame_index"] == 0]
    eps = t["episode_index"][t["frame_index"] == 0]
    view = reference_view(np.stack([frames[i] for i in first[eps < 360]]))
    held = [np.asarray(frames[i]) for i in first[eps >= 360]]
    cases = {f"moved {dy},{dx} px": (lambda f, a=dy, b=dx: moved(f, a, b))
             for dy, dx in ((0, 0), (1, 0), (0, 1), (0, -1), (-1, 1), (2, 2), (0, 4), (-3, -2))}
    cases |= {f"moved {dy / 2:g},{dx / 2:g} px": (lambda f, a=dy, b=dx: half(f, a, b))
              for dy, dx in ((1, 0), (0, 1), (1, 1))}
    cases["dimmed to 85%"] = lambda f: (f * 0.85).astype(np.uint8)
    rows = {}
    for name, fn in cases.items():
        res = [check_view(fn(f), view) for f in held]
        rows[name] = {"frames": len(res), "reported moved": sum(r.moved for r in res),
                      "shifts found": sorted({str(r.shift) for r in res}),
                      "error at zero (min, max)": [round(min(r.error_at_zero for r in res), 2),
                                                   round(max(r.error_at_zero for r in res), 2)]}
    for k in (60, 100):
        rows_k = t["index"][(t["frame_index"] == k) & (t["episode_index"] >= 360)]
        res = [check_view(np.asarray(frames[i]), view) for i in rows_k]
        rows[f"frame {k} of the episode, as recorded"] = {
            "frames": len(res), "reported moved": sum(r.moved for r in res),
            "shifts found": sorted({str(r.shift) for r in res}),
            "error at zero (min, max)": [round(min(r.error_at_zero for r in res), 2),
                                         round(max(r.error_at_zero for r in res), 2)]}
    Path(out).write_text(json.dumps({"dataset": dataset, "view": "median first frame of episodes 0-359",
                                     "rows": rows}, indent=1))
    for name, row in rows.items():
        print(f"{name:40s} {row['reported moved']:3d}/{row['frames']:3d} moved  shifts {row['shifts found']}  "
              f"error at zero {row['error at zero (min, max)']}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
