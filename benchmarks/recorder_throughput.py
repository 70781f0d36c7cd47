"""DAgger recorder throughput: frames recorded vs published, 3 or 4 cameras at 480x640, 50 Hz.

    python -m benchmarks.recorder_throughput [--steps 400] [--cameras 3] [--only TEXT]
    (or: vla-il bench recorder ...)

A publisher process plays the robot in real time: per step, /joint_states, one rgb8 image per camera
stamped like it, then /command. A recorder row runs two episodes of `--steps` through a fresh
dagger_recorder process: the first is stopped without waiting (stop_episode answers at once and
encodes in the background) and the second is recorded while the first encodes. Each reads the
recorder's own account (frames, dropped frames, observation lag, the cost per frame while recording,
the time from the stop to the episode in the dataset). The baseline rows, in the same run, are a plain
rclpy subscriber (spin_once) counting the images, with the camera publisher on vla-il's Fast DDS
profile (config/fastdds.xml) and on Fast DDS's defaults (what a camera driver started without the
profile does). QoS varies: the camera publishers' and the recorder's reliability.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import image_size

ALOHA_CAMERAS = ("top", "left_wrist", "right_wrist", "low")  # an ALOHA records four
CAMERAS = ALOHA_CAMERAS[:3]  # set by --cameras
FPS = 50
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- publisher side
def publish(steps: int, size: tuple[int, int], reliability: str, depth: int) -> dict:
    """Play the robot: wait for a subscriber on every stream, then `steps` steps at 50 Hz."""
    import numpy as np
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import Header

    from sim.aloha.robot import JOINT_NAMES

    rclpy.init()
    node = rclpy.create_node("bench_robot")
    rel = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    image_qos = QoSProfile(depth=depth, reliability=rel)
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    joints = node.create_publisher(JointState, "joint_states", reliable)
    command = node.create_publisher(JointState, "command", reliable)
    images = [node.create_publisher(Image, f"cameras/{c}/image_raw", image_qos) for c in CAMERAS]
    deadline = time.monotonic() + 120
    while any(p.get_subscription_count() < 1 for p in (joints, command, *images)):
        if time.monotonic() > deadline:
            raise TimeoutError("no recorder subscribed within 120 s")
        time.sleep(0.05)
    time.sleep(1.0)  # discovery settles
    h, w = size
    frames = [np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8).tobytes() for i in range(4)]
    names = list(JOINT_NAMES)
    late, t0 = 0, time.monotonic()
    for k in range(steps):
        due = t0 + k / FPS
        while (now := time.monotonic()) < due:
            time.sleep(min(0.001, due - now))
        late += now - due > 0.5 / FPS
        ns = time.time_ns()
        stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
        joints.publish(JointState(header=Header(stamp=stamp), name=names, position=[0.001 * k] * 14))
        for cam, pub in zip(CAMERAS, images, strict=True):
            pub.publish(
                Image(
                    header=Header(stamp=stamp, frame_id=cam),
                    height=h,
                    width=w,
                    encoding="rgb8",
                    step=w * 3,
                    data=frames[k % 4],
                )
            )
        ns += 1_000_000
        command.publish(
            JointState(
                header=Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9)), name=names, position=[0.001 * k] * 14
            )
        )
    elapsed = time.monotonic() - t0
    time.sleep(1.0)
    node.destroy_node()
    rclpy.shutdown()
    return {"published": steps, "seconds": elapsed, "late_steps": late}


def _publisher(
    steps: int, size: tuple[int, int], reliability: str, depth: int, dds_profile: bool = True
) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.recorder_throughput",
        "--publish",
        "--steps",
        str(steps),
        "--size",
        f"{size[0]}x{size[1]}",
        "--reliability",
        reliability,
        "--depth",
        str(depth),
        "--cameras",
        str(len(CAMERAS)),
    ]
    env = dict(os.environ)
    if dds_profile:
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds.xml"))
    else:  # Fast DDS's built-in transports: a 512 KB shared-memory segment
        for var in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
            env.pop(var, None)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _publisher_result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=300)
    if proc.returncode:
        raise RuntimeError(f"the publisher failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------- measurements
def plain_subscriber(
    steps: int, size: tuple[int, int], reliability: str, depth: int, dds_profile: bool = True
) -> dict:
    """Baseline: a plain rclpy node, one subscription per camera, spin_once, counting."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, JointState

    rclpy.init()
    node = rclpy.create_node("bench_plain_subscriber")
    rel = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    counts = dict.fromkeys(CAMERAS, 0)

    def count(cam):
        def cb(_msg):
            counts[cam] += 1

        return cb

    for cam in CAMERAS:
        node.create_subscription(
            Image, f"cameras/{cam}/image_raw", count(cam), QoSProfile(depth=depth, reliability=rel)
        )
    for topic in ("joint_states", "command"):
        node.create_subscription(JointState, topic, lambda _m: None, 50)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    pub = _publisher(steps, size, reliability, depth, dds_profile)
    while pub.poll() is None:
        executor.spin_once(timeout_sec=0.05)
    result = _publisher_result(pub)
    node.destroy_node()
    rclpy.shutdown()
    got = min(counts.values())
    return {"frames": got, "dropped": steps - got, "per_camera": counts, **result}


def recorder(
    steps: int, size: tuple[int, int], reliability: str, depth: int, log_dir: Path, procs: int = 0, spool: bool = True
) -> dict:
    """One episode through a real dagger_recorder process; its StopEpisode answer is the account."""
    import yaml
    from vla_il_msgs.msg import EpisodeEvent
    from vla_il_msgs.srv import StartEpisode, StopEpisode

    from vla_il.rosgraph import CONFIG, LATCHED, NodeProcess, Probe, wait_until

    params = yaml.safe_load((CONFIG / "dagger_recorder.yaml").read_text())
    params["/**"]["ros__parameters"].update(
        {
            "record_dir": str(log_dir / f"rec-{reliability}-{depth}-{procs}-{spool}"),
            "cameras": list(CAMERAS),
            "image_height": size[0],
            "image_width": size[1],
            "image_reliability": reliability,
            "image_depth": depth,
            "instruction": "benchmark",
            "min_free_mb": 100.0,
            "image_writer_processes": procs,
            "spool_images": spool,
        }
    )
    params_file = log_dir / f"recorder-{reliability}-{depth}-{procs}-{spool}.yaml"
    params_file.write_text(yaml.safe_dump(params))
    node = NodeProcess("dagger_recorder", log_dir, [params_file])
    probe = Probe("bench_recorder_probe")
    try:
        events = probe.collect(EpisodeEvent, "recorder/episode", LATCHED)
        if not node.wait_for_log("ready:", timeout=300):
            raise RuntimeError(f"the recorder did not come up:\n{node.log()[-2000:]}")
        episodes = []
        for _ in range(2):  # the second is recorded while the first encodes
            started = probe.call(StartEpisode, "dagger_recorder/start_episode", StartEpisode.Request(), timeout=60)
            if not started.success:
                raise RuntimeError(started.message)
            pub = _publisher(steps, size, reliability, depth)
            result = _publisher_result(pub)
            time.sleep(0.5)
            t0 = time.monotonic()
            stop = probe.call(
                StopEpisode, "dagger_recorder/stop_episode", StopEpisode.Request(task_success=True), timeout=900
            )
            episodes.append(
                {"index": started.episode_index, "frames": stop.num_frames, "stop_ms": 1000 * (time.monotonic() - t0),
                 "started": started.message, "stopped": stop.message, **result}
            )
        print("  encoding ...", flush=True)
        wait_until(lambda: sum(e.event in ("saved", "failed") for e in events) >= 2, 900)
        for ep in episodes:
            event = next((e for e in events if e.event in ("saved", "failed") and e.episode_index == ep["index"]), None)
            # commands the recorder never received are lost too: count against what was published
            ep["dropped"] = max(steps - ep["frames"], event.dropped_frames if event else -1)
            ep["message"] = event.message if event else f"no saved event: {node.log()[-500:]}"
        overlapped = "still encoding" in episodes[1]["started"]
        from training.datasets.lerobot_io import open_dataset

        ds = open_dataset(Path(params["/**"]["ros__parameters"]["record_dir"]) / "dataset")
        last = ds[len(ds) - 1]  # decodes the last frame of every camera's video
        loaded = (
            f"{ds.meta.total_episodes} episodes, {ds.meta.total_frames} frames, "
            f"{len([k for k in last if k.startswith('observation.images.')])} cameras decoded"
        )
        return {"episodes": episodes, "overlapped": overlapped, "loaded": loaded}
    finally:
        probe.close()
        node.stop()


def _grab(m: str, key: str) -> str:
    i = m.find(key)
    return " ".join(m[i + len(key) :].split(",")[0].split(";")[0].split("(")[0].split()[:2]) if i >= 0 else "-"


def _rows(name: str, r: dict, steps: int) -> list[str]:
    if "episodes" not in r:  # a plain subscriber
        return [f"| {name} | {r['frames']}/{steps} | {r['dropped']} | - | - | - | - | - | {r['late_steps']} |"]
    rows = []
    for k, ep in enumerate(r["episodes"]):
        m = ep["message"]
        label = f"{name}, episode {k + 1}" + (" (while episode 1 encodes)" if k and r["overlapped"] else "")
        rows.append(
            f"| {label} | {ep['frames']}/{steps} | {ep['dropped']} | {_grab(m, 'lag p50')} | {_grab(m, 'max')} | "
            f"{_grab(m, 'write')} | {ep['stop_ms']:.0f} ms | {_grab(m, 'saved in')} | {ep['late_steps']} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--size", default="480x640", help="HxW of each of the three cameras")
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reliability", default="reliable", help=argparse.SUPPRESS)
    parser.add_argument("--depth", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--cameras", type=int, default=3, choices=range(1, 5), help="how many 480x640 cameras")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", help="run only the variants whose name contains this")
    args = parser.parse_args(argv)
    size = image_size(parser, args.size, 64)
    global CAMERAS
    CAMERAS = ALOHA_CAMERAS[: args.cameras]
    if args.publish:
        print(json.dumps(publish(args.steps, size, args.reliability, args.depth)))
        return 0
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="vla_il_bench_recorder_") as tmp:
        variants = [
            (
                "plain subscriber, best effort (keep last 10)",
                lambda: plain_subscriber(args.steps, size, "best_effort", 10),
            ),
            (
                "plain subscriber, best effort, publisher on Fast DDS's defaults (no profile)",
                lambda: plain_subscriber(args.steps, size, "best_effort", 10, dds_profile=False),
            ),
            ("plain subscriber, reliable (depth 10)", lambda: plain_subscriber(args.steps, size, "reliable", 10)),
            (
                "dagger_recorder, best effort (depth 10)",
                lambda: recorder(args.steps, size, "best_effort", 10, Path(tmp)),
            ),
            ("dagger_recorder, reliable (depth 10)", lambda: recorder(args.steps, size, "reliable", 10, Path(tmp))),
            (
                "dagger_recorder, reliable, no spool (lerobot's PNG threads while recording)",
                lambda: recorder(args.steps, size, "reliable", 10, Path(tmp), spool=False),
            ),
            (
                "dagger_recorder, reliable, no spool, PNG writer in 2 processes",
                lambda: recorder(args.steps, size, "reliable", 10, Path(tmp), procs=2, spool=False),
            ),
        ]
        for name, run in variants:
            if args.only and args.only not in name:
                continue
            print(f"running: {name} ...", flush=True)
            r = run()
            results[name] = r
            rows += _rows(name, r, args.steps)
    print(
        f"\n{args.steps} steps at {FPS} Hz, {len(CAMERAS)} cameras {size[1]}x{size[0]} rgb8 "
        f"({3 * size[0] * size[1] * len(CAMERAS) * FPS / 1e6:.0f} MB/s):\n"
    )
    print(
        "| receiver, camera QoS | frames | dropped | lag p50 | lag max | per frame | stop answered in "
        "| stop -> in dataset | late pub steps |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    for name, r in results.items():
        if "loaded" in r:
            print(f"\n{name}: the dataset loads with lerobot: {r['loaded']}")
            for ep in r["episodes"]:
                m = ep["message"]
                print(f"  episode {ep['index']}: {m[m.find('saved in'):] if 'saved in' in m else m}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
