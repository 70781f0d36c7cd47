"""The tiny VLA exports to a policy bundle the node can run: images + state in, the instruction baked."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.checkpoint import save_checkpoint
from training.config import ILConfig
from training.export.onnx_export import export_checkpoint
from training.models.vla import VLAModel
from vla_il_core.bundle import BundleError, read_bundle


@pytest.mark.parametrize(("state_dropout", "state_keep", "head"),
                         [(0.0, (), "regression"), (1.0, (), "regression"), (1.0, (6, 13), "regression"),
                          (1.0, (6, 13), "flow_matching")],
                         ids=["with-state", "vision-only", "vision-and-grippers", "flow-matching"])
def test_vla_checkpoint_exports_to_a_bundle_with_parity(tmp_path, state_dropout, state_keep, head):
    """A vision-only VLA (state_dropout 1.0) keeps the bundle's state input (the node's contract), unused (or
    reads only the state_keep values from it). A flow-matching head's integration is in the graph, from the
    model's own start noise: the bundle's chunk is the checkpoint's."""
    torch.set_num_threads(1)
    model = VLAModel.tiny(chunk_size=5, hidden=32, state_dropout=state_dropout, state_keep=state_keep,
                          action_head=head, flow_steps=4)
    model.set_normalization(np.zeros(14), np.full(14, 0.5), np.ones(14), np.full(14, 0.2))
    save_checkpoint(tmp_path / "run/best", model, ILConfig(action_chunk_size=5), provenance={"task": "transfer_cube"})
    spec, diff = export_checkpoint(tmp_path / "run", tmp_path / "bundle")
    assert diff < 1e-4 and spec.cameras == ("top",) and spec.image_size == (48, 64) and spec.chunk_size == 5
    meta = json.loads((tmp_path / "bundle/policy.json").read_text())
    text = "Pick up the red cube with the right arm and hand it over to the left arm."
    assert meta["inputs"]["instruction"] == {"text": text, "baked": True}
    state = np.random.default_rng(1).standard_normal((1, 14)).astype(np.float32)
    image = np.random.default_rng(2).random((1, 3, 48, 64), dtype=np.float32)
    session = ort.InferenceSession(str(spec.onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"state": state, "image_top": image})[0]
    obs = {
        "observation.state": torch.from_numpy(state),
        "observation.images.top": torch.from_numpy(image),
        "task": [meta["inputs"]["instruction"]["text"]],
    }
    with torch.no_grad():
        np.testing.assert_allclose(got, model.eval().predict(obs).numpy(), atol=5e-4)
    assert read_bundle(tmp_path / "bundle").policy_id == spec.policy_id


@pytest.mark.parametrize("cameras", [("top",), ("top", "right_wrist")], ids=["top", "top-and-wrist"])
def test_a_vla_checkpoint_drives_the_sim_through_its_bundle_as_in_training(tmp_path, cameras):
    """`vla-il eval --policy <VLA checkpoint>` exports it and drives the sim through the bundle and the node's
    PolicyRunner (cameras rendered for it); those actions are the ones the PyTorch model gives in training's
    evaluation (VLASimPolicy), step for step. With two cameras too (the bundle takes them by name, in the model's
    order; a checkpoint trained with one hidden from a share of the samples sees both at run time)."""
    from sim.aloha.env import AlohaEnv
    from training.il.vla_rollouts import VLASimPolicy
    from vla_il.cli import _policy_factory, main

    torch.set_num_threads(1)
    torch.manual_seed(0)
    dropout = {"right_wrist": 0.5} if "right_wrist" in cameras else {}
    model = VLAModel.tiny(chunk_size=5, hidden=32, cameras=cameras, camera_dropout=dropout)
    model.set_normalization(np.zeros(14), np.full(14, 0.5), np.ones(14), np.full(14, 0.2))
    if dropout:  # a trained no-view token is not zero: a bundle that used it at run time would differ
        torch.nn.init.normal_(model.no_view, std=1.0)
    save_checkpoint(tmp_path / "run/best", model, ILConfig(action_chunk_size=5), provenance={"task": "transfer_cube"})
    factory, env_kwargs = _policy_factory(str(tmp_path / "run"))
    assert env_kwargs["cameras"] == cameras and env_kwargs["image_size"] == (48, 64)
    bundle = factory("transfer_cube")
    # the runner in lockstep plays every action of a chunk, as training's evaluation does
    reference = VLASimPolicy(model.eval())
    env = AlohaEnv("transfer_cube", **env_kwargs, episode_length=24)
    try:
        for seed in (7, 8, 9):  # a handful of seeds, each a new episode for both (their chunk state resets)
            bundle.reset()
            reference.reset()
            obs, info = env.reset(seed=seed)
            for _ in range(24):  # several chunks: where each is asked for matters
                action = reference(obs, info)
                np.testing.assert_allclose(bundle(obs, info), action, atol=1e-4, err_msg=f"seed {seed}")
                obs, _, _, _, info = env.step(action)
    finally:
        env.close()
    assert main(["eval", "--policy", str(tmp_path / "run"), "--episodes", "1", "--out", str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval/summary.json").read_text())["episodes"] == 1


def test_temporal_ensembling_chosen_at_export_is_what_the_runner_does(tmp_path):
    """`vla-il export --temporal-ensembling` makes a bundle whose runner asks for a chunk every tick and blends
    the overlapping predictions: the actions VLASimPolicy(temporal_ensembling=True) gives, step for step."""
    from sim.aloha.env import AlohaEnv
    from sim.evaluation import BundleFactory
    from training.il.vla_rollouts import VLASimPolicy
    from vla_il.cli import main

    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = VLAModel.tiny(chunk_size=5, hidden=32)
    model.set_normalization(np.zeros(14), np.full(14, 0.5), np.ones(14), np.full(14, 0.2))
    save_checkpoint(tmp_path / "run/best", model, ILConfig(action_chunk_size=5), provenance={"task": "transfer_cube"})
    assert main(["export", "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "te"),
                 "--temporal-ensembling"]) == 0
    spec = read_bundle(tmp_path / "te")
    assert spec.temporal_ensembling and spec.n_action_steps == 1
    assert not read_bundle(export_checkpoint(tmp_path / "run", tmp_path / "plain")[0].path).temporal_ensembling
    factory = BundleFactory(tmp_path / "te")
    bundle, reference = factory("transfer_cube"), VLASimPolicy(model.eval(), temporal_ensembling=True)
    env = AlohaEnv("transfer_cube", **factory.env_kwargs(), episode_length=12)
    try:
        bundle.reset()
        reference.reset()
        obs, info = env.reset(seed=3)
        for _ in range(12):  # past a chunk's length: several predictions blended per step
            action = reference(obs, info)
            np.testing.assert_allclose(bundle(obs, info), action, atol=1e-4)
            obs, _, _, _, info = env.step(action)
    finally:
        env.close()


def _member(tmp_path, seed: int, chunk: int = 5):
    torch.manual_seed(seed)
    model = VLAModel.tiny(chunk_size=chunk, hidden=32)
    mask = np.zeros(14, bool)
    mask[[6, 13]] = True  # the grippers: on/off, snapped
    model.set_normalization(np.zeros(14), np.full(14, 0.5), np.full(14, 0.5), np.full(14, 0.2),
                            binary_mask=mask, binary_low=np.zeros(14), binary_high=np.ones(14))
    save_checkpoint(tmp_path / f"s{seed}/best", model, ILConfig(action_chunk_size=chunk),
                    provenance={"task": "transfer_cube"})
    return model.eval(), tmp_path / f"s{seed}"


def test_several_vla_checkpoints_export_as_one_ensemble_whose_chunk_is_their_mean(tmp_path):
    """`vla-il export --checkpoint A B C`: one graph; each chunk is the members' mean with the grippers snapped
    again (a majority vote of open / closed), as ONNX Runtime runs it in the node's runner."""
    from training.models.vla import IMAGE_PREFIX
    from vla_il.cli import main
    from vla_il_core.runner import feeds_for, load_policy

    members = [_member(tmp_path, s) for s in (0, 1, 2)]
    assert main(["export", "--checkpoint", *(str(p) for _, p in members), "--out", str(tmp_path / "ens")]) == 0
    policy = load_policy(str(tmp_path / "ens"), prefer_gpu=False)
    meta = json.loads((tmp_path / "ens/policy.json").read_text())
    assert meta["provenance"]["members"] == [str(p.resolve()) for _, p in members]
    rng = np.random.default_rng(0)
    votes_split = False
    for _ in range(8):
        obs = {"joint_positions": rng.normal(0, 0.5, 14).astype(np.float32),
               "image_top": rng.integers(0, 256, (48, 64, 3), np.uint8)}
        got = policy.session.run(None, feeds_for(policy.spec, obs))[0][0]
        batch = {"observation.state": torch.from_numpy(obs["joint_positions"])[None],
                 IMAGE_PREFIX + "top": torch.from_numpy(obs["image_top"]).permute(2, 0, 1)[None],
                 "task": [meta["inputs"]["instruction"]["text"]]}
        with torch.no_grad():
            each = torch.stack([m.predict(batch)[0] for m, _ in members])
        np.testing.assert_allclose(got[:, :6], each.mean(0)[:, :6].numpy(), atol=1e-4)  # arm joints: the mean
        grippers = each[:, :, [6, 13]].numpy()
        np.testing.assert_array_equal(got[:, [6, 13]], (grippers.mean(0) > 0.5).astype(np.float32))  # the vote
        votes_split |= bool(((grippers.min(0) == 0) & (grippers.max(0) == 1)).any())
        assert np.abs(got - each[0].numpy()).max() > 1e-3  # not member 1 alone
    assert votes_split  # the members disagreed on a gripper somewhere: the vote was exercised


def test_an_ensemble_of_unlike_checkpoints_is_refused_naming_the_difference(tmp_path):
    from vla_il.cli import main

    (_, a), (_, b) = _member(tmp_path, 0), _member(tmp_path, 1, chunk=10)
    with pytest.raises(BundleError, match="member 2 has chunk size 10, member 1 has 5"):
        export_checkpoint(a, tmp_path / "ens", members=(b,))
    assert not (tmp_path / "ens").exists()
    assert main(["export", "--checkpoint", str(a), str(b), "--out", str(tmp_path / "ens")]) == 2
