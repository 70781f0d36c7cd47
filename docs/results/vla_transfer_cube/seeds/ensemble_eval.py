"""Diagnosis script (not part of the product; run from the repository root with PYTHONPATH=.).

Success of an ensemble of VLA checkpoints (chunks averaged, grippers
re-snapped), chunks played out as VLASimPolicy plays them, on held-out seeds; outcomes written as JSON."""
import json
import sys
from pathlib import Path

import torch


class EnsembleFactory:
    def __init__(self, paths):
        self.paths = [str(p) for p in paths]

    def __call__(self, task):
        from benchmarks.vla_target_runs import CheckpointFactory
        from training.il.vla_rollouts import VLASimPolicy, observation_batch

        models = [CheckpointFactory(p)(task).model for p in self.paths]  # one thread, as the benchmark's workers

        class Ensemble(VLASimPolicy):
            @torch.no_grad()
            def chunk(self, obs, info):
                outs = [m.predict(observation_batch(m, obs, info["instruction"]))[0] for m in models]
                return models[0].snap_binary(torch.stack(outs).mean(0)).cpu().numpy()

        return Ensemble(models[0])


if __name__ == "__main__":  # ensemble_eval.py OUT.json CHECKPOINT...
    from sim.evaluation import evaluate

    out, paths = Path(sys.argv[1]), sys.argv[2:]
    seeds = range(200000, 200100)
    result = evaluate("transfer_cube", EnsembleFactory(paths), seeds, policy_name="ensemble", workers=2,
                      env_kwargs={"cameras": ("top",), "image_size": (96, 128), "clamp_actions": True})
    print(result.line(), flush=True)
    out.write_text(json.dumps({"paths": paths, "outcomes": [bool(e.success) for e in result.episodes]}))
