"""The whole graph with a camera, over DDS in lockstep: the sim publishes its top camera as
sensor_msgs/Image, the policy node runs a (tiny, untrained) VLA bundle on it, the sim expert gates, the
mux drives, the recorder records the images. Every recorded image must be the one the sim rendered for
that frame's observation: replaying the recorded commands in the same sim from the same seed renders the
same images, frame by frame."""

import numpy as np
import pytest
import torch

from sim.aloha.robot import JOINT_NAMES
from sim.bridge_core import SimBridgeCore
from training.checkpoint import save_checkpoint
from training.config import ILConfig
from training.datasets.lerobot_io import open_dataset
from training.export.onnx_export import export_checkpoint
from training.models.vla import VLAModel
from vla_il.demo import SimGraph
from vla_il_core import schema
from vla_il_core.profiles import load_profile

pytestmark = pytest.mark.ros

SIZE = (48, 64)
LENGTH = 40
SEED = 300


def test_an_episode_through_the_graph_records_every_image_the_policy_saw(tmp_path):
    torch.manual_seed(0)
    model = VLAModel.tiny(chunk_size=5, hidden=32, image_size=SIZE)
    model.set_normalization(np.zeros(14), np.full(14, 0.5), np.ones(14), np.full(14, 0.2))
    save_checkpoint(tmp_path / "run/best", model, ILConfig(action_chunk_size=5), provenance={"task": "transfer_cube"})
    spec, _ = export_checkpoint(tmp_path / "run", tmp_path / "bundles/vla")
    assert spec.cameras == ("top",)
    (tmp_path / "logs").mkdir()
    graph = SimGraph("transfer_cube", spec.path, tmp_path / "rec", tmp_path / "logs", cameras=("top",),
                     image_size=SIZE, episode_length=LENGTH)
    try:
        graph.start()
        [episode] = graph.run_episodes(1, SEED, timeout_s=180, desc="camera graph")
    finally:
        problems = graph.stop()
    assert not problems, problems
    policy_log = next((tmp_path / "logs").glob("policy_node-*.log")).read_text()
    assert f"driving with {spec.policy_id}" in policy_log, policy_log[-2000:]
    assert episode["frames"] == LENGTH and episode["dropped_frames"] == 0, episode

    ds = open_dataset(tmp_path / "rec/dataset")
    assert ds.meta.total_frames == LENGTH
    assert ds.meta.features[schema.image_key("top")]["dtype"] == "image"  # lossless at this size
    recorded = [np.round(ds[k][schema.image_key("top")].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
                for k in range(LENGTH)]
    actions = np.stack(ds.hf_dataset.with_format("numpy")[schema.ACTION])

    velocity = {j.name: j.max_velocity for j in load_profile("aloha_sim").joints}
    sim = SimBridgeCore("transfer_cube", ("top",), SIZE, LENGTH, True,
                        max_velocity=tuple(velocity[n] for n in JOINT_NAMES))
    try:
        rendered = [sim.reset(seed=SEED).images["top"]]
        for k in range(LENGTH - 1):
            assert sim.set_command(list(JOINT_NAMES), actions[k].astype(np.float64).tolist()) is None
            rendered.append(sim.step().images["top"])
    finally:
        sim.close()
    moved = [k for k in range(1, LENGTH) if not np.array_equal(rendered[k], rendered[k - 1])]
    assert len(moved) > LENGTH // 4  # the arms moved: frames are told apart by their images
    diff = [float(np.abs(recorded[k].astype(int) - rendered[k]).mean()) for k in range(LENGTH)]
    assert max(diff) < 0.5, diff  # frame k holds the image of observation k (float32 commands: sub-pixel)
    # and not its neighbour's: a recorder one tick off would match the previous frame's image better
    shifted = [float(np.abs(recorded[k].astype(int) - rendered[k - 1]).mean()) for k in moved]
    assert all(off > diff[k] for off, k in zip(shifted, moved, strict=True)), (shifted, diff)
