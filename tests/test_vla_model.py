"""The VLA model: it can overfit (gradients reach every part not frozen), freezing/LoRA/last-N choose what
trains, checkpoints reload to identical outputs, weights load through from_pretrained, bad input is named."""

import numpy as np
import pytest
import torch

from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import ILConfig
from training.models.vla import VLAInputError, VLAModel, random_shift

INSTRUCTION = "Pick up the red cube with the right arm and hand it over to the left arm."


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def batch(n=6, chunk=4, size=(32, 48), action_dim=3, state_dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    pad = torch.zeros(n, chunk, dtype=torch.bool)
    pad[0, -2:] = True  # one row ends its episode early
    return {
        "observation.state": torch.randn(n, state_dim, generator=g),
        "observation.images.top": torch.rand(n, 3, *size, generator=g),
        "task": [INSTRUCTION] * (n - 1) + ["push the block"],
        "action": torch.randn(n, chunk, action_dim, generator=g),
        "action_is_pad": pad,
    }


def tiny(**kw):
    args = dict(action_dim=3, state_dim=5, image_size=(32, 48), chunk_size=4, hidden=32)
    args.update(kw)
    return VLAModel.tiny(**args)


def train_steps(model, b, steps, lr=3e-3):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = model.loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_tiny_vla_overfits_a_fixed_batch_and_every_part_gets_gradients():
    model = tiny()
    b = batch()
    loss = model.loss(b)
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert {n.split(".")[0] for n, _ in trainable} >= {
        "vision",
        "llm",
        "projector",
        "head",
        "state_proj",
        "action_queries",
        "camera_embed",
    }
    dead = [n for n, p in trainable if p.grad is None or not torch.any(p.grad != 0)]
    assert not dead, f"no gradient reaches {dead}"
    model.zero_grad()
    losses = train_steps(model, b, 150)
    assert losses[-1] < 0.02 * losses[0], (losses[0], losses[-1])


def test_frozen_backbones_do_not_change_and_the_rest_still_learns():
    model = tiny(freeze_vision=True, freeze_llm=True)
    vision_before = {k: v.clone() for k, v in model.vision.state_dict().items()}
    llm_before = {k: v.clone() for k, v in model.llm.state_dict().items()}
    head_before = model.head[0].weight.clone()
    losses = train_steps(model, batch(), 20)
    assert all(torch.equal(v, model.vision.state_dict()[k]) for k, v in vision_before.items())
    assert all(torch.equal(v, model.llm.state_dict()[k]) for k, v in llm_before.items())
    assert not torch.equal(head_before, model.head[0].weight) and losses[-1] < losses[0]


def test_last_n_layers_and_lora_choose_what_trains_in_the_llm():
    last = tiny(llm_train_last_n_layers=1)
    names = {n for n, p in last.llm.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("layers.1.", "norm.")) for n in names), names
    lora = tiny(lora_rank=4)
    names = {n for n, p in lora.llm.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names), names
    assert train_steps(lora, batch(), 15)[-1] < lora.loss(batch(seed=0)).item() + 1.0  # it runs and trains


def test_checkpoint_saved_and_loaded_gives_identical_outputs(tmp_path):
    for head in ("regression", "flow_matching"):
        model = tiny(action_head=head, lora_rank=2 if head == "regression" else 0)
        model.set_normalization(torch.arange(5.0), torch.full((5,), 2.0), torch.ones(3), torch.full((3,), 0.5))
        train_steps(model, batch(), 3)
        model.eval()
        save_checkpoint(tmp_path / head, model, ILConfig(action_chunk_size=4))
        loaded, _, _ = load_checkpoint(tmp_path / head)
        loaded.eval()
        obs = batch(seed=1)
        with torch.no_grad():
            assert torch.equal(model.predict(obs), loaded.predict(obs))
            assert model.predict(obs).shape == (6, 4, 3)


def test_the_auxiliary_object_pose_head_trains_the_vision_side_and_stays_out_of_inference(tmp_path):
    """VLAConfig.aux_state_dim: a head at the state token predicts observation.environment_state during
    training only; its loss reaches the vision tower, the actions it predicts do not depend on it, and the
    checkpoint keeps it (with its statistics)."""
    b = batch()
    b["observation.environment_state"] = torch.randn(6, 7, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)
    plain = tiny()
    torch.manual_seed(0)
    model = tiny(aux_state_dim=7, aux_state_weight=2.0)
    model.set_normalization(torch.zeros(5), torch.ones(5), torch.zeros(3), torch.ones(3),
                            env_state_mean=torch.full((7,), 0.5), env_state_std=torch.full((7,), 2.0))
    assert torch.equal(model.aux_mean, torch.full((7,), 0.5))
    without = {k: v for k, v in b.items() if k != "observation.environment_state"}
    with torch.no_grad():
        assert torch.allclose(model.predict(b), plain.predict(b), atol=1e-6)  # the same weights, the head unused
        assert model.loss(b) > model.loss(without)  # the pose term is added when the batch has the poses
    # only the pose term: its gradient reaches the vision tower through the decoder
    model.zero_grad()
    (model.loss(b) - model.loss(without)).backward()
    assert model.aux_head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.vision.parameters())
    assert model.head[0].weight.grad is None or not model.head[0].weight.grad.any()
    model.zero_grad()
    losses = train_steps(model, b, 60)
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    save_checkpoint(tmp_path / "aux", model, ILConfig(action_chunk_size=4))
    loaded, _, _ = load_checkpoint(tmp_path / "aux")
    assert torch.equal(loaded.aux_std, model.aux_std)
    with torch.no_grad():
        assert torch.equal(model.loss(b), loaded.loss(b))
    assert "aux_mean" not in plain.state_dict()  # without the head, checkpoints are as before
    with pytest.raises(VLAInputError, match="observation.environment_state"):
        model.loss({**b, "observation.environment_state": torch.zeros(6, 3)})


def test_state_dropout_hides_the_state_from_some_training_samples_only():
    """VLAConfig.state_dropout: in training a fraction of samples sees a learned 'no state' token (which gets
    gradients); in eval every sample sees its state, so predictions are deterministic and depend on it."""
    model = tiny(state_dropout=0.5)
    b = batch()
    model.train()
    torch.manual_seed(1)
    model.loss(b).backward()
    assert model.no_state.grad is not None and model.no_state.grad.abs().sum() > 0
    model.eval()
    other = {**b, "observation.state": b["observation.state"] + 1.0}
    with torch.no_grad():
        assert torch.equal(model.predict(b), model.predict(b))
        assert not torch.allclose(model.predict(b), model.predict(other))
    assert "no_state" not in tiny().state_dict()
    with pytest.raises(ValueError, match=r"state_dropout must be in \[0, 1\]"):
        tiny(state_dropout=1.5)


def test_state_dropout_one_is_vision_only_in_training_and_at_run_time():
    """state_dropout=1.0: the state never reaches the decoder, in train or eval mode; the images still do."""
    model = tiny(state_dropout=1.0)
    b = batch()
    other = {**b, "observation.state": b["observation.state"] + 1.0}
    seen = {**b, "observation.images.top": torch.rand_like(b["observation.images.top"])}
    for train in (True, False):
        model.train(train)
        with torch.no_grad():
            assert torch.equal(model.predict(b), model.predict(other))
            assert not torch.allclose(model.predict(b), model.predict(seen))
    model.train()
    model.loss(b).backward()
    assert model.no_state.grad.abs().sum() > 0 and model.state_proj.weight.grad is None


def test_state_keep_shows_chosen_state_values_to_a_vision_only_model(tmp_path):
    """state_keep (e.g. the grippers' openings) reaches the decoder under state_dropout 1.0, in training and at
    run time; the other state values still do not. Saved and loaded with the checkpoint."""
    model = tiny(state_dropout=1.0, state_keep=(1, 4))
    b = batch()
    kept = {**b, "observation.state": b["observation.state"] + torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0])}
    hidden = {**b, "observation.state": b["observation.state"] + torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])}
    for train in (True, False):
        model.train(train)
        with torch.no_grad():
            assert not torch.allclose(model.predict(b), model.predict(kept))
            assert torch.equal(model.predict(b), model.predict(hidden))
    model.train()
    model.loss(b).backward()
    assert model.kept_state_proj.weight.grad.abs().sum() > 0 and model.state_proj.weight.grad is None
    save_checkpoint(tmp_path / "ckpt", model, ILConfig(action_chunk_size=4))
    loaded = load_checkpoint(tmp_path / "ckpt")[0].eval()
    assert loaded.config.state_keep == (1, 4)
    with torch.no_grad():
        assert torch.equal(model.eval().predict(kept), loaded.predict(kept))
    assert not hasattr(tiny(state_dropout=1.0), "kept_state_proj")  # without it, checkpoints are as before
    for bad in ((5,), (1, 1), (-1,)):
        with pytest.raises(ValueError, match="state_keep must be distinct state indices in 0..4"):
            tiny(state_keep=bad)


def test_state_keep_dropout_hides_the_kept_values_from_a_share_of_training_samples_only():
    """state_keep_dropout p: in training, a sample's kept values reach the decoder with probability 1 - p
    (p = 1: never, so training does not read them); at run time always, whatever p."""
    b = batch()
    kept = {**b, "observation.state": b["observation.state"] + torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0])}
    always_hidden = tiny(state_dropout=1.0, state_keep=(1, 4), state_keep_dropout=1.0)
    with torch.no_grad():
        always_hidden.train()
        assert torch.equal(always_hidden.predict(b), always_hidden.predict(kept))
        always_hidden.eval()
        assert not torch.allclose(always_hidden.predict(b), always_hidden.predict(kept))
    half = tiny(state_dropout=1.0, state_keep=(1, 4), state_keep_dropout=0.5)
    half.train()
    n = 64
    many = batch(n=n)
    many_kept = {**many, "observation.state": many["observation.state"] + torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0])}
    with torch.no_grad():
        torch.manual_seed(1)
        a = half.predict(many)
        torch.manual_seed(1)  # the same samples dropped: a sample differs only where it saw its kept values
        c = half.predict(many_kept)
    saw = (a - c).flatten(1).abs().amax(1) > 0
    assert 0.25 * n < int(saw.sum()) < 0.75 * n, int(saw.sum())
    with pytest.raises(ValueError, match=r"state_keep_dropout must be in \[0, 1\]"):
        tiny(state_dropout=1.0, state_keep=(1,), state_keep_dropout=1.5)
    with pytest.raises(ValueError, match="give state_keep"):
        tiny(state_dropout=1.0, state_keep_dropout=0.5)


def test_camera_dropout_hides_a_camera_from_a_share_of_training_samples_only():
    """camera_dropout {camera: p}: in training, a sample sees that camera with probability 1 - p (the others always);
    at run time every camera, always. It survives the checkpoint (a continued fit keeps it); a camera the model
    does not have, or a share outside [0, 1), is refused."""
    from training.models.vla_config import VLAConfig, camera_dropout_pairs

    n = 64
    model = tiny(cameras=("top", "wrist"), camera_dropout={"wrist": 0.5})
    wrist = torch.rand(n, 3, 32, 48, generator=torch.Generator().manual_seed(3))
    many = {**batch(n=n), "observation.images.wrist": wrist}
    other_wrist = {**many, "observation.images.wrist": 1 - many["observation.images.wrist"]}
    other_top = {**many, "observation.images.top": 1 - many["observation.images.top"]}

    def changed(a, c):  # per sample: did its prediction move
        return (a - c).flatten(1).abs().amax(1) > 0

    with torch.no_grad():
        model.train()
        runs = []
        for other in (many, other_wrist, other_top):
            torch.manual_seed(1)  # the same samples dropped in each
            runs.append(model.predict(other))
        model.eval()
        assert changed(model.predict(many), model.predict(other_wrist)).all()  # run time: always seen
    saw = changed(runs[0], runs[1])
    assert 0.25 * n < int(saw.sum()) < 0.75 * n, int(saw.sum())
    assert changed(runs[0], runs[2]).all()  # the top camera: never dropped
    assert not hasattr(tiny(cameras=("top", "wrist")), "no_view")  # without it, checkpoints are as before
    assert VLAConfig.from_dict(model.config.to_dict()).camera_dropout == {"wrist": 0.5}
    for bad, says in (({"left": 0.5}, "names 'left', not one of the cameras"),
                      ({"wrist": 1.0}, r"camera_dropout\['wrist'\] must be in \[0, 1\)"),
                      ({"wrist": float("nan")}, "must be in")):
        with pytest.raises(ValueError, match=says):
            tiny(cameras=("top", "wrist"), camera_dropout=bad)
    assert camera_dropout_pairs(["wrist=0.25"], ("top", "wrist"), "--x") == {"wrist": 0.25}
    for bad in ("wrist", "wrist=x", "wrist=1", "left=0.5", "wrist=-0.1"):
        with pytest.raises(ValueError, match=f"--x {bad}: CAMERA=P with CAMERA one of the cameras"):
            camera_dropout_pairs([bad], ("top", "wrist"), "--x")


def test_random_shift_moves_each_image_by_whole_pixels_within_its_range_and_repeats_the_edges():
    pad = 2
    images = torch.rand(16, 2, 3, 8, 10)
    out = random_shift(images, pad, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    padded = torch.nn.functional.pad(images.flatten(0, 1), (pad,) * 4, mode="replicate")
    offsets = []
    for k, img in enumerate(out.flatten(0, 1)):
        found = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                 if torch.equal(img, padded[k, :, dy : dy + 8, dx : dx + 10])]
        assert found, f"image {k} is no shift of its input"
        offsets.append(found[0])
    assert len(set(offsets)) > 5  # per image, not one shift for the batch
    assert torch.equal(random_shift(images, 0), images)


def test_image_shift_augments_training_only():
    """VLAConfig.image_shift: the loss in training sees shifted images (it varies with the draw); evaluation and
    prediction see the images as given (deterministic), so the exported graph is unaffected."""
    model = tiny(image_shift=4)
    b = batch()
    model.train()
    with torch.no_grad():
        torch.manual_seed(1)
        first = model.loss(b)
        torch.manual_seed(2)
        second = model.loss(b)
    assert first != second
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        first = model.loss(b)
        torch.manual_seed(2)
        assert model.loss(b) == first
    plain = tiny()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(model.predict(b), plain.eval().predict(b))
    for bad in (-1, 16):
        with pytest.raises(ValueError, match="image_shift"):
            tiny(image_shift=bad)


def test_tiny_patch_size_sets_the_image_tokens():
    """patch 16 at 64x96 gives the tokens of patch 8 at 32x48: finer pixels at the same sequence length."""
    coarse, fine = tiny(), tiny(image_size=(64, 96), patch_size=16)
    assert coarse.patches == fine.patches == 24
    assert fine.vision.config.patch_size == 16
    b = batch(size=(64, 96))
    with torch.no_grad():
        assert fine.eval().predict(b).shape == (6, 4, 3)


def test_flow_matching_head_learns_the_chunk():
    model = tiny(action_head="flow_matching", flow_steps=8)
    b = batch(n=2)
    b["action_is_pad"][:] = False
    losses = train_steps(model, b, 250, lr=3e-3)
    model.eval()
    with torch.no_grad():
        err = (model.predict(b) - b["action"]).abs().mean().item()
    assert losses[-1] < 0.5 * losses[0] and err < 0.5 * b["action"].abs().mean().item(), (losses[0], losses[-1], err)
    # every row starts from the model's fixed noise: an observation gives the same chunk alone or second in a batch
    second = {k: v[1:2] for k, v in b.items()}
    with torch.no_grad():
        torch.testing.assert_close(model.predict(second)[0], model.predict(b)[1])


def test_bad_images_instructions_and_cameras_are_named():
    model = tiny()
    good = batch()
    with pytest.raises(VLAInputError, match=r"images are 48x64, the model takes 32x48"):
        model.predict({**good, "observation.images.top": torch.rand(6, 3, 48, 64)})
    with pytest.raises(VLAInputError, match="channel-last"):
        model.predict({**good, "observation.images.top": torch.rand(6, 32, 48, 3)})
    with pytest.raises(VLAInputError, match=r"must be in \[0, 1\].*uint8"):
        model.predict({**good, "observation.images.top": torch.rand(6, 3, 32, 48) * 255})
    with pytest.raises(VLAInputError, match="sees cameras top; missing top.*the data has: left_wrist"):
        model.predict(
            {k: v for k, v in good.items() if "images" not in k}
            | {"observation.images.left_wrist": torch.rand(6, 3, 32, 48)}
        )
    with pytest.raises(VLAInputError, match=r"tokens, the model's instruction context is 32"):
        model.predict({**good, "task": [INSTRUCTION * 3] * 6})
    with pytest.raises(VLAInputError, match=r"'observation.state' must be \(batch, 5\)"):
        model.predict({**good, "observation.state": torch.zeros(6, 14)})
    uint8 = (good["observation.images.top"] * 255).round().to(torch.uint8)
    with torch.no_grad():  # uint8 images are scaled, not refused
        assert model.predict({**good, "observation.images.top": uint8}).shape == (6, 4, 3)


def test_missing_weights_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no tokenizer for .*local directory"):
        VLAModel(str(tmp_path / "no-siglip"), str(tmp_path / "no-qwen"), action_dim=2)
    with pytest.raises(FileNotFoundError, match=r"Qwen/Qwen2-1.5B-Instruct.*hub cache.*HF_HUB_OFFLINE"):
        VLAModel(action_dim=2)  # the spec's names: not downloadable here
    tok_dir = tmp_path / "tok_only"
    tiny().tokenizer.save_pretrained(tok_dir)
    with pytest.raises(FileNotFoundError, match=r"vision weights .*no-siglip.*VLAModel.tiny\(\)"):
        VLAModel(str(tmp_path / "no-siglip"), str(tok_dir), action_dim=2)


def test_weights_load_through_from_pretrained_from_local_directories(tmp_path):
    from transformers import Qwen2Config, Qwen2Model, SiglipVisionConfig, SiglipVisionModel

    ref = tiny()
    vision = SiglipVisionModel(SiglipVisionConfig(**ref.spec()["config"]["vision_config"]))
    llm = Qwen2Model(Qwen2Config(**ref.spec()["config"]["llm_config"]))
    vision.save_pretrained(tmp_path / "siglip")
    llm.save_pretrained(tmp_path / "qwen2")
    ref.tokenizer.save_pretrained(tmp_path / "qwen2")
    model = VLAModel(
        str(tmp_path / "siglip"), str(tmp_path / "qwen2"), action_dim=3, state_dim=5, image_size=(32, 48), chunk_size=4
    )
    for name, p in llm.named_parameters():
        assert torch.equal(p, dict(model.llm.named_parameters())[name]), name
    patch = model.vision.vision_model.embeddings.patch_embedding.weight
    assert torch.equal(patch, vision.vision_model.embeddings.patch_embedding.weight)
    with torch.no_grad():
        assert model.predict(batch()).shape == (6, 4, 3)


def test_a_binary_action_dimension_snaps_and_old_checkpoints_still_load():
    from training.models.policies import binary_actions

    rng = np.random.default_rng(0)
    actions = np.stack([rng.normal(size=40), rng.integers(0, 2, 40).astype(float), rng.normal(size=40)], 1)
    stats = binary_actions(actions)
    assert list(stats["binary_mask"]) == [False, True, False] and stats["binary_high"][1] == 1.0
    # a dimension set to one value only (transfer_cube's left gripper, never opened) snaps to it
    constant = binary_actions(np.stack([rng.normal(size=40), np.zeros(40), rng.normal(size=40)], 1))
    assert list(constant["binary_mask"]) == [False, True, False]
    assert constant["binary_low"][1] == constant["binary_high"][1] == 0.0
    model = tiny().eval()
    model.set_normalization(np.zeros(5), np.ones(5), np.zeros(3), np.ones(3), **constant)
    with torch.no_grad():
        assert set(np.unique(model.predict(batch())[..., 1].numpy())) == {0.0}
    model = tiny().eval()
    old_state = {k: v for k, v in model.state_dict().items() if not k.startswith("binary_")}
    b = batch()
    with torch.no_grad():
        free = model.predict(b)
    model.set_normalization(np.zeros(5), np.ones(5), np.zeros(3), np.ones(3), **stats)
    with torch.no_grad():
        snapped = model.predict(b)
    assert set(np.unique(snapped[..., 1].numpy())) <= {0.0, 1.0}
    torch.testing.assert_close(snapped[..., [0, 2]], free[..., [0, 2]])
    model.load_state_dict(old_state)  # a checkpoint from before: nothing is binary
    with torch.no_grad():
        torch.testing.assert_close(model.predict(b), free)
