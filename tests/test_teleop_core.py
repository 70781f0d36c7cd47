"""The teleop devices' logic without ROS: the expert's gating rule, DAgger mixing, gamepad, leader arm."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sim.aloha import robot
from vla_il_core.teleop import ExpertGate, GateConfig, JoyConfig, JoyTeleop, LeaderArm

EXPERT = np.zeros(14)


def run(gate: ExpertGate, drifts, progress=None, success_at=None):
    """Feed one policy action per tick with the given drift; return the engaged flag per tick."""
    engaged = []
    for t, d in enumerate(drifts):
        gate.on_policy_action(EXPERT + d, EXPERT)
        gate.step(progress=progress[t] if progress else float(t), success=success_at is not None and t >= success_at)
        engaged.append(gate.engaged)
    return engaged


def test_gate_engages_after_n_drifting_ticks_and_hands_back_after_m():
    gate = ExpertGate(GateConfig(drift_threshold=0.2, drift_ticks=3, handback_ticks=4, stall_ticks=0))
    engaged = run(gate, [0.1, 0.5, 0.5, 0.1, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    # a single drifting tick in between resets the count; three in a row engage; four ticks later it hands back
    assert engaged == [False] * 6 + [True] * 4 + [False] * 3
    assert gate.engagements == 1


def test_gate_hands_back_early_once_the_policy_agrees_for_n_ticks():
    gate = ExpertGate(GateConfig(drift_threshold=0.2, drift_ticks=3, handback_ticks=50, agree_ticks=3, stall_ticks=0))
    engaged = run(gate, [0.5, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.0])
    # engaged at the third drifting tick; the policy still disagrees twice, then agrees three ticks in a row
    assert engaged == [False, False] + [True] * 5 + [False] * 2
    off = ExpertGate(GateConfig(drift_threshold=0.2, drift_ticks=3, handback_ticks=50, agree_ticks=0, stall_ticks=0))
    assert all(run(off, [0.5] * 3 + [0.0] * 20)[2:])  # agree_ticks 0: only handback_ticks hands back


def test_drift_on_the_grippers_alone_gets_its_own_patience():
    """ALOHA's grippers are joints 6 and 13: a gripper closing early drifts there only, and the gate waits
    gripper_drift_ticks to see whether the grasp catches; drift on an arm joint engages after drift_ticks."""
    config = GateConfig(drift_threshold=0.2, drift_ticks=3, gripper_drift_ticks=6, gripper_joints=robot.GRIPPER_INDICES,
                        handback_ticks=50, stall_ticks=0)
    gripper, arm, both = np.zeros(14), np.zeros(14), np.zeros(14)
    gripper[13], arm[3], both[[6, 4]] = 0.8, 0.5, 0.8
    assert run(ExpertGate(config), [gripper] * 8) == [False] * 5 + [True] * 3
    assert run(ExpertGate(config), [arm] * 4) == [False] * 2 + [True] * 2
    assert run(ExpertGate(config), [both] * 4) == [False] * 2 + [True] * 2
    # a caught grasp: the expert agrees again within the patience, the count starts over
    assert not any(run(ExpertGate(config), [gripper] * 5 + [np.zeros(14)] + [gripper] * 5))
    # arm drift, then gripper drift: drift on any joint for gripper_drift_ticks engages
    assert run(ExpertGate(config), [arm, arm, gripper, gripper, gripper, gripper]) == [False] * 5 + [True]
    # off (0): the grippers count as any joint, as before
    assert run(ExpertGate(GateConfig(drift_threshold=0.2, drift_ticks=3, stall_ticks=0)), [gripper] * 3)[-1]


def test_gate_engages_when_progress_stalls_and_not_once_the_task_is_done():
    gate = ExpertGate(GateConfig(stall_ticks=5, handback_ticks=3))
    engaged = run(gate, [0.0] * 12, progress=[1.0] * 12)
    # progress last rose at the first tick: five ticks later the expert engages, for three ticks
    assert engaged.index(True) == 5 and engaged[5:8] == [True] * 3 and engaged[8] is False
    done = ExpertGate(GateConfig(stall_ticks=5))
    assert not any(run(done, [0.0] * 12, progress=[1.0] * 12, success_at=0))


def test_non_finite_policy_actions_count_as_drift():
    gate = ExpertGate(GateConfig(drift_ticks=2, stall_ticks=0))
    for _ in range(2):
        gate.on_policy_action([math.nan] * 14, EXPERT)
        gate.step(0.0, False)
    assert gate.engaged and gate.last_drift == math.inf


def test_the_expert_finding_the_tool_off_course_engages_before_the_miss():
    """off_course > 0: the expert's own measure (m; on transfer_cube, how far beside the cube a close would land)
    above it for drift_ticks ticks in a row engages, however close the policy's actions are to the expert's."""
    def feed(gate, off, success_at=None):
        engaged = []
        for t, value in enumerate(off):
            gate.on_policy_action(EXPERT, EXPERT)  # no drift at all
            gate.step(progress=float(t), success=success_at is not None and t >= success_at, off_course=value)
            engaged.append(gate.engaged)
        return engaged

    config = GateConfig(drift_ticks=3, off_course=0.02, handback_ticks=2, stall_ticks=0)
    gate = ExpertGate(config)
    # a tick back on course resets the count; three off it engage; the hand-back after 2 starts the count over
    assert feed(gate, [0.01, 0.03, 0.03, 0.01, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03]) == \
        [False] * 6 + [True] * 2 + [False] * 3
    assert gate.engagements == 1
    fresh = ExpertGate(config)
    reasons = [fresh.step(0.0, False, off_course=0.03) for _ in range(3)]
    assert reasons[:2] == [None, None] and reasons[2] == "engage: off course 3.0 cm > 2 cm for 3 ticks"
    assert not any(feed(ExpertGate(dataclasses.replace(config, off_course=0.0)), [0.5] * 10))  # 0: never
    assert not any(feed(ExpertGate(config), [0.5] * 10, success_at=0))  # done: nothing to correct
    assert feed(ExpertGate(config), [math.nan] * 3)[-1]  # an expert that cannot tell: off course


def test_beta_mixing_drives_with_probability_beta_and_is_seeded():
    def draws(seed):
        gate = ExpertGate(GateConfig(mode="beta", beta=0.3, seed=seed))
        return run(gate, [0.0] * 2000)

    a = draws(1)
    assert 0.25 < np.mean(a) < 0.35
    assert a == draws(1) and a != draws(2)
    held = run(ExpertGate(GateConfig(mode="beta", beta=0.5, mix_ticks=10)), [0.0] * 100)
    assert all(len(set(held[i : i + 10])) == 1 for i in range(0, 100, 10))  # one draw per 10 ticks


def test_always_and_never_modes_and_reset():
    assert all(run(ExpertGate(GateConfig(mode="always")), [0.0] * 5))
    assert not any(run(ExpertGate(GateConfig(mode="never", stall_ticks=1)), [9.0] * 5))
    gate = ExpertGate(GateConfig(drift_ticks=1, stall_ticks=0))
    run(gate, [1.0])
    assert gate.engaged
    gate.reset()
    assert not gate.engaged and gate.engagements == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("mode", "sometimes"), ("beta", 1.5), ("drift_ticks", 0), ("drift_threshold", 0.0), ("stall_ticks", -1),
     ("gripper_drift_ticks", 2), ("gripper_drift_ticks", -1), ("off_course", -0.01), ("off_course", math.nan)],
)
def test_bad_gate_config_is_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        GateConfig(**{field: value})


def test_joy_deadman_engages_from_the_measured_pose_and_moves_the_selected_arm():
    joy = JoyTeleop(JoyConfig(), robot.JOINT_LOWER, robot.JOINT_UPPER)
    state = robot.START_STATE.copy()
    axes, buttons = [0.0] * 8, [0] * 8
    assert joy.on_joy(axes, buttons, state, 0.02) == (False, None)
    buttons[4] = 1  # deadman
    axes[0] = 1.0  # waist, full deflection
    engaged, target = joy.on_joy(axes, buttons, state, 0.02)
    assert engaged and target[7] == pytest.approx(state[7] + 0.02)  # the right arm's waist, 1 rad/s
    assert np.allclose(np.delete(target, 7), np.delete(state, 7))
    buttons[5] = 1  # switch to the left arm (on the press, not while held)
    joy.on_joy([0.0] * 8, buttons, state, 0.02)
    buttons[5], buttons[1] = 0, 1  # close the left gripper
    _, target = joy.on_joy([0.0] * 8, buttons, state, 0.5)
    assert target[6] == pytest.approx(max(state[6] - 0.5, 0.0)) and joy.arm == 0
    buttons[4] = 0
    assert joy.on_joy(axes, buttons, state, 0.02) == (False, None)


def test_leader_arm_maps_names_and_normalises_grippers():
    names = list(robot.JOINT_NAMES)
    leader = LeaderArm(names, [f"leader_{n}" for n in names], gripper_closed=-0.8, gripper_open=0.3)
    values = np.linspace(-0.5, 0.5, 14)
    values[6], values[13] = -0.8, 0.3
    out = leader.map([f"leader_{n}" for n in reversed(names)], list(values[::-1]))
    assert out[6] == 0.0 and out[13] == 1.0 and out[0] == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="lack leader_left_waist"):
        leader.map(names, list(values))
    with pytest.raises(ValueError, match="leader_joint_names"):
        LeaderArm(names, names[:3])
