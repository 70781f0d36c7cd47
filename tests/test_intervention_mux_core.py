"""The mux's safety rules and driver switching, without ROS."""

import math

import pytest

from vla_il_core.mux import EXPERT, POLICY, InterventionMux, MuxConfig, order_by_names

NAMES = ("a", "b", "c")


def make_mux(max_step=(0.5, 0.5, 0.5), stale=0.1) -> InterventionMux:
    return InterventionMux(MuxConfig(NAMES, (-1.0, -1.0, 0.0), (1.0, 1.0, 1.0), max_step, stale))


def ready_mux(**kw) -> InterventionMux:
    mux = make_mux(**kw)
    mux.on_observation([0.0, 0.0, 0.5], now=0.0)
    return mux


def rules(out) -> list[str]:
    return [e.rule for e in out.events]


def test_policy_action_passes_through_when_safe():
    mux = ready_mux()
    out = mux.on_action(POLICY, [0.1, -0.2, 0.6], now=0.01)
    assert out.command == [0.1, -0.2, 0.6]
    assert out.events == []


def test_expert_takes_over_at_once_and_policy_is_ignored():
    mux = ready_mux()
    out = mux.on_engaged(True, now=0.01)
    assert out.switch is not None and out.switch.driver == EXPERT and out.switch.previous == POLICY
    assert mux.on_action(POLICY, [0.1, 0.1, 0.6], now=0.02).command is None
    assert mux.on_action(EXPERT, [0.2, 0.2, 0.6], now=0.02).command == [0.2, 0.2, 0.6]


def test_hand_back_is_explicit():
    mux = ready_mux()
    mux.on_engaged(True, now=0.01)
    assert mux.on_engaged(True, now=0.02).switch is None  # still engaged: no switch
    out = mux.on_engaged(False, now=0.03)
    assert out.switch.driver == POLICY and out.switch.reason == "expert handed back"
    assert mux.switch_count == 2


@pytest.mark.parametrize("bad", [[0.1, math.nan, 0.5], [0.1, math.inf, 0.5]])
def test_non_finite_action_is_rejected_and_last_command_holds(bad):
    mux = ready_mux()
    mux.on_action(POLICY, [0.1, 0.1, 0.5], now=0.01)
    out = mux.on_action(POLICY, bad, now=0.02)
    assert out.command is None and rules(out) == ["nan"]
    assert mux.last_command == [0.1, 0.1, 0.5]


def test_wrong_length_is_rejected():
    mux = ready_mux()
    out = mux.on_action(POLICY, [0.1, 0.1], now=0.01)
    assert out.command is None and rules(out) == ["wrong_length"]
    assert "expected 3 values, got 2" in out.events[0].detail


def test_joint_limits_are_clamped():
    mux = make_mux(max_step=(10.0, 10.0, 10.0))
    mux.on_observation([0.0, 0.0, 0.5], now=0.0)
    out = mux.on_action(POLICY, [5.0, -5.0, 0.5], now=0.01)
    assert out.command == [1.0, -1.0, 0.5]
    assert rules(out) == ["joint_limit"] and "a, b" in out.events[0].detail


def test_step_is_limited_relative_to_last_command():
    mux = ready_mux(max_step=(0.1, 0.1, 0.1))
    out = mux.on_action(POLICY, [0.5, -0.5, 0.5], now=0.01)
    assert out.command == pytest.approx([0.1, -0.1, 0.5])
    assert rules(out) == ["max_step"]
    out = mux.on_action(POLICY, [0.5, -0.5, 0.5], now=0.02)
    assert out.command == pytest.approx([0.2, -0.2, 0.5])


def test_a_jump_of_the_measured_joints_is_reached_by_steps_never_in_one():
    """A sim reset teleports the arms (or a hand moves them while held): the command walks from the last
    command to the measured pose by max_step, then the driver's actions pass again, still step-limited."""
    mux = ready_mux(max_step=(0.1, 0.1, 0.1))
    for i in range(1, 8):  # the last episode drives joint a to 0.7
        mux.on_observation([0.1 * (i - 1), 0.0, 0.5], now=0.01 * i)
        mux.on_action(POLICY, [0.1 * i, 0.0, 0.5], now=0.01 * i)
    assert mux.last_command == pytest.approx([0.7, 0.0, 0.5])
    out = mux.on_observation([0.25, 0.0, 0.5], now=0.2)  # reset: measured at 0.25 now
    assert rules(out) == ["reanchor"] and "a jumped" in out.events[0].detail
    # the policy points elsewhere (-1.0); the command walks to the measured pose first
    walk = [mux.on_action(POLICY, [-1.0, 0.0, 0.5], now=0.2 + 0.001 * i).command[0] for i in range(5)]
    assert walk == pytest.approx([0.6, 0.5, 0.4, 0.3, 0.25])
    assert mux.on_action(POLICY, [-1.0, 0.0, 0.5], now=0.21).command[0] == pytest.approx(0.15)  # the policy's again


def test_an_outlier_joint_state_cannot_pull_the_command_by_more_than_max_step():
    """The fault of the old re-anchoring: one outlier sample, then a policy action at the outlier, moved the
    waist 0.0 -> 1.2 rad in one command."""
    mux = ready_mux(max_step=(0.1, 0.1, 0.1))
    mux.on_action(POLICY, [0.0, 0.0, 0.5], now=0.01)
    mux.on_observation([1.2, 0.0, 0.5], now=0.02)  # a glitch
    assert mux.on_action(POLICY, [1.2, 0.0, 0.5], now=0.02).command == pytest.approx([0.1, 0.0, 0.5])
    mux.on_observation([0.0, 0.0, 0.5], now=0.03)  # the next sample is sane again: walk back
    assert mux.on_action(POLICY, [1.2, 0.0, 0.5], now=0.03).command == pytest.approx([0.0, 0.0, 0.5])


def test_reconfigure_applies_to_the_very_next_command():
    mux = ready_mux(max_step=(0.5, 0.5, 0.5))
    assert mux.on_action(POLICY, [0.4, 0.0, 0.5], now=0.01).command == pytest.approx([0.4, 0.0, 0.5])
    mux.reconfigure(max_step=[0.05, 0.05, 0.05])
    assert mux.on_action(POLICY, [0.8, 0.0, 0.5], now=0.02).command == pytest.approx([0.45, 0.0, 0.5])
    # a tightened limit is reached by steps too, never by a jump to it
    mux.reconfigure(joint_upper=[0.2, 1.0, 1.0])
    assert mux.on_action(POLICY, [0.8, 0.0, 0.5], now=0.03).command == pytest.approx([0.4, 0.0, 0.5])
    mux.reconfigure(stale_after_s=0.5)
    assert mux.check_watchdog(now=0.4).events == []


@pytest.mark.parametrize("changes, message", [
    (dict(max_step=[0.1, -1.0, 0.1]), "max_step of b"),
    (dict(max_step=[0.1]), "max_step: expected 3"),
    (dict(joint_lower=[2.0, -1.0, 0.0]), "joint_lower/joint_upper of a"),
    (dict(stale_after_s=-5.0), "stale_after_s"),
    (dict(joint_names=["x", "y", "z"]), "cannot change while the mux runs"),
])
def test_reconfigure_refuses_bad_values_and_changes_nothing(changes, message):
    mux = ready_mux(max_step=(0.1, 0.1, 0.1))
    before = mux.config
    with pytest.raises(ValueError, match=message):
        mux.reconfigure(**changes)
    assert mux.config == before


def _commands_per_tick(mux, ticks):
    """Feed ticks of (kind, ...) inputs, each tick starting with an observation; commands per tick."""
    counts = []
    for i, tick in enumerate(ticks):
        now = 0.01 * (i + 1)
        n = int(mux.on_observation([0.0, 0.0, 0.5], now).command is not None)
        for kind, value in tick:
            out = mux.on_engaged(value, now) if kind == "engaged" else mux.on_action(kind, value, now)
            n += out.command is not None
        counts.append(n)
    return counts


SWITCH_ORDERS = [  # the tick of a switch, with its inputs in each order they can arrive in over DDS
    [(POLICY, [0.1, 0, 0.5]), ("engaged", True), (EXPERT, [0.2, 0, 0.5])],  # today: two commands
    [(EXPERT, [0.2, 0, 0.5]), ("engaged", True), (POLICY, [0.1, 0, 0.5])],  # today: none
    [("engaged", True), (EXPERT, [0.2, 0, 0.5]), (POLICY, [0.1, 0, 0.5])],
    [(POLICY, [0.1, 0, 0.5]), (EXPERT, [0.2, 0, 0.5]), ("engaged", True)],
]


@pytest.mark.parametrize("switch_tick", SWITCH_ORDERS)
def test_lockstep_mux_gives_exactly_one_command_per_observation_across_a_switch(switch_tick):
    mux = InterventionMux(MuxConfig(NAMES, (-1.0, -1.0, 0.0), (1.0, 1.0, 1.0), (0.5, 0.5, 0.5), 0.1,
                                    one_command_per_observation=True))
    before = [[(POLICY, [0.05, 0, 0.5]), (EXPERT, [0.2, 0, 0.5]), ("engaged", False)]]
    after = [[(EXPERT, [0.3, 0, 0.5]), (POLICY, [0.1, 0, 0.5]), ("engaged", True)]]
    assert _commands_per_tick(mux, before + [switch_tick] + after) == [1, 1, 1]
    assert mux.driver == EXPERT and mux.last_command == [0.3, 0.0, 0.5]


def test_without_lockstep_every_driver_action_is_a_command():
    mux = ready_mux()
    assert _commands_per_tick(mux, [SWITCH_ORDERS[0], SWITCH_ORDERS[1]]) == [2, 1]


def test_safety_events_count_every_firing_but_mark_only_the_onset_first():
    mux = ready_mux()
    firsts = [mux.on_action(POLICY, [math.nan] * 3, now=0.01 * i).events[0].first for i in range(1, 4)]
    assert firsts == [True, False, False]
    assert mux.counts["nan"] == 3
    mux.on_action(POLICY, [0.0, 0.0, 0.5], now=0.05)  # a good message ends the condition
    assert mux.on_action(POLICY, [math.nan] * 3, now=0.06).events[0].first


def test_watchdog_holds_when_observations_go_stale():
    mux = ready_mux(stale=0.1)
    mux.on_action(POLICY, [0.1, 0.1, 0.5], now=0.05)
    assert mux.check_watchdog(now=0.08).events == []
    out = mux.check_watchdog(now=0.25)
    assert "stale_observation" in rules(out)
    assert out.command == [0.1, 0.1, 0.5]  # the last safe command, once
    assert mux.check_watchdog(now=0.3).command is None
    # actions arriving while observations are stale do not reach the robot
    assert mux.on_action(POLICY, [0.2, 0.2, 0.5], now=0.3).command is None


def test_watchdog_holds_when_active_driver_goes_stale_and_recovers():
    mux = ready_mux(stale=0.1)
    mux.on_action(POLICY, [0.1, 0.1, 0.5], now=0.0)
    mux.on_observation([0.1, 0.1, 0.5], now=0.15)
    out = mux.check_watchdog(now=0.15)
    assert rules(out) == ["stale_driver"] and out.events[0].source == POLICY
    mux.on_observation([0.1, 0.1, 0.5], now=0.2)
    assert mux.on_action(POLICY, [0.15, 0.1, 0.5], now=0.2).command == [0.15, 0.1, 0.5]


def test_operator_hold_blocks_every_driver_until_resume():
    mux = ready_mux()
    mux.on_action(POLICY, [0.1, 0.1, 0.5], now=0.01)
    assert "operator_hold" in rules(mux.hold(now=0.02))
    assert mux.on_action(POLICY, [0.2, 0.1, 0.5], now=0.03).command is None
    mux.resume(now=0.04)
    assert mux.on_action(POLICY, [0.2, 0.1, 0.5], now=0.05).command == [0.2, 0.1, 0.5]


def test_order_by_names_reorders_and_rejects_foreign_joints():
    assert order_by_names(["c", "a", "b"], [3.0, 1.0, 2.0], NAMES) == [1.0, 2.0, 3.0]
    assert order_by_names([], [1.0, 2.0, 3.0], NAMES) == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="missing joints c"):
        order_by_names(["a", "b", "x"], [1.0, 2.0, 3.0], NAMES)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(joint_names=()), "joint_names"),
        (dict(joint_lower=(0.0, 0.0)), "joint_lower: expected 3"),
        (dict(joint_upper=(1.0, -2.0, 1.0)), "joint_lower/joint_upper of b"),
        (dict(max_step=(0.1, 0.0, 0.1)), "max_step of b"),
        (dict(stale_after_s=0.0), "stale_after_s"),
    ],
)
def test_config_refuses_bad_values_naming_the_parameter(kwargs, message):
    base = dict(joint_names=NAMES, joint_lower=(-1.0,) * 3, joint_upper=(1.0,) * 3, max_step=(0.1,) * 3)
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        MuxConfig(**base)
