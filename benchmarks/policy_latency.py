"""Inference latency (PyTorch eager vs ONNX Runtime) and the policy node's tick jitter, from one run.

    python benchmarks/policy_latency.py [--seconds 60]      (or: vla-il bench policy)

1. The same chunking policy (state -> a chunk of 100 ALOHA actions) in PyTorch eager and in ONNX
   Runtime (CPU here; CUDA where present), batch 1: p50 / p99 latency and the ratio.
2. The policy node driving that bundle at 50 Hz from its timer for `--seconds`, fed with joint
   states at 50 Hz: tick period error p50 / p99 / max (from the node's own action stamps) and the
   missed ticks it reports.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _percentiles(samples_ms: list[float]) -> tuple[float, float]:
    a = np.asarray(samples_ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def inference_latency(tmp: Path, chunk: int, hidden: int, n: int = 2000) -> dict:
    import onnxruntime as ort
    import torch

    from tests.bundles import make_bundle

    bundle = make_bundle(tmp, "bench", chunk=chunk)
    from training.checkpoint import load_checkpoint

    policy, _, _ = load_checkpoint(tmp / "bench_run" / "best")
    policy.eval()
    torch.set_num_threads(1)
    x = torch.randn(1, policy.obs_dim)
    times_pt = []
    with torch.inference_mode():
        for _ in range(50):
            policy(x)
        for _ in range(n):
            t = time.perf_counter()
            policy(x)
            times_pt.append(1000 * (time.perf_counter() - t))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(bundle / "policy.onnx"), options, providers=["CPUExecutionProvider"])
    feeds = {"state": x.numpy()}
    for _ in range(50):
        session.run(None, feeds)
    times_ort = []
    for _ in range(n):
        t = time.perf_counter()
        session.run(None, feeds)
        times_ort.append(1000 * (time.perf_counter() - t))
    return {"bundle": bundle, "pytorch": _percentiles(times_pt), "onnxruntime": _percentiles(times_ort)}


def tick_jitter(bundle: Path, seconds: float, log_dir: Path) -> dict:
    from sensor_msgs.msg import JointState
    from vla_il_msgs.msg import PolicyStatus, SimState

    from sim.aloha import robot
    from vla_il.rosgraph import NodeProcess, Probe, wait_until

    node = NodeProcess("policy_node", log_dir, params={"bundle": str(bundle)})
    probe = Probe("bench_feeder")
    stamps: list[float] = []
    status: list[PolicyStatus] = []
    probe.node.create_subscription(JointState, "policy/action",
                                   lambda m: stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9), 100)
    probe.node.create_subscription(PolicyStatus, "policy/status", status.append, 10)
    joints = probe.publisher(JointState, "joint_states")
    sim = probe.publisher(SimState, "sim/state")
    running = True

    def feed() -> None:
        msg = JointState(name=list(robot.JOINT_NAMES), position=robot.START_STATE.tolist())
        state = SimState(env_state=[0.1, 0.5, 0.02, 1.0, 0.0, 0.0, 0.0])
        while running:
            joints.publish(msg)
            sim.publish(state)
            time.sleep(0.02)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        if not wait_until(lambda: len(stamps) > 50, 30):
            raise RuntimeError(f"the policy node did not act: {node.log()[-2000:]}")
        first = len(stamps)
        time.sleep(seconds)
        window = np.asarray(stamps[first:])
        final = status[-1] if status else None
    finally:
        running = False
        feeder.join()
        probe.close()
        node.stop()
    period_err_ms = np.abs(np.diff(window) - 0.02) * 1000
    return {"ticks": len(window), "p50": float(np.percentile(period_err_ms, 50)),
            "p99": float(np.percentile(period_err_ms, 99)), "max": float(period_err_ms.max()),
            "gaps": int((np.diff(window) > 0.03).sum()),
            "missed": int(final.missed_ticks) if final else -1,
            "inference_p50": float(final.latency_p50_ms) if final else float("nan")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the node drives at 50 Hz")
    parser.add_argument("--chunk", type=int, default=100, help="actions per chunk")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lat = inference_latency(tmp, args.chunk, hidden=16)
        jit = tick_jitter(lat["bundle"], args.seconds, tmp)
    (pt50, pt99), (ort50, ort99) = lat["pytorch"], lat["onnxruntime"]
    print(f"\nchunking policy (ALOHA state 21 -> {args.chunk} x 14 actions), batch 1, one CPU thread")
    print(f"{'runtime':22s} {'p50 ms':>8s} {'p99 ms':>8s}  ratio (p50)")
    print(f"{'PyTorch eager':22s} {pt50:8.3f} {pt99:8.3f}  1.00x (baseline)")
    print(f"{'ONNX Runtime (CPU)':22s} {ort50:8.3f} {ort99:8.3f}  {pt50 / ort50:.2f}x faster")
    print(f"\npolicy node at 50 Hz for {args.seconds:.0f} s ({jit['ticks']} ticks): tick period error "
          f"p50 {jit['p50']:.2f} ms, p99 {jit['p99']:.2f} ms, max {jit['max']:.2f} ms; "
          f"gaps > 30 ms: {jit['gaps']}; missed ticks (node): {jit['missed']}; "
          f"inference p50 in the node {jit['inference_p50']:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
