"""The issue's target: a tiny VLA trained by BC on recorded transfer_cube episodes (camera images +
instruction) reaches clearly non-trivial success in the simulated ALOHA, on this CPU, deployed as it
would be on the robot (exported to a policy bundle, driven through the policy node's PolicyRunner).

    ./run-tests -m slow tests/test_vla_target.py          (about 30 min on 2 cores; see the budget below)

Budget: VLA_TARGET_EPISODES expert demonstrations (default 400, ~10 min to record) seen by the top
camera at 96x128 (SigLIP patches of 16: 6x8 image tokens), VLA_TARGET_EPOCHS of BC (default 8, batch 32,
lr 1e-3, chunk 10, the weights' moving average kept with decay 0.999; ~13 min), vision only
(`--vla_state_dropout 1.0`: the state never reaches the decoder;
nothing a real robot's recording lacks: VLA_TARGET_AUX > 0 adds the sim's auxiliary object-pose head), then
VLA_TARGET_EVAL held-out episodes (default 50, seeds from 100000; ~1 min in 2 processes). Passes when the
lower end of the Wilson 95% interval of the success rate is at least 0.2. The run is kept in VLA_TARGET_OUT
(default output/vla_target): data/ (reused when present), bc/ (learning_curves.png, metrics.jsonl, best/),
eval/ (summary.json, success.png). Measured: 27/50 (54%, Wilson 40-67%); 28/50 with the auxiliary head;
the README's VLA paragraph has the variants that did not get there and why.
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
    from training.cli import run_il_cli
    from vla_il.cli import main

    torch.set_num_threads(1)
    out = Path(os.environ.get("VLA_TARGET_OUT", ROOT / "output/vla_target"))
    episodes = int(os.environ.get("VLA_TARGET_EPISODES", "400"))
    epochs = os.environ.get("VLA_TARGET_EPOCHS", "8")
    aux = os.environ.get("VLA_TARGET_AUX", "0")
    n_eval = os.environ.get("VLA_TARGET_EVAL", "50")
    data = out / "data"
    if not (data / "meta" / "info.json").exists():
        report = collect("transfer_cube", episodes, data, cameras=("top",), image_size=(96, 128), progress=False)
        print(report.line())
    args = ["--dataset", str(data), "--vla", "tiny", "--vla_patch_size", "16", "--vla_state_dropout", "1.0"]
    args += ["--vla_aux_state_weight", aux, "--bc_epochs", epochs, "--batch_size", "32", "--learning_rate", "1e-3"]
    args += ["--action_chunk_size", "10", "--ema_decay", "0.999", "--eval_episodes", "0"]
    args += ["--output_dir", str(out / "bc")]
    assert run_il_cli("bc", args) == 0
    assert (out / "bc/learning_curves.png").exists()
    # vla-il eval exports the checkpoint to a bundle and drives the sim through it, as the robot would run
    held_out = ["--episodes", n_eval, "--seed", "100000", "--workers", "2", "--out", str(out / "eval")]
    assert main(["eval", "--task", "transfer_cube", "--policy", str(out / "bc"), *held_out]) == 0
    summary = json.loads((out / "eval/summary.json").read_text())
    low, _ = summary["success_rate_wilson95"]
    assert low >= 0.2, summary
