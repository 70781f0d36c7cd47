"""Small real bundles, for the tests, the benchmarks and a first run of the graph without training: an MLP
through the real exporter, and hand-built ONNX graphs (a slow model stand-in; the faults a bundle can have:
float64 inputs, inputs the node does not feed, NaN outputs). Needs PyTorch and onnx (the full environment)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from training.checkpoint import save_checkpoint
from training.config import ILConfig
from training.export.onnx_export import export_checkpoint
from training.models.policies import MLPPolicy


def make_bundle(root: Path, name: str, chunk: int = 10, bias: float = 0.0, obs_dim: int = 21,
                ensembling: bool = False, gain: float = 0.01) -> Path:
    """An ALOHA-shaped bundle whose actions are START pose + `bias` on every joint (easy to recognise);
    `gain` scales the last layer: how much the actions depend on the observation."""
    from sim.aloha import robot

    torch.manual_seed(0)
    policy = MLPPolicy(obs_dim=obs_dim, action_dim=14, discrete=False, hidden_dim=16, chunk_size=chunk)
    with torch.no_grad():
        policy.net[-1].weight.mul_(gain)
        policy.net[-1].bias.zero_()
    policy.set_normalization(np.random.default_rng(0).random((50, obs_dim)).astype(np.float32))
    policy.act_mean.copy_(torch.as_tensor(robot.START_STATE + bias, dtype=torch.float32))
    config = ILConfig(action_chunk_size=chunk, temporal_aggregation=ensembling)
    ckpt = save_checkpoint(root / f"{name}_run" / "best", policy, config, provenance={"env": "aloha:transfer_cube"})
    spec, _ = export_checkpoint(ckpt, root / name, name=name)
    return spec.path


def write_meta(bundle: Path, meta: dict) -> None:
    """Rewrite a bundle's policy.json (the tests' way of breaking one field at a time)."""
    (bundle / "policy.json").write_text(json.dumps(meta, indent=2))


def read_meta(bundle: Path) -> dict:
    return json.loads((bundle / "policy.json").read_text())


def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _save_graph(root: Path, name: str, meta: dict, graph) -> Path:
    """Write a hand-built ONNX graph as bundle `root/name` with `meta` (another bundle's policy.json) made its
    own: sha256, policy_id and name redone."""
    import onnx
    from onnx import helper

    from vla_il_core.bundle import file_sha256

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out = Path(root) / name
    out.mkdir(parents=True)
    onnx.save(model, str(out / "policy.onnx"))
    sha = file_sha256(out / "policy.onnx")
    meta["onnx"]["sha256"], meta["policy_id"], meta["name"] = sha, f"{name}-{sha[:12]}", name
    write_meta(out, meta)
    return out


def graph_bundle(root: Path, name: str, like: Path, *, bias: float = 0.0, state_type: str = "float",
                 extra_input: bool = False, nan: str = "never") -> Path:
    """A bundle with a hand-built ONNX graph and `like`'s policy.json (its sha256 and policy_id redone):
    actions = START pose + `bias` whatever the state. `state_type` "double" takes a float64 state;
    `extra_input` adds a required int64 input the node does not feed; `nan` "always" outputs NaN,
    "off_neutral" outputs NaN for any non-zero state (finite on the all-zeros trial observation)."""
    from onnx import TensorProto, helper, numpy_helper

    from sim.aloha import robot

    meta = read_meta(like)
    state_dim = sum(c["dim"] for c in meta["inputs"]["state"]["components"])
    chunk, act = meta["outputs"]["chunk_size"], meta["outputs"]["action_dim"]
    base = np.tile(robot.START_STATE + bias, chunk).astype(np.float32)
    if nan == "always":
        base[0] = np.nan
    inits = [numpy_helper.from_array(np.zeros((state_dim, chunk * act), np.float32), "w"),
             numpy_helper.from_array(base, "b"),
             numpy_helper.from_array(np.array([-1, chunk, act], np.int64), "shape")]
    nodes, x = [], "state"
    if state_type == "double":
        nodes.append(helper.make_node("Cast", ["state"], ["x"], to=TensorProto.FLOAT))
        x = "x"
    nodes += [helper.make_node("MatMul", [x, "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["flat"])]
    if nan == "off_neutral":  # + 0 * sqrt(-sum(state^2)): NaN unless the state is all zeros
        inits += [numpy_helper.from_array(np.ones((state_dim, chunk * act), np.float32), "ones"),
                  numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
        nodes += [helper.make_node("Mul", [x, x], ["sq"]), helper.make_node("MatMul", ["sq", "ones"], ["ss"]),
                  helper.make_node("Neg", ["ss"], ["neg"]), helper.make_node("Sqrt", ["neg"], ["root"]),
                  helper.make_node("Mul", ["root", "zero"], ["poison"]),
                  helper.make_node("Add", ["flat", "poison"], ["flat2"])]
        nodes.append(helper.make_node("Reshape", ["flat2", "shape"], ["actions"]))
    else:
        nodes.append(helper.make_node("Reshape", ["flat", "shape"], ["actions"]))
    elem = TensorProto.DOUBLE if state_type == "double" else TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("state", elem, ["batch", state_dim])]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("instruction_ids", TensorProto.INT64, ["batch", 8]))
    outputs = [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", chunk, act])]
    return _save_graph(root, name, meta, helper.make_graph(nodes, name, inputs, outputs, initializer=inits))


def slow_follower_bundle(root: Path, name: str, like: Path, *, matmuls: int = 12, size: int = 512) -> Path:
    """A chunking bundle that holds the arms where they are (every action of its chunk is the state's joint
    positions) and spends `matmuls` chained size x size matrix products (state-dependent, so never
    folded away; scaled to stay finite; multiplied by 0 into the output) before answering: a slow model
    stand-in with smooth chunks, so a step in the command comes from switching chunks, nothing else."""
    from onnx import TensorProto, helper, numpy_helper

    meta = read_meta(like)
    state_dim = sum(c["dim"] for c in meta["inputs"]["state"]["components"])
    chunk, act = meta["outputs"]["chunk_size"], meta["outputs"]["action_dim"]
    tile = np.zeros((state_dim, chunk * act), np.float32)
    for i in range(chunk):
        tile[np.arange(act), i * act + np.arange(act)] = 1.0  # action i = joint positions (the first 14)
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(tile, "tile"),
             numpy_helper.from_array(rng.standard_normal((state_dim, size)).astype(np.float32), "wd"),
             numpy_helper.from_array(np.array([1.0 / size], np.float32), "scale"),
             numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
             numpy_helper.from_array(np.array([-1, chunk, act], np.int64), "shape")]
    nodes = [helper.make_node("MatMul", ["state", "tile"], ["flat"]),
             helper.make_node("MatMul", ["state", "wd"], ["d0"]), helper.make_node("Sin", ["d0"], ["d"]),
             helper.make_node("Transpose", ["d"], ["dt"], perm=[1, 0]),
             helper.make_node("MatMul", ["dt", "d"], ["m0"])]
    for k in range(matmuls):
        nodes += [helper.make_node("MatMul", [f"m{k}", f"m{k}"], [f"p{k}"]),
                  helper.make_node("Mul", [f"p{k}", "scale"], [f"m{k + 1}"])]
    nodes += [helper.make_node("ReduceSum", [f"m{matmuls}"], ["total"], keepdims=0),
              helper.make_node("Mul", ["total", "zero"], ["nothing"]),
              helper.make_node("Add", ["flat", "nothing"], ["flat2"]),
              helper.make_node("Reshape", ["flat2", "shape"], ["actions"])]
    inputs = [helper.make_tensor_value_info("state", TensorProto.FLOAT, ["batch", state_dim])]
    outputs = [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", chunk, act])]
    return _save_graph(root, name, meta, helper.make_graph(nodes, name, inputs, outputs, initializer=inits))
