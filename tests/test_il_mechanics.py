"""The algorithms' mechanics: beta schedules, aggregation, filtering, chunking, GAIL and PPO pieces."""

import json
import math

import numpy as np
import pytest
import torch

from training.demonstrations import Demonstrations
from training.il.dagger import get_beta
from training.il.gail import Discriminator, gae, ppo_loss
from training.models.policies import MLPPolicy
from vla_il_core.chunking import ChunkQueue, TemporalEnsembler, ensemble_weights


def demos(episodes, length=5, returns=None):
    n = episodes * length
    return Demonstrations(np.arange(n, dtype=np.float32)[:, None], np.arange(n, dtype=np.float32)[:, None] * 10,
                          np.repeat(np.arange(episodes), length), returns or {})


def test_beta_schedules_exactly_as_specified():
    assert [get_beta(i, "constant", 0.7, 10) for i in (0, 5, 9)] == [0.7, 0.7, 0.7]
    assert [get_beta(i, "linear", 1.0, 10) for i in (0, 5, 10, 12)] == [1.0, 0.5, 0.0, 0]
    assert get_beta(3, "exponential", 0.8, 10) == pytest.approx(0.8 * 0.9**3)
    with pytest.raises(ValueError, match="unknown beta schedule"):
        get_beta(0, "cosine", 1.0, 10)


def test_aggregation_keeps_everything_and_renumbers_episodes():
    a, b = demos(2, returns={0: 1.0, 1: 2.0}), demos(3, returns={0: 3.0, 1: 4.0, 2: 5.0})
    agg = a.aggregate(b)
    assert len(agg) == len(a) + len(b)
    assert list(agg.episodes) == [0, 1, 2, 3, 4]
    assert agg.returns == {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0}


def test_filtering_keeps_episodes_at_or_above_the_percentile():
    d = demos(4, returns={0: 10.0, 1: 20.0, 2: 30.0, 3: 40.0})
    kept = d.filter_by_return(70)  # threshold = 31.0
    assert list(kept.episodes) == [3]
    assert list(d.filter_by_return(0).episodes) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="needs episode returns"):
        demos(2).filter_by_return(50)


def test_split_is_by_whole_episodes():
    train, val = demos(10).split(0.2, seed=1)
    assert len(val.episodes) == 2 and not set(train.episodes) & set(val.episodes)
    assert len(train) + len(val) == 50


def test_chunk_targets_stop_at_the_episode_end():
    d = demos(2, length=3)
    targets, mask = d.chunk_targets(4)
    assert targets.shape == (6, 4, 1)
    assert mask[0].tolist() == [True, True, True, False]
    assert mask[2].tolist() == [True, False, False, False]
    assert targets[0, :3, 0].tolist() == [0.0, 10.0, 20.0]
    assert targets[0, 3, 0] == 20.0  # padded with the episode's last action, masked out


def test_temporal_ensembling_uses_act_weights_oldest_first():
    w = ensemble_weights(3, 0.5)
    assert w == pytest.approx(np.exp(-0.5 * np.arange(3)) / np.exp(-0.5 * np.arange(3)).sum())
    ens = TemporalEnsembler(chunk_size=3, k=0.5)
    ens.add(np.array([[0.0], [1.0], [2.0]]))  # predicted at t=0 for t=0,1,2
    assert ens.act() == pytest.approx([0.0])
    ens.add(np.array([[10.0], [11.0], [12.0]]))  # predicted at t=1 for t=1,2,3
    assert ens.act() == pytest.approx(ensemble_weights(2, 0.5) @ np.array([[1.0], [10.0]]))
    ens.add(np.array([[20.0], [21.0], [22.0]]))
    expected = ensemble_weights(3, 0.5) @ np.array([[2.0], [11.0], [20.0]])
    assert ens.act() == pytest.approx(expected)


def test_chunk_queue_runs_open_loop_then_asks_again():
    q = ChunkQueue(n_action_steps=2)
    assert q.needs_chunk()
    q.add(np.array([[1.0], [2.0], [3.0]]))
    assert [q.act()[0], q.act()[0]] == [1.0, 2.0] and q.needs_chunk()


def test_discriminator_reward_sign_and_scale():
    disc = Discriminator(state_dim=2, action_dim=1, hidden_dim=8)
    s, a = torch.zeros(4, 2), torch.zeros(4, 1)
    with torch.no_grad():
        for bias, expected_d in ((-10.0, 0.0), (0.0, 0.5), (10.0, 1.0)):
            disc.network[-1].weight.zero_()
            disc.network[-1].bias.fill_(bias)
            d = disc(s, a)
            r = disc.get_reward(s, a)
            assert d.mean().item() == pytest.approx(expected_d, abs=1e-4)
            assert torch.allclose(r, -torch.log(1 - d + 1e-8))
    # The reward grows as the discriminator believes the pair is the expert's, and is never negative.
    assert (r >= 0).all() and r.mean() > math.log(2) - 1e-6


def test_ppo_clipping_stops_the_gradient_beyond_the_clip_range():
    old = torch.zeros(2)
    logp = torch.tensor([0.5, -0.5], requires_grad=True)  # ratios e^0.5 and e^-0.5, both outside 1 +- 0.2
    adv = torch.tensor([1.0, -1.0])
    loss, info = ppo_loss(logp, old, adv, torch.zeros(2), torch.zeros(2), 0.2, 0.0, 0.0, torch.zeros(2))
    loss.backward()
    assert torch.all(logp.grad == 0) and info["clip_fraction"] == 1.0
    inside = torch.tensor([0.05, -0.05], requires_grad=True)
    loss, _ = ppo_loss(inside, old, adv, torch.zeros(2), torch.zeros(2), 0.2, 0.0, 0.0, torch.zeros(2))
    loss.backward()
    assert torch.all(inside.grad != 0)


def test_gae_matches_a_hand_computation():
    rewards = torch.tensor([1.0, 1.0])
    values = torch.tensor([0.5, 0.5])
    ended = torch.tensor([False, True])
    adv = gae(rewards, values, torch.tensor([0.5, 9.0]), ended, ended, gamma=0.9, lam=0.8)
    d1 = 1.0 - 0.5  # terminal: no bootstrap
    d0 = 1.0 + 0.9 * 0.5 - 0.5
    assert adv.tolist() == pytest.approx([d0 + 0.9 * 0.8 * d1, d1])


def test_residual_mlp_predicts_relative_to_the_joint_positions():
    import torch

    from training.models.policies import MLPPolicy
    from training.models.registry import build_policy

    torch.manual_seed(0)
    policy = MLPPolicy(obs_dim=5, action_dim=3, discrete=False, hidden_dim=8, chunk_size=2, residual=True)
    obs = np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32)
    actions = obs[:, :3] + 0.1  # the expert always moves by +0.1 from where the joints are
    policy.set_normalization(obs, actions)
    np.testing.assert_allclose(policy.act_mean.numpy(), 0.1, atol=1e-5)  # statistics of the motion
    with torch.no_grad():
        for p in policy.net.parameters():
            p.zero_()
        out = policy(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(out, np.repeat(actions[:, None], 2, axis=1), atol=1e-5)  # zero net: the mean motion
    batch = {"obs": torch.as_tensor(obs), "action": torch.as_tensor(np.repeat(actions[:, None], 2, axis=1)),
             "mask": torch.ones(50, 2)}
    assert float(policy.loss(batch)) < 1e-8
    assert build_policy({"class": "MLPPolicy", **policy.spec()}).residual
    with pytest.raises(ValueError, match="residual"):
        MLPPolicy(obs_dim=2, action_dim=3, discrete=False, residual=True)


def test_renormalisation_keeps_the_policy_s_function_and_follows_the_data():
    rng = np.random.default_rng(0)
    for discrete, residual, chunk, members in ((False, False, 3, 1), (False, True, 1, 1), (True, False, 1, 1),
                                               (False, False, 3, 3)):
        policy = MLPPolicy(6, 2 if not discrete else 3, discrete, hidden_dim=16, chunk_size=chunk, residual=residual,
                           members=members)
        obs = rng.normal(size=(50, 6)).astype(np.float32)
        actions = (rng.integers(0, 3, 50) if discrete else rng.normal(size=(50, chunk, 2))).astype(
            np.int64 if discrete else np.float32)
        policy.set_normalization(obs, actions)
        far = (rng.normal(size=(20, 6)) * 30 + 5).astype(np.float32)  # DAgger's states, far from the first data
        far_actions = (rng.integers(0, 3, 20) if discrete else rng.normal(size=(20, chunk, 2)) * 10).astype(
            np.int64 if discrete else np.float32)
        probe = torch.as_tensor(obs[:10])  # inside the clipping range of both statistics
        before = policy.raw(probe) if discrete else policy(probe)
        policy.update_normalization(np.concatenate([obs, far]), np.concatenate([actions, far_actions]))
        after = policy.raw(probe) if discrete else policy(probe)
        assert torch.allclose(before, after, atol=1e-4, rtol=1e-4), (discrete, residual, members)
        assert float(policy.obs_std.min()) > 5  # the statistics now cover the far states


def test_an_ensemble_fits_each_member_on_its_own_and_acts_on_their_mean(tmp_path):
    from training.checkpoint import load_checkpoint, save_checkpoint
    from training.config import ILConfig
    from training.il.behavioral_cloning import BehavioralCloning

    rng = np.random.default_rng(4)
    obs = rng.normal(size=(240, 5)).astype(np.float32)
    actions = np.tanh(obs[:, :3] * 2 + obs[:, 3:4]).astype(np.float32)  # a smooth target each member can learn
    data = Demonstrations(obs, actions, np.repeat(np.arange(24), 10), {})
    config = ILConfig(ensemble_size=3, hidden_dim=32, learning_rate=3e-3, batch_size=32, eval_episodes=0,
                      output_dir=str(tmp_path / "run"))
    policy = MLPPolicy(5, 3, False, hidden_dim=32, members=config.ensemble_size)
    policy.set_normalization(obs, actions)
    batch = {"obs": torch.as_tensor(obs), "action": torch.as_tensor(actions)[:, None],
             "mask": torch.ones(len(obs), 1, dtype=torch.bool)}

    def member_losses():
        with torch.no_grad():
            return [float(policy._loss(out, batch)) for out in policy.member_outputs(batch["obs"])]

    first = [net[0].weight.detach().clone() for net in policy.networks()]
    assert len(first) == 3 and not torch.equal(first[0], first[1])  # each member starts elsewhere
    before = member_losses()
    bc = BehavioralCloning(None, config, policy)
    bc.fit(data, 30)
    bc.close()
    after = member_losses()
    assert all(a < 0.3 * b for a, b in zip(after, before, strict=True)), (before, after)  # every member learnt
    with torch.no_grad():
        probe = torch.as_tensor(obs[:7])
        torch.testing.assert_close(policy.raw(probe), policy.member_outputs(probe).mean(0))
        policy.eval()  # what the policy outputs is judged: the loss of the members' mean
        assert float(policy.loss(batch)) == pytest.approx(float(policy._loss(policy.raw(batch["obs"]), batch)))
        assert float(policy.loss(batch)) <= np.mean(after) + 1e-6  # averaging does not hurt a convex loss
        loaded, _, _ = load_checkpoint(save_checkpoint(tmp_path / "ckpt", policy, config))
        assert loaded.members == 3
        torch.testing.assert_close(loaded(probe), policy(probe), rtol=0, atol=0)
    with pytest.raises(ValueError, match="ensemble_size"):
        ILConfig(ensemble_size=0)


def test_inputs_far_outside_the_training_data_are_clipped_not_extrapolated():
    rng = np.random.default_rng(2)
    policy = MLPPolicy(3, 2, False, hidden_dim=16)
    obs = rng.normal(size=(200, 3)).astype(np.float32)
    obs[:, 2] = 0.001 * rng.normal(size=200)  # a feature that hardly moves (a cube's tilt in the demos)
    policy.set_normalization(obs, rng.normal(size=(200, 2)).astype(np.float32))
    tilted = torch.tensor([[0.0, 0.0, 0.7], [0.0, 0.0, 70.0]])  # ~70 and ~7000 sigmas
    at_edge = torch.tensor([[0.0, 0.0, float(policy.obs_mean[2] + MLPPolicy.OBS_CLIP * policy.obs_std[2])]])
    out = policy(tilted).detach()
    torch.testing.assert_close(out[0], out[1])
    torch.testing.assert_close(out[:1], policy(at_edge).detach())
    inside = torch.tensor([[0.1, -0.2, 0.0]])
    z = (inside - policy.obs_mean) / policy.obs_std
    torch.testing.assert_close(policy.raw(inside), policy.net(z).view(1, 1, 2))  # no clipping in range


def test_a_few_wild_values_do_not_set_the_normalisation():
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(2000, 2)).astype(np.float32)
    obs[:5, 1] = -219.0  # a cube that fell off the table, five frames of it
    policy = MLPPolicy(2, 1, False, hidden_dim=8)
    policy.set_normalization(obs, rng.normal(size=(2000, 1)).astype(np.float32))
    assert abs(float(policy.obs_mean[1])) < 0.1 and 0.9 < float(policy.obs_std[1]) < 1.1
    assert float(policy.obs_std[0]) == pytest.approx(float(obs[:, 0].std()), rel=0.1)


def test_cosine_schedule_anneals_each_fit_to_zero(tmp_path):
    """Batch by batch, down to ~0 at the fit's last batch even when the fit is 2 epochs (the rate once stepped
    per epoch, so a 2-epoch fit ran its last epoch at half the rate: a continued VLA lost 38 points to it)."""
    from training.config import ILConfig
    from training.envs import make_env
    from training.il.behavioral_cloning import BehavioralCloning

    rng = np.random.default_rng(0)
    demos = Demonstrations(rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 2, 64),
                           np.repeat(np.arange(8), 8), {})
    seen = {}
    for schedule in ("constant", "cosine"):
        bc = BehavioralCloning(make_env("CartPole-v1"), ILConfig(lr_schedule=schedule, learning_rate=1e-3,
                                                                 batch_size=8, eval_episodes=0,
                                                                 output_dir=str(tmp_path / schedule)))
        original, lrs = bc.loss, seen.setdefault(schedule, [])
        bc.loss = lambda batch, o=original, b=bc, lrs=lrs: (lrs.append(b._optimizer.param_groups[0]["lr"]), o(batch))[1]
        for _ in range(2):  # every fit (DAgger's rounds) starts from the full rate again
            bc.fit(demos, 2)
    per_fit = len(seen["cosine"]) // 2
    assert per_fit >= 8 and seen["constant"] == [1e-3] * len(seen["constant"])
    for lrs in (seen["cosine"][:per_fit], seen["cosine"][per_fit:]):
        assert lrs[0] == pytest.approx(1e-3) and lrs == sorted(lrs, reverse=True)
        assert lrs[-1] < 0.05e-3, lrs  # the last batch's rate: annealed (it was 0.5e-3 for a whole epoch)
        assert len(set(lrs[: per_fit // 2])) > 1  # it falls within an epoch, not only between epochs


def test_early_stopping_keeps_the_epoch_of_lowest_validation_loss_or_else_the_last(tmp_path):
    """Random labels: the training split is memorised, the held-out episodes get worse as it is. Kept: the
    epoch of lowest validation loss, of all or of the second half (after=0.5), or else the last."""
    import copy

    from training.config import ILConfig
    from training.envs import make_env
    from training.il.behavioral_cloning import BehavioralCloning

    rng = np.random.default_rng(0)
    demos = Demonstrations(rng.normal(size=(160, 4)).astype(np.float32), rng.integers(0, 2, 160),
                           np.repeat(np.arange(20), 8), {})
    for early, after in ((True, 0.0), (True, 0.5), (False, 0.0)):
        config = ILConfig(bc_early_stopping=early, bc_early_stopping_after=after, learning_rate=3e-3, hidden_dim=256,
                          batch_size=16, bc_validation_split=0.3, eval_episodes=0,
                          output_dir=str(tmp_path / f"{early}{after}"))
        bc = BehavioralCloning(make_env("CartPole-v1"), config)
        snapshots, original = [], bc.train_epoch

        def epoch(o=original, b=bc, snaps=snapshots):
            result = o()
            snaps.append((result["val/loss"], copy.deepcopy(b.policy.state_dict())))
            return result

        bc.train_epoch = epoch
        bc.fit(demos, 12)
        losses = [v for v, _ in snapshots]
        first = 6 if after else 0
        kept = snapshots[first + int(np.argmin(losses[first:]))] if early else snapshots[-1]
        assert np.argmin(losses) < 6 and np.argmin(losses[6:]) < 5  # the data makes early stopping matter
        for name, value in bc.policy.state_dict().items():
            assert torch.equal(value, kept[1][name]), (early, after, name)


def test_ema_keeps_the_moving_average_of_the_trained_weights_and_leaves_it_behind(tmp_path):
    """ema_decay d: after every optimiser step average += (1 - d_n) (weights - average), d_n = min(d, (1+n)/(10+n));
    validation, last/ and the policy after the fit are the average's; the trained weights' loss is logged beside.
    Without it the fit leaves the last step's weights."""
    from training.checkpoint import load_checkpoint
    from training.config import ILConfig
    from training.il.behavioral_cloning import BehavioralCloning

    rng = np.random.default_rng(5)
    obs = rng.normal(size=(200, 4)).astype(np.float32)
    actions = np.tanh(obs[:, :2] - obs[:, 2:]).astype(np.float32)
    demos = Demonstrations(obs, actions, np.repeat(np.arange(20), 10), {})
    last_trained = {}
    for decay in (0.0, 0.9):
        config = ILConfig(ema_decay=decay, hidden_dim=16, learning_rate=1e-2, batch_size=16, eval_episodes=0,
                          bc_early_stopping=False, bc_validation_split=0.2, output_dir=str(tmp_path / str(decay)))
        torch.manual_seed(0)
        policy = MLPPolicy(4, 2, False, hidden_dim=16)
        bc = BehavioralCloning(None, config, policy)
        bc.prepare(demos)  # the optimiser the fit will use: every step's weights are recorded after it
        params = [p for p in policy.parameters() if p.requires_grad]
        average = [p.detach().clone() for p in params]
        trained, step = [], bc._optimizer.step

        def recorded_step(*args, step=step, trained=trained, params=params, **kwargs):
            out = step(*args, **kwargs)
            trained.append([p.detach().clone() for p in params])
            return out

        bc._optimizer.step = recorded_step
        result = bc.fit(demos, 3)
        bc.close()
        assert len(trained) == 30  # 3 epochs of 10 batches
        last_trained[decay] = trained[-1]
        for n, weights in enumerate(trained, start=1):
            d = min(decay, (1 + n) / (10 + n))
            average = [d * a + (1 - d) * w for a, w in zip(average, weights, strict=True)]
        expected = average if decay else trained[-1]
        for p, e in zip(params, expected, strict=True):
            torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)
        assert result["val/loss"] == pytest.approx(bc.validation_loss(), rel=1e-6)  # the average's loss
        saved, _, _ = load_checkpoint(tmp_path / str(decay) / "last")
        for (name, value), p in zip(saved.state_dict().items(), policy.state_dict().values(), strict=True):
            assert torch.equal(value, p), name
        logged = [json.loads(line) for line in (tmp_path / str(decay) / "metrics.jsonl").read_text().splitlines()]
        assert all(("val/loss_trained_weights" in row) == bool(decay) for row in logged if "val/loss" in row)
        if decay:  # the average is not the last step's weights, and the trained weights' loss differs from it
            assert not torch.equal(params[0].detach(), trained[-1][0])
            assert logged[-1]["val/loss_trained_weights"] != pytest.approx(logged[-1]["val/loss"], rel=1e-6)
    for without, with_average in zip(last_trained[0.0], last_trained[0.9], strict=True):
        torch.testing.assert_close(without, with_average, rtol=0, atol=0)  # the average never feeds back
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="ema_decay"):
            ILConfig(ema_decay=bad)


def test_an_action_dimension_with_two_values_snaps_to_the_nearer_one():
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(100, 4)).astype(np.float32)
    actions = np.stack([rng.normal(size=100), (obs[:, 0] > 0).astype(np.float64)], 1).astype(np.float32)
    policy = MLPPolicy(4, 2, False, hidden_dim=8)
    policy.set_normalization(obs, actions)
    assert policy.binary_mask.tolist() == [False, True]  # a gripper commanded open (1) or closed (0)
    out = policy(torch.as_tensor(obs)).detach().numpy()[:, 0]
    assert set(np.unique(out[:, 1]).tolist()) <= {0.0, 1.0} and len(np.unique(out[:, 0])) > 50
    # an old checkpoint without the buffers loads, with nothing binary
    state = {k: v for k, v in policy.state_dict().items() if not k.startswith("binary")}
    fresh = MLPPolicy(4, 2, False, hidden_dim=8)
    fresh.load_state_dict(state)
    assert not fresh.binary_mask.any()


def test_dagger_rollouts_of_a_chunking_learner_segment_by_who_executed():
    """A step the learner executed is a segment of one (the labels after it follow the learner's action, not
    the expert's); a stretch the expert executed is one segment; every visited state keeps its label."""
    import gymnasium as gym

    from training.experts import cartpole_expert
    from training.rollouts import run_episodes

    env = gym.make("CartPole-v1")
    asked = []

    def learner(obs):
        asked.append(1)
        return 1 - cartpole_expert(obs)  # never the expert's choice

    demos, stats = run_episodes(env, 2, learner, seed=0, expert=cartpole_expert, beta=0.5,
                                rng=np.random.default_rng(7), chunk_segments=True)
    n = len(demos)
    executed_by_expert = np.random.default_rng(7).random(n) < 0.5  # one draw per step, as run_episodes draws
    assert len(asked) == n  # the learner is asked every step, also when the expert's action is executed
    assert np.all(demos.actions == [cartpole_expert(o) for o in demos.obs])
    same_segment = demos.episode[1:] == demos.episode[:-1]
    # a segment continues only from an expert step to an expert step (never across an episode: CartPole
    # episodes end on a learner or an expert step, and the next one starts a new segment either way)
    assert np.all(same_segment <= (executed_by_expert[1:] & executed_by_expert[:-1]))
    assert same_segment.sum() > 0 and len(demos.episodes) > 2
    _, mask = demos.chunk_targets(3)
    assert not np.any(mask[~executed_by_expert, 1:])
    plain, _ = run_episodes(env, 2, learner, seed=0, expert=cartpole_expert, beta=0.5, rng=np.random.default_rng(7))
    assert len(plain.episodes) == 2 and len(plain) == n
    env.close()
