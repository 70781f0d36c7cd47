"""Camera nodes at a robot's load: N cameras of HxW at F fps, each a camera_node process over DDS.

    python benchmarks/camera_rate.py [--cameras 3] [--size 480 640] [--fps 30] [--seconds 10]
    (or: vla-il bench camera)

The cameras play a video recorded from the simulated ALOHA (real OpenCV decoding; no V4L2 device
exists here). Rows: the baseline, OpenCV decoding the same file in a loop without ROS (what one
core can decode); then per camera the capture rate and capture-to-publish latency that the node
reports, the rate a subscriber receives, and the capture-to-receive latency (header stamp to arrival).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def record_video(path: Path, size: tuple[int, int], frames: int = 60, fps: int = 30) -> None:
    import cv2

    from sim.aloha import robot
    from sim.aloha.env import AlohaEnv

    env = AlohaEnv(cameras=("top",), image_size=size)
    env.reset(seed=0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    for i in range(frames):
        action = robot.START_STATE.copy()
        action[0] = 0.03 * i
        obs, *_ = env.step(action)
        writer.write(cv2.cvtColor(obs["pixels"]["top"], cv2.COLOR_RGB2BGR))
    writer.release()
    env.close()


def decode_rate(path: Path, seconds: float) -> float:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        n += 1
    cap.release()
    return n / (time.perf_counter() - start)


def run_nodes(path: Path, n: int, fps: float, seconds: float, log_dir: Path) -> list[dict]:
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from vla_il.rosgraph import NodeProcess, Probe, wait_until

    names = [f"cam{i}" for i in range(n)]
    probe = Probe("bench_camera_subscriber")
    arrivals: dict[str, list[tuple[float, float]]] = {c: [] for c in names}
    status: dict[str, dict] = {}
    for cam in names:
        probe.node.create_subscription(
            Image,
            f"/cameras/{cam}/image_raw",
            lambda m, c=cam: arrivals[c].append((time.time(), m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)),
            qos_profile_sensor_data,
        )
        probe.node.create_subscription(
            String, f"/cameras/{cam}/camera_node/status", lambda m, c=cam: status.__setitem__(c, json.loads(m.data)), 10
        )
    procs = [
        NodeProcess(
            "camera_node",
            log_dir,
            params={"source": str(path), "camera_name": cam, "fps": fps, "loop": True, "status_period_s": 1.0},
            remaps={"__ns": f"/cameras/{cam}"},
        )
        for cam in names
    ]
    try:
        if not wait_until(lambda: all(len(a) > 5 for a in arrivals.values()), 30):
            raise RuntimeError("cameras did not start: " + procs[0].log()[-2000:])
        for a in arrivals.values():
            a.clear()
        time.sleep(seconds)
        got = {c: list(a) for c, a in arrivals.items()}
        time.sleep(1.2)  # one more status period
        rows = []
        for cam in names:
            recv = np.array(got[cam])
            s = status[cam]
            delay_ms = (recv[:, 0] - recv[:, 1]) * 1e3 if len(recv) else np.zeros(1)
            rows.append(
                {
                    "camera": cam,
                    "captured_hz": s["capture_rate_hz"],
                    "publish_p50_ms": s["latency_p50_ms"],
                    "publish_p99_ms": s["latency_p99_ms"],
                    "received_hz": (len(recv) - 1) / (recv[-1, 0] - recv[0, 0]) if len(recv) > 1 else 0.0,
                    "receive_p50_ms": float(np.percentile(delay_ms, 50)),
                    "receive_p99_ms": float(np.percentile(delay_ms, 99)),
                }
            )
        return rows
    finally:
        for p in procs:
            p.stop()
        probe.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    size = tuple(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "sim_top.mp4"
        record_video(video, size)
        baseline = decode_rate(video, 3.0)
        rows = run_nodes(video, args.cameras, args.fps, args.seconds, Path(tmp))
    print(f"\n{args.cameras} x camera_node, {size[0]}x{size[1]} rgb8 at {args.fps:g} fps asked, {args.seconds:g} s")
    print(f"baseline: OpenCV decodes this file at {baseline:.0f} frames/s on one core, without ROS\n")
    head = ("camera", "captured/s", "publish p50 ms", "p99", "received/s", "receive p50 ms", "p99")
    print("  ".join(f"{h:>14s}" for h in head))
    for r in rows:
        print(
            f"{r['camera']:>14s}  {r['captured_hz']:14.1f}  {r['publish_p50_ms']:14.2f}  {r['publish_p99_ms']:14.2f}  "
            f"{r['received_hz']:14.1f}  {r['receive_p50_ms']:14.2f}  {r['receive_p99_ms']:14.2f}"
        )
    print(
        "\n(publish: capture -> publish() returned, reported by the node; receive: header stamp -> the "
        "subscriber's callback in another process)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
