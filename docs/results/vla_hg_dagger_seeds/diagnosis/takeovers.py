"""Where the gate takes over: a bundle with the sim expert watching (sim.evaluation.GatedPolicy: the
teleop_sim_expert node's gate, every command through the mux core) on N held-out seeds, with the gate's settings as
the demo's (config/teleop_sim_expert.yaml) but for the FIELD=VALUE pairs given (as the bench's --gate). For each
takeover: the expert's phase, the tool's offset from the expert's grasp point along its approach axis (> 0: before
it), the right fingers' opening (1 open, 0 closed) and the tick; then a summary. A takeover with the fingers still
open comes before the policy's close has begun to shut them: the expert's segment then carries the labels of the
close itself (keep open to the grasp point, then close), which a later takeover misses.

    python docs/results/vla_hg_dagger_seeds/diagnosis/takeovers.py output/hg80_oc/runs/seed_0/round_0/bundle_ensemble \
        15 handback_ticks=120 gripper_drift_ticks=5 agree_ticks=10
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
from common import HELD_OUT

from benchmarks.vla_hg_dagger_seeds import gate_settings
from sim.aloha.env import AlohaEnv
from sim.aloha.robot import GRIPPER_INDICES
from sim.evaluation import BundlePolicy, GatedPolicy, default_gate_config, default_mux_config


def main(bundle: Path, n: int, pairs: list[str]) -> None:
    env = AlohaEnv("transfer_cube", cameras=("top",), image_size=(96, 128), episode_length=400, clamp_actions=True)
    gate = dataclasses.replace(default_gate_config(), **gate_settings(pairs))  # as the bench reads --gate
    gated = GatedPolicy(BundlePolicy(bundle), "transfer_cube", gate, default_mux_config())
    wins = frames = 0
    takeovers = []
    for seed in range(HELD_OUT, HELD_OUT + n):
        obs, info = env.reset(seed=seed)
        gated.reset(seed)
        done = engaged = False
        while not done:
            command = gated(obs, info)
            if gated.engaged and not engaged:
                along = (gated.expert.grasp_offset or (np.nan, np.nan))[0]
                opening = float(obs["agent_pos"][GRIPPER_INDICES[1]])  # the right fingers'
                takeovers.append({"phase": gated.expert.phase, "along": float(along), "opening": opening,
                                  "tick": gated.t, "seed": seed})
            engaged = gated.engaged
            obs, _reward, terminated, truncated, info = env.step(command)
            done = terminated or truncated
        wins += bool(info["is_success"])
        frames += gated.episode_intervention_frames
    env.close()
    print(f"{bundle}, gate {' '.join(pairs) or 'as the demo'}: {wins}/{n} won with the expert watching; "
          f"{len(takeovers)} takeovers ({len(takeovers) / n:.2f} per episode), {frames} expert frames")
    for t in takeovers:
        along = "-" if np.isnan(t["along"]) else f"{100 * t['along']:+.1f} cm"
        print(f"  seed {t['seed']} tick {t['tick']:3d}: {t['phase']}, along the axis {along}, "
              f"fingers' opening {t['opening']:.2f}")
    if takeovers:
        openings = np.array([t["opening"] for t in takeovers])
        print(f"  fingers still open (> 0.8) at {np.mean(openings > 0.8):.0%} of the takeovers; opening quartiles "
              f"{np.percentile(openings, 25):.2f} / {np.median(openings):.2f} / {np.percentile(openings, 75):.2f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
