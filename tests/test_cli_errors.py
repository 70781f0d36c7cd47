"""Every user error of `vla-il` is one line on stderr and a non-zero exit, never a traceback.

Each case runs the real command line in a subprocess (`python -m vla_il`, what `./vla-il` runs once the
environment is set up) on real files made here: a checkpoint whose model.pt is random bytes, one whose
policy.json is garbage, an empty dataset, a text file named x.db3, an empty directory, a bag with a
garbage metadata.yaml, real bags cut in half, a bag whose joint states are all NaN. The last non-empty
line of stderr must name the problem. On the code before this pass every case failed: a traceback or
a silent exit 0, except the cases marked True in CASES, which answered with one line already but without
the `error:` form, without the file's name, or about another problem.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ros_harness import ROOT
from tests.test_rosbag_import import synthetic_bag


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Damaged and wrong inputs, each made from a real one."""
    from sim.aloha import robot
    from sim.aloha.tasks import TASKS
    from training.checkpoint import save_checkpoint
    from training.config import ILConfig
    from training.datasets.writer import EpisodeWriter
    from training.models.policies import MLPPolicy
    from vla_il_core import schema

    root = tmp_path_factory.mktemp("inputs")
    for name in ("bad_weights", "cut_weights", "bad_spec"):  # CartPole's shape: `train bc` gets to the weights
        save_checkpoint(root / name, MLPPolicy(obs_dim=4, action_dim=2, discrete=True, hidden_dim=8), ILConfig())
    (root / "bad_weights" / "model.pt").write_bytes(os.urandom(4096))
    weights = root / "cut_weights" / "model.pt"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (root / "bad_spec" / "policy.json").write_text("{garbage")
    (root / "bad_bundle").mkdir()
    (root / "bad_bundle" / "policy.onnx").write_bytes(os.urandom(256))
    (root / "bad_bundle" / "policy.json").write_text("{garbage")
    features = schema.features(robot.JOINT_NAMES, (), (48, 64), TASKS["transfer_cube"].env_state_dim)
    EpisodeWriter(root / "empty_dataset", features, fps=50).close()  # what `collect --episodes 0` wrote
    (root / "empty_dir").mkdir()
    (root / "x.db3").write_text("not a bag\n")
    (root / "a_file").write_text("a file where a directory belongs\n")
    (root / "garbage_meta").mkdir()
    (root / "garbage_meta" / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    for storage in ("sqlite3", "mcap"):
        bag = synthetic_bag(root / f"cut_{storage}", storage=storage, frames=30)
        data = next(f for f in bag.iterdir() if f.suffix in (".db3", ".mcap"))
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    synthetic_bag(root / "all_nan", frames=30, nan_states=range(30))
    return root


DAMAGED = "bad_weights/model.pt is not readable weights: not a PyTorch zip archive"
IMPORT = ["--profile", "aloha_sim", "--task", "t", "--out"]
# (id, arguments ({f}: the inputs' folder, {o}: where an output would go), what the last stderr line says,
#  whether the old code already answered with one line)
CASES = [
    ("collect-unknown-task", "collect --task juggling --out {o}", "invalid choice: 'juggling'", False),
    ("collect-0-episodes", "collect --episodes 0 --out {o}", "--episodes: must be a positive integer", False),
    ("collect-negative-episodes", "collect --episodes -2 --out {o}", "--episodes: must be a positive", False),
    ("collect-out-is-a-file", "collect --out {f}/a_file", "a_file exists and is not a directory", False),
    ("collect-unknown-camera", "collect --cameras nope --out {o}", "unknown camera(s) nope", False),
    ("eval-unknown-task", "eval --task juggling --episodes 1", "invalid choice: 'juggling'", False),
    ("eval-0-episodes", "eval --episodes 0", "--episodes: must be a positive integer, got 0", False),
    ("eval-0-workers", "eval --workers 0 --episodes 1", "--workers: must be a positive integer, got 0", False),
    ("eval-out-is-a-file", "eval --episodes 1 --out {f}/a_file", "a_file exists and is not a directory", False),
    ("eval-no-policy-there", "eval --policy {f}/empty_dir", "is neither 'expert', a bundle", True),
    ("eval-damaged-weights", "eval --policy {f}/bad_weights", DAMAGED, False),
    ("eval-garbage-spec", "eval --policy {f}/bad_spec", "bad_spec/policy.json is not valid JSON", False),
    ("eval-garbage-bundle", "eval --policy {f}/bad_bundle", "bad_bundle/policy.json is not valid JSON", False),
    ("export-damaged-weights", "export --checkpoint {f}/bad_weights --out {o}",
     DAMAGED, False),
    ("export-cut-weights", "export --checkpoint {f}/cut_weights --out {o}", "cut_weights/model.pt is not readable",
     True),  # was one line, calling the cut file a checkpoint that "does not fit MLPPolicy"
    ("export-garbage-spec", "export --checkpoint {f}/bad_spec --out {o}", "bad_spec/policy.json is not valid", False),
    ("export-out-is-a-file", "export --checkpoint {f}/bad_spec --out {f}/a_file", "exists and is not a directory",
     False),
    ("train-damaged-weights", "train bc --model_path {f}/bad_weights --output_dir {o}",
     DAMAGED, False),
    ("train-garbage-spec", "train bc --model_path {f}/bad_spec --output_dir {o}",
     "bad_spec/policy.json is not valid JSON", True),  # was one line, without the file's name
    ("train-output-dir-is-a-file", "train bc --output_dir {f}/a_file --bc_epochs 1 --num_expert_episodes 1",
     "--output_dir {f}/a_file exists and is not a directory", False),
    ("train-empty-dataset", "train bc --env aloha:transfer_cube --dataset {f}/empty_dataset --output_dir {o}",
     "empty_dataset holds no episodes", False),
    ("train-0-epochs", "train bc --bc_epochs 0 --output_dir {o}", "ILConfig.bc_epochs must be a positive integer",
     True),
    ("train-0-vla-layers", "train bc --vla tiny --vla_layers 0 --output_dir {o}",
     "--vla_layers: must be a positive integer", True),  # was one line, about the missing --dataset
    ("import-bag-text-file", "import-bag {f}/x.db3 " + " ".join(IMPORT) + " {o}",
     "x.db3 is a file, not a rosbag2 directory", False),
    ("import-bag-empty-dir", "import-bag {f}/empty_dir " + " ".join(IMPORT) + " {o}",
     "empty_dir has no metadata.yaml", False),
    ("import-bag-garbage-metadata", "import-bag {f}/garbage_meta " + " ".join(IMPORT) + " {o}",
     "garbage_meta: cannot read this rosbag2: Could not load YAML", False),
    ("import-bag-truncated-db3", "import-bag {f}/cut_sqlite3 " + " ".join(IMPORT) + " {o}", "cut_sqlite3: ", False),
    ("import-bag-truncated-mcap", "import-bag {f}/cut_mcap " + " ".join(IMPORT) + " {o}", "cut_mcap: ", False),
    ("import-bag-all-nan", "import-bag {f}/all_nan " + " ".join(IMPORT) + " {o}",
     "/joint_states: all 30 samples hold NaN or infinite values", False),
    ("import-bag-out-is-a-file", "import-bag {f}/all_nan " + " ".join(IMPORT) + " {f}/a_file",
     "a_file exists and is not a directory", False),
    ("import-bag-0-min-frames", "import-bag {f}/all_nan --min-frames 0 " + " ".join(IMPORT) + " {o}",
     "--min-frames: must be a positive integer", True),
    ("demo-0-demos", "demo --demos 0 --out {o}", "--demos: must be a positive integer", False),
    ("demo-out-is-a-file", "demo --out {f}/a_file", "a_file exists and is not a directory", False),
]


@pytest.mark.parametrize(("args", "says"), [c[1:3] for c in CASES], ids=[c[0] for c in CASES])
def test_a_user_error_is_one_line_and_a_non_zero_exit(files, tmp_path, args, says):
    out = tmp_path / "out"
    argv = args.format(f=files, o=out).split()
    done = subprocess.run([sys.executable, "-m", "vla_il", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    last = [line for line in done.stderr.splitlines() if line.strip()][-1]
    command = "train bc" if argv[0] == "train" else argv[0]
    assert last.startswith(f"vla-il {command}: error: "), done.stderr[-2000:]
    assert says.format(f=files) in last, last
    assert not out.exists()  # nothing was written
