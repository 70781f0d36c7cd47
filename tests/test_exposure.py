"""Who can reach the graph: nodes discover only this machine unless told otherwise, and SROS2 fails closed.

Measured here: the Fast DDS of the PyPI ROS 2 wheels is built without the DDS-Security plugins
("This Fast DDS version doesn't have the security libraries"), so the SROS2 test proves the node refuses
to start rather than running unsecured; README: how to run the graph with security on a system ROS.
"""

import os
import subprocess
import sys

import pytest

from tests.ros_harness import CONFIG, INSTALL

pytestmark = pytest.mark.ros

MUX = INSTALL / "vla_il_nodes/lib/vla_il_nodes/intervention_mux"
SPDP_MULTICAST = "0100FFEF"  # 239.255.0.1, the DDS discovery group, as /proc/net/igmp writes it


def _start_mux(env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(MUX), "--ros-args", "--params-file", str(CONFIG / "intervention_mux.yaml")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.skipif(not os.path.exists("/proc/net/igmp"), reason="needs Linux's /proc/net/igmp")
def test_a_node_started_without_a_discovery_range_stays_off_the_lan():
    """With no ROS_AUTOMATIC_DISCOVERY_RANGE in its environment (a node started by hand or by a launch file on
    a plain ROS install) the node must not join the LAN's discovery multicast, where any participant could
    find it and drive the robot. Before node_runtime defaulted to LOCALHOST it joined 239.255.0.1 on eth0."""
    env = {k: v for k, v in os.environ.items() if k not in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_LOCALHOST_ONLY")}
    proc = _start_mux(env)
    try:
        import time

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            # the participant is up once the node has created its sockets; give discovery a moment to join groups
            time.sleep(0.5)
            if any(f"pid={proc.pid}," in line for line in subprocess.run(
                    ["ss", "-uanp"], capture_output=True, text=True).stdout.splitlines()):
                time.sleep(1.0)
                break
        assert proc.poll() is None, proc.communicate()[0]
        groups = [line.split()[0] for line in open("/proc/net/igmp").read().splitlines() if line.startswith("\t\t")]
        assert SPDP_MULTICAST not in groups
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sros2_requested_the_node_runs_secured_or_not_at_all(tmp_path):
    """ROS_SECURITY_ENABLE with Enforce: a node must never come up unsecured. Here it cannot come up at all
    (no DDS-Security in this Fast DDS): one line, non-zero exit."""
    enclave = tmp_path / "keystore/enclaves/vla_il"
    enclave.mkdir(parents=True)
    for name in ("identity_ca.cert.pem", "cert.pem", "key.pem", "governance.p7s", "permissions.p7s",
                 "permissions_ca.cert.pem"):
        (enclave / name).write_text("not a certificate\n")
    env = dict(os.environ, ROS_SECURITY_ENABLE="true", ROS_SECURITY_STRATEGY="Enforce",
               ROS_SECURITY_KEYSTORE=str(tmp_path / "keystore"), ROS_SECURITY_ENCLAVE_OVERRIDE="/vla_il")
    proc = _start_mux(env)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode != 0, out
    assert "cannot start" in out and "Traceback" not in out, out
    assert "driving 14 joints" not in out
    print(out, file=sys.stderr)
