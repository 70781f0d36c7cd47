"""The step limit is a guarantee: a property test of the mux core over random input sequences.

Whatever arrives — driver actions anywhere (at outliers, out of limits, NaN, wrong length), joint
states that follow the command, jump (resets), glitch or go stale, switches of driver, operator holds
and resumes, watchdog checks, limits changed while running — between any two consecutive commands no
joint moves by more than the `max_step` in force, and the first command is within `max_step` of the
measured pose. Our own generator (seeded, so a failure names its seed and replays).
"""

import math
import random

import pytest

from vla_il_core.mux import EXPERT, POLICY, InterventionMux, MuxConfig

N = 4
LOWER, UPPER = [-2.0, -1.0, -3.0, 0.0], [2.0, 1.0, 3.0, 1.0]


def _random_pose(rng: random.Random, spread: float = 1.5) -> list[float]:
    return [rng.uniform(lo - spread, hi + spread) for lo, hi in zip(LOWER, UPPER, strict=True)]


def _run(seed: int, steps: int = 400, lockstep: bool = False) -> int:
    rng = random.Random(seed)
    max_step = [rng.choice([0.01, 0.05, 0.1, 0.3]) for _ in range(N)]
    mux = InterventionMux(MuxConfig(tuple("abcd"), tuple(LOWER), tuple(UPPER), tuple(max_step), 0.1,
                                    rng.choice([1.0, 3.0, 10.0]), one_command_per_observation=lockstep))
    measured = [0.0, 0.0, 0.0, 0.5]
    now, last, commands = 0.0, None, 0

    def check(out, what: str) -> None:
        nonlocal last, commands
        if out.command is None:
            return
        cmd, limit = out.command, mux.config.max_step
        assert all(math.isfinite(x) for x in cmd), (seed, what, cmd)
        reference = last if last is not None else mux.last_observation
        for j in range(N):
            assert abs(cmd[j] - reference[j]) <= limit[j] + 1e-9, (seed, what, j, reference, cmd, limit)
        last, commands = list(cmd), commands + 1

    for _ in range(steps):
        now += rng.choice([0.001, 0.02, 0.02, 0.02, 0.05, 0.3])
        kind = rng.random()
        if kind < 0.35:  # a joint state: follows the command, or a reset / glitch / NaN
            r = rng.random()
            if r < 0.08:
                measured = _random_pose(rng)
            elif r < 0.12:
                glitch = list(measured)
                glitch[rng.randrange(N)] += rng.choice([-1, 1]) * rng.uniform(0.5, 5.0)
                check(mux.on_observation(glitch, now), "glitch")
                continue
            elif r < 0.14:
                check(mux.on_observation([math.nan] * N, now), "nan observation")
                continue
            elif last is not None:
                measured = [m + 0.7 * (c - m) for m, c in zip(measured, last, strict=True)]
            check(mux.on_observation(measured, now), "observation")
        elif kind < 0.75:  # an action from either driver
            source = rng.choice([POLICY, POLICY, EXPERT])
            r = rng.random()
            if r < 0.05:
                action = [math.nan] + _random_pose(rng)[1:]
            elif r < 0.08:
                action = _random_pose(rng)[:N - 1]
            elif r < 0.3 and mux.last_observation is not None:
                action = list(mux.last_observation)  # an action at a (possibly outlier) observation
            else:
                action = _random_pose(rng)
            check(mux.on_action(source, action, now), "action")
        elif kind < 0.82:
            check(mux.on_engaged(rng.random() < 0.5, now), "engaged")
        elif kind < 0.86:
            check(mux.hold(now) if rng.random() < 0.5 else mux.resume(now), "hold/resume")
        elif kind < 0.95:
            check(mux.check_watchdog(now), "watchdog")
        else:  # the operator changes a limit while running (refused ones change nothing)
            field = rng.choice(["max_step", "joint_upper", "joint_lower", "reanchor_steps"])
            try:
                if field == "max_step":
                    mux.reconfigure(max_step=[rng.choice([0.005, 0.05, 0.2, -0.1]) for _ in range(N)])
                elif field == "joint_upper":
                    mux.reconfigure(joint_upper=[u - rng.uniform(0, 0.8) for u in UPPER])
                elif field == "joint_lower":
                    mux.reconfigure(joint_lower=[lo + rng.uniform(0, 0.8) for lo in LOWER])
                else:
                    mux.reconfigure(reanchor_steps=rng.choice([0.5, 1.0, 5.0]))
            except ValueError:
                pass
    return commands


@pytest.mark.parametrize("lockstep", [False, True])
def test_no_command_ever_moves_a_joint_more_than_max_step(lockstep):
    commands = sum(_run(seed, lockstep=lockstep) for seed in range(300))
    assert commands > 5_000  # the sequences did drive the robot, not only hold it


def test_after_a_reset_the_command_reaches_the_measured_pose_by_steps():
    mux = InterventionMux(MuxConfig(tuple("abcd"), tuple(LOWER), tuple(UPPER), (0.125,) * N, 0.1))
    mux.on_observation([0.0, 0.0, 0.0, 0.5], 0.0)
    mux.on_action(POLICY, [0.0, 0.0, 0.0, 0.5], 0.0)
    target = [1.0, -0.5, 0.25, 0.0]
    path = []
    for i in range(1, 20):
        mux.on_observation(target, 0.01 * i)  # the arm sits at its new pose (held by hand, or reset)
        path.append(mux.on_action(POLICY, [-1.0, 0.5, 2.0, 1.0], 0.01 * i).command)
    arrived = path.index(target)
    assert arrived == 7  # eight steps of 0.125 to reach the waist's 1.0
    assert all(abs(b - a) <= 0.125 for p, q in zip(path, path[1:]) for a, b in zip(p, q))
    assert path[arrived + 1] != target  # then the policy drives again, from there
