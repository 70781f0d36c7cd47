"""Short runs learn, and bad input stops a run with a clear message without touching saved work."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from training.cli import run_il_cli
from training.config import ILConfig
from training.demonstrations import Demonstrations
from training.experts import cartpole_expert, pendulum_expert
from training.il.behavioral_cloning import BehavioralCloning, TrainingError
from training.il.dagger import DAgger
from training.il.gail import GAIL
from training.models.policies import MLPPolicy


def small(tmp_path, **kw):
    base = dict(bc_epochs=15, num_expert_episodes=8, eval_episodes=5, output_dir=str(tmp_path / "out"), seed=0)
    base.update(kw)
    return ILConfig(**base)


def test_cartpole_bc_reaches_a_high_return_within_a_test_budget(tmp_path):
    torch.set_num_threads(1)
    trainer = BehavioralCloning(gym.make("CartPole-v1"), small(tmp_path))
    result = trainer.train(expert_policy=cartpole_expert)
    trainer.close()
    assert result["mean_reward"] >= 450, result
    out = tmp_path / "out"
    for name in ("best/model.pt", "best/config.json", "last/model.pt", "metrics.jsonl", "learning_curves.png"):
        assert (out / name).exists(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("train/loss" in r and "val/loss" in r for r in rows) and any("mean_reward" in r for r in rows)
    policy, config, metrics = load_checkpoint(out)
    assert config.bc_epochs == 15 and metrics["mean_reward"] == result["mean_reward"]


def test_dagger_aggregates_labels_every_iteration(tmp_path):
    config = small(tmp_path, dagger_iterations=2, dagger_episodes_per_iter=3, bc_epochs=3,
                   dagger_beta_schedule="constant", dagger_initial_beta=0.5)
    dagger = DAgger(gym.make("CartPole-v1"), cartpole_expert, config)
    out = dagger.train()
    sizes = [h["dagger/dataset_size"] for h in out["history"]]
    assert sizes[0] < sizes[1] and out["history"][-1]["dagger/expert_labels"] == sizes[1]
    assert [h["dagger/beta"] for h in out["history"]] == [0.5, 0.5]
    # every label is the expert's, whatever was executed
    assert all(dagger.data.actions[i] == cartpole_expert(dagger.data.obs[i]) for i in range(0, len(dagger.data), 7))


def test_gail_runs_ppo_and_the_discriminator_on_a_continuous_task(tmp_path):
    config = small(tmp_path, total_timesteps=600, ppo_rollout_steps=200, num_expert_episodes=2, eval_episodes=1,
                   gail_disc_noise=0.01, learning_rate=3e-4)
    gail = GAIL(gym.make("Pendulum-v1"), config)
    result = gail.train(expert_policy=pendulum_expert)
    assert {"train/loss", "disc_loss", "disc_acc_expert", "mean_reward"} <= set(result)
    # the total's parts: the actor's surrogate, the critic's error, the entropy, the BC term on expert data
    assert {"train/policy_loss", "train/value_loss", "train/entropy", "train/clip_fraction"} <= set(result)
    assert result["train/value_loss"] >= 0 and (tmp_path / "out/best/discriminator.pt").exists()


def test_gail_critic_warmup_keeps_the_warm_started_actor_and_it_is_the_first_best(tmp_path):
    config = small(tmp_path, total_timesteps=400, ppo_rollout_steps=200, num_expert_episodes=2, eval_episodes=1,
                   gail_bc_warmstart_epochs=2, gail_value_warmup_updates=2, ppo_init_log_std=-1.5)
    gail = GAIL(gym.make("Pendulum-v1"), config)
    assert torch.allclose(gail.ac.log_std, torch.full((1,), -1.5))
    warm = {}
    original = gail._bc_warm_start

    def remember(demos):
        original(demos)
        warm.update({k: v.clone() for k, v in gail.policy.state_dict().items()})

    gail._bc_warm_start = remember
    critic = [p.clone() for p in gail.ac.critic.parameters()]
    gail.train(expert_policy=pendulum_expert)
    # two updates, both critic-only: the actor is still the BC warm start, the critic has learned
    assert all(torch.equal(warm[k], v) for k, v in gail.policy.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(critic, gail.ac.critic.parameters()))
    assert (tmp_path / "out/best/model.pt").exists()


def test_gail_bc_regulariser_keeps_ppo_near_the_demonstrations(tmp_path):
    """An expert-like warm start gives the discriminator no signal: PPO alone drifts, the BC term holds it."""
    drift = {}
    for coef in (0.0, 2.0):
        config = small(tmp_path / str(coef), total_timesteps=1200, ppo_rollout_steps=400, num_expert_episodes=3,
                       eval_episodes=0, gail_bc_warmstart_epochs=30, learning_rate=3e-3, gail_bc_coef=coef)
        gail = GAIL(gym.make("Pendulum-v1"), config)
        warm = {}
        original = gail._bc_warm_start

        def remember(demos, original=original, gail=gail, warm=warm):
            original(demos)
            warm["demos"] = demos
            warm["loss"] = float(gail._bc_loss(torch.as_tensor(demos.obs), torch.as_tensor(demos.actions)))

        gail._bc_warm_start = remember
        gail.train(expert_policy=pendulum_expert)
        demos = warm["demos"]
        with torch.no_grad():
            after = float(gail._bc_loss(torch.as_tensor(demos.obs), torch.as_tensor(demos.actions)))
            drift[coef] = after - warm["loss"]
        assert (tmp_path / str(coef) / "out/best/model.pt").exists()  # no evaluation: best/ is the latest
    assert drift[2.0] < drift[0.0], drift
    with pytest.raises(ValueError, match="gail_bc_coef must be >= 0"):
        ILConfig(gail_bc_coef=-1.0)


def test_gail_warm_starts_from_a_bc_checkpoint_via_the_cli(tmp_path):
    bc_out, gail_out = tmp_path / "bc", tmp_path / "gail"
    assert run_il_cli("bc", ["--env", "CartPole-v1", "--bc_epochs", "5", "--num_expert_episodes", "3",
                             "--eval_episodes", "2", "--output_dir", str(bc_out)]) == 0
    assert run_il_cli("gail", ["--env", "CartPole-v1", "--model_path", str(bc_out), "--total_timesteps", "300",
                               "--ppo_rollout_steps", "150", "--num_expert_episodes", "2", "--eval_episodes", "2",
                               "--output_dir", str(gail_out)]) == 0
    assert json.loads((gail_out / "best/provenance.json").read_text())["model_path"] == str(bc_out)


def test_action_dimension_mismatch_is_a_clear_error(tmp_path):
    trainer = BehavioralCloning(gym.make("Pendulum-v1"), small(tmp_path))
    wrong = Demonstrations(np.zeros((10, 3), np.float32), np.zeros((10, 2), np.float32), np.zeros(10, np.int64))
    with pytest.raises(TrainingError, match=r"actions have shape \(2,\).*act with 1 values"):
        trainer.fit(wrong, 1)


def test_empty_and_all_filtered_datasets_are_clear_errors(tmp_path):
    trainer = BehavioralCloning(gym.make("Pendulum-v1"), small(tmp_path, demo_filter_percentile=50.0))
    empty = Demonstrations.empty(3, (1,), discrete=False)
    with pytest.raises(TrainingError, match="no demonstrations"):
        trainer.fit(empty, 1)


def test_nan_loss_stops_the_run_and_keeps_the_saved_checkpoint(tmp_path):
    env = gym.make("Pendulum-v1")
    trainer = BehavioralCloning(env, small(tmp_path, eval_episodes=0))
    good = Demonstrations(np.random.rand(40, 3).astype(np.float32), np.random.rand(40, 1).astype(np.float32),
                          np.repeat(np.arange(4), 10))
    trainer.fit(good, 1)
    saved = (tmp_path / "out/best/model.pt").read_bytes()
    with torch.no_grad():
        trainer.policy.net[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingError, match="the loss became nan"):
        trainer.train_epoch()
    assert (tmp_path / "out/best/model.pt").read_bytes() == saved


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    policy = MLPPolicy(obs_dim=4, action_dim=2, discrete=True, hidden_dim=16)
    save_checkpoint(tmp_path / "ckpt", policy, ILConfig())
    with pytest.raises(CheckpointError, match="obs_dim=4, this run needs obs_dim=3"):
        load_checkpoint(tmp_path / "ckpt", expect={"obs_dim": 3})
    (tmp_path / "ckpt/policy.json").write_text(json.dumps({**policy.spec(), "hidden_dim": 32}))
    with pytest.raises(CheckpointError, match="does not fit MLPPolicy"):
        load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="not a vla-il checkpoint"):
        load_checkpoint(tmp_path)


def test_gail_discriminator_sees_states_clipped_as_the_actor_does(tmp_path):
    """A state hundreds of sigmas outside the demonstrations (a knocked object) enters the discriminator at the
    actor's clip, not as a value that dominates its first layer."""
    config = small(tmp_path, total_timesteps=200, ppo_rollout_steps=100, num_expert_episodes=1, eval_episodes=0)
    gail = GAIL(gym.make("Pendulum-v1"), config)
    actor = gail.ac.actor
    actor.set_normalization(np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32),
                            np.zeros((100, 1), np.float32))
    far = actor.obs_mean + 1000 * actor.obs_std
    s, _ = gail.disc_inputs(far.reshape(1, -1), torch.zeros(1, 1))
    assert torch.allclose(s, torch.full_like(s, actor.OBS_CLIP))
