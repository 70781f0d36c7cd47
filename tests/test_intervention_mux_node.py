"""The intervention mux as a real process, driven over DDS by a probe node with our messages."""

import math

import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from tests.ros_harness import CONFIG, wait_until

pytestmark = pytest.mark.ros

ALOHA_PARAMS = CONFIG / "intervention_mux.yaml"
NAMES = [f"{side}_{j}" for side in ("left", "right")
         for j in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")]
HOME = [0.0, -0.96, 1.16, 0.0, -0.3, 0.0, 0.5] * 2


def joint_state(values, names=NAMES) -> JointState:
    return JointState(name=list(names), position=[float(v) for v in values])


def test_mux_forwards_policy_then_switches_to_expert_at_once(mux_graph):
    g = mux_graph
    assert wait_until(lambda: g.interventions and g.interventions[0].driver == "policy", 10)
    g.obs.publish(joint_state(HOME))
    target = list(HOME)
    target[0] = 0.05
    assert wait_until(lambda: (g.obs.publish(joint_state(HOME)), g.policy.publish(joint_state(target)))
                      and any(abs(c.position[0] - 0.05) < 1e-9 for c in g.commands), 10)
    assert list(g.commands[-1].name) == NAMES

    g.engaged.publish(Bool(data=True))
    assert wait_until(lambda: any(e.driver == "expert" for e in g.interventions), 5)
    n = len(g.commands)
    expert = list(HOME)
    expert[7] = -0.05
    g.obs.publish(joint_state(HOME))
    g.policy.publish(joint_state(target))  # ignored: the expert drives
    g.teleop.publish(joint_state(expert))
    assert wait_until(lambda: len(g.commands) > n, 5)
    assert g.commands[n].position[7] == pytest.approx(-0.05)

    event = next(e for e in g.interventions if e.driver == "expert")
    assert event.previous_driver == "policy" and event.reason == "expert engaged"


def test_mux_rejects_nan_and_foreign_joint_names_with_a_safety_event(mux_graph):
    g = mux_graph
    bad = list(HOME)
    bad[3] = math.nan
    g.obs.publish(joint_state(HOME))
    g.policy.publish(joint_state(bad))
    g.policy.publish(joint_state(HOME, names=[n.replace("left", "port") for n in NAMES]))
    assert wait_until(lambda: any(e.rule == "nan" for e in g.safety), 5)
    assert "left_forearm_roll" in next(e for e in g.safety if e.rule == "nan").detail
    assert not any(any(math.isnan(p) for p in c.position) for c in g.commands)
    assert g.mux.wait_for_log("dropping policy action message: missing joints left_waist")


def test_mux_hold_and_resume_services(mux_graph):
    g = mux_graph
    resp = g.probe.call(Trigger, "intervention_mux/hold", Trigger.Request(), idempotent=True)
    assert resp.success and "holding" in resp.message
    assert wait_until(lambda: any(e.rule == "operator_hold" for e in g.safety), 5)
    g.obs.publish(joint_state(HOME))
    g.policy.publish(joint_state(HOME))
    resp = g.probe.call(Trigger, "intervention_mux/resume", Trigger.Request(), idempotent=True)
    assert resp.success and "policy drives" in resp.message
    assert wait_until(lambda: (g.obs.publish(joint_state(HOME)), g.policy.publish(joint_state(HOME)))
                      and len(g.commands) > 0, 5)


def test_mux_refuses_a_malformed_parameter_naming_it(node_process):
    bad = node_process("intervention_mux", params_files=[ALOHA_PARAMS], params={"max_step": [0.1, 0.1]})
    assert wait_until(lambda: bad.proc.poll() is not None, 15)
    assert bad.proc.returncode == 2
    assert "max_step: expected 14 values" in bad.log()


def test_routine_limiting_is_logged_once_and_counted_at_exit(mux_graph):
    """A step clipped again and again is one log line and a count at exit, not a line per onset; the
    SafetyEvent topic still carries every firing."""
    import re

    g = mux_graph
    assert wait_until(lambda: g.interventions and g.interventions[0].driver == "policy", 10)
    far = list(HOME)
    far[1] = HOME[1] + 0.5  # five max_steps away
    for _ in range(3):  # three onsets: a step too far; then the policy asks for where the command is (cleared)
        n = len(g.safety)
        assert wait_until(lambda n=n: (g.obs.publish(joint_state(HOME)), g.policy.publish(joint_state(far)))
                          and any(e.rule == "max_step" for e in g.safety[n:]), 5), g.mux.log()
        assert wait_until(lambda: (g.obs.publish(joint_state(HOME)),
                                   g.policy.publish(joint_state(list(g.commands[-1].position))))
                          and len(g.commands) > 1 and g.commands[-1].position == g.commands[-2].position, 5)
    assert g.mux.log().count("safety: max_step (policy)") == 1
    assert g.mux.stop() == 0, g.mux.log()[-3000:]
    counted = re.search(r"safety rule onsets this run: .*max_step \(policy\) (\d+)", g.mux.log())
    assert counted and int(counted[1]) >= 3, g.mux.log()
