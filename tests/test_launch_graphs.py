"""The launch files' robot logic, run: which nodes start with which parameters and remappings.

`launch` and `launch_ros` are not installable from PyPI, so this test gives the launch files a minimal
stand-in for the few names they use (DeclareLaunchArgument, OpaqueFunction, LaunchConfiguration,
FindPackageShare, Node: recorded, not run). The stand-in is only the launch system; the profiles, the
parameter files and the install space are ours and real. test_launch_files.py checks the files statically.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import pytest

from tests.bundles import make_bundle
from tests.ros_harness import INSTALL, ROOT


class _Context:
    def __init__(self, args):
        self.args = args


class _Arg:
    def __init__(self, name, default_value=None, description=""):
        self.name, self.default = name, default_value


class _Config:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        if self.name not in context.args:
            raise KeyError(f"launch argument {self.name} has no value")
        return context.args[self.name]


class _Share:
    def __init__(self, package):
        self.package = package

    def perform(self, context):
        return str(INSTALL / self.package / "share" / self.package)


class _Node:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class _EnvVar:
    def __init__(self, name, default_value=""):
        self.name, self.default = name, default_value

    def perform(self, environ):
        if self.name in environ:
            return environ[self.name]
        return self.default.perform(environ) if hasattr(self.default, "perform") else self.default


class _Join(list):
    def perform(self, _environ):
        return os.path.join(*(p.perform(None) if hasattr(p, "perform") else p for p in self))


class _SetEnv:
    def __init__(self, name, value, condition=None):
        self.name, self.value, self.condition = name, value, condition


class _Shutdown:
    def __init__(self, reason=""):
        self.reason = reason


class _NotEquals:
    def __init__(self, left, right):
        self.left, self.right = left, right

    def holds(self, args):
        return args[self.left.name] != self.right


class _If:
    def __init__(self, predicate):
        self.predicate = predicate

    def holds(self, args):
        return self.predicate.holds(args)


def _stand_in_modules():
    mods = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.substitutions", "launch.conditions", "launch_ros", "launch_ros.actions",
        "launch_ros.substitutions")}
    mods["launch"].LaunchDescription = list
    mods["launch.actions"].DeclareLaunchArgument = _Arg
    mods["launch.actions"].OpaqueFunction = lambda function: function
    mods["launch.actions"].SetEnvironmentVariable = _SetEnv
    mods["launch.actions"].Shutdown = _Shutdown
    mods["launch.conditions"].IfCondition = _If
    mods["launch.substitutions"].NotEqualsSubstitution = _NotEquals
    mods["launch.substitutions"].EnvironmentVariable = _EnvVar
    mods["launch.substitutions"].LaunchConfiguration = _Config
    mods["launch.substitutions"].PathJoinSubstitution = _Join
    mods["launch_ros.actions"].Node = _Node
    mods["launch_ros.substitutions"].FindPackageShare = _Share
    return mods


def _describe(launch_file: str, environ: dict, args: dict) -> tuple[list, dict]:
    """The launch description's actions, and its arguments' values (defaults filled in from `environ`)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, mod in _stand_in_modules().items():
            mp.setitem(sys.modules, name, mod)
        mp.delitem(sys.modules, "vla_il_launch", raising=False)  # the launch files' helper, on the stand-in
        spec = importlib.util.spec_from_file_location(launch_file.replace(".", "_"), ROOT / "launch" / launch_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
    declared = {a.name: (a.default.perform(environ) if isinstance(a.default, (_EnvVar, _Join)) else a.default)
                for a in description if isinstance(a, _Arg)}
    return description, {k: v for k, v in declared.items() if v is not None} | args


def _run(launch_file: str, **args) -> dict[str, _Node]:
    """The nodes a launch file starts for these arguments (defaults filled in), by executable."""
    description, values = _describe(launch_file, {}, args)
    functions = [a for a in description if callable(a) and not isinstance(a, (_Arg, _SetEnv))]
    nodes = [n for f in functions for n in f(_Context(values))]
    return {n.kwargs["executable"]: n for n in nodes}


def _environment(launch_file: str, environ: dict, **args) -> dict[str, str]:
    """The environment variables a launch file sets for its nodes."""
    description, values = _describe(launch_file, environ, args)
    out = {}
    for a in description:
        if isinstance(a, _SetEnv) and (a.condition is None or a.condition.holds(values)):
            out[a.name] = values[a.value.name] if isinstance(a.value, _Config) else a.value
    return out


@pytest.mark.parametrize("launch_file", ["dagger_teleop.launch.py", "deploy.launch.py"])
def test_launch_files_keep_discovery_on_this_machine_unless_told_and_take_an_sros2_keystore(launch_file):
    profile = {"FASTDDS_DEFAULT_PROFILES_FILE": str(INSTALL / "vla_il" / "share" / "vla_il" / "config" / "fastdds.xml")}
    assert Path(profile["FASTDDS_DEFAULT_PROFILES_FILE"]).is_file()
    assert _environment(launch_file, {}) == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", **profile}
    assert _environment(launch_file, {}, discovery_range="SUBNET")["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET"
    assert _environment(launch_file, {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}) == {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", **profile}  # the user's environment says so
    secure = _environment(launch_file, {}, keystore="/etc/vla_il/keystore")
    assert secure == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_SECURITY_KEYSTORE": "/etc/vla_il/keystore",
                      "ROS_SECURITY_ENABLE": "true", "ROS_SECURITY_STRATEGY": "Enforce",
                      "ROS_SECURITY_ENCLAVE_OVERRIDE": "/vla_il", **profile}
    for own in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):  # a profile of the user's is kept
        assert _environment(launch_file, {own: "/mine.xml"})["FASTDDS_DEFAULT_PROFILES_FILE"] == "/mine.xml"
    assert _environment(launch_file, {"ROS_SECURITY_KEYSTORE": "/ks"})["ROS_SECURITY_ENABLE"] == "true"


def _params(node: _Node) -> dict:
    """The parameters the node gets: its parameter files (their `/**` and own-name sections) and dicts, in order."""
    import yaml

    merged = {}
    name = node.kwargs.get("name")
    for p in node.kwargs.get("parameters", []):
        if isinstance(p, dict):
            merged.update(p)
        elif isinstance(p, str):
            data = yaml.safe_load(Path(p).read_text()) or {}
            for section in ("/**", name, f"/{name}"):
                merged.update(((data.get(section) or {}).get("ros__parameters")) or {})
    return merged


def test_dagger_teleop_in_the_sim(tmp_path):
    bundle = make_bundle(tmp_path, "b", chunk=5)
    nodes = _run("dagger_teleop.launch.py", policy=str(bundle), mode="lockstep", record_dir=str(tmp_path / "rec"))
    assert set(nodes) == {"sim_bridge", "policy_node", "intervention_mux", "teleop_sim_expert", "dagger_recorder"}
    assert _params(nodes["policy_node"])["tick_source"] == "observation"
    assert _params(nodes["intervention_mux"])["one_command_per_observation"] is True
    assert _params(nodes["dagger_recorder"])["sim_task"] == "transfer_cube"
    assert dict(nodes["intervention_mux"].kwargs["remappings"]) == {"command": "/command",
                                                                   "joint_states": "/joint_states"}
    for node in nodes.values():  # every parameter file is one the vla_il package installed
        for p in node.kwargs.get("parameters", []):
            if isinstance(p, str):
                assert Path(p).parent == INSTALL / "vla_il/share/vla_il/config" and Path(p).is_file(), p


def test_dagger_teleop_on_a_real_aloha_is_remapped_to_its_profile(tmp_path):
    bundle = make_bundle(tmp_path, "b", chunk=5)
    nodes = _run("dagger_teleop.launch.py", policy=str(bundle), sim="false", robot="aloha", teleop="leader",
                 record_dir=str(tmp_path / "rec"))
    assert "sim_bridge" not in nodes and {"camera_node", "robot_adapter", "teleop_leader"} <= set(nodes)
    recorder = nodes["dagger_recorder"]
    remaps = dict(recorder.kwargs["remappings"])
    assert remaps["joint_states"] == "/vla_il/joint_states" and remaps["command"] == "/vla_il/command"
    assert remaps["cameras/cam_high/image_raw"] == "/cameras/cam_high/image_raw"
    assert _params(recorder)["cameras"] == ["cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist"]
    assert not _params(recorder).get("sim_task")  # no sim: no privileged object poses recorded
    mux = _params(nodes["intervention_mux"])
    assert len(mux["max_step"]) == 14 and mux["joint_names"][0] == "left_waist"
    assert _params(nodes["policy_node"])["tick_source"] == "timer"
    leader = nodes["teleop_leader"]  # ALOHA's two leader arms, each on its own topic, through the profile
    assert _params(leader)["profile"].endswith("config/robots/aloha.yaml")
    assert dict(leader.kwargs["remappings"])["joint_states"] == "/vla_il/joint_states"  # the followers, to follow


@pytest.mark.parametrize("args, message", [
    ({"sim": "false", "teleop": "joy"}, "name its profile with robot:="),
    ({"sim": "false", "robot": "aloha", "teleop": "sim_expert"}, "use it with sim:=true"),
    ({"teleop": "spacemouse"}, "teleop:=spacemouse: one of"),
    ({"robot": "ros2_control_arm", "sim": "false", "teleop": "joy"}, "refusing bundle"),
])
def test_dagger_teleop_refuses_what_cannot_work(tmp_path, args, message):
    bundle = make_bundle(tmp_path, "b", chunk=5)
    with pytest.raises(RuntimeError, match=message.replace("(", r"\(")):
        _run("dagger_teleop.launch.py", policy=str(bundle), record_dir=str(tmp_path / "rec"), **args)


def test_a_bundle_trained_at_another_rate_is_refused_before_anything_starts(tmp_path):
    from tests.bundles import read_meta, write_meta

    bundle = make_bundle(tmp_path, "b", chunk=5)
    write_meta(bundle, {**read_meta(bundle), "fps": 30.0})
    for launch_file in ("deploy.launch.py", "dagger_teleop.launch.py"):
        with pytest.raises(RuntimeError, match="trained at 30 Hz, robot profile 'aloha_sim' runs at 50 Hz"):
            _run(launch_file, policy=str(bundle), record_dir=str(tmp_path / "rec"))


@pytest.mark.parametrize("launch_file", ["deploy.launch.py", "dagger_teleop.launch.py", "sim_aloha.launch.py"])
def test_every_node_is_required(tmp_path, launch_file):
    """A node that fails stops the launch with one line naming it (launch exits 1 when a handler raises); a clean
    exit (Ctrl-C) shuts the launch down."""
    bundle = make_bundle(tmp_path, "b", chunk=5)
    nodes = _run(launch_file, policy=str(bundle), record_dir=str(tmp_path / "rec"))
    assert nodes
    for name, node in nodes.items():
        on_exit = node.kwargs["on_exit"]
        with pytest.raises(RuntimeError, match=f"{name} exited with code 2: stopping the graph"):
            on_exit(types.SimpleNamespace(returncode=2), None)
        (shutdown,) = on_exit(types.SimpleNamespace(returncode=0), None)
        assert type(shutdown).__name__ == "_Shutdown"


def test_deploy_on_the_sim_profile(tmp_path):
    bundle = make_bundle(tmp_path, "b", chunk=5)
    nodes = _run("deploy.launch.py", policy=str(bundle))
    assert set(nodes) == {"policy_node", "intervention_mux"}
    assert len(_params(nodes["intervention_mux"])["max_step"]) == 14
