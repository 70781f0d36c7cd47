"""Leader arms through a robot profile, with the sim standing in for both arms: one sim_bridge is the robot (the
followers), a second one, remapped under /leader, is the leader arms. While the policy drives, teleop_leader sends
the followers' pose to the leaders (the profile's leader.command), so that when the operator takes over, the
expert's first command is where the robot is: no jump back to where the leaders were left.

The policy is a probe publishing policy/action (a fixed target pose), as the mux's other tests do; the mux, the
teleop node and both sims are the real nodes.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool
from vla_il_msgs.msg import InterventionEvent

from sim.aloha import robot
from tests.ros_harness import CONFIG, INSTALL, LATCHED, wait_until

pytestmark = pytest.mark.ros

NAMES = list(robot.JOINT_NAMES)


def leader_profile(tmp_path, follow: bool):
    profile = yaml.safe_load((INSTALL / "vla_il/share/vla_il/config/robots/aloha_sim.yaml").read_text())
    identity = {n: n for n in NAMES}
    profile["leader"] = {"state": [{"topic": "/leader/joint_states", "joints": identity}]}
    if follow:
        profile["leader"]["command"] = [{"topic": "/leader/command", "type": "sensor_msgs/JointState",
                                         "joints": identity}]
    path = tmp_path / "two_sims.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


def sim(node_process, name: str, prefix: str = ""):
    remaps = {"__node": name}
    if prefix:
        topics = ("joint_states", "command", "sim/state", "sim/episode", "sim/reset")
        remaps.update({t: f"{prefix}/{t}" for t in topics})
    return node_process("sim_bridge", params={"mode": "realtime", "cameras": [""], "episode_length": 100000},
                        remaps=remaps)


@pytest.mark.parametrize("follow", [True, False], ids=["following", "not following"])
def test_a_takeover_starts_where_the_robot_is_when_the_leaders_follow(probe, node_process, tmp_path, follow):
    profile = leader_profile(tmp_path, follow)
    followers = probe.collect(JointState, "/joint_states")
    leaders = probe.collect(JointState, "/leader/joint_states")
    commands = probe.collect(JointState, "/command")
    drivers = probe.collect(InterventionEvent, "/intervention", qos=LATCHED)
    sim(node_process, "robot_sim")
    sim(node_process, "leader_sim", "/leader")
    mux = node_process("intervention_mux", params_files=[CONFIG / "intervention_mux.yaml"])
    teleop = node_process("teleop_leader", params_files=[CONFIG / "teleop_leader.yaml"],
                          params={"profile": str(profile)})
    target = robot.START_STATE.copy()
    target[[0, 1, 7, 8]] += 0.3  # waists and shoulders of both arms
    policy = probe.publisher(JointState, "/policy/action")
    probe.node.create_timer(0.02, lambda: policy.publish(JointState(name=NAMES, position=target.tolist())))

    assert wait_until(lambda: followers and np.abs(np.array(followers[-1].position) - target).max() < 0.01, 120), (
        mux.log()[-2000:] + teleop.log()[-2000:])
    assert wait_until(lambda: leaders, 120)  # the leader sim is up too (it starts MuJoCo on its own)
    leader_at = np.array(leaders[-1].position)
    if follow:  # where the followers are (a position-controlled arm sags a little under gravity: so do they)
        assert wait_until(lambda: np.abs(np.array(leaders[-1].position) - followers[-1].position).max() < 0.03,
                          30), np.round(np.array(leaders[-1].position) - followers[-1].position, 3)
        assert "they follow the robot while the policy drives" in teleop.log()
    else:
        assert np.abs(leader_at - robot.START_STATE).max() < 0.01  # the leaders stayed where they were

    n, robot_at = len(commands), np.array(followers[-1].position)
    assert probe.call(SetBool, "/teleop_leader/engage", SetBool.Request(data=True), idempotent=True).success
    assert wait_until(lambda: drivers and drivers[-1].driver == "expert", 10), mux.log()
    n = len(commands)  # from the switch on: under load, 30 commands can pass before it (the policy's hold)
    assert wait_until(lambda: len(commands) > n + 30, 10)
    after = np.array([c.position for c in commands[n:n + 30]])
    drift = np.abs(after - robot_at).max()
    if follow:
        assert drift < 0.05, drift  # the expert's first commands are where the robot was
    else:
        assert drift > 0.25, drift  # it walks back to the leaders' pose (at max_step per command)
