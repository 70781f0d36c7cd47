"""The sim bridge as a real process over DDS: it behaves like an ALOHA's drivers, in lockstep."""

import math

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from vla_il_msgs.msg import EpisodeEvent, SimState
from vla_il_msgs.srv import ResetSim

from sim.aloha import robot
from tests.ros_harness import LATCHED, RELIABLE, wait_until

pytestmark = pytest.mark.ros


@pytest.fixture
def bridge(probe, node_process):
    proc = node_process("sim_bridge", params={
        "mode": "lockstep", "cameras": ["top"], "image_height": 48, "image_width": 64, "episode_length": 30,
    })
    g = type("Bridge", (), {})()
    g.proc, g.probe = proc, probe
    g.joints = probe.collect(JointState, "joint_states")
    g.images = probe.collect(Image, "cameras/top/image_raw", qos=qos_profile_sensor_data)
    g.states = probe.collect(SimState, "sim/state")
    g.episodes = probe.collect(EpisodeEvent, "sim/episode")
    g.command = probe.publisher(JointState, "command")
    # a node process imports MuJoCo and starts EGL: on a loaded 2-core machine that can take far longer than usual
    probe.wait_for_subscribers(g.command, timeout=120)
    assert wait_until(lambda: g.states, 120), proc.log()
    return g


def command(values) -> JointState:
    return JointState(name=list(robot.JOINT_NAMES), position=[float(v) for v in values])


def test_lockstep_one_step_per_command_with_images_and_privileged_state(bridge):
    g = bridge
    reset = g.probe.call(ResetSim, "sim/reset", ResetSim.Request(task="", seed=7))
    assert reset.success and "seed 7" in reset.message
    assert wait_until(lambda: g.states and g.states[-1].step == 0, 5)
    start = len(g.states)
    target = robot.START_STATE.copy()
    target[0] = 0.2  # left waist
    for i in range(5):
        g.command.publish(command(target))
        assert wait_until(lambda i=i: len(g.states) >= start + i + 1, 5)
    steps = [s.step for s in g.states[start:]]
    assert steps[:5] == [1, 2, 3, 4, 5]
    assert g.joints[-1].position[0] > 0.05  # the waist moves toward its target
    assert list(g.joints[-1].name) == list(robot.JOINT_NAMES)
    assert len(g.states[-1].env_state) == 7  # the cube's pose
    assert wait_until(lambda: g.images, 5)
    img = g.images[-1]
    assert (img.height, img.width, img.encoding) == (48, 64, "rgb8") and len(img.data) == 48 * 64 * 3


def test_same_seed_same_start(bridge):
    g = bridge
    poses = []
    for _ in range(2):
        g.probe.call(ResetSim, "sim/reset", ResetSim.Request(task="", seed=11))
        assert wait_until(lambda: g.states[-1].step == 0, 5)
        poses.append(np.array(g.states[-1].env_state))
    assert np.array_equal(poses[0], poses[1])


def test_bad_commands_are_refused_and_the_last_good_one_holds(bridge):
    g = bridge
    bad = robot.START_STATE.copy()
    bad[3] = math.nan
    n = len(g.states)
    g.command.publish(command(bad))
    g.command.publish(JointState(name=["left_waist"], position=[0.1]))
    assert g.proc.wait_for_log("refusing command: non-finite values for left_forearm_roll")
    assert len(g.states) == n  # no step was taken


def test_episode_ends_with_a_done_event_and_reset_switches_task(bridge):
    g = bridge
    for i in range(30):  # closed loop, as a controller in lockstep: the next command after each observation
        g.command.publish(command(robot.START_STATE))
        assert wait_until(lambda i=i: g.states[-1].step == i + 1, 5)
    assert wait_until(lambda: g.episodes, 5)
    assert g.episodes[-1].event == "done" and g.episodes[-1].num_frames == 30 and not g.episodes[-1].success
    resp = g.probe.call(ResetSim, "sim/reset", ResetSim.Request(task="insertion", seed=1))
    assert resp.success and resp.message.startswith("insertion")
    assert wait_until(lambda: len(g.states[-1].env_state) == 14, 5)
    refused = g.probe.call(ResetSim, "sim/reset", ResetSim.Request(task="juggling", seed=1))
    assert not refused.success and "valid tasks" in refused.message


def test_a_rogue_command_cannot_move_a_joint_faster_than_the_robot_could(bridge):
    """A second publisher on /command (no mux between) asks for the waist at 3.0 rad at once: the bridge, like a
    robot's driver, moves it toward there at most max_velocity x 20 ms per step (aloha_sim: 5 rad/s, 0.1 rad)."""
    g = bridge
    assert g.probe.call(ResetSim, "sim/reset", ResetSim.Request(task="", seed=3)).success
    assert wait_until(lambda: g.states and g.states[-1].step == 0, 5)
    start = len(g.joints)
    rogue = robot.START_STATE.copy()
    rogue[0] = 3.0  # left waist, 3 rad away
    for i in range(8):
        g.command.publish(command(rogue))
        assert wait_until(lambda i=i: len(g.joints) >= start + i + 1, 5)
    waist = [j.position[0] for j in g.joints[start - 1:start + 8]]
    # the position target moves 0.1 per step; the arm follows it (its dynamics may gain a few hundredths on a
    # step, never the target's lead): after k steps it is at most 0.1 k (+ 0.05) from where it started
    for k in range(1, len(waist)):
        assert abs(waist[k] - waist[0]) <= 0.1 * k + 0.05, waist
    assert waist[-1] > 0.4, waist  # it does move toward the command, at the limit
    assert g.proc.wait_for_log("velocity limits: moving at the limit")


def test_auto_episodes_are_each_recorded_from_their_first_step(probe, node_process, tmp_path):
    """episodes:=auto, as dagger_teleop.launch.py runs the sim: the sim waits for the (real) recorder, has it
    start each episode, then starts it; every episode is recorded whole, and the next one follows (a policy node
    no longer waits on the joint states of an ended episode for ever)."""
    from tests.test_recorder_node import start_recorder

    rec = start_recorder(node_process, tmp_path / "rec", cameras=[], sim_task="transfer_cube")
    events = probe.collect(EpisodeEvent, "recorder/episode", qos=LATCHED)
    states = probe.collect(JointState, "joint_states")
    command = probe.publisher(JointState, "command")
    # the controller of a lockstep graph: a command (hold where the arms are) after every observation
    probe.node.create_subscription(JointState, "joint_states", lambda m: command.publish(
        JointState(header=m.header, name=list(m.name), position=list(m.position))), RELIABLE)
    sim = node_process("sim_bridge", params={
        "mode": "lockstep", "cameras": [""], "episode_length": 20, "auto_episodes": True,
        "recorder_service": "/dagger_recorder/start_episode", "episode_gap_s": 0.2})
    saved = lambda: [e for e in events if e.event == "saved"]  # noqa: E731
    assert wait_until(lambda: len(saved()) >= 2, 240), sim.log()[-2000:] + rec.log()[-2000:]
    assert [e.num_frames for e in saved()[:2]] == [20, 20]
    assert sim.log().count("ended at step 20: time limit (20 steps) without success; the next starts by itself") >= 2
    assert "waiting for /dagger_recorder/start_episode" in sim.log()  # the first episode waited for the recorder
    n = len(states)
    assert wait_until(lambda: len(states) > n + 10, 10)  # the third episode runs


def test_in_lockstep_the_graph_runs_on_the_sims_clock(probe, node_process):
    """publish_clock (config/lockstep.yaml): /clock advances 1/fps per new observation and stamps everything the
    sim publishes; a node with use_sim_time (the mux, with lockstep.yaml's overrides) stamps on that clock too."""
    from rosgraph_msgs.msg import Clock

    from tests.ros_harness import CONFIG
    from vla_il.demo import lockstep_overrides

    clock = probe.collect(Clock, "/clock")
    joints = probe.collect(JointState, "joint_states")
    commands = probe.collect(JointState, "command")
    policy = probe.publisher(JointState, "policy/action")
    node_process("sim_bridge", params={"mode": "lockstep", "cameras": [""], "episode_length": 30,
                                       **lockstep_overrides("sim_bridge")})
    mux = node_process("intervention_mux", params_files=[CONFIG / "intervention_mux.yaml", CONFIG / "lockstep.yaml"])
    # the policy of a lockstep graph: an action (hold) for every observation
    probe.node.create_subscription(JointState, "joint_states", lambda m: policy.publish(
        JointState(header=m.header, name=list(m.name), position=list(m.position))), RELIABLE)
    assert wait_until(lambda: len(commands) >= 10, 120), mux.log()
    ticks = [c.clock.sec * 10**9 + c.clock.nanosec for c in clock]
    # (the first ticks may come before this probe matched)
    assert ticks[0] % 20_000_000 == 0 and all(b - a == 20_000_000 for a, b in zip(ticks, ticks[1:10])), ticks[:10]
    stamps = {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in joints}
    # every observation on the sim's clock (a resend keeps its stamp)
    assert all(t % 20_000_000 == 0 and 0 < t <= max(ticks) for t in stamps), sorted(stamps)[:10]
    command_ns = [c.header.stamp.sec * 10**9 + c.header.stamp.nanosec for c in commands]
    assert max(command_ns) <= max(ticks) and min(command_ns) >= 0  # the mux's stamps: sim time, not wall time
