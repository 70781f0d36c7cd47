"""A camera moved since training: the view a VLA bundle carries (its training episodes' median first frame),
the check against live frames (vla_il_core.camera_view), and the policy node reporting it over DDS.

The frames are MuJoCo renders of transfer_cube and a recording of its scripted expert (tests.vla_fixtures)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests.vla_fixtures import ALOHA_IMAGE_SIZE, aloha_dataset
from vla_il_core.bundle import BundleError
from vla_il_core.camera_view import check_view, reference_view


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return aloha_dataset(tmp_path_factory.getbasetemp(), episodes=6, episode_length=20)


@pytest.fixture(scope="module")
def frames():
    """Rendered top-camera frames of a new seed: its first, and one after 60 expert steps (the arm moved)."""
    from sim.aloha.env import AlohaEnv
    from sim.experts import make_expert

    env = AlohaEnv("transfer_cube", cameras=("top",), image_size=ALOHA_IMAGE_SIZE, episode_length=100)
    try:
        obs, info = env.reset(seed=4242)
        first = obs["pixels"]["top"].copy()
        expert = make_expert("transfer_cube")
        for _ in range(60):
            obs, _, _, _, info = env.step(expert(obs["agent_pos"], info["env_state"]))
        return first, obs["pixels"]["top"].copy()
    finally:
        env.close()


def shifted(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The frame as a camera moved so the scene appears dy px lower and dx px further right (edges repeated)."""
    h, w = img.shape[:2]
    p = max(abs(dy), abs(dx))
    padded = np.pad(img, ((p, p), (p, p), (0, 0)), mode="edge")
    return np.ascontiguousarray(padded[p - dy:p - dy + h, p - dx:p - dx + w])


def view_of(recording) -> np.ndarray:
    from training.datasets.lerobot_dataset import AlohaDataset

    return reference_view(AlohaDataset(recording, cameras=["top"], chunk_size=1, progress=False).first_frames("top"))


def test_a_view_moved_by_whole_pixels_is_found_and_one_in_place_is_not(recording, frames):
    first, later = frames
    view = view_of(recording)
    assert not check_view(first, view).moved and check_view(first, view).shift == (0, 0)
    for dy, dx in ((2, -1), (0, 1), (-3, 4)):
        result = check_view(shifted(first, dy, dx), view)
        assert result.moved and result.shift == (dy, dx), (dy, dx, result)
    text = check_view(shifted(first, 2, -1), view).describe("top")
    assert "camera top looks moved" in text and "2 px down and 1 px left" in text
    # what is not a moved camera: the arm somewhere else, dimmer light, sensor noise
    assert not check_view(later, view).moved, check_view(later, view)
    assert not check_view((first * 0.85).astype(np.uint8), view).moved
    noisy = np.clip(first + np.random.default_rng(0).normal(0, 3, first.shape), 0, 255).astype(np.uint8)
    assert not check_view(noisy, view).moved
    with pytest.raises(ValueError, match="live frame 32x24"):
        check_view(first[:24, :32], view)


def _export(tmp_path, dataset) -> object:
    import torch

    from training.checkpoint import save_checkpoint
    from training.config import ILConfig
    from training.export.onnx_export import export_checkpoint
    from training.models.vla import VLAModel

    torch.manual_seed(0)
    model = VLAModel.tiny(chunk_size=5, hidden=32, image_size=ALOHA_IMAGE_SIZE)
    model.set_normalization(np.zeros(14), np.full(14, 0.5), np.ones(14), np.full(14, 0.2))
    provenance = {"task": "transfer_cube", "dataset": str(dataset)}
    save_checkpoint(tmp_path / "run/best", model, ILConfig(action_chunk_size=5), provenance=provenance)
    spec, _ = export_checkpoint(tmp_path / "run", tmp_path / "bundles/vla")
    return spec


def test_the_export_puts_the_training_view_in_the_bundle_and_the_node_verifies_it(recording, tmp_path):
    from vla_il_core.runner import load_policy

    spec = _export(tmp_path, recording)
    assert [c for c, _, _ in spec.camera_views] == ["top"]
    policy = load_policy(str(spec.path), prefer_gpu=False)
    np.testing.assert_array_equal(policy.camera_views["top"], view_of(recording))
    meta = json.loads((spec.path / "policy.json").read_text())
    # the training split's episodes: 5 of the 6 (one is held out for validation)
    assert meta["provenance"]["camera_views"] == f"the median first frame of 5 training episodes of {recording}"
    # a view that is not the exported one is refused with the bundle, naming the file
    view = spec.path / "camera_view_top.npy"
    np.save(view, np.zeros((*ALOHA_IMAGE_SIZE, 3), np.uint8))
    with pytest.raises(BundleError, match="camera_view_top.npy sha256 mismatch"):
        load_policy(str(spec.path), prefer_gpu=False)
    view.unlink()
    with pytest.raises(BundleError, match="the view of camera top .camera_view_top.npy. cannot be read"):
        load_policy(str(spec.path), prefer_gpu=False)


def test_without_its_training_data_a_bundle_has_no_view_and_says_why(tmp_path):
    from vla_il_core.runner import load_policy

    spec = _export(tmp_path, tmp_path / "gone")
    assert spec.camera_views == () and not (spec.path / "camera_view_top.npy").exists()
    assert "not here" in json.loads((spec.path / "policy.json").read_text())["provenance"]["camera_views"]
    assert load_policy(str(spec.path), prefer_gpu=False).camera_views == {}


@pytest.mark.parametrize("views, reason", [
    ({"left": {"file": "v.npy", "sha256": "0" * 64}}, "'left' is not one of inputs.cameras"),
    ({"top": {"file": "../v.npy", "sha256": "0" * 64}}, "must name a file in the bundle folder"),
    ({"top": {"file": "v.npy", "sha256": "abc"}}, "sha256 must be 64 hex digits"),
    ({"top": "v.npy"}, "inputs.camera_views.top must be an object"),
])
def test_a_malformed_camera_view_entry_is_refused_naming_it(recording, tmp_path, views, reason):
    from vla_il_core.bundle import read_bundle

    spec = _export(tmp_path, recording)
    meta = json.loads((spec.path / "policy.json").read_text())
    meta["inputs"]["camera_views"] = views
    (spec.path / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=reason):
        read_bundle(spec.path)


def test_the_policy_node_reports_a_moved_camera_until_it_is_back(probe, node_process, recording, frames, tmp_path):
    """Over DDS: a frame moved 2 px -> a warning naming the topic and the shift, in the log and the status; the node
    keeps driving (the mux and the expert decide). The camera put back: the next episode's check clears it."""
    from sensor_msgs.msg import Image, JointState
    from std_srvs.srv import Trigger
    from vla_il_msgs.msg import PolicyStatus

    from tests.ros_harness import wait_until
    from tests.test_policy_node import Feeder

    first, _ = frames
    spec = _export(tmp_path, recording)
    node = node_process("policy_node", params={"bundle": str(spec.path)})
    actions = probe.collect(JointState, "policy/action")
    status = probe.collect(PolicyStatus, "policy/status")
    camera = probe.publisher(Image, "cameras/top/image_raw")
    feed = Feeder(probe)
    h, w = ALOHA_IMAGE_SIZE

    def publish(img: np.ndarray) -> None:
        camera.publish(Image(height=h, width=w, encoding="rgb8", step=3 * w, data=img.tobytes()))

    moved = shifted(first, 2, 2)
    try:
        assert node.wait_for_log("driving with", 30), node.log()[-2000:]
        line = "/cameras/top/image_raw: camera top looks moved"
        assert wait_until(lambda: (publish(moved), line in node.log())[1], 20, 0.05), node.log()[-2000:]
        assert "2 px down and 2 px right" in node.log()
        assert wait_until(lambda: (publish(moved), status and line in status[-1].message)[1], 10, 0.05)
        n = len(actions)
        assert wait_until(lambda: (publish(moved), len(actions) > n + 5)[1], 10, 0.02)  # it still drives
        # the camera is put back; the next episode's first frame is checked
        assert probe.call(Trigger, "policy_node/reset", Trigger.Request(), 10, idempotent=True).success
        assert wait_until(lambda: (publish(first), "matches the training frames again" in node.log())[1], 10, 0.05)
        assert wait_until(lambda: (publish(first), status and "looks moved" not in status[-1].message)[1], 10, 0.05)
        assert node.log().count("looks moved") == 1  # checked once per episode, not per frame
        time.sleep(0.2)
    finally:
        feed.stop()
