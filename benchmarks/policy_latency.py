"""Inference latency (PyTorch eager vs ONNX Runtime) and the policy node's ticks, from one run.

    python -m benchmarks.policy_latency [--seconds 60] [--vla-seconds 20] [--no-vla]
    (or: vla-il bench policy ...)

1. The same chunking policy (state -> a chunk of 100 ALOHA actions) in PyTorch eager and in ONNX
   Runtime (CPU here; CUDA where present), batch 1: p50 / p99 latency and the ratio.
2. The policy node driving that bundle at 50 Hz from its timer for `--seconds`, fed with joint
   states at 50 Hz: tick period error p50 / p99 / max (from the node's own action stamps), the
   missed ticks it reports, and its own work per tick outside the model (policy/status: feeds,
   runner, publishing, image callbacks).
3. The same for camera bundles: the tiny VLA (`VLAModel.tiny`, patch 16, 10-action chunks, the
   README's recipe, untrained: latency does not depend on the weights) exported through our bundle,
   with 1 and 3 cameras at 96x128 and 480x640, the node fed rgb8 images at 50 Hz over DDS.
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


def _timed_ms(call, n: int, warmup: int = 1) -> tuple[float, float]:
    """p50 / p99 (ms) of `n` calls of `call()` after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - t))
    return _percentiles(times)


def _ort_session(onnx_path: Path):
    """ONNX Runtime on the CPU, one thread, every graph optimisation: as the benchmark compares it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def inference_latency(tmp: Path, chunk: int, hidden: int, n: int = 2000) -> dict:
    import torch

    from training.export.sample_bundles import make_bundle

    bundle = make_bundle(tmp, "bench", chunk=chunk)
    from training.checkpoint import load_checkpoint

    policy, _, _ = load_checkpoint(tmp / "bench_run" / "best")
    policy.eval()
    torch.set_num_threads(1)
    x = torch.randn(1, policy.obs_dim)
    with torch.inference_mode():
        pytorch = _timed_ms(lambda: policy(x), n, warmup=50)
    session, feeds = _ort_session(bundle / "policy.onnx"), {"state": x.numpy()}
    return {"bundle": bundle, "pytorch": pytorch, "onnxruntime": _timed_ms(lambda: session.run(None, feeds), n, 50)}


def vla_latency(tmp: Path, cameras: tuple[str, ...], size: tuple[int, int], patch: int, chunk: int = 10,
                n: int = 30) -> dict:
    """A tiny VLA bundle with these cameras: PyTorch eager vs ONNX Runtime per call (batch 1, one thread)."""
    import torch

    from training.checkpoint import save_checkpoint
    from training.config import ILConfig
    from training.export.onnx_export import export_checkpoint
    from training.models.vla import VLAModel

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = VLAModel.tiny(cameras=cameras, image_size=size, chunk_size=chunk, patch_size=patch)
    model.set_normalization(np.zeros(14), np.full(14, 0.5), np.ones(14), np.full(14, 0.2))
    name = f"vla_{len(cameras)}x{size[0]}x{size[1]}_{chunk}"
    save_checkpoint(tmp / name / "best", model, ILConfig(action_chunk_size=chunk), provenance={"task": "transfer_cube"})
    spec, _diff = export_checkpoint(tmp / name, tmp / f"{name}_bundle")
    rng = np.random.default_rng(0)
    images = {c: rng.random((1, 3, *size), dtype=np.float32) for c in cameras}
    state = rng.standard_normal((1, 14)).astype(np.float32)
    obs = {"observation.state": torch.from_numpy(state), "task": [model.instruction if hasattr(model, "instruction")
                                                                  else "transfer the cube"]}
    obs.update({f"observation.images.{c}": torch.from_numpy(v) for c, v in images.items()})
    model.eval()
    with torch.inference_mode():
        pytorch = _timed_ms(lambda: model.predict(obs), n)
    session = _ort_session(spec.onnx_path)
    feeds = {"state": state, **{f"image_{c}": v for c, v in images.items()}}
    return {"bundle": spec.path, "pytorch": pytorch, "onnxruntime": _timed_ms(lambda: session.run(None, feeds), n),
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def act_latency(tmp: Path, like: Path, size: tuple[int, int] = (480, 640), n: int = 10) -> dict:
    """lerobot's ACT at its default configuration (ResNet-18, 512-wide transformer, 100-action chunks; no
    pretrained backbone: none can be downloaded here, and latency does not depend on the weights) with one
    camera, exported to ONNX as a bundle the node runs (`like`: a one-camera bundle of this image size whose
    policy.json is adapted): PyTorch eager vs ONNX Runtime per chunk."""
    import json

    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy

    from vla_il_core.bundle import file_sha256

    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = ACTConfig(
        pretrained_backbone_weights=None,
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (14,)),
                        "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, *size))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (14,))},
    )
    act = ACTPolicy(config).eval().requires_grad_(False)

    class Chunk(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act = act.model

        def forward(self, state, image_top):
            return self.act({"observation.state": state, "observation.images": [image_top]})[0]

    chunk = Chunk().eval()
    state, image = torch.randn(1, 14), torch.rand(1, 3, *size)
    with torch.inference_mode():
        pytorch = _timed_ms(lambda: chunk(state, image), n)
    out = tmp / "act_bundle"
    out.mkdir()
    torch.onnx.export(chunk, (state, image), str(out / "policy.onnx"), input_names=["state", "image_top"],
                      output_names=["actions"], opset_version=17, dynamo=False)
    meta = json.loads((like / "policy.json").read_text())
    meta["outputs"].update(chunk_size=config.chunk_size, action_dim=14)
    meta.setdefault("recommended", {})["n_action_steps"] = config.n_action_steps
    meta["recommended"]["temporal_ensembling"] = False
    sha = file_sha256(out / "policy.onnx")
    meta["onnx"]["sha256"], meta["policy_id"], meta["name"] = sha, f"act-{sha[:12]}", "act"
    (out / "policy.json").write_text(json.dumps(meta, indent=2))
    session, feeds = _ort_session(out / "policy.onnx"), {"state": state.numpy(), "image_top": image.numpy()}
    return {"bundle": out, "pytorch": pytorch, "onnxruntime": _timed_ms(lambda: session.run(None, feeds), n),
            "params_m": sum(p.numel() for p in act.parameters()) / 1e6}


def tick_jitter(bundle: Path, seconds: float, log_dir: Path, cameras: tuple[str, ...] = (),
                size: tuple[int, int] = (0, 0), blend: bool = True, sway: float = 0.05) -> dict:
    from sensor_msgs.msg import Image, JointState
    from vla_il_msgs.msg import PolicyStatus, SimState

    from sim.aloha import robot
    from vla_il.rosgraph import NodeProcess, Probe, wait_until

    node = NodeProcess("policy_node", log_dir, params={"bundle": str(bundle), "chunk_blending": blend})
    probe = Probe("bench_feeder")
    stamps: list[float] = []
    actions: list[np.ndarray] = []
    status: list[PolicyStatus] = []

    def heard(m) -> None:
        stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)
        actions.append(np.asarray(m.position))

    probe.node.create_subscription(JointState, "policy/action", heard, 100)
    probe.node.create_subscription(PolicyStatus, "policy/status", status.append, 10)
    joints = probe.publisher(JointState, "joint_states")
    sim = probe.publisher(SimState, "sim/state")
    from rclpy.qos import qos_profile_sensor_data

    cams = [probe.node.create_publisher(Image, f"cameras/{c}/image_raw", qos_profile_sensor_data) for c in cameras]
    running = True

    def feed() -> None:
        msg = JointState(name=list(robot.JOINT_NAMES), position=robot.START_STATE.tolist())
        state = SimState(env_state=[0.1, 0.5, 0.02, 1.0, 0.0, 0.0, 0.0])
        h, w = size
        data = np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8).tobytes() if cameras else b""
        images = [Image(height=h, width=w, encoding="rgb8", step=3 * w, data=data) for _ in cameras]
        due = t0 = time.monotonic()
        while running:
            stamp = probe.node.get_clock().now().to_msg()
            msg.header.stamp = stamp
            # the arms sway (`sway` rad at 0.5 Hz): each chunk sees another state than the last
            msg.position = (robot.START_STATE + sway * np.sin(np.pi * (time.monotonic() - t0))).tolist()
            joints.publish(msg)
            sim.publish(state)
            for pub, img in zip(cams, images, strict=True):
                img.header.stamp = stamp
                pub.publish(img)
            due += 0.02
            time.sleep(max(0.0, due - time.monotonic()))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        if not wait_until(lambda: len(stamps) > 50, 30):
            raise RuntimeError(f"the policy node did not act: {node.log()[-2000:]}")
        first = len(stamps)
        time.sleep(seconds)
        window = np.asarray(stamps[first:])
        steps = np.abs(np.diff(np.stack(actions[first:len(window) + first]), axis=0)).max(axis=1)
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
            "node_ticks": int(final.ticks) if final else -1,
            "inference_p50": float(final.latency_p50_ms) if final else float("nan"),
            "inference_max": float(final.latency_max_ms) if final else float("nan"),
            "work_p50": float(final.work_p50_ms) if final else float("nan"),
            "work_p99": float(final.work_p99_ms) if final else float("nan"),
            "work": final.work_breakdown if final else "",
            "max_step": float(steps.max()), "step_p99": float(np.percentile(steps, 99))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the node drives the MLP at 50 Hz")
    parser.add_argument("--vla-seconds", type=float, default=20.0, help="how long it drives each VLA bundle")
    parser.add_argument("--chunk", type=int, default=100, help="actions per chunk (the MLP)")
    parser.add_argument("--no-vla", action="store_true", help="skip the camera bundles")
    parser.add_argument("--slow-seconds", type=float, default=20.0, help="how long it drives the slow stand-in")
    args = parser.parse_args(argv)
    vla_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("MLP bundle: latency, then the node ...", flush=True)
        lat = inference_latency(tmp, args.chunk, hidden=16)
        jit = tick_jitter(lat["bundle"], args.seconds, tmp)
        from training.export.sample_bundles import make_bundle, slow_follower_bundle

        like = make_bundle(tmp, "like20", chunk=20)
        slow = slow_follower_bundle(tmp, "slow_follower", like, matmuls=16)
        slow_rows = []
        for blend in (True, False):
            print(f"slow stand-in (chunk 20, ~3 ticks of inference), blending {'on' if blend else 'off'} ...",
                  flush=True)
            slow_rows.append((blend, tick_jitter(slow, args.slow_seconds, tmp, blend=blend, sway=0.3)))
        if not args.no_vla:
            three = ("top", "left_wrist", "right_wrist")
            # 480x640 with 32-pixel patches: 300 image tokens a camera (16-pixel ones would be 1200, and
            # three cameras would exceed the tiny Qwen2's context of 2048)
            # A chunk's actions are for the ticks from the observation it was inferred on: the first L
            # (the inference's latency in ticks) have passed when it arrives, so n-action chunks sustain
            # 50 Hz only while L <= n / 2. The last row doubles the chunk of the slowest bundle.
            for cams, size, patch, chunk in ((("top",), (96, 128), 16, 10), (three, (96, 128), 16, 10),
                                             (("top",), (480, 640), 32, 10), (three, (480, 640), 32, 10),
                                             (three, (480, 640), 32, 20)):
                label = (f"tiny VLA, {len(cams)} camera{'s' if len(cams) > 1 else ''} {size[0]}x{size[1]}, "
                         f"patch {patch}, chunk {chunk}")
                print(f"{label}: export, latency, then the node ...", flush=True)
                v = vla_latency(tmp, cams, size, patch, chunk)
                vla_rows.append((label, v, tick_jitter(v["bundle"], args.vla_seconds, tmp, cams, size)))
                if cams == ("top",) and size == (480, 640):  # ACT beside it, through the same bundle format
                    label_act = "lerobot ACT (default config, ResNet-18), top 480x640, chunk 100"
                    print(f"{label_act}: export, latency, then the node ...", flush=True)
                    a = act_latency(tmp, v["bundle"])
                    vla_rows.append((label_act, a, tick_jitter(a["bundle"], args.vla_seconds, tmp, cams, size)))
                if chunk == 20:  # the slow one: what the cross-fade of arriving chunks does to the command
                    print(f"{label}, no chunk blending: the node ...", flush=True)
                    off = tick_jitter(v["bundle"], args.vla_seconds, tmp, cams, size, blend=False)
                    vla_rows.append((label + ", no chunk blending", v, off))
    (pt50, pt99), (ort50, ort99) = lat["pytorch"], lat["onnxruntime"]
    print(f"\nchunking policy (ALOHA state 21 -> {args.chunk} x 14 actions), batch 1, one CPU thread")
    print(f"{'runtime':22s} {'p50 ms':>8s} {'p99 ms':>8s}  ratio (p50)")
    print(f"{'PyTorch eager':22s} {pt50:8.3f} {pt99:8.3f}  1.00x (baseline)")
    print(f"{'ONNX Runtime (CPU)':22s} {ort50:8.3f} {ort99:8.3f}  {pt50 / ort50:.2f}x faster")
    print(f"\npolicy node at 50 Hz for {args.seconds:.0f} s ({jit['ticks']} ticks): tick period error "
          f"p50 {jit['p50']:.2f} ms, p99 {jit['p99']:.2f} ms, max {jit['max']:.2f} ms; "
          f"gaps > 30 ms: {jit['gaps']}; missed ticks (node): {jit['missed']}; "
          f"inference p50 in the node {jit['inference_p50']:.3f} ms; "
          f"own work per tick p50 {jit['work_p50']:.3f} ms, p99 {jit['work_p99']:.3f} ms ({jit['work']}); "
          f"largest action step between ticks {jit['max_step']:.4f} rad")
    print("\nslow stand-in (tests/bundles.slow_follower_bundle: every action of its 20-action chunk is the joint "
          "state it saw, 16 chained 512x512 products before it answers), fed joints swaying 0.3 rad at 0.5 Hz "
          f"(up to 0.019 rad a tick), {args.slow_seconds:.0f} s each; the mux's max_step is 0.1 rad")
    print("| chunk blending | inference p50 / max ms | missed ticks | action step p99 / max rad |")
    print("|---|---|---|---|")
    for blend, j in slow_rows:
        print(f"| {'on' if blend else 'off'} | {j['inference_p50']:.1f} / {j['inference_max']:.1f} | "
              f"{j['missed']} of {j['node_ticks']} | {j['step_p99']:.4f} / {j['max_step']:.4f} |")
    if vla_rows:
        print(f"\ncamera bundles, batch 1, one CPU thread; the node at 50 Hz for {args.vla_seconds:.0f} s each, "
              "chunks queued (inference on a worker thread)")
        print("| bundle | params | PyTorch p50 ms | ORT p50 ms | ORT vs PyTorch | node: inference p50 / max ms | "
              "missed ticks | tick error p99 ms | own work per tick p50 / p99 ms | by stage (p50) | "
              "action step p99 / max rad |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for label, v, j in vla_rows:
            print(f"| {label} | {v['params_m']:.2f} M | {v['pytorch'][0]:.1f} | {v['onnxruntime'][0]:.1f} | "
                  f"{v['pytorch'][0] / v['onnxruntime'][0]:.2f}x | "
                  f"{j['inference_p50']:.1f} / {j['inference_max']:.1f} | "
                  f"{j['missed']} of {j['node_ticks']} | {j['p99']:.2f} | {j['work_p50']:.3f} / {j['work_p99']:.3f} | "
                  f"{j['work']} | {j['step_p99']:.4f} / {j['max_step']:.4f} |")
    print("\nthe mux's max_step (config/intervention_mux.yaml): 0.1 rad for arm joints, 0.2 for the grippers; "
          "the node is fed joint states swaying 0.05 rad at 0.5 Hz (0.005 rad a tick at most)")
    print("\nfull-size VLA (the specification's SigLIP + Qwen2): skipped, no GPU here")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
