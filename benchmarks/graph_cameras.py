"""The whole graph with cameras, in lockstep over DDS: what an episode costs when the sim renders and
publishes its cameras, the policy node runs a camera bundle on them, and the recorder records them.

    python -m benchmarks.graph_cameras [--cameras 1] [--size 480x640] [--steps 100] [--display]
    (or: vla-il bench graph ...)

The graph is the demo's (vla_il.demo.SimGraph: sim_bridge, policy_node, intervention_mux,
teleop_sim_expert, dagger_recorder, the launch file's parameter files) with a tiny VLA bundle (untrained:
the speed does not depend on the weights; patch 32 at 480x640, 16 below) for the cameras asked. Rows, from
one run: the same graph without cameras driven by a state MLP bundle (the baseline), then the cameras.
Per row: control steps per second in lockstep (the sim waits for each command), frames recorded and
dropped, the policy node's inference and own work per tick, and the time from the sim's end of the
episode to the episode in the dataset (the encoding, in the background).

--display: the camera graph again with the live view on (display_node serving the web viewer, as
`display:=true` runs it), alternated with runs without it (off, on, off, on), so the difference can be
read against the run-to-run spread of the same graph.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import image_size
from benchmarks.policy_latency import vla_latency

ALL = ("top", "left_wrist", "right_wrist")


def run_graph(tmp: Path, name: str, bundle: Path, cameras: tuple[str, ...], size: tuple[int, int], steps: int,
              display: bool = False) -> dict:
    from vla_il_msgs.msg import PolicyStatus

    from vla_il.demo import SimGraph
    from vla_il.rosgraph import RELIABLE

    logs = tmp / f"{name}_logs"
    logs.mkdir()
    graph = SimGraph("transfer_cube", bundle, tmp / f"{name}_rec", logs, cameras=cameras, image_size=size,
                     episode_length=steps, display_port=_free_port() if display else None)
    try:
        graph.start()
        status = graph.probe.collect(PolicyStatus, "policy/status", RELIABLE)
        done_before = len(graph.sim_events)
        t0 = time.time()
        [episode] = graph.run_episodes(1, 400, timeout_s=1800, desc=name)
        saved_at = time.time()
        done = graph.sim_events[done_before:]
        done_at = done[-1].header.stamp.sec + 1e-9 * done[-1].header.stamp.nanosec if done else float("nan")
        last = status[-1] if status else None
    finally:
        problems = graph.stop()
    if problems:
        raise RuntimeError("; ".join(problems))
    return {
        "steps_per_s": episode["frames"] / (done_at - t0),
        "frames": episode["frames"],
        "dropped": episode["dropped_frames"],
        "inference_p50": float(last.latency_p50_ms) if last else float("nan"),
        "work_p50": float(last.work_p50_ms) if last else float("nan"),
        "saved_after_s": saved_at - done_at,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=1, choices=(1, 2, 3), help="how many cameras")
    parser.add_argument("--size", default="480x640", help="HxW of each camera")
    parser.add_argument("--steps", type=int, default=100, help="control steps in the episode")
    parser.add_argument("--display", action="store_true", help="also with the live view on (off/on twice)")
    args = parser.parse_args(argv)
    size = image_size(parser, args.size, 32)
    if args.steps < 10:
        parser.error(f"--steps: at least 10, got {args.steps}")
    cameras = ALL[: args.cameras]
    rows = []
    with tempfile.TemporaryDirectory(prefix="vla_il_bench_graph_") as tmp:
        tmp = Path(tmp)
        from training.export.sample_bundles import make_bundle

        print("baseline: the graph without cameras, a state MLP bundle ...", flush=True)
        rows.append(("no cameras, state MLP (baseline)",
                     run_graph(tmp, "state", make_bundle(tmp, "mlp", chunk=10), (), size, args.steps)))
        patch = 32 if min(size) >= 240 else 16
        print(f"{len(cameras)} camera(s) {size[0]}x{size[1]}: tiny VLA bundle (patch {patch}) ...", flush=True)
        vla = vla_latency(tmp, cameras, size, patch, n=3)
        label = f"{', '.join(cameras)} at {size[0]}x{size[1]}, tiny VLA (patch {patch})"
        rows.append((label, run_graph(tmp, "cameras", vla["bundle"], cameras, size, args.steps)))
        if args.display:
            for k, on in enumerate((True, False, True)):
                print(f"{label}, live view {'on' if on else 'off'} ...", flush=True)
                rows.append((f"{label}, live view {'on' if on else 'off'}",
                             run_graph(tmp, f"view{k}", vla["bundle"], cameras, size, args.steps, display=on)))
    print(f"\none episode of {args.steps} control steps in lockstep, transfer_cube, this machine's cores\n")
    print("| graph | steps/s | frames recorded | dropped | inference p50 | node's own work p50 | "
          "end of episode -> in the dataset |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['steps_per_s']:.1f} | {r['frames']}/{args.steps} | {r['dropped']} | "
              f"{r['inference_p50']:.1f} ms | {r['work_p50']:.2f} ms | {r['saved_after_s']:.1f} s |")
    base = rows[0][1]["steps_per_s"]
    print(f"\ncameras vs baseline: {rows[1][1]['steps_per_s'] / base:.2f}x the steps per second")
    return 0 if all(np.isfinite(r["steps_per_s"]) for _, r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
