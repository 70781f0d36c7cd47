"""Every launch file, checked without running it (launch/launch_ros are not installable here).

A launch file must parse, build its description in a `generate_launch_description()`, use only
standard `launch` / `launch_ros` Python, and everything it names must exist: each executable in our
install space and in vla_il_nodes' entry points, each parameter file in config/ and installed, each
remapped topic among the node's own topic names, each LaunchConfiguration declared.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.ros_harness import INSTALL, ROOT

LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
NODES_SRC = ROOT / "ros2_ws/src/vla_il_nodes"
# vla_il_launch: the launch files' shared checks, installed by the vla_il package beside them
ALLOWED_IMPORTS = {"launch", "launch_ros", "os", "pathlib", "yaml", "json", "__future__", "vla_il_launch"}


def _str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)
    ]


def _kwarg(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _entry_points() -> set[str]:
    tree = ast.parse((NODES_SRC / "setup.py").read_text())
    nodes = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "NODES")
    return {_str(k) for k in nodes.value.keys}


def test_there_are_launch_files():
    assert LAUNCH_FILES, "launch/ holds no *.launch.py"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_standard_launch_ros_python(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for module in modules:
                assert module.split(".")[0] in ALLOWED_IMPORTS, f"{path.name} imports {module}"
    assert (INSTALL / "vla_il/share/vla_il/launch" / path.name).exists(), f"{path.name} is not installed by vla_il"


def test_the_launch_helper_is_installed_and_needs_only_launch_and_the_core():
    helper = INSTALL / "vla_il/lib/python3.11/site-packages/vla_il_launch/__init__.py"
    assert helper.exists(), "vla_il_launch is not installed by the vla_il package"
    for node in ast.walk(ast.parse(helper.read_text())):
        if isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            assert all(m.split(".")[0] in {"launch", "launch_ros", "os", "__future__", "vla_il_core"} for m in modules)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_everything_a_launch_file_names_exists(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    entry_points = _entry_points()
    # Node(package=..., executable="x", ...), or a launch file's own shorthand node("x", ...) for our package
    starts = [(c, _str(_kwarg(c, "package")), _str(_kwarg(c, "executable"))) for c in _calls(tree, "Node")
              if _str(_kwarg(c, "executable")) is not None]
    starts += [(c, "vla_il_nodes", _str(c.args[0])) for c in _calls(tree, "node") if c.args]
    assert starts, f"{path.name} starts no node"
    for call, package, executable in starts:
        assert package == "vla_il_nodes", f"{path.name}: Node of unknown package {package!r}"
        assert executable in entry_points, f"{path.name}: {executable!r} is not an entry point of vla_il_nodes"
        assert (INSTALL / package / "lib" / package / executable).exists(), f"{executable} not installed"
        source = (NODES_SRC / package / f"{executable}.py").read_text()
        remaps = _kwarg(call, "remappings")
        for pair in getattr(remaps, "elts", []):
            if isinstance(pair, ast.Starred):
                continue  # remappings computed from a robot profile: test_every_robot_profile_fits_the_launch_files
            topic = _str(pair.elts[0]) if isinstance(pair, ast.Tuple) else None
            assert topic is not None, f"{path.name}: remapping without a literal source topic"
            assert f'"{topic}"' in source, f"{path.name}: {executable} has no topic {topic!r} to remap"
    for const in ast.walk(tree):
        name = _str(const)
        if name and name.endswith(".yaml"):
            assert (ROOT / "config" / name).exists(), f"{path.name}: config/{name} does not exist"
            assert (INSTALL / "vla_il/share/vla_il/config" / name).exists(), f"config/{name} is not installed"
    declared = {_str(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    for call in _calls(tree, "LaunchConfiguration"):
        assert _str(call.args[0]) in declared, f"{path.name}: LaunchConfiguration {_str(call.args[0])!r} not declared"
    for reader in ("argument", "choice", "flag", "whole_number", "path_argument"):  # vla_il_launch's readers
        for call in _calls(tree, reader):
            assert _str(call.args[1]) in declared, f"{path.name}: argument {_str(call.args[1])!r} not declared"
    # vla_il_launch.robot_profile / checked_bundle read robot:= and policy:=
    if _calls(tree, "robot_profile"):
        assert {"robot", "policy"} <= declared


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "config/robots").glob("*.yaml")))
def test_every_robot_profile_fits_the_launch_files(name: str):
    """robot:=<profile>: what deploy.launch.py takes from a profile is there, and the nodes take it."""
    from vla_il_core.profiles import load_profile

    profile = load_profile(name)
    assert (INSTALL / "vla_il/share/vla_il/config/robots" / f"{name}.yaml").exists(), f"{name} is not installed"
    deploy = (ROOT / "launch/deploy.launch.py").read_text()
    assert "robot" in {_str(c.args[0]) for c in _calls(ast.parse(deploy), "DeclareLaunchArgument")}
    node_src = {n: (NODES_SRC / "vla_il_nodes" / f"{n}.py").read_text() for n in _entry_points()}

    def declares(node: str, param: str) -> bool:
        return re.search(rf'declare\(\s*self,\s*"{param}"', node_src[node]) is not None

    for param in profile.mux_parameters():  # the mux's limits come from the profile
        assert declares("intervention_mux", param), f"the mux takes no {param}"
    for topic in ("joint_states", "command"):  # remapped to the profile's topics
        assert f'"{topic}"' in node_src["intervention_mux"]
    assert 'f"cameras/{cam}/image_raw"' in node_src["policy_node"]  # the camera remaps' source topics
    for cam in profile.cameras:
        if cam.driver == "camera_node":
            for key in cam.settings:  # every camera setting is a camera_node parameter
                assert declares("camera_node", key), f"{name}: camera_node has no parameter {key}"
    if profile.has_adapter:
        assert "robot_adapter" in _entry_points() and '"robot_adapter"' in deploy


def test_dagger_teleop_launch_takes_the_documented_arguments():
    tree = ast.parse((ROOT / "launch/dagger_teleop.launch.py").read_text())
    declared = {_str(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    assert {"sim", "robot", "task", "policy", "teleop", "record_dir", "mode"} <= declared
    executables = {_str(_kwarg(c, "executable")) for c in _calls(tree, "Node")}
    executables |= {_str(c.args[0]) for c in _calls(tree, "node") if c.args}  # its node("x", ...) shorthand
    assert {"teleop_sim_expert", "teleop_joy", "teleop_keyboard", "teleop_leader", "dagger_recorder"} <= executables
    # on a robot (sim:=false) it starts the profile's cameras and adapter, as deploy.launch.py does
    assert {"camera_node", "robot_adapter", "policy_node", "intervention_mux", "sim_bridge"} <= executables
