"""Steps per second of the simulated ALOHA, from one run, with ratios against baselines.

    python benchmarks/sim_throughput.py [--seconds 5]      (or: vla-il bench sim)

Rows: (a) gym-aloha as shipped (three 480x640 cameras with shadows every step); (b) our env with
0 / 1 / 3 cameras at 480x640 and at 96x128; (c) our env behind the ROS graph in lockstep: the
sim_bridge process and a commander node that sends the next command when an observation arrives;
(d) `vla-il collect` (expert episodes written into a LeRobot dataset, 1 cam 96x128: the VLA recipe's
recording) in one process against `--workers 2`, frames written per second.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from sim.aloha import robot

THREE = ("top", "left_wrist", "right_wrist")


def _rate(step: Callable[[], None], seconds: float, min_steps: int = 5) -> float:
    step()  # warm up (first render allocates)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < min_steps:
        step()
        n += 1
    return n / (time.perf_counter() - start)


def gym_aloha_rate(seconds: float) -> float:
    import gym_aloha  # noqa: F401 - registers its ids
    import gymnasium as gym

    env = gym.make("gym_aloha/AlohaTransferCube-v0", obs_type="pixels_agent_pos")
    env.reset(seed=0)
    action = robot.START_STATE.astype(np.float32)

    def step():
        _, _, term, trunc, _ = env.step(action)
        if term or trunc:
            env.reset()

    try:
        return _rate(step, seconds)
    finally:
        env.close()


def env_rate(cameras: tuple[str, ...], size: tuple[int, int], seconds: float) -> float:
    from sim.aloha.env import AlohaEnv

    env = AlohaEnv("transfer_cube", cameras=cameras, image_size=size, episode_length=10**9)
    env.reset(seed=0)
    action = robot.START_STATE.copy()
    try:
        return _rate(lambda: env.step(action), seconds)
    finally:
        env.close()


def lockstep_rate(cameras: tuple[str, ...], size: tuple[int, int], seconds: float, log_dir) -> float:
    """Steps/s through DDS: bridge (lockstep) <-> commander, closed loop, one step in flight."""
    import threading

    from sensor_msgs.msg import JointState

    from vla_il.rosgraph import NodeProcess, Probe, wait_until

    bridge = NodeProcess("sim_bridge", log_dir, params={
        "mode": "lockstep", "cameras": list(cameras), "image_height": size[0], "image_width": size[1],
        "episode_length": 10**6,
    })
    probe = Probe("bench_commander")
    try:
        got = threading.Event()
        count = [0]

        def on_joints(_msg):
            count[0] += 1
            got.set()

        probe.node.create_subscription(JointState, "joint_states", on_joints, 10)
        pub = probe.publisher(JointState, "command")
        probe.wait_for_subscribers(pub)
        if not wait_until(lambda: count[0] > 0, 30):
            raise RuntimeError(f"the bridge sent no joint states: {bridge.log()[-2000:]}")
        cmd = JointState(name=list(robot.JOINT_NAMES), position=robot.START_STATE.tolist())

        def step():
            got.clear()
            pub.publish(cmd)
            if not got.wait(5.0):
                raise RuntimeError("lockstep stalled: no observation within 5 s of a command")

        return _rate(step, seconds)
    finally:
        probe.close()
        bridge.stop()


def collect_rate(workers: int, episodes: int, root) -> tuple[float, float]:
    """Frames and episodes written per second by `collect` (expert episodes of transfer_cube, the top
    camera at 96x128, seeds 0..; the time includes starting the worker processes, not this process's
    first import of lerobot, which the row run first would otherwise pay alone)."""
    import lerobot.datasets.lerobot_dataset  # noqa: F401  (one-time import, seconds: outside the timing)

    from sim.collect import collect

    start = time.perf_counter()
    report = collect("transfer_cube", episodes, root, cameras=("top",), image_size=(96, 128), seed=0,
                     progress=False, workers=workers)
    elapsed = time.perf_counter() - start
    return report.frames / elapsed, report.saved / elapsed


def _cams(cams: tuple[str, ...], size: tuple[int, int]) -> str:
    return f"{len(cams)} cam{'' if len(cams) == 1 else 's'}" + (f" {size[0]}x{size[1]}" if cams else "")


def main(argv: list[str] | None = None) -> int:
    import tempfile
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per row")
    parser.add_argument("--skip-ros", action="store_true", help="leave out the lockstep rows")
    parser.add_argument("--collect-episodes", type=int, default=20,
                        help="episodes per collect row (0: leave the collect rows out)")
    args = parser.parse_args(argv)

    rows: list[tuple[str, float, str]] = []
    baseline = gym_aloha_rate(args.seconds)
    rows.append(("gym-aloha 0.1.5 as shipped (3 cams 480x640, shadows)", baseline, "baseline"))
    raw: dict[tuple, float] = {}
    for size in ((480, 640), (96, 128)):
        for cams in ((), ("top",), THREE):
            if not cams and size != (480, 640):
                continue
            rate = env_rate(cams, size, args.seconds)
            raw[(cams, size)] = rate
            label = f"vla-il env, {_cams(cams, size)}"
            rows.append((label, rate, f"{rate / baseline:.1f}x gym-aloha"))
    if not args.skip_ros:
        with tempfile.TemporaryDirectory() as tmp:
            for cams, size in (((), (480, 640)), (("top",), (480, 640)), (("top",), (96, 128))):
                rate = lockstep_rate(cams, size, args.seconds, Path(tmp))
                share = f"{100 * rate / raw[(cams, size)]:.0f}% of the raw env"
                rows.append((f"ROS lockstep (bridge + commander), {_cams(cams, size)}", rate, share))
    if args.collect_episodes > 0:
        with tempfile.TemporaryDirectory() as tmp:
            one, one_eps = collect_rate(1, args.collect_episodes, Path(tmp) / "w1")
            rows.append((f"vla-il collect, 1 cam 96x128, 1 process ({one_eps:.2f} ep/s)", one, "baseline of (d)"))
            two, two_eps = collect_rate(2, args.collect_episodes, Path(tmp) / "w2")
            rows.append((f"vla-il collect --workers 2 ({two_eps:.2f} ep/s)", two, f"{two / one:.2f}x 1 process"))

    width = max(len(r[0]) for r in rows)
    print(f"\n{'configuration':{width}s}  {'steps/s':>8s}  comparison")
    print("-" * (width + 32))
    for label, rate, note in rows:
        print(f"{label:{width}s}  {rate:8.1f}  {note}")
    print(f"\n(50 Hz robot = 50 steps/s; measured over {args.seconds:.0f} s per row on this machine; collect: "
          f"{args.collect_episodes} episodes per row, frames written per second)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
