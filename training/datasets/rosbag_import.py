"""rosbag2 recordings (sqlite3 or MCAP) -> a LeRobot v3 dataset, through a robot profile. No ROS needed.

    vla-il import-bag <bag dir> --profile aloha --out <dataset> --task "pick up the cube"

What the profile names is read from the bag: the joint states (its adapter's per-arm topics, or
topics.joint_states), the cameras' topics (sensor_msgs/Image, or CompressedImage), and the commands.
Everything is resampled onto the control clock (the profile's rate, or --fps): joint states nearest
or linearly interpolated, images nearest. A tick where a stream has no sample within `max_skew_s`
is a gap: it is dropped, counted per stream, and ends the episode (a dataset never silently jumps
in time). Episodes also end at the messages of a topic (--split topic), or every N seconds (--split
length). Actions are the command in force until the next tick (--action command) or the next state
(--action next_state). The report gives the gaps, the skips (timestamps going backwards, messages
without the profile's joints, joint states and commands with NaN or infinite values: a dataset never
holds them) and the time skew of each stream against the control clock.

The bag is read twice: first the timestamps and joint values, then the images, each decoded only
when a frame needs it, so memory stays bounded for long multi-camera recordings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_il_core import schema
from vla_il_core.images import ENCODINGS, rgb_pixels
from vla_il_core.profiles import RobotProfile, StateSource

SYNC_MODES = ("nearest", "interpolate")
ACTION_SOURCES = ("command", "next_state")
SPLIT_MODES = ("gap", "topic", "length")
TIME_SOURCES = ("header", "receive")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


class BagImportError(ValueError):
    """A bag that cannot become a dataset under this profile; the message says what is missing."""


@dataclass(frozen=True)
class ImportOptions:
    task: str
    fps: float = 0.0  # 0: the profile's control rate
    sync: str = "nearest"
    action: str = "command"
    split: str = "gap"
    split_topic: str = ""
    episode_length_s: float = 0.0
    max_skew_s: float = 0.0  # a sample further than this from a tick makes it a gap (0: two control periods)
    min_episode_frames: int = 10
    time_source: str = "header"  # header stamps (capture time) when set, else the bag's receive time
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("sync", self.sync, SYNC_MODES),
            ("action", self.action, ACTION_SOURCES),
            ("split", self.split, SPLIT_MODES),
            ("time_source", self.time_source, TIME_SOURCES),
        ):
            if value not in allowed:
                raise BagImportError(f"{name}: one of {', '.join(allowed)}, got {value!r}")
        if not self.task.strip():
            raise BagImportError("task: the language instruction of these episodes is required")
        if self.split == "topic" and not self.split_topic:
            raise BagImportError("split topic: name the topic whose messages end episodes (--split-topic)")
        if self.split == "length" and self.episode_length_s <= 0:
            raise BagImportError("split length: --episode-length (seconds) must be > 0")
        if self.fps < 0 or self.max_skew_s < 0 or self.min_episode_frames < 1:
            raise BagImportError("fps >= 0, max_skew_s >= 0 and min_episode_frames >= 1 are required")


@dataclass
class Stream:
    """One resampled input: sample times (s), values (joints) or message indices (images)."""

    name: str
    times: list[float] = field(default_factory=list)
    values: list = field(default_factory=list)
    backwards: int = 0
    skipped: int = 0  # messages without the profile's joints, or undecodable
    nonfinite: int = 0  # joint values or commands with NaN / inf: dropped

    def add(self, t: float, value) -> bool:
        if self.times and t <= self.times[-1]:
            self.backwards += 1
            return False
        self.times.append(t)
        self.values.append(value)
        return True


@dataclass
class ImportReport:
    bag: Path
    out: Path
    episodes: int = 0
    frames: int = 0
    ticks: int = 0
    gap_ticks: dict[str, int] = field(default_factory=dict)  # ticks dropped because of this stream
    backwards: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)  # samples dropped for NaN / inf values
    skew_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # stream -> (median, max) |t - tick|
    short_episodes: int = 0
    seconds: float = 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def text(self) -> str:
        lines = [
            f"{self.bag} -> {self.out}: {self.episodes} episodes, {self.frames} frames of {self.ticks} ticks "
            f"in {self.seconds:.1f} s ({self.frames_per_s:.0f} frames/s)"
        ]
        for name, (med, worst) in self.skew_ms.items():
            lines.append(
                f"  {name}: skew to the control clock median {med:.1f} ms, max {worst:.1f} ms; "
                f"{self.gap_ticks.get(name, 0)} gap ticks, {self.backwards.get(name, 0)} backwards "
                f"timestamps skipped, {self.skipped.get(name, 0)} unusable messages skipped, "
                f"{self.nonfinite.get(name, 0)} non-finite samples dropped"
            )
        if self.short_episodes:
            lines.append(f"  {self.short_episodes} episode(s) shorter than the minimum were left out")
        return "\n".join(lines)


def import_bag(bag: Path, profile: RobotProfile, out: Path, options: ImportOptions, log=print) -> ImportReport:
    """Read `bag`, resample it onto the control clock and write a LeRobot dataset at `out`."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    bag = Path(bag)
    _check_is_bag(bag)
    reader = AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_HUMBLE))
    try:
        reader.open()
    except _bag_read_errors() as exc:
        raise BagImportError(f"{bag}: cannot read this rosbag2: {_first_line(exc)}") from exc
    import lerobot.datasets.lerobot_dataset  # noqa: F401 - imported before the clock starts (seconds)

    from training.datasets.writer import EpisodeWriter

    started = time.perf_counter()
    fps = options.fps or profile.control_rate_hz
    if not options.max_skew_s:
        options = dataclasses.replace(options, max_skew_s=2.0 / fps)
    report = ImportReport(bag, Path(out))
    with contextlib.closing(reader):
        topics = {c.topic: c.msgtype for c in reader.connections}
        plan = _plan(profile, options, topics, bag)
        try:
            streams, boundaries, image_meta = _read_pass(reader, plan, options, log)
        except _bag_read_errors() as exc:
            raise BagImportError(f"{bag}: the bag is damaged (truncated?): {_first_line(exc)}") from exc
        for s in streams.values():
            report.backwards[s.name], report.skipped[s.name] = s.backwards, s.skipped
            report.nonfinite[s.name] = s.nonfinite
            if not s.times:
                why = (f"all {s.nonfinite} samples hold NaN or infinite values" if s.nonfinite and not s.skipped
                       else f"{s.skipped} unusable, {s.nonfinite} non-finite, {s.backwards} backwards")
                raise BagImportError(f"{bag}: nothing usable on {s.name}: {why}; no dataset written")
        episodes = _episodes(streams, plan, boundaries, fps, options, report)
        sizes = {(m[0], m[1]) for m in image_meta.values()}
        if len(sizes) > 1:
            raise BagImportError(f"{bag}: cameras of different sizes {sorted(sizes)}; one size per dataset")
        image_size = sizes.pop() if sizes else (480, 640)
        writer = EpisodeWriter(
            out,
            profile.features(image_size),
            fps=round(fps),
            robot_type=profile.robot_type,
            overwrite=options.overwrite,
        )
        failure = None
        try:
            _write_pass(reader, plan, episodes, writer, options.task, image_size)
        except _bag_read_errors() as exc:
            failure = BagImportError(f"{bag}: the bag is damaged (truncated?): {_first_line(exc)}")
        except BagImportError as exc:  # an image that cannot be read, or of another size
            failure = BagImportError(f"{bag}: {exc}; no dataset written")
        finally:
            writer.close()
        if failure is not None:
            shutil.rmtree(out, ignore_errors=True)  # a dataset cut short by a damaged bag is not kept
            raise failure
    report.episodes = len(episodes)
    report.frames = sum(len(e["state"]) for e in episodes)
    report.seconds = time.perf_counter() - started
    return report


def _check_is_bag(bag: Path) -> None:
    """A rosbag2 is a directory with metadata.yaml; anything else is refused before a reader guesses."""
    if not bag.exists():
        raise BagImportError(f"{bag} does not exist (expected a rosbag2 directory with metadata.yaml)")
    if bag.is_file():
        hint = f"; give its directory {bag.parent}" if (bag.parent / "metadata.yaml").is_file() else ""
        raise BagImportError(f"{bag} is a file, not a rosbag2 directory (a folder with metadata.yaml){hint}")
    if not (bag / "metadata.yaml").is_file():
        raise BagImportError(f"{bag} has no metadata.yaml: not a rosbag2 directory")


def _bag_read_errors() -> tuple[type[Exception], ...]:
    """What rosbags and its sqlite3 drivers raise for a bag that is not one, or is damaged."""
    import sqlite3

    from rosbags.highlevel import AnyReaderError
    from rosbags.rosbag2 import ReaderError

    errors: list[type[Exception]] = [AnyReaderError, ReaderError, sqlite3.DatabaseError]
    try:
        import apsw

        errors.append(apsw.Error)
    except ImportError:  # pragma: no cover - rosbags' sqlite3 storage brings apsw
        pass
    return tuple(errors)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# ------------------------------------------------------------------------------------------ planning
@dataclass
class _Plan:
    state_sources: list[StateSource]
    command_topics: list[str]  # what actions come from (empty with action=next_state)
    command_maps: dict[str, object]  # topic -> CommandTarget or StateSource-like map of our joints
    cameras: dict[str, str]  # camera name -> topic
    joint_names: tuple[str, ...]  # the profile's order of every state and action vector


def _plan(profile: RobotProfile, options: ImportOptions, topics: dict[str, str], bag: Path) -> _Plan:
    from vla_il_core.profiles import CommandTarget, JointMap

    identity = {n: JointMap(n) for n in profile.joint_names}
    sources = list(profile.state_sources) or [StateSource(profile.topics["joint_states"], identity)]
    cameras = {c.name: c.topic for c in profile.cameras}
    needed = [s.topic for s in sources] + list(cameras.values())
    command_topics, maps = [], {}
    if options.action == "command":
        if profile.topics["command"] in topics:
            command_topics = [profile.topics["command"]]
            maps[command_topics[0]] = CommandTarget(command_topics[0], "sensor_msgs/JointState", identity)
        elif profile.command_targets and all(t.topic in topics for t in profile.command_targets):
            command_topics = [t.topic for t in profile.command_targets]
            maps = {t.topic: t for t in profile.command_targets}
        else:
            targets = [profile.topics["command"]] + [t.topic for t in profile.command_targets]
            raise BagImportError(
                f"{bag}: no command topic of profile '{profile.name}' ({', '.join(targets)}) in "
                f"the bag; record one or use --action next_state"
            )
        needed += command_topics
    if options.split == "topic":
        needed.append(options.split_topic)
    missing = [t for t in needed if t not in topics]
    if missing:
        raise BagImportError(
            f"{bag} lacks topic(s) {', '.join(missing)} that profile '{profile.name}' names "
            f"(the bag has: {', '.join(sorted(topics)) or 'nothing'})"
        )
    for t in [s.topic for s in sources]:
        if topics[t] != "sensor_msgs/msg/JointState":
            raise BagImportError(f"{bag}: {t} is {topics[t]}, expected sensor_msgs/msg/JointState")
    for cam, t in cameras.items():
        if topics[t] not in IMAGE_TYPES:
            raise BagImportError(f"{bag}: camera {cam} topic {t} is {topics[t]}, expected one of {IMAGE_TYPES}")
    return _Plan(sources, command_topics, maps, cameras, profile.joint_names)


def _stamp(msg, bag_ns: int, options: ImportOptions) -> float:
    header = getattr(msg, "header", None)
    if options.time_source == "header" and header is not None and (header.stamp.sec or header.stamp.nanosec):
        return header.stamp.sec + header.stamp.nanosec * 1e-9
    return bag_ns * 1e-9


def _command_values(msg, target) -> dict[str, float]:
    """Our joints' values from one command message (JointState by name, arrays in the target's order)."""
    if hasattr(msg, "name") and hasattr(msg, "position"):  # sensor_msgs/JointState
        index = {n: i for i, n in enumerate(msg.name)}
        return {
            ours: m.to_ours(float(msg.position[index[m.joint]]))
            for ours, m in target.joints.items()
            if m.joint in index
        }
    if hasattr(msg, "cmd"):  # interbotix JointGroupCommand (cmd: float[]) / JointSingleCommand (cmd: float)
        values = np.atleast_1d(np.asarray(msg.cmd, dtype=float))
    else:  # std_msgs/Float64MultiArray
        values = np.asarray(msg.data, dtype=float)
    if len(values) != len(target.joints):
        raise ValueError(f"{len(values)} values for {len(target.joints)} joints")
    return {ours: m.to_ours(float(v)) for (ours, m), v in zip(target.joints.items(), values)}


# ------------------------------------------------------------------------------------------ pass 1
def _read_pass(reader, plan: _Plan, options: ImportOptions, log):
    """Timestamps and joint values of every stream; images only by index (and their size)."""
    streams: dict[str, Stream] = {}
    for s in plan.state_sources:
        streams[s.topic] = Stream(s.topic)
    for t in plan.cameras.values():
        streams[t] = Stream(t)
    command = Stream("command") if plan.command_topics else None
    latest_command: dict[str, float] = {}
    boundaries: list[float] = []
    image_meta: dict[str, tuple[int, int]] = {}
    image_count: dict[str, int] = defaultdict(int)
    wanted = set(streams) | set(plan.command_topics) | ({options.split_topic} if options.split == "topic" else set())
    sources = {s.topic: s for s in plan.state_sources}
    conns = [c for c in reader.connections if c.topic in wanted]
    for conn, bag_ns, raw in reader.messages(connections=conns):
        topic = conn.topic
        if topic == options.split_topic and options.split == "topic":
            boundaries.append(bag_ns * 1e-9)  # the end of an episode: only its time is needed
            if topic not in streams and topic not in plan.command_topics:
                continue
        msg = reader.deserialize(raw, conn.msgtype)
        t = _stamp(msg, bag_ns, options)
        if topic in sources:
            try:
                value = sources[topic].extract(list(msg.name), list(msg.position))
            except ValueError as exc:
                streams[topic].skipped += 1
                if streams[topic].skipped == 1:
                    log(f"skipping {topic} messages: {exc}")
                continue
            if not np.isfinite(value).all():
                streams[topic].nonfinite += 1
                if streams[topic].nonfinite == 1:
                    log(f"dropping {topic} joint states with NaN or infinite values (first at t={t:.6f})")
                continue
            if not streams[topic].add(t, value) and streams[topic].backwards == 1:
                log(f"skipping {topic} messages whose timestamps go backwards (first at t={t:.6f})")
        elif topic in plan.cameras.values():
            index = image_count[topic]
            image_count[topic] += 1
            if conn.msgtype.endswith("/Image") and msg.encoding not in ENCODINGS:
                streams[topic].skipped += 1
                if streams[topic].skipped == 1:
                    log(f"skipping {topic} images: encoding {msg.encoding}, expected {', '.join(ENCODINGS)}")
                continue
            if topic not in image_meta:  # the size, from the first readable image (decoded once)
                try:
                    image_meta[topic] = tuple(_decode(msg, conn.msgtype).shape[:2])
                except ValueError as exc:
                    streams[topic].skipped += 1
                    log(f"skipping {topic} image {index}: unreadable: {exc}")
                    continue
            if not streams[topic].add(t, index) and streams[topic].backwards == 1:
                log(f"skipping {topic} images whose timestamps go backwards (first at t={t:.6f})")
        if topic in plan.command_topics:
            try:
                values = _command_values(msg, plan.command_maps[topic])
            except (ValueError, AttributeError, KeyError) as exc:
                command.skipped += 1
                if command.skipped == 1:
                    log(f"skipping {topic} commands: {exc}")
                continue
            if not np.isfinite(list(values.values())).all():
                command.nonfinite += 1
                if command.nonfinite == 1:
                    log(f"dropping {topic} commands with NaN or infinite values (first at t={t:.6f})")
                continue
            latest_command.update(values)
            if len(latest_command) == len(plan.joint_names):  # every joint has been commanded
                command.add(t, np.array([latest_command[j] for j in plan.joint_names]))
    if command is not None:
        streams["command"] = command
    return streams, sorted(boundaries), image_meta


# ------------------------------------------------------------------------------------------ clock
def _nearest(times: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(times, ticks), 1, len(times) - 1) if len(times) > 1 else np.zeros(len(ticks), int)
    if len(times) > 1:
        left_closer = (ticks - times[idx - 1]) <= (times[idx] - ticks)
        idx = np.where(left_closer, idx - 1, idx)
    return idx


def _episodes(
    streams: dict[str, Stream],
    plan: _Plan,
    boundaries: list[float],
    fps: float,
    options: ImportOptions,
    report: ImportReport,
) -> list[dict]:
    dt = 1.0 / fps
    start = max(s.times[0] for s in streams.values())
    end = min(s.times[-1] for s in streams.values())
    if end <= start:
        raise BagImportError(
            "the streams do not overlap in time: "
            + ", ".join(f"{s.name} {s.times[0]:.3f}..{s.times[-1]:.3f}" for s in streams.values())
        )
    ticks = start + dt * np.arange(int(np.floor((end - start) / dt)) + 1)
    report.ticks = len(ticks)
    valid = np.ones(len(ticks), bool)
    picks: dict[str, np.ndarray] = {}
    skews: dict[str, np.ndarray] = {}
    for name, s in streams.items():
        times = np.asarray(s.times)
        if name == "command":
            # The command in force until the next tick: the last one sent before it.
            idx = np.searchsorted(times, ticks + dt, side="right") - 1
            ok = idx >= 0
            skew = np.where(ok, np.abs(ticks - times[np.maximum(idx, 0)]), np.inf)
        else:
            idx = _nearest(times, ticks)
            skew = np.abs(times[idx] - ticks)
        bad = skew > options.max_skew_s
        report.gap_ticks[s.name] = int((bad & valid).sum())
        valid &= ~bad
        picks[name], skews[name] = idx, skew
    # Runs of consecutive valid ticks, cut at split boundaries and fixed lengths.
    cuts = np.zeros(len(ticks), bool)
    if options.split == "topic" and boundaries:
        cuts[np.clip(np.searchsorted(ticks, boundaries, side="right"), 0, len(ticks) - 1)] = True
    runs, current = [], []
    for k in range(len(ticks)):
        if cuts[k] and current:
            runs.append(current)
            current = []
        if valid[k]:
            current.append(k)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    if options.split == "length":
        n = max(1, round(options.episode_length_s * fps))
        runs = [r[i : i + n] for r in runs for i in range(0, len(r), n)]
    episodes = []
    used = np.zeros(len(ticks), bool)
    for run in runs:
        run = np.asarray(run)
        state = np.concatenate(
            [_resample(streams[s.topic], picks[s.topic], ticks, run, options.sync) for s in plan.state_sources], axis=1
        )
        columns = [j for s in plan.state_sources for j in s.joints]
        state = state[:, [columns.index(j) for j in plan.joint_names]]  # the profile's order
        if options.action == "next_state":
            action, state, run = state[1:], state[:-1], run[:-1]
        else:
            action = np.asarray(streams["command"].values)[picks["command"][run]]
        if len(run) < options.min_episode_frames:
            report.short_episodes += 1
            continue
        used[run] = True
        images = {cam: [streams[t].values[i] for i in picks[t][run]] for cam, t in plan.cameras.items()}
        episodes.append({"ticks": ticks[run], "state": state, "action": action, "images": images})
    for name, s in streams.items():
        sk = skews[name][used] * 1e3
        report.skew_ms[s.name] = (float(np.median(sk)), float(sk.max())) if sk.size else (0.0, 0.0)
    if not episodes:
        raise BagImportError(
            f"no episode of at least {options.min_episode_frames} frames: {report.ticks} ticks, gaps "
            f"per stream {report.gap_ticks} (max skew {options.max_skew_s} s)"
        )
    return episodes


def _resample(stream: Stream, idx: np.ndarray, ticks: np.ndarray, run: np.ndarray, sync: str) -> np.ndarray:
    values = np.asarray(stream.values, dtype=np.float64)
    if sync == "nearest" or len(stream.times) < 2:
        return values[idx[run]]
    times = np.asarray(stream.times)
    return np.stack([np.interp(ticks[run], times, values[:, j]) for j in range(values.shape[1])], axis=1)


# ------------------------------------------------------------------------------------------ pass 2
def _decode(msg, msgtype: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an Image or CompressedImage; ValueError naming what is wrong."""
    if msgtype.endswith("CompressedImage"):
        import cv2

        img = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"cannot decode a {msg.format} CompressedImage")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.array(rgb_pixels(msg))  # a copy: the bag reader's buffer is not ours to keep


def _write_pass(reader, plan: _Plan, episodes: list[dict], writer, task: str,
                image_size: tuple[int, int]) -> None:
    """Stream the images in bag order; write each frame as soon as all its cameras' images are decoded."""
    # The frames in order, each with the message index it needs per camera topic.
    frames = [(e, k) for e in range(len(episodes)) for k in range(len(episodes[e]["state"]))]
    cam_topics = {cam: t for cam, t in plan.cameras.items()}
    needed = {t: set() for t in cam_topics.values()}
    for e, k in frames:
        for cam, t in cam_topics.items():
            needed[t].add(episodes[e]["images"][cam][k])
    decoded: dict[str, dict[int, np.ndarray]] = {t: {} for t in needed}
    counts: dict[str, int] = defaultdict(int)
    cursor = 0

    def flush() -> None:
        nonlocal cursor
        while cursor < len(frames):
            e, k = frames[cursor]
            ep = episodes[e]
            if any(ep["images"][cam][k] not in decoded[t] for cam, t in cam_topics.items()):
                return
            frame = {
                schema.STATE: ep["state"][k],
                schema.ACTION: ep["action"][k],
                schema.EXPERT_ACTION: ep["action"][k],
                schema.POLICY_ACTION: ep["action"][k],
                schema.INTERVENTION: True,
                schema.SUCCESS: False,
            }
            for cam, t in cam_topics.items():
                frame[schema.image_key(cam)] = decoded[t][ep["images"][cam][k]]
            writer.add(frame, task)
            cursor += 1
            if cursor == len(frames) or frames[cursor][0] != e:
                writer.save_episode()
            if cursor < len(frames):  # free what no later frame needs
                e2, k2 = frames[cursor]
                for cam, t in cam_topics.items():
                    keep = episodes[e2]["images"][cam][k2]
                    for i in [i for i in decoded[t] if i < keep]:
                        del decoded[t][i]

    flush()
    conns = [c for c in reader.connections if c.topic in needed]
    for conn, _bag_ns, raw in reader.messages(connections=conns):
        index = counts[conn.topic]
        counts[conn.topic] += 1
        if index in needed[conn.topic]:
            try:
                image = _decode(reader.deserialize(raw, conn.msgtype), conn.msgtype)
            except ValueError as exc:
                raise BagImportError(f"{conn.topic}: image {index} is unreadable: {exc}") from None
            if image.shape[:2] != tuple(image_size):
                raise BagImportError(f"{conn.topic}: image {index} is {image.shape[1]}x{image.shape[0]}, the first "
                                     f"{image_size[1]}x{image_size[0]}; one size per dataset")
            decoded[conn.topic][index] = image
            flush()
    if cursor < len(frames):
        raise BagImportError(f"the bag ended before the images of frame {cursor} of {len(frames)} were read")
