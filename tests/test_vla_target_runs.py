"""The VLA target benchmark's recipe and its refusal to reuse a checkpoint trained otherwise (the long runs
themselves: ./run-tests -m slow tests/test_vla_target.py, and `vla-il bench vla-target`)."""

import argparse

import pytest

from benchmarks.vla_target_runs import recipe_args, trained_otherwise
from training.checkpoint import save_checkpoint
from training.config import ILConfig
from training.models.vla import VLAModel


def flags(args: list[str]) -> dict[str, str]:
    return dict(zip(args[::2], args[1::2]))


def test_the_recipe_keeps_the_weights_average_and_adds_only_the_options_asked_for(tmp_path):
    recipe = flags(recipe_args(tmp_path / "data", tmp_path / "out", seed=3))
    assert (recipe["--lr_schedule"], recipe["--ema_decay"], recipe["--seed"]) == ("constant", "0.999", "3")
    assert "--image_shift" not in recipe
    other = recipe_args(tmp_path / "data", tmp_path / "out", seed=3, image_shift=1, lr_schedule="cosine",
                        ema_decay=0.0)
    assert (flags(other)["--lr_schedule"], flags(other)["--image_shift"]) == ("cosine", "1")
    assert "--ema_decay" not in other


def test_a_kept_checkpoint_trained_with_other_settings_is_named_not_reused(tmp_path):
    model = VLAModel.tiny(chunk_size=5, hidden=32)
    checkpoint = save_checkpoint(tmp_path / "best", model, ILConfig(bc_epochs=8, lr_schedule="constant"))
    asked = argparse.Namespace(lr_schedule="constant", ema_decay=0.0, image_shift=0, epochs=8)
    assert trained_otherwise(checkpoint, asked) is None
    asked.lr_schedule, asked.epochs = "cosine", 24
    assert trained_otherwise(checkpoint, asked) == "lr_schedule constant (asked: cosine), bc_epochs 8 (asked: 24)"


@pytest.mark.parametrize("missing", ["ema_decay", "lr_schedule"])
def test_a_checkpoint_from_before_a_setting_existed_reads_as_its_old_value(tmp_path, missing):
    import json

    checkpoint = save_checkpoint(tmp_path / "best", VLAModel.tiny(chunk_size=5, hidden=32), ILConfig(bc_epochs=8))
    config = json.loads((checkpoint / "config.json").read_text())
    del config[missing]
    (checkpoint / "config.json").write_text(json.dumps(config))
    asked = argparse.Namespace(lr_schedule="constant", ema_decay=0.0, image_shift=0, epochs=8)
    assert trained_otherwise(checkpoint, asked) is None


def test_a_run_whose_recording_holds_another_number_of_demos_is_named_not_trained_on(tmp_path):
    from benchmarks.vla_target_runs import main
    from sim.collect import collect, recorded_episodes

    data = tmp_path / "out" / "run0" / "data"
    collect("transfer_cube", 1, data, cameras=("top",), image_size=(48, 64), keep_failed=True, episode_length=5,
            progress=False)
    with pytest.raises(SystemExit, match=r"run 0: .*run0/data holds 1 episodes, this run records 2"):
        main(["--runs", "1", "--demos", "2", "--epochs", "1", "--image-size", "48", "64", "--eval-episodes", "1",
              "--out", str(tmp_path / "out")])
    assert recorded_episodes(data) == 1 and not (tmp_path / "out" / "run0" / "bc").exists()
