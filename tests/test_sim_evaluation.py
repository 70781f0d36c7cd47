"""Evaluation: Wilson intervals, parallel workers, and the files a user reads."""

import json
import pickle

import numpy as np
import pytest

from sim.aloha import robot
from sim.evaluation import (
    EpisodeResult,
    EvalResult,
    ExpertPolicy,
    GatedFactory,
    MuxedFactory,
    MuxedPolicy,
    default_mux_config,
    evaluate,
    wilson_interval,
    write_report,
)
from vla_il_core.teleop import GateConfig


class HoldStill:
    """A policy that keeps the arms at rest: never succeeds, a known baseline."""

    def __init__(self, task):
        pass

    def reset(self):
        pass

    def __call__(self, obs, info):
        return robot.START_STATE.copy()


class OpensTheGripperTooFar(HoldStill):
    """Commands the left gripper past its limit on every step (a regressed gripper overshooting 0..1)."""

    def __call__(self, obs, info):
        action = robot.START_STATE.copy()
        action[robot.GRIPPER_INDICES[0]] = robot.JOINT_UPPER[robot.GRIPPER_INDICES[0]] + 0.2
        return action


class SnapsTheGripper(HoldStill):
    """Closes and opens the right gripper in one command every 10 ticks, as a policy trained on the sim
    expert's recordings does (the expert's gripper commands jump; `vla-il collect` records them without the mux)."""

    def __init__(self, task):
        self.t = 0

    def reset(self):
        self.t = 0

    def __call__(self, obs, info):
        self.t += 1
        action = robot.START_STATE.copy()
        action[robot.GRIPPER_INDICES[1]] = float((self.t // 10) % 2 == 0)
        return action


def test_through_the_mux_every_command_obeys_its_step_limit_and_the_limited_ones_are_counted(capsys):
    """A policy alone as the graph deploys it: its gripper's jumps reach the robot as the mux's steps, and
    the evaluation says which joints' commands the mux changed; without the mux nothing is counted."""
    config = default_mux_config()
    g = robot.GRIPPER_INDICES[1]
    policy = MuxedPolicy(SnapsTheGripper("transfer_cube"), config)
    from sim.aloha.env import AlohaEnv

    env = AlohaEnv("transfer_cube", episode_length=60)
    try:
        obs, info = env.reset(seed=1)
        policy.reset()
        previous = None
        for _ in range(60):
            command = policy(obs, info)
            if previous is not None:
                assert np.all(np.abs(command - previous) <= np.asarray(config.max_step) + 1e-9)
            previous = command
            obs, _r, _term, _trunc, info = env.step(command)
    finally:
        env.close()
    steps = int(np.ceil(1.0 / config.max_step[g] - 1e-9))  # a jump from open to closed takes this many commands
    assert steps > 1 and policy.episode_step_limited["right_gripper"] >= 5 * (steps - 1)

    kwargs = dict(env_kwargs={"episode_length": 40}, progress=False)
    alone = evaluate("transfer_cube", SnapsTheGripper, [1], **kwargs)
    muxed = evaluate("transfer_cube", MuxedFactory(SnapsTheGripper), [1, 2], **kwargs)
    assert alone.step_limited is None and "mux" not in alone.line() and "mux_limited_per_episode" not in alone.summary()
    assert set(muxed.step_limited) == {"right_gripper"} and muxed.step_limited["right_gripper"] >= 3 * (steps - 1)
    assert "commands the mux limited per episode: right_gripper" in muxed.line()
    assert muxed.summary()["mux_limited_per_episode"] == muxed.step_limited
    assert [e.interventions for e in muxed.episodes] == [None, None]  # no expert: no takeovers reported
    assert pickle.loads(pickle.dumps(MuxedFactory(SnapsTheGripper))).base is SnapsTheGripper  # crosses to workers


def test_clamped_actions_are_one_warning_with_their_counts_for_any_number_of_workers():
    """Every episode clamps: one warning for the whole evaluation, with the count per joint, not one per env."""
    import warnings

    for workers in (1, 2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate("transfer_cube", OpensTheGripperTooFar, [1, 2, 3], policy_name="overshoot",
                              workers=workers, env_kwargs={"episode_length": 10, "clamp_actions": True},
                              progress=False)
        clamping = [str(w.message) for w in caught if "clamp" in str(w.message)]
        assert clamping == ["overshoot on transfer_cube: actions clamped to the joint limits in 3 of 3 episodes "
                            "(left_gripper 30 steps)"], (workers, clamping)
        assert result.clamped == {"left_gripper": 30} and result.summary()["clamped_steps"] == {"left_gripper": 30}
    quiet = evaluate("transfer_cube", HoldStill, [1], env_kwargs={"episode_length": 5, "clamp_actions": True},
                     progress=False)
    assert quiet.clamped == {}


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_evaluate_in_two_workers_matches_one(tmp_path):
    kwargs = dict(env_kwargs={"episode_length": 20}, progress=False)
    one = evaluate("transfer_cube", HoldStill, [5, 6, 7], policy_name="still", workers=1, **kwargs)
    two = evaluate("transfer_cube", HoldStill, [5, 6, 7], policy_name="still", workers=2, **kwargs)
    assert [e.seed for e in two.episodes] == [5, 6, 7]
    assert [(e.success, e.length) for e in one.episodes] == [(e.success, e.length) for e in two.episodes]
    assert one.success_rate == 0.0 and all(e.length == 20 for e in one.episodes)


def test_report_files(tmp_path):
    result = EvalResult("transfer_cube", "p", [EpisodeResult(1, True, 4.0, 200), EpisodeResult(2, False, 2.0, 400)])
    write_report(result, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["successes"] == 1 and summary["success_rate"] == 0.5
    assert summary["success_rate_wilson95"] == pytest.approx(list(wilson_interval(1, 2)))
    assert len((tmp_path / "episodes.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "success.png").stat().st_size > 1000
    assert np.isclose(summary["mean_max_reward"], 3.0)


def test_gated_evaluation_counts_the_help_a_policy_needs():
    """The demo's gate watching a policy on held-out seeds: the expert never drifts from itself and succeeds
    (its commands pass the mux, which eases the grippers open over the first ticks: stalls aside, as the
    expert's pace then varies by seed); a policy that holds still drifts from the expert, is taken over,
    hands back, drifts again."""
    kwargs = dict(env_kwargs={"episode_length": 240}, progress=False)
    gate = GateConfig(drift_threshold=0.3, drift_ticks=5, handback_ticks=60)
    factory = GatedFactory(ExpertPolicy, GateConfig(drift_threshold=0.3, drift_ticks=5, stall_ticks=0))
    alone = evaluate("transfer_cube", ExpertPolicy, [3, 4], **kwargs)
    watched = evaluate("transfer_cube", factory, [3, 4], **kwargs)
    assert [e.interventions for e in watched.episodes] == [0, 0]
    assert [e.success for e in watched.episodes] == [e.success for e in alone.episodes] == [True, True]
    assert alone.interventions is None and "takeovers" not in alone.line()

    still = evaluate("transfer_cube", GatedFactory(HoldStill, gate), [3, 4], **kwargs)
    counts = [e.interventions for e in still.episodes]
    assert all(c >= 2 for c in counts), counts  # taken over, handed back after 60 ticks, taken over again
    assert all(60 <= e.intervention_frames < 240 for e in still.episodes)
    summary = still.summary()
    assert summary["interventions_per_episode"] == pytest.approx(np.mean(counts))
    assert summary["intervention_frames_per_episode"] > 60 and "takeovers per episode" in still.line()
    assert pickle.loads(pickle.dumps(GatedFactory(HoldStill, gate))).gate_config == gate  # crosses to workers


def test_vla_il_eval_with_the_expert_watching_reports_the_takeovers(tmp_path, capsys):
    from vla_il.cli import main

    assert main(["eval", "--policy", "expert", "--episodes", "2", "--with-expert", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interventions_per_episode"] == 0.0 and summary["successes"] == 2
    assert "the sim expert watching" in capsys.readouterr().out
    episodes = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert [e["interventions"] for e in episodes] == [0, 0]
    assert all(isinstance(e["step_limited"], dict) for e in episodes)  # the expert's commands passed the mux too


def test_vla_il_eval_through_the_mux_reports_what_it_limited(tmp_path, capsys):
    """The scripted expert's gripper commands jump (its recordings are made without the mux): through the
    mux, as on the graph, they are stepped, and the report says so."""
    from vla_il.cli import main

    assert main(["eval", "--policy", "expert", "--episodes", "1", "--through-mux", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "expert, through the mux: success" in out and "commands the mux limited per episode: " in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "interventions_per_episode" not in summary
    assert any(k.endswith("gripper") for k in summary["mux_limited_per_episode"]), summary
