"""How do round 0, the last round and BC at equal labels fail alone (through the mux, the expert only watching) on
N held-out seeds: how far each got (the task's reward stages), how often they switch the right gripper, and where
they close it while the expert would still be picking: the tool's offset from the expert's grasp point.

    python docs/results/vla_hg_dagger_seeds/diagnosis/grasps.py output/hg80mux 0 40
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from common import HELD_OUT, run_args

from sim.aloha.env import AlohaEnv
from sim.evaluation import BundlePolicy, MuxedPolicy, default_mux_config
from sim.experts import make_expert
from sim.experts.transfer_cube import GRASP_HEIGHT


def episode(env: AlohaEnv, policy: MuxedPolicy, expert, seed: int) -> dict:
    obs, info = env.reset(seed=seed)
    policy.reset(seed)
    closed_before, switches, closes, lifted, done, t = None, 0, [], None, False, 0
    while not done:
        command = policy(obs, info)
        expert(obs["agent_pos"], info["env_state"])  # its phase in this state
        closed = command[13] < 0.5
        if closed_before is not None and closed != closed_before:
            switches += 1
            if closed and expert.phase == "right picks":
                tcp, _ = expert.kin.tcp("right")
                offset = tcp - info["env_state"][:3] - np.array([0.0, 0.0, GRASP_HEIGHT])
                closes.append((float(np.linalg.norm(offset[:2])), float(offset[2])))
        closed_before = closed
        obs, _reward, terminated, truncated, info = env.step(command)
        t += 1
        done = terminated or truncated
        if lifted is None and info["max_reward"] >= 2:
            lifted = t
    return {"stage": int(info["max_reward"]), "switches": switches, "closes": closes, "lifted": lifted,
            "success": bool(info["is_success"])}


def main(run: Path, seed: int, n: int) -> None:
    args = run_args(run)
    env = AlohaEnv(args.task, cameras=tuple(args.cameras), image_size=tuple(args.image_size),
                   episode_length=args.episode_length, clamp_actions=True)
    expert = make_expert(args.task)
    for name in ("round_0", f"round_{args.rounds}", "bc_equal_labels"):
        policy = MuxedPolicy(BundlePolicy(run / "runs" / f"seed_{seed}" / name / "bundle"), default_mux_config())
        eps = [episode(env, policy, expert, s) for s in range(HELD_OUT, HELD_OUT + n)]
        closes = np.array([c for e in eps for c in e["closes"]]).reshape(-1, 2)
        failed = [e for e in eps if not e["success"]]
        won = [e["lifted"] for e in eps if e["success"]]
        print(f"{name}: success {np.mean([e['success'] for e in eps]):.2f}; reward stage reached "
              f"{np.bincount([e['stage'] for e in eps], minlength=5).tolist()}; gripper switches in a failed episode "
              f"{np.mean([e['switches'] for e in failed]) if failed else float('nan'):.1f}; lifted at tick "
              f"{np.mean(won) if won else float('nan'):.0f} where it succeeded; closes per episode "
              f"{len(closes) / n:.1f}, within 1.5 cm of the grasp point {np.mean(np.hypot(*closes.T) < 0.015):.2f}, "
              f"median sideways miss {100 * np.median(closes[:, 0]) if len(closes) else float('nan'):.1f} cm",
              flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
