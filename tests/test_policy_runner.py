"""The policy node's core (no ROS) on a real exported bundle: episode boundaries reset the chunk history."""

import numpy as np

from sim.aloha import robot
from tests.bundles import make_bundle
from vla_il_nodes.policy_node_core import PolicyRunner, load_policy


def _runner(bundle):
    return PolicyRunner(load_policy(str(bundle), prefer_gpu=False), stale_after_s=10.0, async_inference=False)


def _tick(runner, joints, env_state, now):
    assert runner.observe("joint_positions", joints, now) is None
    assert runner.observe("env_state", env_state, now) is None
    return runner.tick(now)


def test_a_reset_drops_the_last_episodes_chunks(tmp_path):
    bundle = make_bundle(tmp_path, "ens", chunk=5, ensembling=True, gain=1.0)
    a_joints, a_env = robot.START_STATE + 0.5, np.array([0.3, 0.6, 0.05, 1.0, 0.0, 0.0, 0.0])
    b_joints, b_env = robot.START_STATE.copy(), np.array([-0.1, 0.4, 0.02, 1.0, 0.0, 0.0, 0.0])
    fresh = _tick(_runner(bundle), b_joints, b_env, 0.0)  # the first action of an episode that starts in B

    carried, reset = _runner(bundle), _runner(bundle)
    for i in range(6):  # the last episode ended in A
        _tick(carried, a_joints, a_env, 0.01 * i)
        _tick(reset, a_joints, a_env, 0.01 * i)
    reset.reset()
    after_reset = _tick(reset, b_joints, b_env, 0.1)
    without = _tick(carried, b_joints, b_env, 0.1)

    np.testing.assert_allclose(after_reset, fresh, atol=1e-6)
    assert np.max(np.abs(without - fresh)) > 1e-3  # the ensembler blends A's chunks in without the reset
    assert reset.resets == 1


def test_a_reset_drops_the_queued_chunk(tmp_path):
    bundle = make_bundle(tmp_path, "queue", chunk=10, gain=1.0)
    runner = _runner(bundle)
    a_joints, a_env = robot.START_STATE + 0.5, np.array([0.3, 0.6, 0.05, 1.0, 0.0, 0.0, 0.0])
    b_joints, b_env = robot.START_STATE.copy(), np.array([-0.1, 0.4, 0.02, 1.0, 0.0, 0.0, 0.0])
    _tick(runner, a_joints, a_env, 0.0)
    queued = runner.queue_depth
    runner.reset()
    assert runner.queue_depth == 0 < queued
    first_b = _tick(runner, b_joints, b_env, 0.01)
    np.testing.assert_allclose(first_b, _tick(_runner(bundle), b_joints, b_env, 0.0), atol=1e-6)
