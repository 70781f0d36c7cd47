"""Export: a checkpoint becomes a bundle that ONNX Runtime runs like PyTorch; bad bundles are refused."""

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.checkpoint import save_checkpoint
from training.config import ILConfig
from training.export.onnx_export import export_checkpoint
from training.models.policies import MLPPolicy
from vla_il_core.bundle import BundleError, check_graph, read_bundle


@pytest.fixture
def aloha_checkpoint(tmp_path):
    torch.manual_seed(0)
    policy = MLPPolicy(obs_dim=21, action_dim=14, discrete=False, hidden_dim=32, chunk_size=10)
    policy.set_normalization(np.random.rand(100, 21).astype(np.float32) * 3, np.random.rand(100, 10, 14))
    config = ILConfig(action_chunk_size=10)
    return save_checkpoint(tmp_path / "run" / "best", policy, config, {"success_rate": 0.5},
                           provenance={"env": "aloha:transfer_cube", "dataset": "demos"}), policy


def test_export_writes_a_bundle_with_parity_and_the_contract(aloha_checkpoint, tmp_path):
    ckpt, policy = aloha_checkpoint
    spec, diff = export_checkpoint(ckpt, tmp_path / "bundle")
    assert diff <= 1e-4
    assert spec.state_dim == 21 and (spec.chunk_size, spec.action_dim) == (10, 14) and spec.fps == 50
    assert [c.source for c in spec.state_components] == ["joint_states", "sim/state"]
    assert spec.joint_names[0] == "left_waist" and spec.policy_id.startswith("run-")
    meta = json.loads((tmp_path / "bundle/policy.json").read_text())
    assert meta["normalization"]["folded_into_graph"] and meta["provenance"]["dataset"] == "demos"
    assert meta["parity"]["max_abs_diff"] == diff
    # dynamic batch: ONNX Runtime on a batch of 3 equals PyTorch
    session = ort.InferenceSession(str(spec.onnx_path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).random((3, 21), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"state": x})[0], policy(torch.as_tensor(x)).detach().numpy(),
                               atol=1e-5)


def test_an_ensemble_exports_as_one_graph_that_averages_its_members(tmp_path):
    torch.manual_seed(1)
    policy = MLPPolicy(obs_dim=21, action_dim=14, discrete=False, hidden_dim=16, chunk_size=5, members=3)
    policy.set_normalization(np.random.rand(100, 21).astype(np.float32), np.random.rand(100, 5, 14))
    config = ILConfig(action_chunk_size=5, ensemble_size=3)
    ckpt = save_checkpoint(tmp_path / "run" / "best", policy, config, provenance={"env": "aloha:transfer_cube"})
    spec, diff = export_checkpoint(ckpt, tmp_path / "bundle")
    assert diff <= 1e-4 and spec.chunk_size == 5
    session = ort.InferenceSession(str(tmp_path / "bundle" / "policy.onnx"), providers=["CPUExecutionProvider"])
    state = np.random.rand(2, 21).astype(np.float32)
    with torch.no_grad():
        members = policy.member_outputs(torch.as_tensor(state)) * policy.act_std + policy.act_mean
        expected = policy.snap_binary(members.mean(0)).numpy()
    np.testing.assert_allclose(session.run(None, {"state": state})[0], expected, atol=1e-4)


def test_refused_bundles_say_why(aloha_checkpoint, tmp_path):
    ckpt, _ = aloha_checkpoint
    export_checkpoint(ckpt, tmp_path / "b")
    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "b", broken)
    (broken / "policy.onnx").unlink()
    with pytest.raises(BundleError, match="policy.onnx is missing"):
        read_bundle(broken)
    shutil.copytree(tmp_path / "b", broken, dirs_exist_ok=True)
    meta = json.loads((broken / "policy.json").read_text())
    meta["outputs"]["chunk_size"] = 20
    meta["recommended"]["n_action_steps"] = 20
    (broken / "policy.json").write_text(json.dumps(meta))
    session = ort.InferenceSession(str(broken / "policy.onnx"), providers=["CPUExecutionProvider"])
    with pytest.raises(BundleError, match="chunk 20 x 14, the graph outputs"):
        check_graph(read_bundle(broken), session)
    (broken / "policy.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(Exception, match="(?i)protobuf|invalid|load"):
        ort.InferenceSession(str(broken / "policy.onnx"), providers=["CPUExecutionProvider"])


def test_an_existing_bundle_is_not_overwritten(aloha_checkpoint, tmp_path):
    ckpt, _ = aloha_checkpoint
    export_checkpoint(ckpt, tmp_path / "b")
    with pytest.raises(BundleError, match="exists and is not empty"):
        export_checkpoint(ckpt, tmp_path / "b")
