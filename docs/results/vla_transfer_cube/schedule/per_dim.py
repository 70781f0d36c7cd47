"""Diagnosis script (not part of the product; run from the repository root with PYTHONPATH=.): each training's
validation loss per action dimension (normalised squared error over its own validation episodes, chunks of 10),
to see where a training that fit worse fits worse. Writes per_dim.json here.

    python docs/results/vla_transfer_cube/schedule/per_dim.py NAME=OUTPUT_DIR:SEED ...
"""
import json
import sys
from pathlib import Path

import torch

from training.checkpoint import load_checkpoint
from training.datasets.lerobot_dataset import LeRobotVLADataset

torch.set_num_threads(1)
DATA = "output/vt_shift4/run1/data"
out = {}
for arg in sys.argv[1:]:
    name, rest = arg.split("=")
    path, seed = rest.rsplit(":", 1)
    model = load_checkpoint(Path(path) / "best")[0].eval()
    data = LeRobotVLADataset(DATA, split="val", seed=int(seed), chunk_size=model.chunk_size,
                             cameras=list(model.cameras), image_size=tuple(model.image_size), progress=False)
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=False)
    total, count = 0.0, 0.0
    with torch.no_grad():
        for batch in loader:
            state, images, ids, mask = model.prepare(batch)
            target = (batch["action"].float() - model.action_mean) / model.action_std
            hidden = model._decode(state, images, ids, mask)
            err = (model.head(hidden[:, -model.chunk_size:]) - target) ** 2  # (B, chunk, dims)
            valid = (~batch["action_is_pad"].bool()).float()[..., None]
            total = total + (err * valid).sum((0, 1)).numpy()
            count += float(valid.sum())
    per_dim = total / count
    out[name] = {"mean": float(per_dim.mean()), "per_dim": [round(float(v), 5) for v in per_dim]}
    print(name, f"mean {per_dim.mean():.4f}", " ".join(f"{v:.4f}" for v in per_dim), flush=True)
Path("docs/results/vla_transfer_cube/schedule/per_dim.json").write_text(json.dumps(out, indent=1))
