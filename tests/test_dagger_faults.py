"""Faults of the DAgger loop, with real processes over DDS: the mux and the recorder under bad inputs.

(the recorder's data safety, kill -9 and a full disk included: tests/test_recorder_safety.py; the policy
node dying under the full sim graph: tests/test_teleop_nodes.py.)
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Header
from vla_il_msgs.msg import EpisodeEvent, InterventionEvent, SafetyEvent

from sim.aloha import robot
from tests.ros_harness import CONFIG, LATCHED, wait_until
from tests.test_recorder_node import NAMES, FakeRobot, stamp, start, start_recorder, stop
from training.datasets.lerobot_io import open_dataset
from vla_il_core import schema

pytestmark = pytest.mark.ros


class MuxRig:
    """The real mux and recorder; the probe plays robot, policy and teleop, one lockstep step at a time."""

    def __init__(self, probe, node_process, root, **recorder_params):
        self.mux = node_process(
            "intervention_mux", params_files=[CONFIG / "intervention_mux.yaml"], params={"stale_after_s": 1.0}
        )
        self.rec = start_recorder(node_process, root, cameras=[], **recorder_params)
        self.probe = probe
        self.joints = probe.publisher(JointState, "joint_states")
        self.policy = probe.publisher(JointState, "policy/action")
        self.teleop = probe.publisher(JointState, "teleop/action")
        self.engaged = probe.publisher(Bool, "teleop/engaged")
        self.commands = probe.collect(JointState, "command")
        self.switches = probe.collect(InterventionEvent, "intervention", LATCHED)
        self.safety = probe.collect(SafetyEvent, "mux/safety")
        self.events = probe.collect(EpisodeEvent, "recorder/episode", LATCHED)
        assert self.rec.wait_for_log("ready:", timeout=180), self.rec.log()
        for pub in (self.joints, self.policy, self.teleop, self.engaged):
            probe.wait_for_subscribers(pub, count=1)
        probe.wait_for_subscribers(self.joints, count=2)  # the mux and the recorder
        assert wait_until(lambda: self.switches, 10)
        self.k = 0

    def engage(self, on: bool) -> None:
        n = len(self.switches)
        self.engaged.publish(Bool(data=on))
        assert wait_until(lambda: len(self.switches) > n, 5), "the mux did not announce the switch"

    def step(self, policy_nan: bool = False, expect_command: bool = True) -> None:
        k, t = self.k, time.time()
        self.k += 1
        obs = robot.START_STATE.copy()
        obs[0] = 0.001 * k
        self.joints.publish(JointState(header=Header(stamp=stamp(t)), name=NAMES, position=obs.tolist()))
        time.sleep(0.005)
        policy = [math.nan] * 14 if policy_nan else (obs + 0.01).tolist()
        n = len(self.commands)
        self.policy.publish(JointState(header=Header(stamp=stamp(time.time())), name=NAMES, position=policy))
        self.teleop.publish(JointState(header=Header(stamp=stamp(t)), name=NAMES, position=(obs - 0.01).tolist()))
        if expect_command:
            assert wait_until(lambda: len(self.commands) > n, 5), f"no command at step {k}"
        else:
            time.sleep(0.1)


def test_rapid_engage_and_hand_back_every_switch_is_announced_and_flagged(probe, node_process, tmp_path):
    rig = MuxRig(probe, node_process, tmp_path / "rec")
    assert start(probe).success
    pattern = [False, False, True, True, False, True, False, False, True, True, True, False]
    before = len(rig.switches)
    engaged = False
    for want in pattern:
        if want != engaged:
            rig.engage(want)
            engaged = want
        rig.step()
    assert stop(probe).success
    toggles = sum(a != b for a, b in zip([False, *pattern], pattern, strict=False))
    new = rig.switches[before:]
    assert len(new) == toggles and [e.driver for e in new] == ["expert", "policy"] * (toggles // 2)
    flags = np.asarray(open_dataset(tmp_path / "rec/dataset").hf_dataset.with_format("numpy")[schema.INTERVENTION])
    assert list(flags.reshape(-1)) == pattern


def test_nan_from_the_policy_the_mux_holds_and_the_recorder_marks_the_frames(probe, node_process, tmp_path):
    rig = MuxRig(probe, node_process, tmp_path / "rec")
    assert start(probe).success
    for _ in range(3):
        rig.step()
    n = len(rig.commands)
    rig.step(policy_nan=True, expect_command=False)  # the policy drives: no command passes
    assert len(rig.commands) == n
    assert wait_until(lambda: any(e.rule == "nan" for e in rig.safety), 5)
    rig.engage(True)  # the expert drives while the policy still proposes NaN
    for _ in range(3):
        rig.step(policy_nan=True)
    done = stop(probe)
    assert done.success and done.num_frames == 6, done.message
    assert "3 without a valid policy action" in done.message
    table = open_dataset(tmp_path / "rec/dataset").hf_dataset.with_format("numpy")
    assert list(np.asarray(table[schema.POLICY_VALID]).reshape(-1)) == [True] * 3 + [False] * 3
    assert np.all(np.isfinite(np.stack(table[schema.POLICY_ACTION])))  # marked, never NaN in the data
    assert all(np.all(np.isfinite(c.position)) for c in rig.commands)


def test_a_lagging_camera_is_reported_as_dropped_frames_not_misaligned(probe, node_process, tmp_path):
    rec = start_recorder(node_process, tmp_path / "rec", max_lag_s=0.15)
    bot = FakeRobot(probe)
    assert rec.wait_for_log("ready:", timeout=180), rec.log()
    bot.wait_for_recorder()
    assert start(probe).success
    for k in range(12):
        bot.step(image_delay=1.0 if k in (4, 5, 6) else 0.0)  # three images arrive a second late
    time.sleep(1.2)  # they come in, too late
    done = stop(probe)
    assert done.success, done.message
    assert wait_until(lambda: any(e.event == "saved" for e in bot.events), 10)
    saved = next(e for e in bot.events if e.event == "saved")
    assert saved.dropped_frames >= 3 and saved.num_frames + saved.dropped_frames == 12, saved.message
    assert "no top image" in saved.message
    ds = open_dataset(tmp_path / "rec/dataset")
    states = np.stack(ds.hf_dataset.with_format("numpy")[schema.STATE])[:, 0]
    assert not set(states) & {4, 5, 6}
    for i, k in enumerate(states):  # every kept frame has its own image, none shifted
        assert abs(float(ds[i][schema.image_key("top")].mean()) * 255 - k) < 2
