"""vla_il.rosgraph's service calls against real node processes."""

from __future__ import annotations

import time

from tests.ros_harness import CONFIG, NodeProcess, wait_until


def test_a_call_right_after_the_server_restarts_is_answered_once(probe, tmp_path):
    """A killed node stays in discovery for its DDS lease (about 20 s): the first request after its restart
    went to the dead server and the call hung for its whole timeout (it did on the old Probe.call)."""
    from std_srvs.srv import Trigger

    def start() -> NodeProcess:
        return NodeProcess("intervention_mux", tmp_path, params_files=[CONFIG / "intervention_mux.yaml"])

    first = start()
    try:
        assert probe.call(Trigger, "/intervention_mux/hold", Trigger.Request(), timeout=60).success, first.log()
        first.proc.kill()  # no goodbye to discovery: as a crash or a power cut leaves it
        first.proc.wait(timeout=10)
    finally:
        first.stop()
    restarted = start()
    try:
        started = time.monotonic()
        reply = probe.call(Trigger, "/intervention_mux/hold", Trigger.Request(), timeout=15)
        assert reply.success, restarted.log()
        assert time.monotonic() - started < 15
        # a request the new server could have received is not sent again: it held once
        assert wait_until(lambda: "hold requested" in restarted.log(), 5)
        time.sleep(0.5)
        assert restarted.log().count("hold requested") == 1, restarted.log()
    finally:
        restarted.stop()


def test_a_slow_server_is_asked_once(probe):
    """No new server appears while a slow one works: the request is not sent again (a sim reset or a
    recorder's stop must not run twice)."""
    from std_srvs.srv import Trigger

    handled = []

    def slow(_req, resp):  # runs on the probe's executor thread; the call waits on this one
        handled.append(time.monotonic())
        time.sleep(1.5)
        resp.success = True
        return resp

    probe.node.create_service(Trigger, "slow_trigger", slow)
    assert probe.call(Trigger, "slow_trigger", Trigger.Request(), timeout=10).success
    time.sleep(0.5)
    assert len(handled) == 1


def test_nodes_stop_when_the_process_that_started_them_is_killed(tmp_path):
    """`vla-il demo` killed with SIGKILL (or SIGTERM, which runs no cleanup either) must not leave its nodes
    running and publishing: each node gets SIGINT, its clean stop, when its parent dies."""
    import os
    import signal
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from vla_il.rosgraph import CONFIG, NodeProcess\n"
        "n = NodeProcess('intervention_mux', Path(sys.argv[1]), params_files=[CONFIG / 'intervention_mux.yaml'])\n"
        "print(n.proc.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    log = next(tmp_path.glob("intervention_mux-*.log"))
    assert wait_until(lambda: "intervention_mux" in log.read_text() or _gone(child), 30)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    assert wait_until(lambda: _gone(child), 15), log.read_text()[-2000:]
    assert not os.path.exists(f"/proc/{child}") or _gone(child)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"  # a zombie: exited, not yet reaped (its parent died)
    except FileNotFoundError:
        return True


def test_a_service_is_called_through_one_client_that_stays_matched(probe):
    """A server drops a reply to a client whose reply reader it has not discovered yet (rmw_fastrtps waits
    100 ms for it): a new client per call risked that on every call (seen once in CI, a call unanswered
    for 60 s). The probe's client for a service stays, so its servers have matched it after the first call."""
    from std_srvs.srv import Trigger

    probe.node.create_service(Trigger, "kept_trigger", lambda _req, resp: resp)

    def reply_readers() -> set[bytes]:
        infos = probe.node.get_subscriptions_info_by_topic("rr/kept_triggerReply", no_mangle=True)
        return {bytes(i.endpoint_gid) for i in infos}

    probe.call(Trigger, "kept_trigger", Trigger.Request(), timeout=10)
    first = reply_readers()
    assert len(first) == 1
    probe.call(Trigger, "kept_trigger", Trigger.Request(), timeout=10)
    assert reply_readers() == first


def test_an_idempotent_call_whose_reply_was_lost_is_sent_again(probe):
    """A server that has not yet matched a new client's reply reader handles the request and rmw_fastrtps drops
    the reply (a leader engaged, its call timed out: CI). The server here handles its first request and sends
    nothing back, as that server did; an idempotent call is asked again and answered, any other call is not
    (the server could have run it)."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from std_srvs.srv import SetBool

    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("forgetful_server", context=context)
    handled: list[bool] = []

    def engage(req, resp):
        handled.append(req.data)
        if len(handled) == 1:
            raise LookupError("the first reply goes nowhere")  # taken and handled, no reply sent
        resp.success = True
        return resp

    node.create_service(SetBool, "forgetful_engage", engage)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            try:
                executor.spin_once(timeout_sec=0.05)
            except LookupError:
                pass

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        assert probe.call(SetBool, "forgetful_engage", SetBool.Request(data=True), timeout=10, idempotent=True).success
        assert handled == [True, True]
        handled.clear()
        started = time.monotonic()
        try:
            probe.call(SetBool, "forgetful_engage", SetBool.Request(data=True), timeout=3)
        except TimeoutError:
            pass
        else:
            raise AssertionError("a call that is not idempotent was answered after its reply was lost")
        assert time.monotonic() - started >= 3
        assert handled == [True]  # asked once
    finally:
        stop.set()
        thread.join(timeout=2)
        executor.shutdown(timeout_sec=1)
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_no_copy_of_an_idempotent_request_runs_after_the_call_returned(probe):
    """A slow server gets an idempotent request again (its first reply may have been lost): the call returns
    only once every copy was handled, or a copy would land after what the caller does next (a gate reset
    after the episode's start)."""
    from std_srvs.srv import Trigger

    handled = []

    def slow(_req, resp):
        time.sleep(1.5)
        handled.append(time.monotonic())
        resp.success = True
        return resp

    probe.node.create_service(Trigger, "slow_idempotent", slow)
    assert probe.call(Trigger, "slow_idempotent", Trigger.Request(), timeout=10, idempotent=True).success
    returned, count = time.monotonic(), len(handled)
    time.sleep(2.0)
    assert count == len(handled) == 2, handled  # asked again after 1 s, both handled before the call returned
    assert max(handled) <= returned
