"""The robot install (`scripts/setup.sh --deploy`, ./run-tests builds it): the deploy graph runs from its own
environment, which has ONNX Runtime, NumPy, OpenCV and PyYAML and no PyTorch, lerobot, transformers or MuJoCo, and
none of this checkout's Python (training/, sim/, vla_il/).

The graph is the one deploy.launch.py describes for a robot profile with an adapter (its nodes, parameters and
remappings, read through test_launch_graphs' stand-in for the launch system), each node a real process started
from ros2_ws/deploy/install. The robot is a stand-in (there is no robot here): a probe that publishes the joint
states of an arm which goes where its ros2_control forward position controller is told, and takes its commands.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import yaml

from tests.bundles import make_bundle
from tests.ros_harness import INSTALL, ROOT, wait_until
from tests.test_launch_graphs import _params, _run
from vla_il.rosgraph import DEPLOY_INSTALL, NodeProcess, deploy_environ

pytestmark = pytest.mark.ros

ABSENT = ("torch", "lerobot", "transformers", "mujoco", "gymnasium", "training", "sim", "vla_il")
PRESENT = ("rclpy", "vla_il_msgs", "vla_il_core", "vla_il_nodes", "onnxruntime", "numpy", "cv2", "yaml")


@pytest.fixture(scope="module")
def deploy_env() -> dict[str, str]:
    try:
        return deploy_environ()
    except FileNotFoundError as exc:  # ./run-tests builds it: its absence is a set-up fault, not a skip
        pytest.fail(str(exc))


def test_the_deploy_install_has_the_nodes_and_not_the_training_stack(deploy_env, tmp_path):
    code = ("import importlib.util, json; "
            f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {list(ABSENT + PRESENT)}}}))")
    done = subprocess.run(["python", "-c", code], cwd=tmp_path, env=deploy_env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert {m for m in ABSENT if found[m]} == set()
    assert {m for m in PRESENT if not found[m]} == set()
    for package in ("vla_il_core", "vla_il_nodes", "vla_il"):  # installed, not linked to this checkout
        assert (DEPLOY_INSTALL / package).is_dir() and not (DEPLOY_INSTALL / package).is_symlink()
    assert not any(p.is_symlink() for p in (DEPLOY_INSTALL / "vla_il_core").rglob("*.py"))


@pytest.mark.parametrize("executable, module, hint, code", [
    ("policy_node", "onnxruntime", "pip install onnxruntime", 2),
    ("camera_node", "cv2", "pip install opencv-python-headless", 1),
])
def test_a_missing_dependency_is_named_with_its_install_command(deploy_env, tmp_path, executable, module, hint, code):
    """A deploy install without ONNX Runtime (or OpenCV): the node says which package is missing and how to get it,
    in one line."""
    bundle = make_bundle(tmp_path, "b", chunk=5, obs_dim=14)
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / f"{module}.py").write_text(f"raise ImportError(\"No module named '{module}'\")\n")
    env = dict(deploy_env, PYTHONPATH=f"{blocker}:{deploy_env['PYTHONPATH']}")
    node = NodeProcess(executable, tmp_path, params={"bundle": str(bundle)} if executable == "policy_node" else {},
                       install=DEPLOY_INSTALL, base_env=env)
    try:
        assert wait_until(lambda: node.proc.poll() is not None, 60), node.log()
    finally:
        exit_code = node.stop()
    assert exit_code == code, node.log()
    assert hint in node.log() and "Traceback" not in node.log()


def start_launch_nodes(nodes: dict, log_dir, install=DEPLOY_INSTALL, env: dict | None = None) -> dict[str, NodeProcess]:
    """Each node a launch description starts (test_launch_graphs._run), as a process from `install`, with its
    parameter files (the copies `install` holds), its inline parameters and its remappings."""
    started = {}
    try:
        for executable, node in nodes.items():
            parameters = node.kwargs.get("parameters", [])
            files = [str(p).replace(str(INSTALL), str(install)) for p in parameters if isinstance(p, str)]
            inline = {k: v for k, v in _params(node).items() if any(isinstance(p, dict) and k in p for p in parameters)}
            started[executable] = NodeProcess(executable, log_dir, params_files=files, params=inline,
                                              remaps=dict(node.kwargs.get("remappings", [])), install=install,
                                              base_env=env)
    except Exception:
        stop_all(started)
        raise
    return started


def stop_all(started: dict[str, NodeProcess]) -> dict[str, int | None]:
    return {name: proc.stop() for name, proc in started.items()}


def logs(started: dict[str, NodeProcess]) -> str:
    return "\n".join(f"--- {name}\n{proc.log()[-1500:]}" for name, proc in started.items())


def _arm_profile(tmp_path) -> tuple[object, list[str]]:
    """ALOHA's joints behind a ros2_control forward position controller: state on /robot/joint_states, commands
    as a Float64MultiArray on /robot/commands (so the robot_adapter runs)."""
    profile = yaml.safe_load((INSTALL / "vla_il/share/vla_il/config/robots/aloha_sim.yaml").read_text())
    names = [j["name"] for j in profile["joints"]]
    profile.update(name="test_arm", cameras=[], topics={"joint_states": "/robot/joint_states",
                                                         "command": "/vla_il/command"},
                   adapter={"command": [{"topic": "/robot/commands", "type": "std_msgs/Float64MultiArray",
                                         "joints": names}]})
    path = tmp_path / "test_arm.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path, names


def test_the_deploy_graph_drives_a_robot_from_the_deploy_install(deploy_env, tmp_path, probe):
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray

    from sim.aloha.robot import START_STATE

    profile, names = _arm_profile(tmp_path)
    bundle = make_bundle(tmp_path, "b", chunk=5, obs_dim=14, bias=0.02)
    nodes = _run("deploy.launch.py", robot=str(profile), policy=str(bundle))
    assert set(nodes) == {"robot_adapter", "policy_node", "intervention_mux"}

    # the robot stand-in: it is where it was last told to go, and says so at 50 Hz
    position = [START_STATE.astype(float).copy()]
    commands = probe.collect(Float64MultiArray, "/robot/commands")
    state = probe.publisher(JointState, "/robot/joint_states")

    def publish_state() -> None:
        if commands:
            position[0] = np.asarray(commands[-1].data, dtype=float)
        msg = JointState(name=names, position=position[0].tolist())
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        state.publish(msg)

    probe.node.create_timer(0.02, publish_state)

    started = start_launch_nodes(nodes, tmp_path, env=deploy_env)
    try:
        target = START_STATE + 0.02
        assert wait_until(lambda: len(commands) > 100 and np.allclose(commands[-1].data, target, atol=0.01), 60), (
            logs(started))
        for proc in started.values():
            assert proc.proc.poll() is None, proc.log()
        assert "driving with" in started["policy_node"].log()
    finally:
        codes = stop_all(started)
    assert codes == {name: 0 for name in nodes}, logs(started)
    assert all(len(c.data) == len(names) and np.isfinite(c.data).all() for c in commands)
    assert str(ROOT / "training") not in logs(started)  # nothing ran from the checkout
