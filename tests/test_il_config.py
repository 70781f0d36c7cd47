"""ILConfig: the specification's defaults, named constructors, validation, persistence, and CLI flags."""

import pytest

from training.cli import build_parser, config_from_args
from training.config import ILConfig

SPEC_DEFAULTS = {
    "bc_epochs": 100, "bc_validation_split": 0.1, "learning_rate": 1e-4, "batch_size": 64, "weight_decay": 0.01,
    "dagger_iterations": 10, "dagger_episodes_per_iter": 20, "dagger_beta_schedule": "linear",
    "dagger_initial_beta": 1.0, "gail_disc_hidden_dim": 256, "gail_disc_updates": 5, "gail_disc_lr": 3e-4,
    "gail_reward_scale": 1.0, "ppo_epochs": 4, "ppo_clip_range": 0.2, "ppo_gae_lambda": 0.95,
    "total_timesteps": 100_000,
}


def test_defaults_are_the_specifications():
    config = ILConfig()
    for name, value in SPEC_DEFAULTS.items():
        assert getattr(config, name) == value, name
    assert config.action_chunk_size == 1 and config.temporal_aggregation is False


def test_named_constructors():
    assert ILConfig.behavioral_cloning().output_dir == "./output/bc"
    dagger = ILConfig.dagger()
    assert dagger.bc_epochs == 20 and dagger.output_dir == "./output/dagger"
    gail = ILConfig.gail()
    assert gail.learning_rate == 3e-4 and gail.output_dir == "./output/gail"
    assert ILConfig.dagger(dagger_iterations=3).dagger_iterations == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"bc_epochs": -1}, "bc_epochs must be a positive integer"),
    ({"dagger_beta_schedule": "cosine"}, "dagger_beta_schedule must be one of constant, linear, exponential"),
    ({"lr_schedule": "linear"}, "lr_schedule must be one of constant, cosine"),
    ({"bc_validation_split": 1.0}, "bc_validation_split"),
    ({"dagger_initial_beta": 1.5}, "dagger_initial_beta"),
    ({"learning_rate": 0.0}, "learning_rate must be > 0"),
    ({"ppo_clip_range": 0.0}, "ppo_clip_range"),
    ({"temporal_aggregation": True}, "needs action_chunk_size >= 2"),
    ({"demo_filter_percentile": 120.0}, "demo_filter_percentile"),
])
def test_bad_values_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ILConfig(**kwargs)


def test_saved_beside_checkpoints_and_loaded_back(tmp_path):
    config = ILConfig.dagger(dagger_iterations=3, extra={"env": "CartPole-v1"})
    path = config.save(tmp_path)
    assert path.name == "config.json" and (tmp_path / "config.yaml").exists()
    assert ILConfig.load(tmp_path) == config


def test_unknown_fields_in_a_saved_config_are_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"bc_epochs": 3, "bogus": 1}')
    with pytest.raises(ValueError, match="unknown ILConfig fields bogus"):
        ILConfig.load(tmp_path)


def test_cli_flags_map_to_the_config():
    args = build_parser("dagger").parse_args([
        "--env", "CartPole-v1", "--dagger_iterations", "10", "--dagger_episodes_per_iter", "20",
        "--dagger_beta_schedule", "linear", "--dagger_initial_beta", "1.0", "--bc_epochs", "20",
        "--output_dir", "./output/dagger", "--temporal_aggregation", "false", "--action_chunk_size", "4",
    ])
    config = config_from_args("dagger", args)
    assert (config.dagger_iterations, config.bc_epochs, config.action_chunk_size) == (10, 20, 4)
    assert config.learning_rate == 1e-4 and args.env == "CartPole-v1"
    with pytest.raises(SystemExit):
        build_parser("bc").parse_args(["--bc_epochs", "many"])
