"""Diagnosis script (not part of the product; run from the repository root with PYTHONPATH=.).

A checkpoint's success when every camera frame it sees at run time is
moved by a fixed (dy, dx) pixels, edges repeated; chunks played out as VLASimPolicy plays them."""
import json
import sys
from pathlib import Path

import numpy as np


class ShiftedFactory:
    def __init__(self, path, dy, dx):
        self.path, self.dy, self.dx = str(path), dy, dx

    def __call__(self, task):
        from benchmarks.vla_target_runs import CheckpointFactory
        from training.il.vla_rollouts import VLASimPolicy

        model = CheckpointFactory(self.path)(task).model  # one thread, as the benchmark's workers
        dy, dx = self.dy, self.dx

        def shift(img):
            h, w = img.shape[:2]
            p = max(abs(dy), abs(dx))
            padded = np.pad(img, ((p, p), (p, p), (0, 0)), mode="edge")
            return np.ascontiguousarray(padded[p - dy : p - dy + h, p - dx : p - dx + w])

        class Shifted(VLASimPolicy):
            def chunk(self, obs, info):
                obs = {**obs, "pixels": {k: shift(v) for k, v in obs["pixels"].items()}}
                return super().chunk(obs, info)

        return Shifted(model)


if __name__ == "__main__":  # shifted_eval.py OUT.json CHECKPOINT DY DX
    from sim.evaluation import evaluate

    out, path, dy, dx = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    result = evaluate("transfer_cube", ShiftedFactory(path, dy, dx), range(200000, 200100),
                      policy_name=f"shifted {dy},{dx}", workers=2,
                      env_kwargs={"cameras": ("top",), "image_size": (96, 128), "clamp_actions": True})
    print(result.line(), flush=True)
    outcomes = [bool(e.success) for e in result.episodes]
    out.write_text(json.dumps({"path": path, "shift": [dy, dx], "outcomes": outcomes}))
