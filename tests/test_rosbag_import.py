"""rosbag2 -> LeRobot: bags recorded by this test from our own sim graph, imported, loaded back.

The recording: sim_bridge in real time (50 Hz, one 48x64 camera) plays two episodes while a
commander sends joint commands at 50 Hz; a recorder node in this process takes every message as
serialized on the wire (raw subscriptions), paused between episodes, and writes them with their receive
time into a sqlite3 and an MCAP rosbag2 with rosbags' writer, as `ros2 bag record` does.
"""

from __future__ import annotations

import math
import re
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.ros_harness import ROOT, wait_until
from training.datasets.rosbag_import import BagImportError, ImportOptions, import_bag
from vla_il_core import schema
from vla_il_core.profiles import load_profile

TOPICS = {
    "/joint_states": "sensor_msgs/msg/JointState",
    "/cameras/top/image_raw": "sensor_msgs/msg/Image",
    "/command": "sensor_msgs/msg/JointState",
    "/sim/episode": "vla_il_msgs/msg/EpisodeEvent",
}
EPISODE_STEPS = 40


def typestore():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    msg = (ROOT / "ros2_ws/src/vla_il_msgs/msg/EpisodeEvent.msg").read_text()
    store.register(get_types_from_msg(msg, "vla_il_msgs/msg/EpisodeEvent"))
    return store


def write_bag(path: Path, records: list[tuple[str, int, bytes]], storage: str, topics=TOPICS) -> Path:
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {t: writer.add_connection(t, kind, typestore=store) for t, kind in topics.items()}
        for topic, ns, raw in records:
            writer.write(conns[topic], ns, raw)
    return path


def synthetic_bag(path: Path, storage: str = "mcap", frames: int = 100, nan_states=(), nan_commands=(),
                  odd_images=None) -> Path:
    """A bag as aloha_sim records it, written directly (no sim): joint states, commands and 16x16 images at
    50 Hz from t = 1 s, the robot holding its start pose; NaN in the left waist of the frames listed;
    `odd_images` {frame: Image fields} replaces those frames' image fields."""
    from sim.aloha import robot

    store = typestore()
    types = store.types
    js, img = TOPICS["/joint_states"], TOPICS["/cameras/top/image_raw"]

    def header(ns):
        return types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id=""
        )

    def joints(ns, nan):
        position = robot.START_STATE.astype(float).copy()
        position[0] = np.nan if nan else position[0]
        return types[js](header=header(ns), name=list(robot.JOINT_NAMES), position=position,
                         velocity=np.zeros(0), effort=np.zeros(0))

    records = []
    for k in range(frames):
        ns = 10**9 + k * 20_000_000
        fields = dict(height=16, width=16, encoding="rgb8", is_bigendian=0, step=48,
                      data=np.full(16 * 16 * 3, 100, np.uint8)) | (odd_images or {}).get(k, {})
        image = types[img](header=header(ns), **fields)
        records += [
            ("/joint_states", ns, bytes(store.serialize_cdr(joints(ns, k in nan_states), js))),
            ("/command", ns, bytes(store.serialize_cdr(joints(ns, k in nan_commands), js))),
            ("/cameras/top/image_raw", ns, bytes(store.serialize_cdr(image, img))),
        ]
    topics = {t: TOPICS[t] for t in ("/joint_states", "/command", "/cameras/top/image_raw")}
    return write_bag(path, records, storage, topics)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Messages of two sim episodes as (topic, receive ns, CDR bytes), and the bags made of them."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from vla_il_msgs.msg import EpisodeEvent
    from vla_il_msgs.srv import ResetSim

    from sim.aloha import robot
    from tests.ros_harness import NodeProcess, Probe

    tmp = tmp_path_factory.mktemp("bags")
    bridge = NodeProcess(
        "sim_bridge",
        tmp,
        params={
            "mode": "realtime",
            "fps": 50.0,
            "cameras": ["top"],
            "image_height": 48,
            "image_width": 64,
            "episode_length": EPISODE_STEPS,
            "end_on_success": False,
        },
    )
    probe = Probe("bag_recorder")
    records: list[tuple[str, int, bytes]] = []
    recording_on = threading.Event()
    done_events = []
    try:

        def keep(topic):
            return lambda raw: records.append((topic, time.time_ns(), bytes(raw))) if recording_on.is_set() else None

        for topic, qos in (
            ("/joint_states", 50),
            ("/command", 50),
            ("/cameras/top/image_raw", qos_profile_sensor_data),
            ("/sim/episode", 50),
        ):
            kind = {"/cameras/top/image_raw": Image, "/sim/episode": EpisodeEvent}.get(topic, JointState)
            probe.node.create_subscription(kind, topic, keep(topic), qos, raw=True)
        probe.node.create_subscription(EpisodeEvent, "/sim/episode", done_events.append, 50)
        command = probe.publisher(JointState, "/command")
        probe.wait_for_subscribers(command, timeout=120)  # the bridge's start-up is slow on a loaded machine
        stop = threading.Event()

        def commander():  # a teleop at 50 Hz: the left waist swings, the rest holds the start pose
            k = 0
            while not stop.is_set():
                target = robot.START_STATE.copy()
                target[0] = 0.3 * math.sin(k * 0.1)
                command.publish(JointState(name=list(robot.JOINT_NAMES), position=target.tolist()))
                k += 1
                time.sleep(0.02)

        thread = threading.Thread(target=commander, daemon=True)
        thread.start()
        for seed in (0, 1, 2):  # episode 0 plays before recording: the bag starts between episodes
            n = len(done_events)
            if seed:
                recording_on.set()  # the recorder runs while an episode plays ...
            assert probe.call(ResetSim, "/sim/reset", ResetSim.Request(task="", seed=seed), timeout=120).success
            assert wait_until(lambda n=n: len(done_events) > n, 10), bridge.log()
            time.sleep(0.05)  # (the episode's last messages in)
            # ... and is paused between episodes, as `ros2 bag record` can be: the sim holds still and goes on
            # publishing, as a robot's drivers do, but the bag has a gap in its streams
            recording_on.clear()
            time.sleep(0.3)
        stop.set()
        thread.join(2)
    finally:
        probe.close()
        bridge.stop()
    bags = {s: write_bag(tmp / f"sim_{s}", records, s) for s in ("sqlite3", "mcap")}
    return records, bags


def deserialize(records, topic):
    store = typestore()
    return [(ns, store.deserialize_cdr(raw, TOPICS[topic])) for t, ns, raw in records if t == topic]


def load(out: Path):
    from training.datasets.lerobot_io import open_dataset

    ds = open_dataset(out)
    table = ds.hf_dataset.with_format("numpy")
    return ds, np.stack(table[schema.STATE]), np.stack(table[schema.ACTION]), np.asarray(table["episode_index"])


def test_round_trip_sqlite3_and_mcap_give_the_same_dataset_that_lerobot_loads(recording, tmp_path):
    records, bags = recording
    profile = load_profile("aloha_sim")
    opts = ImportOptions(task="transfer the cube", action="command", split="gap")
    report = import_bag(bags["sqlite3"], profile, tmp_path / "a", opts, log=lambda _m: None)
    report_mcap = import_bag(bags["mcap"], profile, tmp_path / "b", opts, log=lambda _m: None)
    assert report_mcap.frames == report.frames and report_mcap.gap_ticks == report.gap_ticks
    assert report.episodes == 2, report.text()
    # each episode spans its recorded duration on the 50 Hz clock (the sim's timer may run late under load)
    times = np.array(
        [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for _, m in deserialize(records, "/joint_states")]
    )
    cuts = np.flatnonzero(np.diff(times) > 0.1)
    durations = [seg[-1] - seg[0] for seg in np.split(times, cuts + 1)]
    assert len(durations) == 2
    for n, duration in zip(_episode_lengths(tmp_path / "a"), durations):
        assert round(duration * 50) - 1 <= n <= round(duration * 50) + 5, (n, duration, report.text())
    assert report.gap_ticks["/joint_states"] > 0  # the hold between episodes, counted
    ds, state, action, episode = load(tmp_path / "a")
    _, state_b, action_b, _ = load(tmp_path / "b")
    assert np.array_equal(state, state_b) and np.array_equal(action, action_b)
    assert ds.num_episodes == 2 and len(ds) == report.frames
    # nearest: every state is one of the recorded joint states, every action one of the sent commands
    joints = np.array([m.position for _, m in deserialize(records, "/joint_states")], dtype=np.float32)
    commands = np.array([m.position for _, m in deserialize(records, "/command")], dtype=np.float32)
    assert all((np.abs(joints - row).max(axis=1) == 0).any() for row in state)
    assert all((np.abs(commands - row).max(axis=1) == 0).any() for row in action)
    assert np.ptp(action[:, 0]) > 0.2  # the swinging waist made it through
    # images: the decoded video frame is the recorded image nearest in time (lossy codec: close, not equal)
    images = [
        (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, np.frombuffer(m.data, np.uint8).reshape(48, 64, 3))
        for _, m in deserialize(records, "/cameras/top/image_raw")
    ]
    item = ds[5]
    got = (item[schema.image_key("top")].numpy().transpose(1, 2, 0) * 255).astype(np.float32)
    errors = [np.abs(got - img.astype(np.float32)).mean() for _, img in images]
    assert min(errors) < 6.0, min(errors)
    assert item["task"] == "transfer the cube"
    assert report.frames_per_s > 0 and "frames/s" in report.text()


def _episode_lengths(out: Path) -> list[int]:
    _, _, _, episode = load(out)
    return [int((episode == e).sum()) for e in np.unique(episode)]


def test_split_by_topic_length_and_next_state_actions(recording, tmp_path):
    _, bags = recording
    profile = load_profile("aloha_sim")
    by_topic = import_bag(
        bags["mcap"],
        profile,
        tmp_path / "topic",
        ImportOptions(task="t", split="topic", split_topic="/sim/episode"),
        log=lambda _m: None,
    )
    assert by_topic.episodes == 2
    by_length = import_bag(
        bags["mcap"],
        profile,
        tmp_path / "length",
        ImportOptions(task="t", split="length", episode_length_s=0.3, min_episode_frames=5),
        log=lambda _m: None,
    )
    lengths = _episode_lengths(tmp_path / "length")
    assert by_length.episodes >= 4 and max(lengths) == 15
    import_bag(
        bags["mcap"], profile, tmp_path / "next", ImportOptions(task="t", action="next_state"), log=lambda _m: None
    )
    _, state, action, episode = load(tmp_path / "next")
    same = episode[1:] == episode[:-1]
    assert np.array_equal(action[:-1][same], state[1:][same])  # the action is the next state


def test_interpolation_lies_between_the_recorded_samples(recording, tmp_path):
    records, bags = recording
    import_bag(
        bags["mcap"],
        load_profile("aloha_sim"),
        tmp_path / "interp",
        ImportOptions(task="t", sync="interpolate", fps=70.0),
        log=lambda _m: None,
    )
    _, state, _, _ = load(tmp_path / "interp")
    waist = np.array([m.position[0] for _, m in deserialize(records, "/joint_states")], dtype=np.float32)
    exact = [(np.abs(waist - v) == 0).any() for v in state[:, 0]]
    assert not all(exact)  # at 70 Hz most ticks fall between two 50 Hz samples
    assert state[:, 0].min() >= waist.min() - 1e-6 and state[:, 0].max() <= waist.max() + 1e-6


def test_backwards_timestamps_are_skipped_and_counted(recording, tmp_path):
    records, _ = recording
    store = typestore()
    joint_records = [i for i, r in enumerate(records) if r[0] == "/joint_states"]
    i = joint_records[20]
    msg = store.deserialize_cdr(records[i][2], TOPICS["/joint_states"])
    msg.header.stamp.sec -= 1  # one second in the past
    bad = list(records)
    bad[i] = (records[i][0], records[i][1], bytes(store.serialize_cdr(msg, TOPICS["/joint_states"])))
    bag = write_bag(tmp_path / "backwards", bad, "mcap")
    logs = []
    report = import_bag(bag, load_profile("aloha_sim"), tmp_path / "out", ImportOptions(task="t"), log=logs.append)
    assert report.backwards["/joint_states"] == 1 and report.episodes >= 2
    assert any("backwards" in line for line in logs) and "1 backwards" in report.text()


def test_a_bag_without_the_profiles_topics_is_refused(recording, tmp_path):
    _, bags = recording
    with pytest.raises(BagImportError, match="no command topic of profile 'ros2_control_arm'"):
        import_bag(bags["mcap"], load_profile("ros2_control_arm"), tmp_path / "x", ImportOptions(task="t"))
    with pytest.raises(BagImportError, match=r"lacks topic\(s\) /cameras/wrist/image_raw"):
        import_bag(
            bags["mcap"], load_profile("ros2_control_arm"), tmp_path / "x", ImportOptions(task="t", action="next_state")
        )
    with pytest.raises(BagImportError, match="does not exist"):
        import_bag(tmp_path / "nope", load_profile("aloha_sim"), tmp_path / "x", ImportOptions(task="t"))
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_aloha_layout_two_follower_arms_and_four_cameras(recording, tmp_path):
    """The same recording as the real ALOHA publishes it: per-arm joint states, finger metres, 4 cameras."""
    from sensor_msgs.msg import JointState  # noqa: F401 - the typestore's JointState is what we write

    records, _ = recording
    store = typestore()
    profile = load_profile("aloha")
    kind = TOPICS["/joint_states"]
    out_records, topics = [], {}
    for topic, ns, raw in records:
        if topic == "/joint_states":
            msg = store.deserialize_cdr(raw, kind)
            for side, arm in (("left", msg.position[:7]), ("right", msg.position[7:])):
                finger = 0.0440 + arm[6] * (0.0579 - 0.0440)
                arm_msg = store.types[kind](
                    header=msg.header,
                    name=[
                        "waist",
                        "shoulder",
                        "elbow",
                        "forearm_roll",
                        "wrist_angle",
                        "wrist_rotate",
                        "gripper",
                        "left_finger",
                        "right_finger",
                    ],
                    position=np.array([*arm[:6], 1.0, finger, -finger]),
                    velocity=np.zeros(0),
                    effort=np.zeros(0),
                )
                out_records.append((f"/follower_{side}/joint_states", ns, bytes(store.serialize_cdr(arm_msg, kind))))
                topics[f"/follower_{side}/joint_states"] = kind
        elif topic == "/cameras/top/image_raw":
            for cam in profile.camera_names:
                out_records.append((f"/cameras/{cam}/image_raw", ns, raw))
                topics[f"/cameras/{cam}/image_raw"] = TOPICS[topic]
    bag = write_bag(tmp_path / "aloha_bag", out_records, "sqlite3", topics)
    report = import_bag(
        bag, profile, tmp_path / "aloha_ds", ImportOptions(task="t", action="next_state"), log=lambda _m: None
    )
    assert report.episodes == 2
    ds, state, _, _ = load(tmp_path / "aloha_ds")
    assert set(schema.cameras_of(ds.meta.features)) == set(profile.camera_names)
    joints = np.array([m.position for _, m in deserialize(records, "/joint_states")], dtype=np.float32)
    # the grippers come back normalised from finger metres, to float32 precision
    assert all(np.abs(joints - row).max(axis=1).min() < 1e-5 for row in state)


def test_cli_import_bag(recording, tmp_path, capsys):
    from vla_il.cli import main

    _, bags = recording
    out = tmp_path / "cli"
    code = main(["import-bag", str(bags["mcap"]), "--profile", "aloha_sim", "--out", str(out), "--task", "grab it"])
    printed = capsys.readouterr().out
    assert code == 0 and "2 episodes" in printed and "frames/s" in printed
    assert main(["import-bag", str(bags["mcap"]), "--profile", "aloha_sim", "--out", str(out), "--task", "x"]) == 2
    assert "exists" in capsys.readouterr().err
    shutil.rmtree(out)


def test_non_finite_joint_states_and_commands_are_dropped_and_counted(tmp_path):
    bag = synthetic_bag(tmp_path / "bag", nan_states=range(40, 45), nan_commands=(70,))
    logs = []
    report = import_bag(bag, load_profile("aloha_sim"), tmp_path / "out", ImportOptions(task="t"), log=logs.append)
    assert report.nonfinite == {"/joint_states": 5, "/cameras/top/image_raw": 0, "command": 1}, report.text()
    assert "5 non-finite samples dropped" in report.text() and any("NaN" in line for line in logs)
    assert report.episodes == 2  # the 100 ms without a finite joint state is a gap: it ends the episode
    _, state, action, _ = load(tmp_path / "out")
    assert np.isfinite(state).all() and np.isfinite(action).all() and len(state) == report.frames


def test_a_bag_with_no_finite_joint_state_is_refused(tmp_path):
    bag = synthetic_bag(tmp_path / "bag", frames=30, nan_states=range(30))
    with pytest.raises(BagImportError, match=r"/joint_states: all 30 samples hold NaN or infinite values"):
        import_bag(bag, load_profile("aloha_sim"), tmp_path / "out", ImportOptions(task="t"), log=lambda _m: None)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_truncated_bag_is_refused_with_its_name(storage, tmp_path):
    bag = synthetic_bag(tmp_path / "bag", storage=storage, frames=30)
    data = next(f for f in bag.iterdir() if f.suffix in (".db3", ".mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(BagImportError, match=rf"^{re.escape(str(bag))}: (cannot read this rosbag2|the bag is damaged)"):
        import_bag(bag, load_profile("aloha_sim"), tmp_path / "out", ImportOptions(task="t"), log=lambda _m: None)
    assert not (tmp_path / "out").exists()


def test_an_image_of_another_size_or_cut_short_is_refused_and_writes_nothing(tmp_path):
    """One size per dataset: an image of another size mid-bag, or one whose data is shorter than its size
    says, stops the import with a line naming the topic and the image, and no half-written dataset stays."""
    small = {"height": 8, "width": 8, "step": 24, "data": np.zeros(8 * 8 * 3, np.uint8)}
    bag = synthetic_bag(tmp_path / "bag", frames=60, odd_images={50: small})
    with pytest.raises(BagImportError, match=r"/cameras/top/image_raw: image 50 is 8x8, the first 16x16; one size"):
        import_bag(bag, load_profile("aloha_sim"), tmp_path / "out", ImportOptions(task="t"), log=lambda _m: None)
    assert not (tmp_path / "out").exists()
    short = {"data": np.zeros(10, np.uint8)}
    bag = synthetic_bag(tmp_path / "bag2", frames=60, odd_images={30: short})
    with pytest.raises(BagImportError, match=r"image 30 is unreadable: 16x16 rgb8 with rows of 48 bytes needs 768 "
                                             r"bytes, got 10; no dataset written"):
        import_bag(bag, load_profile("aloha_sim"), tmp_path / "out", ImportOptions(task="t"), log=lambda _m: None)
    assert not (tmp_path / "out").exists()


def test_an_unreadable_first_image_is_skipped_and_the_next_sets_the_size(tmp_path):
    bag = synthetic_bag(tmp_path / "bag", frames=60, odd_images={0: {"data": np.zeros(10, np.uint8)}})
    logs = []
    report = import_bag(bag, load_profile("aloha_sim"), tmp_path / "out", ImportOptions(task="t"), log=logs.append)
    assert report.skipped["/cameras/top/image_raw"] == 1, report.text()
    assert any("skipping /cameras/top/image_raw image 0: unreadable" in line for line in logs), logs
    ds, state, _, _ = load(tmp_path / "out")
    assert tuple(ds.meta.features[schema.image_key("top")]["shape"][:2]) == (16, 16) and len(state) == report.frames


def test_raw_images_are_read_as_rgb_whatever_their_row_padding_and_encoding():
    """vla_il_core.images.rgb_pixels on the ROS message itself (the display node's and the bag import's)."""
    from sensor_msgs.msg import Image

    from vla_il_core.images import rgb_pixels

    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.zeros((2, 12), np.uint8)  # rows of 12 bytes for 9 of pixels
    padded[:, :9] = rgb.reshape(2, 9)
    msg = Image(height=2, width=3, encoding="rgb8", step=12, data=padded.tobytes())
    assert np.array_equal(rgb_pixels(msg), rgb)
    msg = Image(height=2, width=3, encoding="bgr8", step=9, data=rgb[..., ::-1].tobytes())
    assert np.array_equal(rgb_pixels(msg), rgb)
    grey = rgb[..., 0]
    msg = Image(height=2, width=3, encoding="mono8", step=3, data=grey.tobytes())
    assert np.array_equal(rgb_pixels(msg), np.repeat(grey[..., None], 3, axis=2))
    with pytest.raises(ValueError, match=r"encoding 'yuv422' \(read: rgb8, bgr8, mono8\)"):
        rgb_pixels(Image(height=2, width=3, encoding="yuv422", step=6, data=bytes(12)))
    with pytest.raises(ValueError, match="3x2 rgb8 with rows of 9 bytes needs 18 bytes, got 17"):
        rgb_pixels(Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(17)))
