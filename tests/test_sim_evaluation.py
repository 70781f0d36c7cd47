"""Evaluation: Wilson intervals, parallel workers, and the files a user reads."""

import json

import numpy as np
import pytest

from sim.aloha import robot
from sim.evaluation import EpisodeResult, EvalResult, evaluate, wilson_interval, write_report


class HoldStill:
    """A policy that keeps the arms at rest: never succeeds, a known baseline."""

    def __init__(self, task):
        pass

    def reset(self):
        pass

    def __call__(self, obs, info):
        return robot.START_STATE.copy()


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
