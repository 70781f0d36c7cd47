"""The DAgger recorder as a real process over DDS: episodes on disk and services (kill -9, a second
recorder, a full disk, parameters and signals: tests/test_recorder_safety.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from vla_il_msgs.msg import EpisodeEvent, InterventionEvent
from vla_il_msgs.srv import StartEpisode, StopEpisode

from sim.aloha import robot
from tests.ros_harness import CONFIG, LATCHED, RELIABLE, wait_until
from training.datasets.lerobot_io import open_dataset
from vla_il_core import schema

pytestmark = pytest.mark.ros

H, W = 48, 64
NAMES = list(robot.JOINT_NAMES)


def stamp(t: float) -> Time:
    return Time(sec=int(t), nanosec=int((t - int(t)) * 1e9))


class FakeRobot:
    """Publishes what a lockstep graph would, step by step, with explicit stamps: the recorder's inputs."""

    def __init__(self, probe, cameras=("top",), size=(H, W)):
        self.probe = probe
        self.size = size
        self.joints = probe.publisher(JointState, "joint_states")
        self.images = {c: probe.publisher(Image, f"cameras/{c}/image_raw", RELIABLE) for c in cameras}
        self.command = probe.publisher(JointState, "command")
        self.policy = probe.publisher(JointState, "policy/action")
        self.teleop = probe.publisher(JointState, "teleop/action")
        self.intervention = probe.publisher(InterventionEvent, "intervention", LATCHED)
        self.events = probe.collect(EpisodeEvent, "recorder/episode", LATCHED)
        self.k = 0

    def _inputs(self):
        return (self.joints, self.command, self.policy, self.teleop, *self.images.values())

    def subscriber_gids(self) -> set[bytes]:
        """The subscription endpoints on the recorder's input topics right now."""
        node = self.probe.node
        return {bytes(i.endpoint_gid) for pub in self._inputs() for i in node.get_subscriptions_info_by_topic(
            node.resolve_topic_name(pub.topic_name))}

    def wait_for_recorder(self, not_these: set[bytes] = frozenset()):
        """Every input topic has a subscriber; after a restart, one that is not among `not_these` (a killed
        process's endpoints linger in discovery for a while and would count as subscribers)."""
        node = self.probe.node
        for pub in self._inputs():
            topic = node.resolve_topic_name(pub.topic_name)
            assert wait_until(lambda t=topic: any(bytes(i.endpoint_gid) not in not_these
                                                  for i in node.get_subscriptions_info_by_topic(t)), 10), topic

    def step(self, driver: str | None = None, image_delay: float = 0.0, policy_nan: bool = False):
        """One control step: observation (image value = step % 256), proposals, then the command."""
        k, t = self.k, time.time()
        self.k += 1
        head = Header(stamp=stamp(t))
        self.joints.publish(JointState(header=head, name=NAMES, position=[float(k)] * 14))
        if driver:
            self.intervention.publish(InterventionEvent(header=Header(stamp=stamp(t + 0.0005)), driver=driver))
        policy = [float("nan")] * 14 if policy_nan else [1000.0 + k] * 14
        self.policy.publish(JointState(header=Header(stamp=stamp(t + 0.001)), name=NAMES, position=policy))
        self.teleop.publish(JointState(header=head, name=NAMES, position=[2000.0 + k] * 14))

        def publish_images():
            h, w = self.size
            for cam, pub in self.images.items():
                data = np.full((h, w, 3), k % 256, np.uint8).tobytes()
                head = Header(stamp=stamp(t), frame_id=cam)
                pub.publish(Image(header=head, height=h, width=w, encoding="rgb8", step=w * 3, data=data))

        if image_delay:  # the camera lags: its image of this step comes after the command
            threading.Timer(image_delay, publish_images).start()
        else:
            publish_images()
        self.command.publish(JointState(header=Header(stamp=stamp(t + 0.002)), name=NAMES, position=[3000.0 + k] * 14))
        time.sleep(0.02)  # 50 Hz: neighbouring observations are further apart than the tolerance


def start_recorder(node_process, record_dir, **params):
    """The recorder with the ALOHA parameter file and small images; cameras=[] records none."""
    files = [CONFIG / "dagger_recorder.yaml"]
    if params.get("cameras") == []:  # an empty list on the command line does not override the file's
        files, params = [], {k: v for k, v in params.items() if k != "cameras"}
    base = {
        "record_dir": str(record_dir),
        "joint_names": NAMES,
        "cameras": ["top"],
        "image_height": H,
        "image_width": W,
        "image_reliability": "reliable",
        "min_free_mb": 1.0,
        "image_writer_threads": 1,
        "instruction": "pick up the cube",
    }
    if not files:
        del base["cameras"]
    return node_process("dagger_recorder", params_files=files, params={**base, **params})


def start(probe, task=""):
    return probe.call(StartEpisode, "dagger_recorder/start_episode", StartEpisode.Request(task=task))


def stop(probe, success=True, discard=False, wait_saved=True):
    """Stop the episode; by default the answer waits until it is saved (wait_saved=False: encoded in the
    background, the answer comes at once)."""
    req = StopEpisode.Request(task_success=success, discard=discard, wait_saved=wait_saved)
    return probe.call(StopEpisode, "dagger_recorder/stop_episode", req, timeout=60)


@pytest.fixture
def rig(probe, node_process, tmp_path):
    rec = start_recorder(node_process, tmp_path / "rec")
    robot_ = FakeRobot(probe)
    assert rec.wait_for_log("ready:", timeout=180), rec.log()  # lerobot (torch) takes a while to import
    robot_.wait_for_recorder()
    return rec, robot_, tmp_path / "rec"


def test_records_one_frame_per_command_with_matching_observations_and_flags(rig, probe):
    rec, bot, root = rig
    assert start(probe).success
    drivers = ["policy"] * 5 + ["expert"] * 5 + ["policy"] * 5
    for k, d in enumerate(drivers):
        bot.step(driver=d)
        if k in (3, 4):  # a camera publishing the wrong encoding, then the wrong size: refused, by topic, counted
            size = (H, W) if k == 3 else (H // 2, W // 2)
            bad = Image(height=size[0], width=size[1], encoding="bgr8" if k == 3 else "rgb8", step=size[1] * 3,
                        data=bytes(size[0] * size[1] * 3))
            bot.images["top"].publish(bad)
    done = stop(probe, success=True)
    assert done.success and done.num_frames == 15, done.message
    assert f"1x images on /cameras/top/image_raw: bgr8 {W}x{H}" in done.message, done.message
    assert f"1x images on /cameras/top/image_raw: rgb8 {W // 2}x{H // 2}" in done.message, done.message
    assert wait_until(lambda: any(e.event == "saved" for e in bot.events), 10)
    saved = next(e for e in bot.events if e.event == "saved")
    assert saved.intervention_frames == 5 and saved.dropped_frames == 0 and saved.success

    ds = open_dataset(root / "dataset")
    table = ds.hf_dataset.with_format("numpy")
    state = np.stack(table[schema.STATE])[:, 0]
    assert list(state) == list(range(15))
    # every frame's action is its own command, its labels the proposals for the same observation
    assert np.all(np.stack(table[schema.ACTION])[:, 0] == 3000 + state)
    assert np.all(np.stack(table[schema.POLICY_ACTION])[:, 0] == 1000 + state)
    assert np.all(np.stack(table[schema.EXPERT_ACTION])[:, 0] == 2000 + state)
    assert list(np.asarray(table[schema.INTERVENTION]).reshape(-1)) == [d == "expert" for d in drivers]
    frame = ds[12]
    assert abs(float(frame[schema.image_key("top")].mean()) * 255 - 12) < 2  # the image of step 12
    assert ds.meta.tasks.index[0] == "pick up the cube"


def test_the_sims_done_before_its_last_command_still_keeps_that_frame(rig, probe):
    """The sim publishes "done" right after stepping with the last command; the recorder may hear the event
    (sim/episode) before that command (another topic): the episode waits for it."""
    rec, bot, root = rig
    sim_episode = probe.publisher(EpisodeEvent, "sim/episode")
    probe.wait_for_subscribers(sim_episode)
    assert start(probe).success
    for _ in range(4):
        bot.step()
    command = bot.command
    late = []
    bot.command = type("Held", (), {"publish": lambda _self, msg: late.append(msg)})()
    bot.step()  # the 5th step's command is held back
    bot.command = command
    sim_episode.publish(EpisodeEvent(event=EpisodeEvent.EVENT_DONE, num_frames=5, success=True))
    time.sleep(0.1)
    command.publish(late[0])
    assert wait_until(lambda: any(e.event == "saved" for e in bot.events), 10), rec.log()
    saved = next(e for e in bot.events if e.event == "saved")
    assert saved.num_frames == 5 and saved.dropped_frames == 0, saved.message
    table = open_dataset(root / "dataset").hf_dataset.with_format("numpy")
    assert list(np.stack(table[schema.ACTION])[:, 0]) == [3000.0 + k for k in range(5)]


def test_a_command_answering_an_observation_from_before_the_start_is_no_frame(rig, probe):
    """A lockstep sim re-sends its held observation while it waits for the recorder to start an episode; the
    controller's answer to it can reach the recorder just after the start (seen in CI under load: 21 frames
    for a 20-step episode). The episode begins with the first observation after its start."""
    rec, bot, root = rig
    t = time.time()
    bot.joints.publish(JointState(header=Header(stamp=stamp(t)), name=NAMES, position=[-1.0] * 14))
    bot.images["top"].publish(Image(header=Header(stamp=stamp(t), frame_id="top"), height=H, width=W,
                                    encoding="rgb8", step=W * 3, data=bytes(H * W * 3)))
    time.sleep(1.0)  # the recorder has it (loopback, reliable)
    assert start(probe).success
    bot.command.publish(JointState(header=Header(stamp=stamp(t + 0.002)), name=NAMES, position=[2999.0] * 14))
    time.sleep(0.1)
    for _ in range(3):
        bot.step()
    done = stop(probe)
    assert done.success and done.num_frames == 3, done.message
    table = open_dataset(root / "dataset").hf_dataset.with_format("numpy")
    assert list(np.stack(table[schema.ACTION])[:, 0]) == [3000.0, 3001.0, 3002.0]
    assert list(np.stack(table[schema.STATE])[:, 0]) == [0.0, 1.0, 2.0]


def test_the_next_episode_starts_while_the_last_one_encodes(rig, probe):
    rec, bot, root = rig
    assert start(probe).success
    for _ in range(5):
        bot.step(driver="expert")
    first = stop(probe, wait_saved=False)  # answered at once: the images are encoded in the background
    assert first.success and first.episode_index == 0 and first.num_frames == 5, first.message
    assert "encoding in the background" in first.message
    second = start(probe)
    assert second.success and second.episode_index == 1, second.message
    for _ in range(3):
        bot.step(driver="policy")
    assert stop(probe, wait_saved=False).success
    assert wait_until(lambda: sum(e.event == "saved" for e in bot.events) == 2, 60), rec.log()
    saved = [e for e in bot.events if e.event == "saved"]
    assert [(e.episode_index, e.num_frames, e.intervention_frames) for e in saved] == [(0, 5, 5), (1, 3, 0)]
    ds = open_dataset(root / "dataset")
    assert ds.meta.total_episodes == 2 and ds.meta.total_frames == 8


def test_discard_and_bad_requests_answer_clearly(rig, probe):
    rec, bot, root = rig
    assert "no episode" in stop(probe).message
    assert start(probe).success
    again = start(probe)
    assert not again.success and "stop or discard it first" in again.message
    for _ in range(3):
        bot.step()
    gone = stop(probe, discard=True)
    assert gone.success and "discarded" in gone.message
    assert not (root / "dataset").exists()
    assert start(probe).episode_index == 0  # the discarded episode took no index
