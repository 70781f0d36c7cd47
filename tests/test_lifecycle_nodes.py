"""The policy node and the mux as managed (lifecycle) nodes, real processes over DDS, driven through the standard
lifecycle services (what `ros2 lifecycle get|set` calls): configure proves the bundle or the limits, activate
drives, deactivate holds, and a failed configure leaves the node unconfigured with the reason."""

from __future__ import annotations

import pytest
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from sensor_msgs.msg import JointState

from sim.aloha import robot
from tests.bundles import make_bundle, read_meta, write_meta
from tests.ros_harness import CONFIG, wait_until

pytestmark = pytest.mark.ros

NAMES = list(robot.JOINT_NAMES)


def state_of(probe, node: str) -> int:
    return probe.call(GetState, f"/{node}/get_state", GetState.Request()).current_state.id


def change(probe, node: str, transition: int) -> bool:
    return probe.call(ChangeState, f"/{node}/change_state",
                      ChangeState.Request(transition=Transition(id=transition))).success


def feed_joint_states(probe) -> None:
    pub = probe.publisher(JointState, "joint_states")
    probe.node.create_timer(0.02, lambda: pub.publish(JointState(name=NAMES, position=robot.START_STATE.tolist())))


def test_the_policy_node_configures_activates_deactivates_on_request(probe, node_process, tmp_path):
    bundle = make_bundle(tmp_path, "b", chunk=5, obs_dim=14)
    actions = probe.collect(JointState, "policy/action")
    feed_joint_states(probe)
    node = node_process("policy_node", params_files=[CONFIG / "policy_node.yaml"],
                        params={"bundle": str(bundle), "autostart": False})
    assert node.wait_for_log("waiting for `ros2 lifecycle set`", 60), node.log()
    assert state_of(probe, "policy_node") == State.PRIMARY_STATE_UNCONFIGURED
    assert change(probe, "policy_node", Transition.TRANSITION_CONFIGURE)
    assert state_of(probe, "policy_node") == State.PRIMARY_STATE_INACTIVE
    assert not wait_until(lambda: actions, 1.0)  # configured, not driving
    assert change(probe, "policy_node", Transition.TRANSITION_ACTIVATE)
    assert wait_until(lambda: len(actions) > 10, 10), node.log()
    assert change(probe, "policy_node", Transition.TRANSITION_DEACTIVATE)
    assert state_of(probe, "policy_node") == State.PRIMARY_STATE_INACTIVE
    wait_until(lambda: False, 0.3)  # what was in flight arrives
    n = len(actions)
    assert not wait_until(lambda: len(actions) > n, 1.0)  # inactive: no actions
    assert change(probe, "policy_node", Transition.TRANSITION_ACTIVATE)
    assert wait_until(lambda: len(actions) > n + 10, 10)
    assert "inactive: no actions" in node.log() and node.log().count("driving with") == 2


def test_a_refused_bundle_leaves_the_policy_node_unconfigured(probe, node_process, tmp_path):
    bundle = make_bundle(tmp_path, "b", chunk=5, obs_dim=14)
    write_meta(bundle, {**read_meta(bundle), "fps": 0.0})
    node = node_process("policy_node", params={"bundle": str(bundle), "autostart": False})
    assert node.wait_for_log("waiting for `ros2 lifecycle set`", 60), node.log()
    assert not change(probe, "policy_node", Transition.TRANSITION_CONFIGURE)
    assert state_of(probe, "policy_node") == State.PRIMARY_STATE_UNCONFIGURED
    assert "cannot configure: parameter 'bundle': refused:" in node.log() and node.proc.poll() is None


def test_a_deactivated_mux_holds_and_an_activated_one_drives_again(mux_graph):
    g = mux_graph
    assert state_of(g.probe, "intervention_mux") == State.PRIMARY_STATE_ACTIVE  # autostart
    target = list(robot.START_STATE)
    target[0] += 0.05

    def drive():
        g.obs.publish(JointState(name=NAMES, position=robot.START_STATE.tolist()))
        g.policy.publish(JointState(name=NAMES, position=target))
        return True

    assert wait_until(lambda: drive() and len(g.commands) > 5, 10), g.mux.log()
    assert change(g.probe, "intervention_mux", Transition.TRANSITION_DEACTIVATE)
    held = len(g.commands)
    assert not wait_until(lambda: drive() and len(g.commands) > held + 1, 1.0)  # inactive: no commands
    assert change(g.probe, "intervention_mux", Transition.TRANSITION_ACTIVATE)
    assert wait_until(lambda: drive() and len(g.commands) > held + 5, 10), g.mux.log()
    assert abs(g.commands[-1].position[0] - target[0]) < 1e-6  # the policy drives again
    assert "inactive: holding" in g.mux.log()
