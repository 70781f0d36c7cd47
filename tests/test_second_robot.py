"""Any robot, end to end: a single 6-joint arm on ros2_control (config/robots/ros2_control_arm.yaml: a UR-style
arm's joints, a forward position controller), not ALOHA. Its dataset is written with our writer in the profile's
schema (a reaching demonstration: from wherever the arm is, to its home pose at the joints' maximum velocity);
`vla-il train bc` learns it without an env (its joints and rate come from the dataset), `vla-il export` writes a
bundle with the arm's joint names, and deploy.launch.py robot:=ros2_control_arm runs it from the robot install.

The arm is a stand-in (no robot here): a probe that publishes /joint_states (in its own joint order) and goes
where /forward_position_controller/commands tells it. The profile's wrist camera (camera_node on /dev/video0)
starts as the launch file says and finds no device here: it keeps retrying, and the state-only policy does
not read it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.ros_harness import wait_until
from tests.test_deploy_install import deploy_env, logs, start_launch_nodes, stop_all  # noqa: F401 - a fixture
from tests.test_launch_graphs import _run
from vla_il_core import schema
from vla_il_core.profiles import load_profile

pytestmark = pytest.mark.ros

HOME = np.array([0.5, -1.0, 1.2, -0.3, 0.8, 0.0])


def reach_dataset(root, profile, episodes: int = 30, steps: int = 60, seed: int = 0):
    """Demonstrations of reaching HOME from random poses, each step as far as the joints' velocity allows."""
    from training.datasets.writer import EpisodeWriter

    rng = np.random.default_rng(seed)
    max_step = np.asarray(profile.max_step)
    writer = EpisodeWriter(root, schema.features(profile.joint_names), fps=int(profile.control_rate_hz),
                           robot_type=profile.robot_type)
    for _ in range(episodes):
        state = HOME + rng.uniform(-1.0, 1.0, len(HOME))
        for _ in range(steps):
            action = state + np.clip(HOME - state, -max_step, max_step)
            writer.add({schema.STATE: state, schema.ACTION: action, schema.EXPERT_ACTION: action,
                        schema.POLICY_ACTION: action, schema.INTERVENTION: [True],
                        schema.SUCCESS: [bool(np.abs(action - HOME).max() < 0.01)]}, task="go to the home pose")
            state = action
        writer.save_episode()
    writer.close()
    return root


def test_a_six_joint_arm_is_trained_exported_and_driven(tmp_path, probe, deploy_env):  # noqa: F811
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from training.cli import run_il_cli
    from training.export.onnx_export import export_checkpoint

    profile = load_profile("ros2_control_arm")
    dataset = reach_dataset(tmp_path / "arm_demos", profile)
    assert run_il_cli("bc", ["--dataset", str(dataset), "--output_dir", str(tmp_path / "bc"), "--bc_epochs", "60",
                             "--batch_size", "64", "--learning_rate", "3e-3", "--action_residual", "true"]) == 0
    provenance = json.loads((tmp_path / "bc/best/provenance.json").read_text())
    assert provenance["robot"]["joint_names"] == list(profile.joint_names) and provenance["env"] is None
    spec, _ = export_checkpoint(tmp_path / "bc/best", tmp_path / "arm_bundle")
    assert spec.joint_names == profile.joint_names and spec.fps == 50.0 and spec.cameras == ()

    with pytest.raises(RuntimeError, match="refusing bundle"):  # not ALOHA's
        _run("deploy.launch.py", robot="aloha_sim", policy=str(spec.path))
    nodes = _run("deploy.launch.py", robot="ros2_control_arm", policy=str(spec.path))
    assert set(nodes) == {"camera_node", "robot_adapter", "policy_node", "intervention_mux"}

    # the arm stand-in: its own joint order on /joint_states, the controller's order in the command array
    order = [5, 3, 1, 0, 2, 4]
    start = HOME + np.array([0.6, -0.5, 0.4, -0.6, 0.5, 0.7])
    position = [start.copy()]
    commands = probe.collect(Float64MultiArray, "/forward_position_controller/commands")
    state = probe.publisher(JointState, "/joint_states")

    def publish_state() -> None:
        if commands:
            position[0] = np.asarray(commands[-1].data, dtype=float)
        msg = JointState(name=[profile.joint_names[i] for i in order], position=[float(position[0][i]) for i in order])
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        state.publish(msg)

    probe.node.create_timer(0.02, publish_state)
    started = start_launch_nodes(nodes, tmp_path, env=deploy_env)
    try:
        reached = wait_until(lambda: np.abs(position[0] - HOME).max() < 0.05, 60)
        error = np.abs(position[0] - HOME).max()
        assert reached, f"the arm is {error:.3f} rad from home\n{logs(started)}"
        assert "driving with" in started["policy_node"].log()
    finally:
        codes = stop_all(started)
    assert codes == {name: 0 for name in nodes}, logs(started)
    steps = np.diff(np.asarray([c.data for c in commands]), axis=0)
    assert (np.abs(steps) <= np.asarray(profile.max_step) + 1e-6).all()  # the mux held the profile's limits
