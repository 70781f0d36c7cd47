"""The launch files under the real `ros2 launch`: arguments checked up front, the graph up with its nodes,
commands flowing in lockstep, and a clean Ctrl-C.

`launch`, `launch_ros` and `ros2cli` are not on the package registries: this runs where `ros2 launch` is
installed (a system ROS 2, or ros2/launch, launch_ros, ros2cli, rosidl_runtime_py and rcl_interfaces built
outside the clone: `../shared/tools/build-ros2-launch.sh <dir> <their git dirs>`, then `source <dir>/env.sh`
before `./run-tests`) and skips, saying so, elsewhere. tests/test_launch_files.py checks the files statically
everywhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sensor_msgs.msg import JointState

from tests.bundles import make_bundle
from tests.ros_harness import ROOT, wait_until

pytestmark = pytest.mark.ros


def _has_ros2_launch() -> bool:
    if shutil.which("ros2") is None:
        return False
    done = subprocess.run(["ros2", "launch", "--help"], capture_output=True, text=True, timeout=60)
    return done.returncode == 0


requires_launch = pytest.mark.skipif(not _has_ros2_launch(),
                                     reason="the real `ros2 launch` is not installed here (see this file's docstring)")


class Launch:
    """`ros2 launch ...` in a process group of its own; Ctrl-C is SIGINT to the whole group, as a terminal sends."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["ros2", "launch", "vla_il", *args], stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def ctrl_c(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


@requires_launch
def test_a_bad_argument_is_one_line_and_a_non_zero_exit(tmp_path):
    done = subprocess.run(["ros2", "launch", "vla_il", "sim_aloha.launch.py", "seed:=abc"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "seed:=abc: a whole number >= 0" in done.stdout + done.stderr


@requires_launch
def test_dagger_teleop_in_lockstep_without_cameras_records_episodes_and_stops_cleanly(probe, tmp_path):
    from vla_il_msgs.msg import EpisodeEvent

    from tests.ros_harness import LATCHED

    bundle = make_bundle(tmp_path, "lb", chunk=10)
    profile = tmp_path / "nocam.yaml"
    text = (ROOT / "config/robots/aloha_sim.yaml").read_text()
    profile.write_text(text.split("cameras:")[0] + "cameras: []\n")  # a robot without cameras
    commands = probe.collect(JointState, "/command")
    events = probe.collect(EpisodeEvent, "/recorder/episode", qos=LATCHED)
    launch = Launch(["dagger_teleop.launch.py", "mode:=lockstep", f"policy:={bundle}", f"robot:={profile}",
                     f"record_dir:={tmp_path / 'rec'}"], tmp_path / "launch.log")
    try:
        nodes = {"sim_bridge", "policy_node", "intervention_mux", "teleop_sim_expert", "dagger_recorder"}
        assert wait_until(lambda: nodes <= set(probe.node.get_node_names()), 60), launch.text()[-3000:]
        # episodes:=auto: the sim waits for the recorder, which records its first episode from the first step
        # (it ends on success, or at 400 steps), the policy and the expert driving; then the next one starts
        assert wait_until(lambda: any(e.event == "saved" for e in events), 180), launch.text()[-3000:]
        first = next(e for e in events if e.event == "saved")
        assert first.episode_index == 0 and 0 < first.num_frames <= 400 and not first.dropped_frames
        n = len(commands)
        assert wait_until(lambda: len(commands) > n + 20, 60), launch.text()[-3000:]  # the next episode runs
        names = probe.node.get_node_names()
        assert all(names.count(n) == 1 for n in nodes), names
    finally:
        code = launch.ctrl_c()
    log = launch.text()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log and "process has died" not in log, log[-3000:]
    assert log.count("process has finished cleanly") == 5


@requires_launch
def test_deploy_beside_the_sim_drives_at_the_bundle_rate(probe, tmp_path):
    bundle = make_bundle(tmp_path, "db", chunk=10)
    actions = probe.collect(JointState, "/policy/action")
    sim = Launch(["sim_aloha.launch.py"], tmp_path / "sim.log")
    deploy = Launch(["deploy.launch.py", "robot:=aloha_sim", f"policy:={bundle}"], tmp_path / "deploy.log")
    try:
        assert wait_until(lambda: len(actions) > 20, 60), deploy.text()[-3000:] + sim.text()[-2000:]
        start, t0 = len(actions), time.monotonic()
        time.sleep(3.0)
        rate = (len(actions) - start) / (time.monotonic() - t0)
        assert 35 < rate < 65, rate  # 50 Hz; a loose band: behaviour, not a benchmark
    finally:
        codes = deploy.ctrl_c(), sim.ctrl_c()
    assert codes == (0, 0), deploy.text()[-2000:] + sim.text()[-2000:]
    for log in (deploy.text(), sim.text()):
        assert "Traceback" not in log, log[-3000:]


@requires_launch
def test_a_bundle_for_another_rate_stops_the_launch_before_any_node(tmp_path):
    from tests.bundles import read_meta, write_meta

    bundle = make_bundle(tmp_path, "r30", chunk=10)
    write_meta(bundle, {**read_meta(bundle), "fps": 30.0})
    done = subprocess.run(["ros2", "launch", "vla_il", "deploy.launch.py", f"policy:={bundle}"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    assert "trained at 30 Hz, robot profile 'aloha_sim' runs at 50 Hz" in done.stdout + done.stderr
    assert "process started" not in done.stdout + done.stderr


@requires_launch
def test_a_required_node_that_fails_stops_the_graph_with_a_non_zero_exit(tmp_path):
    """The recorder cannot write its record_dir: it says so in one line, and every other node is stopped."""
    bundle = make_bundle(tmp_path, "rq", chunk=10)
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    launch = Launch(["dagger_teleop.launch.py", "mode:=lockstep", f"policy:={bundle}",
                     f"record_dir:={blocked / 'rec'}"], tmp_path / "launch.log")
    try:
        assert wait_until(lambda: launch.proc.poll() is not None, 90), launch.text()[-3000:]
    finally:
        code = launch.ctrl_c()
    log = launch.text()
    assert code != 0, log[-3000:]
    assert "dagger_recorder exited with code 2: stopping the graph" in log, log[-3000:]
    assert log.count("process has finished cleanly") == 4, log[-3000:]
