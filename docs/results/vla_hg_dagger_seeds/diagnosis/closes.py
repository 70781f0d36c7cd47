"""Where a policy closes the right gripper while the expert is still picking, and whether that close lifts the cube:
through the mux on N held-out seeds, every close command (from >= 0.5 to < 0.5, after the fingers first opened) in the
expert's "right picks" phase, classed by where the tool was against the expert's grasp point (the expert closes within
1 cm along its approach axis and 1.2 cm beside it): at the grasp point, early (1 cm or more before it along the axis),
beside it, or past it, with where each class's closes were; a close "lifted" when 10 ticks later the cube is 1 cm
higher and within 4.5 cm of the tool (held). `expert` as the driver: the scripted expert through the same mux, the
reference.

    python docs/results/vla_hg_dagger_seeds/diagnosis/closes.py output/hg80_oc/runs/seed_0/round_0/bundle 30
    python docs/results/vla_hg_dagger_seeds/diagnosis/closes.py output/hg80_oc/runs/seed_0/round_0/bundle 30 expert
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from common import HELD_OUT

from sim.aloha.env import AlohaEnv
from sim.evaluation import BundlePolicy, MuxedPolicy, MuxSession
from sim.experts import make_expert

AT_ALONG, AT_BESIDE, LATER = 0.01, 0.012, 10


def closes_of(env: AlohaEnv, drive, expert, seed: int) -> tuple[list[dict], bool]:
    obs, info = env.reset(seed=seed)
    rows, done = [], False
    while not done:
        label = expert(obs["agent_pos"], info["env_state"])
        phase = expert.phase
        # while it picks, the expert's offset from its grasp point along and beside its approach axis
        along, beside = expert.grasp_offset or (np.nan, np.nan)
        tcp = expert.kin.tcp("right")[0].copy()
        command = drive(obs, info, label)
        rows.append({"opening": obs["agent_pos"][13], "command": command[13], "phase": phase, "tcp": tcp,
                     "cube": info["env_state"][:3].copy(), "along": along, "beside": beside})
        obs, _reward, terminated, truncated, info = env.step(command)
        done = terminated or truncated
    opened = next((t for t, r in enumerate(rows) if r["opening"] > 0.9), len(rows))
    closes = []
    for t in range(max(opened, 1) + 1, len(rows)):
        r, before = rows[t], rows[t - 1]
        if r["phase"] == "right picks" and before["command"] >= 0.5 > r["command"]:
            later = rows[min(t + LATER, len(rows) - 1)]
            lifted = later["cube"][2] > r["cube"][2] + 0.01 and np.linalg.norm(later["cube"] - later["tcp"]) < 0.045
            closes.append({"along": r["along"], "beside": r["beside"], "lifted": bool(lifted)})
    return closes, bool(info["is_success"])


def main(bundle: Path, n: int, driver: str) -> None:
    expert = make_expert("transfer_cube")
    env = AlohaEnv("transfer_cube", cameras=("top",), image_size=(96, 128), episode_length=400, clamp_actions=True)
    if driver == "policy":
        policy = MuxedPolicy(BundlePolicy(bundle))

        def drive(obs, info, label):
            return policy(obs, info)
    else:
        state = {}

        def drive(obs, info, label):  # the expert's label through a mux of its own, as the policy's commands go
            from vla_il_core.mux import EXPERT

            if "mux" not in state:  # a new episode: a mux at rest
                state["mux"] = MuxSession()
            return state["mux"].command(obs["agent_pos"], EXPERT, label)
    every, wins = [], 0
    for seed in range(HELD_OUT, HELD_OUT + n):
        if driver == "policy":
            policy.reset(seed)
        else:
            state.clear()
        closes, won = closes_of(env, drive, expert, seed)
        every += closes
        wins += won
    env.close()
    print(f"{bundle} ({driver}): {wins}/{n} won; {len(every)} closes while the expert picks ({len(every) / n:.1f} per "
          "episode)")
    classes = (("at the grasp point", lambda c: abs(c["along"]) < AT_ALONG and c["beside"] < AT_BESIDE),
               ("early (>= 1 cm before it along the axis)", lambda c: c["along"] >= AT_ALONG),
               ("beside it (>= 1.2 cm)", lambda c: abs(c["along"]) < AT_ALONG and c["beside"] >= AT_BESIDE),
               ("past it (>= 1 cm)", lambda c: c["along"] <= -AT_ALONG))
    for name, test in classes:
        group = [c for c in every if test(c)]
        lifted = f", lifted the cube {np.mean([c['lifted'] for c in group]):.0%}" if group else ""
        along = [100 * c["along"] for c in group]
        beside = 100 * np.median([c["beside"] for c in group]) if group else 0.0
        where = (f"; along the axis {np.percentile(along, 25):+.1f} to {np.percentile(along, 75):+.1f} cm (quartiles; "
                 f"> 0: before), beside {beside:.1f} cm (median)") if group else ""
        print(f"  {name}: {len(group)}{lifted}{where}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "policy")
