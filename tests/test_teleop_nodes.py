"""The teleop nodes as real processes: the sim expert in the full lockstep graph, the policy node dying
under a running episode, the gamepad, keyboard and leader arm over DDS."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger
from vla_il_msgs.msg import EpisodeEvent, InterventionEvent, SafetyEvent
from vla_il_msgs.srv import ResetSim

from sim.aloha import robot
from tests.bundles import make_bundle
from tests.ros_harness import CONFIG, LATCHED, wait_until
from tests.test_recorder_node import start, stop
from training.datasets.lerobot_io import open_dataset
from vla_il_core import schema

pytestmark = pytest.mark.ros
NAMES = list(robot.JOINT_NAMES)


def params_file(tmp_path, base: str, **overrides):
    """A launch parameter file with test values written in (empty lists do not override from `-p`)."""
    data = yaml.safe_load((CONFIG / base).read_text())
    data["/**"]["ros__parameters"].update(overrides)
    path = tmp_path / f"{time.monotonic_ns()}-{base}"
    path.write_text(yaml.safe_dump(data))
    return [path]


def sim_graph(node_process, tmp_path, mode: str, expert: bool, episode_length: int = 40):
    bundle = make_bundle(tmp_path, "constant", chunk=5)  # holds the start pose: the expert must correct it
    sim = {
        "task": "transfer_cube",
        "mode": mode,
        "cameras": [],
        "episode_length": episode_length,
        "end_on_success": False,
    }
    nodes = {
        "sim_bridge": node_process("sim_bridge", params_files=params_file(tmp_path, "sim_aloha.yaml", **sim)),
        "policy_node": node_process(
            "policy_node",
            params_files=[CONFIG / "policy_node.yaml"],
            params={"bundle": str(bundle), "tick_source": "observation" if mode == "lockstep" else "timer"},
        ),
        "intervention_mux": node_process("intervention_mux", params_files=[CONFIG / "intervention_mux.yaml"]),
        "dagger_recorder": node_process(
            "dagger_recorder",
            params_files=params_file(
                tmp_path,
                "dagger_recorder.yaml",
                record_dir=str(tmp_path / "rec"),
                sim_task="transfer_cube",
                cameras=[],
                min_free_mb=1.0,
            ),
        ),
    }
    if expert:
        nodes["teleop_sim_expert"] = node_process(
            "teleop_sim_expert",
            params_files=[CONFIG / "teleop_sim_expert.yaml"],
            params={"drift_threshold": 0.05, "drift_ticks": 2, "handback_ticks": 8},
        )
    return nodes


def test_sim_expert_takes_over_in_the_lockstep_graph_and_every_frame_is_labelled(probe, node_process, tmp_path):
    nodes = sim_graph(node_process, tmp_path, "lockstep", expert=True)
    switches = probe.collect(InterventionEvent, "intervention", LATCHED)
    events = probe.collect(EpisodeEvent, "recorder/episode", LATCHED)
    assert nodes["dagger_recorder"].wait_for_log("ready:", timeout=180), nodes["dagger_recorder"].log()
    probe.call(Trigger, "teleop_sim_expert/reset", Trigger.Request(), timeout=60, idempotent=True)
    assert start(probe).success
    before = len(switches)
    assert probe.call(ResetSim, "sim/reset", ResetSim.Request(task="", seed=3), timeout=60).success
    # the sim says done after 40 steps and the recorder saves the episode by itself
    assert wait_until(lambda: any(e.event == "saved" for e in events), 120), nodes["dagger_recorder"].log()
    saved = next(e for e in events if e.event == "saved")
    table = open_dataset(tmp_path / "rec/dataset").hf_dataset.with_format("numpy")
    flags = np.asarray(table[schema.INTERVENTION]).reshape(-1)
    assert len(flags) >= 40 and saved.dropped_frames == 0, saved.message
    labels = np.asarray(table[schema.EXPERT_LABEL]).reshape(-1)
    assert np.all(labels), (np.flatnonzero(~labels), saved.message)  # the sim expert labels every state
    assert np.stack(table[schema.ENV_STATE]).shape[1] == 7  # the cube's pose, from the sim
    engagements = [s for s in switches[before:] if s.driver == "expert"]
    assert engagements and 0 < flags.sum() < len(flags)  # the expert took over and handed back
    assert saved.intervention_frames == flags.sum()
    assert "engage: drift" in nodes["teleop_sim_expert"].log()


def test_policy_node_dies_mid_episode_the_mux_holds_and_the_recording_survives(probe, node_process, tmp_path):
    nodes = sim_graph(node_process, tmp_path, "realtime", expert=False, episode_length=100000)
    commands = probe.collect(JointState, "command")
    safety = probe.collect(SafetyEvent, "mux/safety")
    assert nodes["dagger_recorder"].wait_for_log("ready:", timeout=180), nodes["dagger_recorder"].log()
    assert wait_until(lambda: len(commands) > 10, 60), nodes["policy_node"].log()
    assert start(probe).success
    time.sleep(1.0)
    nodes["policy_node"].proc.kill()
    assert wait_until(lambda: any(e.rule == "stale_driver" for e in safety), 10)
    time.sleep(0.5)  # actions the mux had queued before the policy died drain first (busy CPU)
    n = len(commands)
    time.sleep(0.5)
    assert len(commands) <= n + 1  # holding: at most the one re-published hold command
    done = stop(probe, success=False)
    assert done.success and done.num_frames > 10, done.message
    assert open_dataset(tmp_path / "rec/dataset").meta.total_frames == done.num_frames


def test_joy_deadman_engages_and_drives_from_the_measured_pose(probe, node_process):
    node_process("teleop_joy", params_files=[CONFIG / "teleop_joy.yaml"])
    actions = probe.collect(JointState, "teleop/action")
    engaged = probe.collect(Bool, "teleop/engaged")
    joints, joy = probe.publisher(JointState, "joint_states"), probe.publisher(Joy, "joy")
    probe.wait_for_subscribers(joints, timeout=30)
    probe.wait_for_subscribers(joy, timeout=30)
    # Matched on our side does not mean matched on the node's side yet (discovery is per endpoint
    # pair): a joystick publishes continuously, so the test keeps publishing until the replies come.
    probe.wait_for_publishers("teleop/action", timeout=30)
    probe.wait_for_publishers("teleop/engaged", timeout=30)
    state = robot.START_STATE.tolist()
    joints.publish(JointState(name=NAMES, position=state))
    time.sleep(0.3)
    idle = Joy(axes=[0.0] * 8, buttons=[0] * 8)

    def publish_until(msg, done, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            joy.publish(msg)
            time.sleep(0.02)
        return done()

    assert publish_until(idle, lambda: engaged and engaged[-1].data is False)
    drive = Joy(axes=[1.0] + [0.0] * 7, buttons=[0, 0, 0, 0, 1, 0, 0, 0])
    assert publish_until(drive, lambda: len(actions) >= 5 and engaged[-1].data)
    assert actions[-1].position[7] > state[7] + 0.03  # the right waist moved, from where it was
    assert actions[-1].position[0] == pytest.approx(state[0])
    assert publish_until(idle, lambda: engaged[-1].data is False)


def test_keyboard_engages_holds_the_pose_and_ends_episodes(probe, node_process, tmp_path):
    rec = node_process(
        "dagger_recorder",
        params_files=params_file(
            tmp_path, "dagger_recorder.yaml", record_dir=str(tmp_path / "rec"), cameras=[], instruction="t"
        ),
    )
    node_process("teleop_keyboard", params_files=[CONFIG / "teleop_keyboard.yaml"], params={"rate_hz": 20.0})
    actions = probe.collect(JointState, "teleop/action")
    engaged = probe.collect(Bool, "teleop/engaged")
    events = probe.collect(EpisodeEvent, "recorder/episode", LATCHED)
    keys, joints = probe.publisher(String, "teleop/key"), probe.publisher(JointState, "joint_states")
    probe.wait_for_subscribers(keys, timeout=30)
    assert rec.wait_for_log("ready:", timeout=180), rec.log()
    time.sleep(1.0)  # the keyboard node sees the recorder's services
    joints.publish(JointState(name=NAMES, position=robot.START_STATE.tolist()))
    time.sleep(0.3)
    keys.publish(String(data="e"))
    assert wait_until(lambda: actions and engaged[-1].data, 5)
    assert list(actions[-1].position) == pytest.approx(robot.START_STATE.tolist())
    keys.publish(String(data="h"))
    assert wait_until(lambda: engaged[-1].data is False, 5)
    keys.publish(String(data="n"))
    assert wait_until(lambda: any(e.event == "started" for e in events), 10), rec.log()
    keys.publish(String(data="d"))
    assert wait_until(lambda: any(e.event == "discarded" for e in events), 10), rec.log()


def test_leader_arm_drives_in_follower_names_when_engaged(probe, node_process):
    node_process(
        "teleop_leader",
        params_files=[CONFIG / "teleop_leader.yaml"],
        params={"leader_gripper_closed": 0.0, "leader_gripper_open": 2.0},
    )
    actions = probe.collect(JointState, "teleop/action")
    engaged = probe.collect(Bool, "teleop/engaged")
    leader = probe.publisher(JointState, "leader/joint_states")
    probe.wait_for_subscribers(leader, timeout=30)
    pose = np.linspace(-0.3, 0.3, 14)
    pose[6] = pose[13] = 1.0
    leader.publish(JointState(name=NAMES, position=pose.tolist()))
    assert wait_until(lambda: engaged and engaged[-1].data is False, 5) and not actions
    assert probe.call(SetBool, "teleop_leader/engage", SetBool.Request(data=True), idempotent=True).success
    leader.publish(JointState(name=NAMES, position=pose.tolist()))
    assert wait_until(lambda: actions, 5)
    assert actions[-1].position[6] == pytest.approx(0.5) and actions[-1].position[0] == pytest.approx(-0.3)
