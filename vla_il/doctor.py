"""`vla-il doctor`: check that every part of the environment works here, each with a real use.

Not an import check only: it renders with MuJoCo, runs an ONNX Runtime session, and sends one of
our own messages over DDS between two nodes.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _torch() -> str:
    import torch

    x = torch.randn(8, 8)
    assert torch.isfinite(x @ x).all()
    return f"torch {torch.__version__}, CUDA {'available' if torch.cuda.is_available() else 'not available (CPU)'}"


def _learning_stack() -> str:
    versions = []
    for name in ("torchvision", "transformers", "lerobot", "gymnasium", "tokenizers"):
        versions.append(f"{name} {importlib.import_module(name).__version__}")
    return ", ".join(versions)


def _mujoco() -> str:
    import mujoco

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><light pos='0 0 2'/><geom type='box' size='.1 .1 .1'/></worldbody></mujoco>"
    )
    data = mujoco.MjData(model)
    mujoco.mj_step(model, data)
    with mujoco.Renderer(model, 48, 64) as renderer:
        renderer.update_scene(data)
        img = renderer.render()
    assert img.shape == (48, 64, 3)
    return f"mujoco {mujoco.__version__}, rendered 64x48 with MUJOCO_GL={os.environ.get('MUJOCO_GL', '(default)')}"


def _onnxruntime() -> str:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # onnx 1.23 writes IR 14 by default; ONNX Runtime 1.24 reads up to 13
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "relu.onnx"
        onnx.save(model, path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        y = session.run(None, {"x": np.array([[-1, 0, 1, 2]], dtype=np.float32)})[0]
    assert y.tolist() == [[0, 0, 1, 2]]
    return f"onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}"


def _ros() -> str:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from vla_il_msgs.msg import ActionChunk

    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)  # Ctrl-C: Python's KeyboardInterrupt
    try:
        pub_node = rclpy.create_node("vla_il_doctor_pub", context=context)
        sub_node = rclpy.create_node("vla_il_doctor_sub", context=context)
        got: list[ActionChunk] = []
        sub_node.create_subscription(ActionChunk, "vla_il_doctor", got.append, 10)
        pub = pub_node.create_publisher(ActionChunk, "vla_il_doctor", 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(pub_node)
        executor.add_node(sub_node)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            pub.publish(ActionChunk(chunk_size=1, action_dim=2, actions=[0.5, -0.5]))
            executor.spin_once(timeout_sec=0.1)
        if not got:
            raise RuntimeError("no message came back over DDS within 10 s (check ROS_DOMAIN_ID / firewall)")
        return (
            f"rclpy over {os.environ.get('RMW_IMPLEMENTATION', 'default RMW')}, "
            f"vla_il_msgs/ActionChunk round trip, ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}"
        )
    finally:
        rclpy.shutdown(context=context)


def _workspace() -> str:
    root = Path(os.environ.get("VLA_IL_ROOT", Path(__file__).resolve().parents[1]))
    exe = root / "ros2_ws/install/vla_il_nodes/lib/vla_il_nodes/intervention_mux"
    launch = root / "ros2_ws/install/vla_il/share/vla_il/launch"
    if not exe.exists():
        raise RuntimeError(f"{exe} is missing: run scripts/setup.sh")
    if not launch.is_dir():
        raise RuntimeError(f"{launch} is missing: run scripts/setup.sh")
    return f"ros2_ws installed: {len(list(launch.glob('*.launch.py')))} launch files, nodes in {exe.parent}"


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("PyTorch", _torch),
    ("learning stack", _learning_stack),
    ("MuJoCo (headless)", _mujoco),
    ("ONNX Runtime", _onnxruntime),
    ("ROS 2 (rclpy + our messages)", _ros),
    ("colcon workspace", _workspace),
]


def run_doctor() -> int:
    """Run every check, print one line each; return the number of failures."""
    failures = 0
    print(f"vla-il doctor (Python {sys.version.split()[0]})")
    for name, check in CHECKS:
        started = time.perf_counter()
        try:
            detail, ok = check(), True
        except Exception as exc:  # a check reports any failure as one line
            detail, ok = f"{type(exc).__name__}: {exc}", False
        failures += not ok
        print(f"  [{'ok' if ok else 'FAIL'}] {name:30s} {detail}  ({time.perf_counter() - started:.1f} s)")
    return failures
