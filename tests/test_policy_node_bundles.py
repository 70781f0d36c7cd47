"""A bundle is proved before it drives: policy.json parsed strictly, the graph's inputs and outputs compared
with what the node feeds, the ONNX file's sha256 checked, a trial inference on a neutral observation; at run
time a non-finite output is never published. Then the node's parameters, load_policy's bundle_dir, and a
clean exit on SIGINT/SIGTERM. The core without ROS first, then the node as a real process over DDS."""

import json
import math
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from sim.aloha import robot
from tests.bundles import copy_bundle, graph_bundle, make_bundle, read_meta, write_meta
from tests.ros_harness import wait_until
from vla_il_core.bundle import BundleError, read_bundle

ENV_STATE = np.array([0.1, 0.5, 0.02, 1.0, 0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Two real exported bundles, built once per module: tests copy them into their own directories."""
    root = tmp_path_factory.mktemp("exported")
    return {"first": make_bundle(root, "first", chunk=10, bias=0.0),
            "second": make_bundle(root, "second", chunk=10, bias=0.02)}


def _broken_json(root: Path, good: Path, kind: str) -> Path:
    """A copy of `good` whose policy.json carries the fault `kind`."""
    b = copy_bundle(good, root / kind)
    meta = read_meta(b)
    if kind == "non_object_json":
        (b / "policy.json").write_text("[1, 2]")
    elif kind == "non_utf8_json":
        (b / "policy.json").write_bytes(b'{"schema_version": 1, "name": "caf\xe9"}')
    elif kind == "bad_sha256":
        meta["onnx"]["sha256"] = "0" * 64
        write_meta(b, meta)
    elif kind == "absurd_fps":
        meta["fps"] = 1e-6
        write_meta(b, meta)
    else:
        raise ValueError(kind)
    return b


# What each fault is refused with (a part of the reason).
FAULTS = {
    "non_object_json": "must hold a JSON object, not an array",
    "non_utf8_json": "not UTF-8",
    "bad_sha256": "sha256 mismatch",
    "absurd_fps": "fps",
    "float64_input": "tensor(double)",
    "extra_required_input": "instruction_ids",
    "nan_output": "non-finite",
}


def _faulty_bundle(root: Path, good: Path, kind: str) -> Path:
    if kind == "float64_input":
        return graph_bundle(root, kind, good, state_type="double")
    if kind == "extra_required_input":
        return graph_bundle(root, kind, good, extra_input=True)
    if kind == "nan_output":
        return graph_bundle(root, kind, good, nan="always")
    return _broken_json(root, good, kind)


# ---------------------------------------------------------------------------------------------- core, no ROS
@pytest.mark.parametrize("text, reason", [
    (b"[1, 2]", "must hold a JSON object, not an array"),
    (b'"a bundle"', "must hold a JSON object, not a string"),
    (b"null", "must hold a JSON object, not null"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{", "not valid JSON"),
    (b"[" * 100_000, "not valid JSON"),  # nesting deep enough to exhaust the parser's recursion
])
def test_read_bundle_refuses_policy_json_that_is_not_an_object(exported, tmp_path, text, reason):
    b = copy_bundle(exported["first"], tmp_path / "b")
    (b / "policy.json").write_bytes(text)
    with pytest.raises(BundleError, match=reason):
        read_bundle(b)


def _mutations():
    def set_(path, value):
        def apply(meta):
            *parents, last = path
            node = meta
            for p in parents:
                node = node[p]
            if value is KeyError:
                del node[last]
            else:
                node[last] = value
        return apply
    return [
        ("inputs is a list", set_(["inputs"], []), "inputs"),
        ("components not a list", set_(["inputs", "state", "components"], 3), "components"),
        ("component not an object", set_(["inputs", "state", "components"], [1]), "components"),
        ("dim a string", set_(["inputs", "state", "components", 0, "dim"], "14"), "dim"),
        ("dim zero", set_(["inputs", "state", "components", 0, "dim"], 0), "dim"),
        ("cameras a string", set_(["inputs", "cameras"], "top"), "cameras"),
        ("cameras without image_size", set_(["inputs", "cameras"], ["top"]), "image_size"),
        ("outputs missing", set_(["outputs"], KeyError), "outputs"),
        ("chunk_size a float", set_(["outputs", "chunk_size"], 10.5), "chunk_size"),
        ("joint_names a string", set_(["joint_names"], "left_waist"), "joint_names"),
        ("recommended a list", set_(["recommended"], [1]), "recommended"),
        ("fps tiny", set_(["fps"], 1e-6), "fps"),
        ("fps zero", set_(["fps"], 0), "fps"),
        ("fps negative", set_(["fps"], -50.0), "fps"),
        ("fps huge", set_(["fps"], 5000.0), "fps"),
        ("fps NaN", set_(["fps"], math.nan), "fps"),
        ("fps infinite", set_(["fps"], math.inf), "fps"),
        ("fps a string", set_(["fps"], "50"), "fps"),
        ("fps a bool", set_(["fps"], True), "fps"),
        ("sha256 missing", set_(["onnx", "sha256"], KeyError), "sha256"),
        ("sha256 not hex", set_(["onnx", "sha256"], "xyz"), "sha256"),
        ("instruction not baked", set_(["inputs", "instruction"], {"text": "pick", "baked": False}), "instruction"),
    ]


@pytest.mark.parametrize("name, mutate, reason", _mutations(), ids=[m[0] for m in _mutations()])
def test_read_bundle_refuses_a_mangled_field_with_its_name(exported, tmp_path, name, mutate, reason):
    b = copy_bundle(exported["first"], tmp_path / "b")
    meta = read_meta(b)
    mutate(meta)
    (b / "policy.json").write_text(json.dumps(meta))  # NaN / Infinity as Python's json writes them
    with pytest.raises(BundleError, match=reason):
        read_bundle(b)


@pytest.mark.parametrize("kind", ["float64_input", "extra_required_input", "nan_output", "bad_sha256"])
def test_load_policy_proves_the_graph_before_it_drives(exported, tmp_path, kind):
    from vla_il_core.runner import load_policy

    bundle = _faulty_bundle(tmp_path, exported["first"], kind)
    with pytest.raises(BundleError, match=re.escape(FAULTS[kind])) as refused:
        load_policy(str(bundle), prefer_gpu=False)
    if kind == "bad_sha256":  # both hashes, by their first characters
        actual = read_meta(exported["first"])["onnx"]["sha256"]
        assert "000000000000" in str(refused.value) and actual[:12] in str(refused.value)


def test_a_hand_built_graph_that_matches_its_json_loads(exported, tmp_path):
    """The control for the faulty graphs above: the same builder without a fault is accepted."""
    from vla_il_core.runner import load_policy

    policy = load_policy(str(graph_bundle(tmp_path, "plain", exported["first"], bias=0.01)), prefer_gpu=False)
    assert policy.spec.policy_id.startswith("plain-")


def test_the_runner_holds_on_a_non_finite_output_and_says_why(exported, tmp_path):
    from vla_il_core.runner import PolicyRunner, load_policy

    bundle = graph_bundle(tmp_path, "nan_off_neutral", exported["first"], nan="off_neutral")
    runner = PolicyRunner(load_policy(str(bundle), prefer_gpu=False), stale_after_s=10.0, async_inference=False)
    for i in range(3):  # a real observation: the graph outputs NaN
        runner.observe("joint_positions", robot.START_STATE, 0.01 * i)
        runner.observe("env_state", ENV_STATE, 0.01 * i)
        assert runner.tick(0.01 * i) is None
    assert runner.fault is not None and "non-finite" in runner.fault
    runner.observe("joint_positions", np.zeros(14), 0.05)
    runner.observe("env_state", np.zeros(7), 0.05)
    action = runner.tick(0.05)  # finite again: it drives, and the fault is over
    assert action is not None and np.all(np.isfinite(action)) and runner.fault is None


def test_load_policy_paths_resolve_inside_bundle_dir(tmp_path):
    from vla_il_core.runner import resolve_bundle_path

    root = tmp_path / "bundles"
    (root / "round_1").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    assert resolve_bundle_path("round_1", root) == (root / "round_1").resolve()
    assert resolve_bundle_path(str(root / "round_1"), root) == (root / "round_1").resolve()
    for outside in (str(tmp_path / "elsewhere"), "../elsewhere", "link", "round_1/../../elsewhere", "/etc"):
        with pytest.raises(BundleError, match="outside bundle_dir"):
            resolve_bundle_path(outside, root)


# ---------------------------------------------------------------------------------------------- the node over DDS
def _start(node_process, probe, bundle: Path, **params):
    from sensor_msgs.msg import JointState
    from vla_il_msgs.msg import PolicyStatus

    from tests.test_policy_node import Feeder

    g = type("G", (), {})()
    g.node = node_process("policy_node", params={"bundle": str(bundle), "stale_after_s": 0.15, **params})
    g.actions = probe.collect(JointState, "policy/action")
    g.status = probe.collect(PolicyStatus, "policy/status")
    g.feed = Feeder(probe)
    return g


@pytest.fixture
def driving(probe, node_process, exported, tmp_path):
    """The node driving with `first` (its bundle_dir: tmp_path, the parent of the start-up bundle)."""
    first = copy_bundle(exported["first"], tmp_path / "first")
    g = _start(node_process, probe, first)
    g.probe, g.tmp = probe, tmp_path
    assert wait_until(lambda: len(g.actions) > 5, 20), g.node.log()
    yield g
    g.feed.stop()


def _load(g, path: str, timeout: float = 10.0):
    from vla_il_msgs.srv import LoadPolicy

    return g.probe.call(LoadPolicy, "policy_node/load_policy", LoadPolicy.Request(bundle_path=path), timeout)


def _still_driving(g, position: float) -> bool:
    n = len(g.actions)
    return (wait_until(lambda: len(g.actions) > n + 10, 5)
            and abs(g.actions[-1].position[0] - position) < 0.008 and g.node.proc.poll() is None)


@pytest.mark.ros
@pytest.mark.parametrize("kind", list(FAULTS))
def test_hot_reload_refuses_a_faulty_bundle_and_the_old_one_keeps_driving(driving, exported, kind):
    g = driving
    bad = _faulty_bundle(g.tmp, exported["first"], kind)
    resp = _load(g, str(bad))
    assert not resp.success and FAULTS[kind] in resp.message, resp.message
    assert "first-" in resp.message and "keeps driving" in resp.message and resp.policy_id.startswith("first-")
    assert g.node.wait_for_log("refused bundle", 5)
    assert _still_driving(g, robot.START_STATE[0]), g.node.log()
    # the service is alive and a good bundle loads after the refusal
    second = copy_bundle(exported["second"], g.tmp / "second")
    resp = _load(g, str(second))
    assert resp.success and resp.policy_id.startswith("second-"), resp.message
    assert wait_until(lambda: abs(g.actions[-1].position[0] - (robot.START_STATE[0] + 0.02)) < 0.008, 5)


@pytest.mark.ros
def test_load_policy_only_reads_bundles_inside_bundle_dir(driving, exported, tmp_path_factory):
    g = driving
    outside = copy_bundle(exported["second"], tmp_path_factory.mktemp("outside") / "second")
    (g.tmp / "link").symlink_to(outside)
    for path in (str(outside), "link", f"../{outside.parent.name}/second"):
        resp = _load(g, path)
        assert not resp.success and "outside bundle_dir" in resp.message, (path, resp.message)
    assert _still_driving(g, robot.START_STATE[0])
    copy_bundle(exported["second"], g.tmp / "second")
    resp = _load(g, "second")  # relative: against bundle_dir
    assert resp.success and resp.policy_id.startswith("second-"), resp.message


@pytest.mark.ros
def test_non_finite_actions_are_never_published(driving, exported):
    """A bundle that passes the trial (finite on the neutral observation) but outputs NaN on the real one: the
    node holds, reports the error in its status and logs it; a good bundle drives again."""
    from vla_il_msgs.msg import PolicyStatus

    g = driving
    poisoned = graph_bundle(g.tmp, "poisoned", exported["first"], nan="off_neutral")
    resp = _load(g, str(poisoned))
    assert resp.success, resp.message
    assert wait_until(lambda: g.status and g.status[-1].policy_id.startswith("poisoned-")
                      and g.status[-1].state == PolicyStatus.STATE_ERROR, 5), g.status[-1:]
    assert "non-finite" in g.status[-1].message
    n = len(g.actions)
    time.sleep(0.5)
    assert all(np.all(np.isfinite(a.position)) for a in g.actions) and len(g.actions) <= n + 1
    assert g.node.wait_for_log("holding: ", 5)
    assert g.node.log().count("holding: ") <= 3  # throttled: one line per few seconds, not one per tick
    resp = _load(g, str(copy_bundle(exported["second"], g.tmp / "second")))
    assert resp.success
    assert wait_until(lambda: g.status[-1].state == PolicyStatus.STATE_RUNNING and not g.status[-1].message, 5)
    assert wait_until(lambda: len(g.actions) > n + 10, 5)


@pytest.mark.ros
def test_parameters_are_read_only_except_stale_after_s(driving):
    from rcl_interfaces.srv import GetParameters, SetParameters
    from rclpy.parameter import Parameter

    g = driving

    def set_(name, value):
        req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return g.probe.call(SetParameters, "policy_node/set_parameters", req).results[0]

    for name, value in (("tick_source", "observation"), ("bundle", "/tmp"), ("prefer_gpu", False),
                        ("status_rate_hz", 10.0), ("bundle_dir", "/")):
        result = set_(name, value)
        assert not result.successful and "read-only" in result.reason, (name, result)
    result = set_("stale_after_s", -1.0)
    assert not result.successful and "stale_after_s" in result.reason, result
    result = set_("stale_after_s", 2.0)
    assert result.successful, result
    got = g.probe.call(GetParameters, "policy_node/get_parameters", GetParameters.Request(names=["stale_after_s"]),
                       idempotent=True)
    assert got.values[0].double_value == 2.0
    # applied at once: a 0.5 s gap in the inputs no longer stops the actions (0.15 s did)
    g.feed.paused = True
    n = len(g.actions)
    time.sleep(0.5)
    assert len(g.actions) > n + 10
    g.feed.paused = False


@pytest.mark.ros
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_exits_0_within_2_s_on_a_signal_every_time(probe, node_process, exported, tmp_path, sig):
    from tests.test_policy_node import Feeder

    bundle = copy_bundle(exported["first"], tmp_path / "first")
    feed = Feeder(probe)  # inferences run when the signal comes
    try:
        for cycle in range(5):
            proc = node_process("policy_node", params={"bundle": str(bundle)})
            assert proc.wait_for_log("driving with", 20), proc.log()
            time.sleep(0.3 + 0.1 * cycle)
            proc.proc.send_signal(sig)
            try:
                code = proc.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pytest.fail(f"cycle {cycle}: still running 2 s after {sig.name}\n{proc.log()}")
            assert code == 0, f"cycle {cycle}: exit {code} after {sig.name}\n{proc.log()}"
    finally:
        feed.stop()

