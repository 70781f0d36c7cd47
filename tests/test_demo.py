"""`vla-il demo` end to end, tiny: every part joined — sim, expert, LeRobot, training, ONNX export, the
ROS graph in lockstep over DDS (five node processes), HG-DAgger with a hot-loaded bundle, evaluation."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.ros_harness import ROOT


def test_demo_runs_the_whole_loop(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "vla_il", "demo", "--demos", "2", "--rounds", "1", "--episodes-per-round", "2",
         "--eval-episodes", "2", "--epochs", "3", "--round-epochs", "2", "--workers", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    bc, r1 = results["rounds"]
    # the round's labels are the demos plus what the expert drove in the recorded episodes
    assert r1["expert_labels"] == bc["expert_labels"] + r1["intervention_frames"]
    assert r1["episodes"] == 2 and results["bc_equal_labels"]["expert_labels"] >= r1["expert_labels"] * 0.8
    for name in ("report.md", "success_vs_labels.png"):
        assert (out / name).stat().st_size > 0
    assert "HG-DAgger 1" in done.stdout and "BC, equal labels" in done.stdout
    # every policy also ran on the held-out seeds with the sim expert watching: the help it needs
    for r in (bc, r1, results["bc_equal_labels"]):
        gated = r["extra"]["with_expert"]
        assert gated["episodes"] == 2 and r["help_per_episode"][0] == gated["interventions_per_episode"] >= 0
    assert "held-out" in done.stdout and "expert takeovers per episode" in done.stdout
    # its output went to a pipe, as to a log file: progress as plain lines, no bar frames, there or in the
    # nodes' logs; a warning with its count once per evaluation, not per episode
    for text in (done.stdout, done.stderr, *(log.read_text() for log in (out / "logs").glob("*.log"))):
        assert "\r" not in text and "it/s]" not in text
    assert "eval transfer_cube: 2/2 ep," in done.stderr
    assert done.stderr.count("clamping actions to the joint limits") == 0

    # the running policy node swapped in the round's bundle (no restart)
    policy_log = next((out / "logs").glob("policy_node-*.log")).read_text()
    assert "round_1-" in policy_log
    # every episode starts clean: the policy node drops the last episode's chunks at the sim's reset, and the
    # mux walks the command from the last episode's to where the reset put the arms, by max_step
    assert policy_log.count("the sim was reset") >= 2
    mux_log = next((out / "logs").glob("intervention_mux-*.log")).read_text()
    assert "jumped: the command walks to the measured pose by max_step" in mux_log

    # the recording: two episodes, every frame flagged with who drove
    from training.datasets.lerobot_io import open_dataset

    ds = open_dataset(out / "recording" / "dataset")
    table = ds.hf_dataset.with_format("numpy")
    assert ds.meta.total_episodes == 2
    flags = np.asarray(table["intervention"]).reshape(-1)
    assert flags.sum() == r1["intervention_frames"]
    assert np.stack(table["observation.environment_state"]).shape[1] == 7


def test_demo_with_the_vla_runs_the_loop_from_pixels(tmp_path):
    """`vla-il demo --policy vla`, tiny: the sim publishes its top camera as sensor_msgs/Image, the policy node
    runs the exported VLA bundle on it, the recorder records the frames, each round trains the next VLA on them."""
    out = tmp_path / "demo_vla"
    done = subprocess.run(
        [sys.executable, "-m", "vla_il", "demo", "--policy", "vla", "--image-size", "48", "64", "--demos", "2",
         "--rounds", "1", "--episodes-per-round", "2", "--eval-episodes", "1", "--epochs", "1", "--workers", "1",
         "--display", "--display-port", "19090", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    bc, r1 = results["rounds"]
    assert results["config"]["policy"] == "vla"
    assert r1["expert_labels"] == bc["expert_labels"] + r1["intervention_frames"]
    spec = json.loads((out / "bundles" / "round_1" / "policy.json").read_text())
    assert spec["inputs"]["cameras"] == ["top"] and spec["inputs"]["image_size"] == [48, 64]
    # every bundle recommends temporal ensembling (the demo's default for either policy)
    for name in ("round_0", "round_1", "bc_equal_labels"):
        bundle = json.loads((out / "bundles" / name / "policy.json").read_text())
        assert bundle["recommended"]["temporal_ensembling"] is True, name
    policy_log = next((out / "logs").glob("policy_node-*.log")).read_text()
    assert "round_1-" in policy_log
    # each bundle carries the camera's view in training, and the sim's camera never looks moved against it
    assert "camera_views" in spec["inputs"] and (out / "bundles" / "round_1" / "camera_view_top.npy").is_file()
    assert "looks moved" not in policy_log
    # the recorder recorded the camera the policy saw, every frame of both episodes
    from training.datasets.lerobot_dataset import AlohaDataset

    ds = AlohaDataset(out / "recording" / "dataset", split="all", progress=False)
    assert ds.meta.total_episodes == 2 and ds.image_size == (48, 64)
    image = ds[len(ds) // 2]["observation.images.top"]
    assert image.shape == (3, 48, 64) and float(image.std()) > 0.01  # a rendered scene, not a blank frame
    assert "BC, equal labels" in done.stdout and "held-out" in done.stdout
    # the rounds continue the last VLA, so the equal-label baseline continues round 0 as long as they trained on
    baseline = json.loads((out / "train" / "bc_equal_labels" / "best" / "provenance.json").read_text())
    assert Path(baseline["model_path"]) == out / "train" / "round_0" / "best"
    # the VLA reads the grippers' openings besides its camera (the corrections re-open a gripper)
    round0 = json.loads((out / "train" / "round_0" / "best" / "policy.json").read_text())
    assert round0["config"]["state_keep"] == [6, 13]
    # the live view ran beside the graph (--display): it showed the camera and saw the expert's takeovers
    assert "live view: open http://localhost:19090" in done.stdout
    view_log = next((out / "logs").glob("display_node-*.log")).read_text()
    import re

    shown = re.search(r"live view: (\d+) takeovers shown", view_log)
    # it also saw the sim's first, unrecorded episode: at least the recorded episodes' takeovers
    assert "live view of top" in view_log and shown and int(shown[1]) >= r1["interventions_per_episode"] * 2
