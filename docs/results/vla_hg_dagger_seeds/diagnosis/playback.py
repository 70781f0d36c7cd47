"""A round's checkpoint exported and evaluated alone through the intervention mux on the benchmark's 100 held-out
seeds, with each chunk playback asked for: N (play the first N actions of each chunk, then ask for a new one; the
export's default is the whole chunk, 10) or `ensemble` (ACT's temporal ensembling: a chunk every tick, the
overlapping predictions blended); `--gated K`: also K episodes with the expert gate watching (the 5-tick gripper
rule, a 120-tick hand-back) as exported. Each playback is a copy of the bundle whose policy.json recommends it,
in <run>/bundle_<playback>, so closes.py can read it too.

    python docs/results/vla_hg_dagger_seeds/diagnosis/playback.py output/hg80_oc/runs/seed_0/round_0 10 5 1 ensemble
    python docs/results/vla_hg_dagger_seeds/diagnosis/playback.py output/probe_flow/seed_0/round_0 10 --gated 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from benchmarks.vla_hg_dagger_seeds import _evaluate
from sim.evaluation import default_gate_config
from training.export.onnx_export import export_checkpoint


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run", type=Path, help="a fit's directory (its best/ checkpoint)")
    p.add_argument("playbacks", nargs="+", help="N (actions played per chunk) or ensemble")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--gated", type=int, default=0, help="episodes with the expert gate watching, as exported")
    args = p.parse_args()
    bundle = args.run / "bundle"
    export_checkpoint(args.run / "best", bundle, overwrite=True)
    ev = argparse.Namespace(task="transfer_cube", eval_episodes=args.episodes, episode_length=400, workers=2,
                            through_mux=True)
    if args.gated:
        gate = dataclasses.replace(default_gate_config(), handback_ticks=120, gripper_drift_ticks=5)
        _evaluate(bundle, ev, f"{args.run} + expert (gripper 5 ticks)", gate=gate, episodes=args.gated)
    for playback in args.playbacks:
        copy = args.run / f"bundle_{playback}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(bundle, copy)
        meta = json.loads((copy / "policy.json").read_text())
        ensemble = playback == "ensemble"
        meta["recommended"].update(n_action_steps=1 if ensemble else int(playback), temporal_ensembling=ensemble)
        (copy / "policy.json").write_text(json.dumps(meta, indent=2) + "\n")
        _evaluate(copy, ev, f"{args.run} alone through the mux, playback {playback}")


if __name__ == "__main__":
    main()
