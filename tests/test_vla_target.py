"""The issue's target: a tiny VLA trained by BC on recorded transfer_cube episodes (camera images +
instruction + state) reaches clearly non-trivial success in the simulated ALOHA, on this CPU.

    ./run-tests -m slow tests/test_vla_target.py          (about 30 min on 2 cores; see the budget below)

Budget: VLA_TARGET_EPISODES expert demonstrations (default 400, ~9 min to record) seen by the
VLA_TARGET_CAMERAS (default: top) at 48x64, VLA_TARGET_EPOCHS of BC (default 8, batch 32, lr 1e-3,
chunk 10; ~15 min), then VLA_TARGET_EVAL held-out episodes (default 50; ~3 min). Passes when the lower
end of the Wilson 95% interval of the success rate is at least 0.2. The run is kept in VLA_TARGET_OUT
(default output/vla_target): data/ (reused when present), bc/ (learning_curves.png, metrics.jsonl,
best/), eval/summary.json.

It fails today: 2/50 with these defaults; 3/50 with top + right_wrist; the README's VLA paragraph lists
every variant measured and why (the model reads the cube's place off the arm instead of seeing it).
"""

import json
import os
from pathlib import Path

import pytest

from tests.ros_harness import ROOT

# long by design: beyond the suite-wide per-test timeout (pyproject.toml)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(autouse=True)
def _only_when_slow_is_selected(request):
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("a long training run: ./run-tests -m slow tests/test_vla_target.py")


def test_tiny_vla_bc_reaches_non_trivial_transfer_cube_success():
    import torch

    from sim.collect import collect
    from training.checkpoint import load_checkpoint
    from training.cli import run_il_cli
    from training.config import ILConfig
    from training.il.vla_trainers import evaluate_in_sim

    torch.set_num_threads(1)
    out = Path(os.environ.get("VLA_TARGET_OUT", ROOT / "output/vla_target"))
    episodes = int(os.environ.get("VLA_TARGET_EPISODES", "400"))
    epochs = os.environ.get("VLA_TARGET_EPOCHS", "8")
    cameras = tuple(os.environ.get("VLA_TARGET_CAMERAS", "top").split())
    n_eval = int(os.environ.get("VLA_TARGET_EVAL", "50"))
    data = out / "data"
    if not (data / "meta" / "info.json").exists():
        report = collect("transfer_cube", episodes, data, cameras=cameras, image_size=(48, 64), progress=False)
        print(report.line())
    assert (
        run_il_cli(
            "bc",
            [
                "--dataset",
                str(data),
                "--bc_epochs",
                epochs,
                "--batch_size",
                "32",
                "--learning_rate",
                "1e-3",
                "--action_chunk_size",
                "10",
                "--eval_episodes",
                "0",
                "--output_dir",
                str(out / "bc"),
            ],
        )
        == 0
    )
    assert (out / "bc/learning_curves.png").exists()
    model, config, _ = load_checkpoint(out / "bc")
    result = evaluate_in_sim(model, "transfer_cube", n_eval, 100_000, ILConfig(action_chunk_size=10))
    (out / "eval").mkdir(parents=True, exist_ok=True)
    (out / "eval/summary.json").write_text(json.dumps(result.summary(), indent=2))
    print(result.line())
    low, _ = result.interval
    assert low >= 0.2, result.line()
