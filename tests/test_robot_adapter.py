"""robot_adapter over DDS: ALOHA's two follower arms joined into our joint states, our command split
into a JointState arm and a ros2_control Float64MultiArray arm. (interbotix_xs_msgs is not installed
here: a profile that needs it is refused at start, with the package named.)"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from sim.aloha import robot
from tests.ros_harness import wait_until
from vla_il_core.profiles import load_profile

pytestmark = pytest.mark.ros
ARM = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]


@pytest.fixture
def profile_file(tmp_path):
    """The ALOHA profile, its commands sent as JointState (left) and Float64MultiArray (right)."""
    raw = yaml.safe_load(load_profile("aloha").path.read_text())
    raw["adapter"]["command"] = [
        {
            "topic": "/left_arm/command",
            "type": "sensor_msgs/JointState",
            "joints": {
                **{f"left_{j}": j for j in ARM},
                "left_gripper": {"joint": "gripper", "range": [0.6197, 1.6214]},
            },
        },
        {
            "topic": "/right_arm/forward_position_controller/commands",
            "type": "std_msgs/Float64MultiArray",
            "joints": [f"right_{j}" for j in [*ARM, "gripper"]],
        },
    ]
    path = tmp_path / "aloha_test.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def arm_state(values, finger: float) -> JointState:
    return JointState(name=[*ARM, "gripper", "left_finger", "right_finger"], position=[*values, 1.0, finger, -finger])


def test_state_is_joined_and_commands_are_split(probe, node_process, profile_file):
    joined = probe.collect(JointState, "/vla_il/joint_states")
    left_cmd = probe.collect(JointState, "/left_arm/command")
    right_cmd = probe.collect(Float64MultiArray, "/right_arm/forward_position_controller/commands")
    proc = node_process("robot_adapter", params={"profile": str(profile_file)})
    left = probe.publisher(JointState, "/follower_left/joint_states")
    right = probe.publisher(JointState, "/follower_right/joint_states")
    command = probe.publisher(JointState, "/vla_il/command")
    for pub in (left, right, command):
        probe.wait_for_subscribers(pub)

    def drivers_publish():  # like the arms' drivers, repeatedly (the adapter hears them best effort)
        right.publish(arm_state([0.6, 0.5, 0.4, 0.3, 0.2, 0.1], 0.0440))  # closed
        left.publish(arm_state([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 0.0579))  # open: the left arm paces the joined state
        return bool(joined)

    assert wait_until(drivers_publish, 10, interval=0.02), proc.log()
    msg = joined[-1]
    assert list(msg.name) == list(robot.JOINT_NAMES)
    assert np.allclose(msg.position, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])

    target = robot.START_STATE.copy()
    target[6], target[13] = 0.0, 1.0
    command.publish(JointState(name=list(robot.JOINT_NAMES), position=target.tolist()))
    assert wait_until(lambda: left_cmd and right_cmd, 10), proc.log()
    assert list(left_cmd[-1].name) == [*ARM, "gripper"]
    assert np.allclose(left_cmd[-1].position, [*target[:6], 0.6197])  # the closed gripper's joint angle
    assert np.allclose(right_cmd[-1].data, target[7:])
    command.publish(JointState(name=list(robot.JOINT_NAMES[:7]), position=target[:7].tolist()))
    assert proc.wait_for_log("refusing command without joint(s) right_waist")


def test_a_stale_arm_stops_the_joined_state(probe, node_process, profile_file):
    joined = probe.collect(JointState, "/vla_il/joint_states")
    proc = node_process("robot_adapter", params={"profile": str(profile_file), "stale_after_s": 0.05})
    left = probe.publisher(JointState, "/follower_left/joint_states")
    probe.wait_for_subscribers(left)
    assert wait_until(lambda: left.publish(arm_state([0.0] * 6, 0.05)) or "no fresh" in proc.log(), 10, 0.02)
    assert "no fresh /follower_right/joint_states" in proc.log()
    assert not joined


def test_profiles_the_adapter_cannot_serve_are_refused(node_process):
    aloha = node_process("robot_adapter", params={"profile": "aloha"})
    assert aloha.proc.wait(timeout=20) == 2
    assert "interbotix_xs_msgs/JointGroupCommand, which is not installed here" in aloha.log()
    sim = node_process("robot_adapter", params={"profile": "aloha_sim"})
    assert sim.proc.wait(timeout=20) == 2 and "no adapter section" in sim.log()
