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
    config = ILConfig.dagger(dagger_iterations=3)
    path = config.save(tmp_path)
    assert path.name == "config.json" and (tmp_path / "config.yaml").exists()
    assert ILConfig.load(tmp_path) == config


def test_a_checkpoint_from_before_provenance_json_loads_with_its_provenance(tmp_path):
    """Checkpoints written when the config carried the run's provenance in a free-form `extra` dict load as
    before: the config without it, the provenance read from it."""
    import json

    import torch

    from training.checkpoint import load_checkpoint, read_provenance, save_checkpoint
    from training.models.policies import MLPPolicy

    torch.manual_seed(0)
    policy = MLPPolicy(4, 2, True, 8)
    save_checkpoint(tmp_path / "new", policy, ILConfig(bc_epochs=3), provenance={"env": "CartPole-v1"})
    assert read_provenance(tmp_path / "new") == {"env": "CartPole-v1"}
    old = tmp_path / "old"
    save_checkpoint(old, policy, ILConfig(bc_epochs=3))
    (old / "provenance.json").unlink()
    saved = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**saved, "extra": {"env": "CartPole-v1", "dataset": None}}))
    loaded, config, _ = load_checkpoint(old)
    assert config == ILConfig(bc_epochs=3) and not hasattr(config, "extra")
    assert read_provenance(old) == {"env": "CartPole-v1", "dataset": None}
    assert torch.equal(loaded.net[0].weight, policy.net[0].weight)


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


def test_every_config_field_is_a_flag_of_its_own_name():
    """ILConfig's fields and the VLAConfig fields a user sets are flags named as the fields (the VLA's earlier
    --vla_* names still work); a bool flag alone means true."""
    import dataclasses

    from training.il.vla_cli import VLA_FLAGS

    parser = build_parser("bc")
    flags = {a.dest for a in parser._actions}
    assert {f.name for f in dataclasses.fields(ILConfig)} <= flags
    assert set(VLA_FLAGS) <= flags
    args = parser.parse_args(["--state_dropout", "1.0", "--freeze_vision", "--lora_rank", "8", "--action_head",
                              "flow_matching", "--bc_early_stopping", "false"])
    assert (args.state_dropout, args.freeze_vision, args.lora_rank, args.action_head) == (1.0, True, 8, "flow_matching")
    assert config_from_args("bc", args).bc_early_stopping is False
    old = parser.parse_args(["--vla_state_dropout", "0.5", "--vla_aux_state_weight", "2", "--vla_action_head",
                             "regression"])
    assert (old.state_dropout, old.aux_state_weight, old.action_head) == (0.5, 2.0, "regression")
    assert parser.parse_args(["--state_keep", "6", "13"]).state_keep == [6, 13]
    assert parser.parse_args([]).state_keep is None
    assert parser.parse_args(["--state_keep_dropout", "0.5"]).state_keep_dropout == 0.5
    assert parser.parse_args(["--camera_dropout", "right_wrist=0.5"]).camera_dropout == ["right_wrist=0.5"]
    for bad in (["--state_dropout", "1.5"], ["--lora_rank", "-1"], ["--freeze_llm", "maybe"], ["--state_keep", "-1"],
                ["--state_keep_dropout", "1.5"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
