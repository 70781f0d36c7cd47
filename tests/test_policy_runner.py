"""The policy node's core (no ROS) on a real exported bundle: episode boundaries reset the chunk history."""

import numpy as np

from sim.aloha import robot
from tests.bundles import make_bundle
from vla_il_core.runner import PolicyRunner, load_policy


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


def test_a_slow_model_is_asked_for_its_next_chunk_early_enough_to_cover_its_latency(tmp_path):
    """Real-time chunking: at 50 Hz, a model whose recent inferences took up to 120 ms needs 6 ticks
    to infer (7 with a tick's margin), then a quarter of its 20-action chunk to fade the next chunk in
    over: the runner asks for it with 12 actions left (not at the default quarter, 5, which would leave
    ticks without an action). The latencies are given to the runner as the node's measurements would
    be: an MLP on this CPU infers in microseconds."""
    bundle = make_bundle(tmp_path, "slow", chunk=20, gain=1.0)
    policy = load_policy(str(bundle), prefer_gpu=False)
    runner = PolicyRunner(policy, stale_after_s=10.0, async_inference=True)
    assert runner.refill_at == 5
    for _ in range(5):
        runner.latency.add(120.0)
    joints, env = robot.START_STATE.copy(), np.array([0.3, 0.6, 0.05, 1.0, 0.0, 0.0, 0.0])
    inferences = []
    for k in range(9):
        assert _tick(runner, joints, env, 0.02 * k) is not None
        runner.wait_idle()
        inferences.append(runner.inferences)
    assert runner.refill_at == 12  # ceil(0.120 s * 50 Hz) + 1 + 20 // 4
    assert inferences == [1] * 8 + [2]  # the 9th tick (12 actions left) started the next inference
    # an explicit refill_at, and lockstep (no worker thread: no latency to cover), keep their rule
    fixed = PolicyRunner(policy, stale_after_s=10.0, async_inference=True, refill_at=3)
    lockstep = _runner(bundle)
    for r in (fixed, lockstep):
        r.latency.add(120.0)
        _tick(r, joints, env, 0.0)
    assert fixed.refill_at == 3 and lockstep.refill_at == 0  # lockstep plays the whole chunk


def test_a_chunk_that_arrives_mid_chunk_is_faded_in_over_the_ticks_both_cover():
    from collections import deque

    from vla_il_core.runner import blend_chunks

    old = deque((t, np.full(14, 0.0)) for t in range(10, 14))  # ticks 10-13 left of the last chunk
    new = deque((t, np.full(14, 1.0)) for t in range(10, 20))  # the next one, from tick 10 on
    out = blend_chunks(old, new)
    assert [t for t, _ in out] == list(range(10, 20))
    values = [float(a[0]) for _, a in out]
    np.testing.assert_allclose(values[:4], [0.2, 0.4, 0.6, 0.8])  # 4 common ticks: the jump of 1 in fifths
    assert values[4:] == [1.0] * 6
    assert max(np.diff([0.0, *values])) <= 0.2 + 1e-9
    # nothing in common (the last chunk ran out): the new one as it is
    assert [float(a[0]) for _, a in blend_chunks(deque(), new)] == [1.0] * 10


def test_a_tick_that_ran_a_slow_model_itself_is_not_taken_for_a_pause(tmp_path):
    """A model slower than stale_after_s (ACT on a CPU: half a second) infers its first chunk on the tick
    thread. The next tick comes that much later: counting from the tick's start, that gap looked like a
    pause (the robot stopped), the chunk was forgotten and inferred again, tick after tick: the node never
    got going. Counted from the tick's end it is no pause. Real clock: the stand-in takes ~0.1 s."""
    import time

    from tests.bundles import slow_follower_bundle

    like = make_bundle(tmp_path, "like", chunk=20)
    slow = slow_follower_bundle(tmp_path, "slow", like, matmuls=24)
    env = np.array([0.3, 0.6, 0.05, 1.0, 0.0, 0.0, 0.0])
    # how slow the stand-in is on this machine: stale_after_s is set to half of that (and the ticks come well
    # inside it), so the model is slower than the staleness limit whatever the machine's speed
    probe = PolicyRunner(load_policy(str(slow), prefer_gpu=False), stale_after_s=10.0, async_inference=False)
    for k in range(3):
        _tick(probe, robot.START_STATE, env, float(k))
        probe.reset()
    stale = probe.latency.summary()[0] / 1000 / 2
    runner = PolicyRunner(load_policy(str(slow), prefer_gpu=False), stale_after_s=stale, async_inference=False)
    for _ in range(6):
        now = time.monotonic()
        assert _tick(runner, robot.START_STATE, env, now) is not None
        time.sleep(stale / 4)
    assert runner.latency.summary()[0] > 1000 * stale  # the model did take longer than stale_after_s
    assert runner.inferences == 1 and runner.queue_depth == 14  # one chunk, played on
