"""The import graph of vla-il's Python: no cycles, and the training side never reaches ROS.

Read from the sources (ast), every import counts, also one inside a function (a lazy import is still a
dependency): only the `if __name__ == "__main__":` block of a script (it runs when the file is the
program, whose module is then `__main__`, never when it is imported) and `if TYPE_CHECKING:` blocks
(annotations only) are left out. So `python training/il/gail.py ...` may call the CLI that imports gail.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"training": ROOT, "sim": ROOT, "vla_il": ROOT, "vla_il_nodes": ROOT / "ros2_ws/src/vla_il_nodes",
            "vla_il_core": ROOT / "ros2_ws/src/vla_il_core"}
ROS = {"rclpy", "rosidl_runtime_py", "vla_il_msgs", "sensor_msgs", "std_msgs", "builtin_interfaces",
       "rcl_interfaces", "lifecycle_msgs", "std_srvs", "geometry_msgs"}


def modules() -> dict[str, Path]:
    found = {}
    for package, base in PACKAGES.items():
        for path in (base / package).rglob("*.py"):
            name = ".".join(path.relative_to(base).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imported_names(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    names: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if ast.unparse(node.test) in ("__name__ == '__main__'", "TYPE_CHECKING"):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            names.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                full = f"{base}.{alias.name}"
                names.add(full if full in known else base)

    Visitor().visit(ast.parse(path.read_text()))
    return names


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(our module -> our modules it imports, our module -> outside top-level packages it imports)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    outside: dict[str, set[str]] = {}
    for module, path in known.items():
        ours = set()
        for name in imported_names(module, path, known):
            target = name
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target:
                ours.add(target)
            else:
                outside.setdefault(module, set()).add(name.split(".")[0])
        ours.discard(module)
        graph[module] = ours
    return graph, outside


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_training_sim_vla_il_and_the_node_cores():
    graph, _ = import_graph()
    assert len(graph) > 60  # the packages were found
    assert cycles(graph) == []


def test_training_and_sim_never_reach_ros():
    """The offline trainer runs on a GPU machine without ROS: nothing training/ or sim/ imports, directly or
    through other vla-il modules, is rclpy or a message package."""
    graph, outside = import_graph()
    reached = {}
    for start in (m for m in graph if m.split(".")[0] in ("training", "sim")):
        seen = reach(graph, start)
        ros = {(m, p) for m in seen for p in outside.get(m, ()) if p in ROS}
        if ros:
            reached[start] = sorted(ros)
    assert reached == {}


def reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    return seen


def test_the_core_is_ros_free_and_light():
    """vla_il_core installs on a robot without ROS's Python, PyTorch, lerobot, transformers or MuJoCo, and
    without the rest of vla-il: what it reaches is NumPy, PyYAML, and (lazily, where used) ONNX Runtime, the
    ament index and rerun."""
    graph, outside = import_graph()
    allowed = {"numpy", "yaml", "onnxruntime", "ament_index_python", "rerun"}
    core = [m for m in graph if m.split(".")[0] == "vla_il_core"]
    assert len(core) >= 10
    bad = {}
    for start in core:
        seen = reach(graph, start)
        ours = sorted(m for m in seen if m.split(".")[0] != "vla_il_core")
        heavy = sorted({p for m in seen for p in outside.get(m, ()) if p not in allowed | sys.stdlib_module_names})
        if ours or heavy:
            bad[start] = ours + heavy
    assert bad == {}


def test_training_sim_and_the_cli_never_import_the_nodes():
    """The nodes are ROS shells over vla_il_core; everything else shares the core, never a node module."""
    graph, _ = import_graph()
    bad = {m: sorted(t for t in targets if t.startswith("vla_il_nodes"))
           for m, targets in graph.items() if m.split(".")[0] in ("training", "sim", "vla_il")}
    assert {m: t for m, t in bad.items() if t} == {}


def test_the_specifications_import_paths_and_script_commands(tmp_path):
    """The specification's Python API imports where it says, and `python training/il/<algo>.py ...` runs as a
    thin __main__ shim over the CLI."""
    import os
    import subprocess
    import sys

    from training.il.behavioral_cloning import BehavioralCloning, VLABehavioralCloning
    from training.il.dagger import DAgger, VLADAgger
    from training.il.gail import GAIL, VLAGAIL
    from training.il.vla_trainers import VLAGAIL as reexported

    assert reexported is VLAGAIL
    assert issubclass(VLABehavioralCloning, BehavioralCloning)
    assert DAgger.iterate is VLADAgger.iterate  # one DAgger loop
    assert GAIL.learn is VLAGAIL.learn  # one GAIL loop
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for script in ("behavioral_cloning", "dagger"):
        done = subprocess.run([sys.executable, f"training/il/{script}.py", "--help"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "--bc_epochs" in done.stdout, done.stderr[-2000:]
    done = subprocess.run([sys.executable, "training/il/gail.py", "--env", "CartPole-v1", "--total_timesteps", "64",
                           "--ppo_rollout_steps", "32", "--ppo_num_envs", "2", "--num_expert_episodes", "1",
                           "--eval_episodes", "1", "--output_dir", str(tmp_path / "gail")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gail done" in done.stdout and (tmp_path / "gail/best/provenance.json").exists()
