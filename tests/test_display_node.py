"""The live view (display_node) as a real process over DDS: what the loop publishes arrives in rerun, read
back from the .rrd it saved with rerun's own dataframe API. Publishers here stand in for the graph's nodes
(the policy node, the mux and the teleop are tested on their own): the view only listens."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from vla_il_msgs.msg import InterventionEvent, PolicyStatus

from tests.ros_harness import LATCHED, wait_until

pytestmark = pytest.mark.ros
NAMES = [f"j{i}" for i in range(3)]
T0 = 10.0  # the checked messages are stamped from here on


def header(t: float) -> Header:
    return Header(stamp=Time(sec=int(t), nanosec=int(round((t % 1) * 1e9))))


def read(path):
    import rerun.dataframe as rdf

    table = rdf.load_recording(str(path)).view(index="ros_time", contents="/**").select().read_all()
    return {name: table.column(name).to_pylist() for name in table.column_names}


def values(column):
    return [v for v in column if v is not None]


def test_the_live_view_shows_cameras_joints_proposals_drivers_takeovers_and_latency(probe, node_process, tmp_path):
    rrd = tmp_path / "live.rrd"
    node = node_process("display_node", params={"cameras": ["top"], "sink": "save", "save_path": str(rrd),
                                                "max_image_rate_hz": 0.0})
    pubs = {name: probe.publisher(JointState, name) for name in ("joint_states", "policy/action", "teleop/action",
                                                                  "command")}
    image = probe.publisher(Image, "cameras/top/image_raw")
    switch = probe.publisher(InterventionEvent, "intervention", LATCHED)
    status = probe.publisher(PolicyStatus, "policy/status")
    for p in [*pubs.values(), image, switch, status]:
        probe.wait_for_subscribers(p, timeout=20)
    assert node.wait_for_log("live view of top", 20), node.log()

    def joints(topic: str, t: float, offset: float) -> None:
        pubs[topic].publish(JointState(header=header(t), name=NAMES, position=[offset + t, offset, -offset]))

    frame = np.zeros((24, 32, 3), np.uint8)
    frame[:, :16] = (255, 0, 0)

    def picture(t: float) -> Image:
        return Image(header=header(t), height=24, width=32, encoding="rgb8", step=96, data=frame.tobytes())

    # Pre-roll before T0: a publisher sees the node's reader before the node's reader has matched it (discovery
    # is one-sided for a moment), and a best-effort reader drops what arrives before. The pre-roll goes on
    # until the node has said it receives every topic; only what is stamped from T0 on is checked.
    topics = [*pubs, "cameras/top/image_raw", "policy/status"]
    for i in range(400):
        if all(f"live view: receiving {t}" in node.log() for t in topics):
            break
        for topic in pubs:
            joints(topic, 0.001 * i, 0.0)
        image.publish(picture(0.001 * i))
        status.publish(PolicyStatus(header=header(0.001 * i), state="starting"))
        wait_until(lambda: False, 0.05)
    else:
        raise AssertionError(f"the node never heard every topic:\n{node.log()}")

    for k in range(20):
        t = T0 + 0.02 * k
        if k == 5:
            switch.publish(InterventionEvent(header=header(t), driver="expert", previous_driver="policy",
                                             reason="expert engaged", switch_count=1))
        if k == 12:
            switch.publish(InterventionEvent(header=header(t), driver="policy", previous_driver="expert",
                                             reason="hand-back", switch_count=2))
        for topic, offset in (("joint_states", 0.0), ("policy/action", 1.0), ("teleop/action", 2.0)):
            joints(topic, t, offset)
        if k % 4 == 0:
            image.publish(picture(t))
            status.publish(PolicyStatus(header=header(t), state="running", latency_p50_ms=3.0 + k,
                                        latency_p99_ms=9.0 + k))
        wait_until(lambda: False, 0.05)  # let the switch land before the command it precedes
        joints("command", t, 3.0)
    bad = Image(header=header(T0 + 1.0), height=24, width=32, encoding="yuv422", step=64, data=bytes(24 * 64))
    image.publish(bad)
    assert node.wait_for_log("not shown: encoding 'yuv422'", 10), node.log()
    wait_until(lambda: False, 0.5)
    assert node.stop() == 0
    got = read(rrd)

    def seconds(t) -> float:
        return t.total_seconds() if hasattr(t, "total_seconds") else t / 1e9

    def checked(column: str) -> list:  # the values stamped from T0 on, the pre-roll left out
        return [(seconds(t), v) for t, v in zip(got["ros_time"], got[column]) if v is not None and seconds(t) >= T0]

    assert values(got["/joints/measured:SeriesLines:names"])[0] == NAMES
    for stream, offset in (("measured", 0.0), ("policy", 1.0), ("expert", 2.0), ("command", 3.0)):
        rows = checked(f"/joints/{stream}:Scalars:scalars")
        assert len(rows) == 20, stream
        for t, v in rows:
            np.testing.assert_allclose(v, [offset + t, offset, -offset], atol=1e-6)
    images = [v for _, v in checked("/cameras/top:EncodedImage:blob")]
    assert len(images) == 5  # every frame, the yuv422 one refused
    import cv2

    decoded = cv2.imdecode(np.asarray(images[0][0], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert decoded.shape == (24, 32, 3) and decoded[:, :16, 0].mean() > 200 and decoded[:, 16:].mean() < 30
    expert_band = [v for _, v in checked("/driver/expert:Scalars:scalars")]
    assert sum(1 for v in expert_band if not np.isnan(v[0])) == 7  # the 7 commands the expert drove
    assert values(got["/driver/takeovers:Scalars:scalars"])[-1] == [1.0]
    events = [e[0] for e in values(got["/events:TextLog:text"])]
    assert "the expert took over (expert engaged): takeover 1" in events
    assert "policy drives again (hand-back)" in events and "policy node: running" in events
    assert [v for _, v in checked("/policy/latency_p50_ms:Scalars:scalars")] == [[3.0 + k] for k in range(0, 20, 4)]
