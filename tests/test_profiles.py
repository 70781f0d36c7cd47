"""Robot profiles, checked statically: every shipped profile loads, agrees with the sim and the mux's
parameter file, and the loader refuses a broken profile with the field in the message."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.aloha import robot
from tests.ros_harness import CONFIG
from vla_il_core.bundle import BundleSpec, StateComponent
from vla_il_core.profiles import ProfileError, check_bundle, list_profiles, load_profile, parse_profile

SHIPPED = list_profiles()


def test_the_three_profiles_ship():
    assert {"aloha_sim", "aloha", "ros2_control_arm"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_is_valid_and_complete(name):
    p = load_profile(name)
    assert p.name == name and p.control_rate_hz > 0 and p.joints
    for j in p.joints:
        assert j.lower <= j.upper and j.max_velocity > 0
    assert p.topics["joint_states"].startswith("/") and p.topics["command"].startswith("/")
    assert len(set(c.topic for c in p.cameras)) == len(p.cameras)
    for cam in p.cameras:
        if cam.driver == "camera_node":
            assert cam.topic == f"/cameras/{cam.name}/image_raw"  # where the launch file's instance publishes
    features = p.features((48, 64))
    assert features["observation.state"]["names"] == list(p.joint_names)
    assert all(f"observation.images.{c}" in features for c in p.camera_names)


def test_aloha_profiles_are_the_sims_joints_limits_and_the_mux_file():
    sim, real = load_profile("aloha_sim"), load_profile("aloha")
    assert sim.joint_names == real.joint_names == robot.JOINT_NAMES  # a sim-trained bundle fits the real robot
    assert np.allclose([j.lower for j in sim.joints], robot.JOINT_LOWER)
    assert np.allclose([j.upper for j in sim.joints], robot.JOINT_UPPER)
    mux = yaml.safe_load((CONFIG / "intervention_mux.yaml").read_text())["/**"]["ros__parameters"]
    params = sim.mux_parameters()
    assert params["joint_names"] == mux["joint_names"]
    for key in ("joint_lower", "joint_upper", "max_step"):
        assert np.allclose(params[key], mux[key]), key
    sim_cams = yaml.safe_load((CONFIG / "sim_aloha.yaml").read_text())["/**"]["ros__parameters"]["cameras"]
    assert list(sim.camera_names) == sim_cams and all(c.driver == "sim" for c in sim.cameras)
    assert not sim.has_adapter


def test_aloha_real_names_and_gripper_conversion():
    p = load_profile("aloha")
    assert [s.topic for s in p.state_sources] == ["/follower_left/joint_states", "/follower_right/joint_states"]
    assert set(p.camera_names) == {"cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist"}
    left = p.state_sources[0]
    names = [
        "waist",
        "shoulder",
        "elbow",
        "forearm_roll",
        "wrist_angle",
        "wrist_rotate",
        "gripper",
        "left_finger",
        "right_finger",
    ]
    state = left.extract(names, [0.1, -0.9, 1.1, 0.0, -0.3, 0.2, 1.2, 0.0579, -0.0579])
    assert np.allclose(state, [0.1, -0.9, 1.1, 0.0, -0.3, 0.2, 1.0])  # finger fully open -> 1
    with pytest.raises(ValueError, match="lacks joint"):
        left.extract(names[:6], [0.0] * 6)
    command = dict(zip(p.joint_names, robot.START_STATE))
    command["left_gripper"] = 0.0
    grippers = [t for t in p.command_targets if t.type.endswith("JointSingleCommand")]
    assert grippers[0].values(command) == pytest.approx([0.6197])  # closed: the gripper joint's closed angle
    arm = next(t for t in p.command_targets if t.topic == "/follower_left/commands/joint_group")
    assert arm.group == "arm" and arm.values(command) == pytest.approx(robot.START_STATE[:6])


def test_ros2_control_profile_sends_the_controllers_array():
    p = load_profile("ros2_control_arm")
    (target,) = p.command_targets
    assert target.topic == "/forward_position_controller/commands" and target.type == "std_msgs/Float64MultiArray"
    assert list(target.joints) == list(p.joint_names)
    assert p.topics["joint_states"] == "/joint_states" and not p.state_sources  # a remap is enough for the state


def _raw(name: str = "aloha") -> dict:
    return copy.deepcopy(yaml.safe_load(load_profile(name).path.read_text()))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["joints"][3].update(lower=2.0, upper=1.0), "left_forearm_roll: lower limit 2.0 > upper limit 1.0"),
        (lambda r: r["joints"][0].pop("max_velocity"), r"joints\[0\] \(left_waist\): missing 'max_velocity'"),
        (lambda r: r["joints"][1].update(max_velocity=0), "left_shoulder.max_velocity must be > 0"),
        (lambda r: r["joints"].append(dict(r["joints"][0])), "'left_waist' appears twice"),
        (lambda r: r["adapter"]["state"][0]["joints"].pop("left_elbow"), "left_elbow come from nowhere"),
        (lambda r: r["adapter"]["command"][1]["joints"].update(left_waist="waist"), "JointSingleCommand carries one"),
        (lambda r: r["adapter"]["state"][1]["joints"].update(right_hand="x"), "'right_hand' is not one of the"),
        (lambda r: r.update(control_rate_hz=-5), "control_rate_hz must be > 0"),
        (lambda r: r.pop("joints"), "missing field 'joints'"),
        (lambda r: r["topics"].update(command="command"), "topics.command: expected an absolute topic"),
        (lambda r: r["cameras"][0].update(driver="usb"), "cameras.cam_high.driver: one of"),
        (lambda r: r["cameras"][1]["settings"].pop("source"), "cam_low: driver camera_node needs settings.source"),
        (lambda r: r["adapter"]["command"][0].update(type="trajectory_msgs/JointTrajectory"), r"adapter.command\[0\]"),
        (lambda r: r["leader"]["state"][1]["joints"].pop("right_wrist_rotate"),
         "leader.state: joint.s. right_wrist_rotate come from nowhere"),
        (lambda r: r["leader"].pop("state"), "leader: a state section is needed"),
        (lambda r: r["leader"].update(arms=[]), r"leader: unknown section\(s\) \['arms'\]"),
    ],
)
def test_broken_profiles_are_refused_with_the_field_named(edit, message):
    raw = _raw()
    edit(raw)
    with pytest.raises(ProfileError, match=message):
        parse_profile(raw)


def test_unknown_profile_and_file_errors(tmp_path: Path):
    with pytest.raises(ProfileError, match="no robot profile 'baxter'.*have: .*aloha"):
        load_profile("baxter")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncontrol_rate_hz: [\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(bad)
    minimal = tmp_path / "one.yaml"
    minimal.write_text("name: one\ncontrol_rate_hz: 10\njoints: [{name: j, lower: -1, upper: 1, max_velocity: 1}]\n")
    p = load_profile(minimal)
    assert p.topics == {"joint_states": "/joint_states", "command": "/command"} and p.max_step == (0.1,)


def bundle(joint_names, cameras=()) -> BundleSpec:
    n = len(joint_names)
    return BundleSpec(
        Path("bundle"),
        "test",
        (StateComponent("joint_positions", n, "joint_states"),),
        tuple(cameras),
        (48, 64) if cameras else None,
        10,
        n,
        tuple(joint_names),
        50.0,
        10,
        False,
        0.01,
    )


def test_a_bundle_whose_joints_disagree_with_the_profile_is_refused():
    p = load_profile("aloha")
    check_bundle(p, bundle(robot.JOINT_NAMES, ("cam_high",)))
    with pytest.raises(ProfileError, match="same joints in another order"):
        check_bundle(p, bundle((robot.JOINT_NAMES[1], robot.JOINT_NAMES[0], *robot.JOINT_NAMES[2:])))
    with pytest.raises(ProfileError, match="missing.*left_waist.*unknown.*shoulder_pan_joint"):
        check_bundle(p, bundle(load_profile("ros2_control_arm").joint_names))
    with pytest.raises(ProfileError, match=r"reads camera\(s\) \['top'\]"):
        check_bundle(p, bundle(robot.JOINT_NAMES, ("top",)))
