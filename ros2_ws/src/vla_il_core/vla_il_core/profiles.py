"""Robot profiles (config/robots/<name>.yaml): what vla-il needs to know about a robot. Plain Python.

A profile names the robot's joints in the order of every state and action vector, with their
limits and maximum velocities, the control rate, the cameras (and who publishes them), and how our
graph's `joint_states` and `command` reach the robot:

    topics:   where our nodes' `joint_states` and `command` are remapped to
    adapter:  (optional) when remapping is not enough: the robot publishes its state on several
              topics, with its own joint names or units (ALOHA's two follower arms, normalised
              grippers), or takes commands in another message type (a ros2_control forward
              position controller's Float64MultiArray). The robot_adapter node and the rosbag
              importer both read this section.

The mux's limits, the recorder's schema, the rosbag importer and the check of a policy bundle's
joint names all come from here; `load_profile` refuses a profile that is incomplete or inconsistent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vla_il_core.paths import config_dir

CAMERA_DRIVERS = ("camera_node", "sim", "external")
COMMAND_TYPES = (
    "sensor_msgs/JointState",
    "std_msgs/Float64MultiArray",
    "interbotix_xs_msgs/JointGroupCommand",
    "interbotix_xs_msgs/JointSingleCommand",
)
DEFAULT_TOPICS = {"joint_states": "/joint_states", "command": "/command"}


class ProfileError(ValueError):
    """A profile that must not drive anything; the message names the file and the field."""


@dataclass(frozen=True)
class Joint:
    name: str
    lower: float
    upper: float
    max_velocity: float  # per second, in the joint's units


@dataclass(frozen=True)
class JointMap:
    """One of our joints in a robot message: its name there and, optionally, a linear map of units.

    `raw_range` = (raw value at our 0, raw value at our 1): ALOHA's grippers are 0..1 for us and
    metres of finger travel (state) or radians of the gripper joint (command) for the robot.
    """

    joint: str
    raw_range: tuple[float, float] | None = None

    def to_ours(self, raw: float) -> float:
        if self.raw_range is None:
            return raw
        lo, hi = self.raw_range
        return (raw - lo) / (hi - lo)

    def to_raw(self, ours: float) -> float:
        if self.raw_range is None:
            return ours
        lo, hi = self.raw_range
        return lo + ours * (hi - lo)


@dataclass(frozen=True)
class StateSource:
    """A topic of sensor_msgs/JointState that carries some of our joints."""

    topic: str
    joints: dict[str, JointMap]  # our name -> where it is in the message

    def extract(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        """Our joints of this source, in our units and order; ValueError names what is missing."""
        index = {n: i for i, n in enumerate(names)}
        missing = [m.joint for m in self.joints.values() if m.joint not in index]
        if missing:
            raise ValueError(f"{self.topic}: message lacks joint(s) {', '.join(missing)} (has: {', '.join(names)})")
        if len(positions) < len(names):
            raise ValueError(f"{self.topic}: {len(positions)} positions for {len(names)} names")
        return np.array([m.to_ours(float(positions[index[m.joint]])) for m in self.joints.values()])


@dataclass(frozen=True)
class CommandTarget:
    """A topic of the robot that takes some of our joints' commands."""

    topic: str
    type: str
    joints: dict[str, JointMap]
    group: str = ""  # interbotix JointGroupCommand group name ("arm")

    def values(self, command: dict[str, float]) -> list[float]:
        """This target's values, in its order and units, from our command by joint name."""
        return [m.to_raw(command[ours]) for ours, m in self.joints.items()]


@dataclass(frozen=True)
class Camera:
    name: str  # the policy's and the dataset's name (observation.images.<name>)
    topic: str  # where its sensor_msgs/Image rgb8 stream is
    driver: str  # camera_node (we start it) | sim (sim_bridge) | external (another driver)
    settings: dict[str, Any] = field(default_factory=dict)  # camera_node parameters


@dataclass(frozen=True)
class RobotProfile:
    name: str
    description: str
    robot_type: str
    control_rate_hz: float
    joints: tuple[Joint, ...]
    topics: dict[str, str]
    cameras: tuple[Camera, ...]
    state_sources: tuple[StateSource, ...] = ()
    command_targets: tuple[CommandTarget, ...] = ()
    # leader arms (teleop_leader): where their joint states are, and (optional) where to send the followers'
    # pose so that they follow while the policy drives (a takeover then starts where the robot is)
    leader_sources: tuple[StateSource, ...] = ()
    leader_targets: tuple[CommandTarget, ...] = ()
    path: Path | None = None

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    @property
    def has_adapter(self) -> bool:
        return bool(self.state_sources or self.command_targets)

    @property
    def max_step(self) -> tuple[float, ...]:
        """The most each joint's command may change per control tick."""
        return tuple(j.max_velocity / self.control_rate_hz for j in self.joints)

    def mux_parameters(self) -> dict[str, list]:
        """The intervention mux's joint parameters (its other parameters stay in its own file)."""
        return {
            "joint_names": list(self.joint_names),
            "joint_lower": [j.lower for j in self.joints],
            "joint_upper": [j.upper for j in self.joints],
            "max_step": list(self.max_step),
        }

    def features(self, image_size: tuple[int, int] = (480, 640), env_state_dim: int = 0) -> dict[str, dict]:
        """The LeRobot features of a dataset recorded on this robot (vla_il_core.schema)."""
        from vla_il_core import schema

        return schema.features(self.joint_names, self.camera_names, image_size, env_state_dim)

    def check_joint_names(self, names: Sequence[str], what: str) -> None:
        """Refuse `what` (a bundle, a dataset) whose joints are not exactly this profile's, in order."""
        if tuple(names) != self.joint_names:
            missing = [n for n in self.joint_names if n not in names]
            extra = [n for n in names if n not in self.joint_names]
            detail = f"missing {missing}" if missing else ""
            detail += f"{'; ' if detail else ''}unknown {extra}" if extra else ""
            raise ProfileError(
                f"{what} has joints {list(names)}, robot profile '{self.name}' has {list(self.joint_names)}"
                f" ({detail or 'same joints in another order'})"
            )


class StateJoiner:
    """Our joints, in the profile's order and units, from several JointState sources (an arm each): joined when
    the first source (it paces) updates and every other one is fresher than `stale_after_s`."""

    def __init__(self, sources: Sequence[StateSource], names: Sequence[str], stale_after_s: float) -> None:
        self.sources, self.names, self.stale_after_s = tuple(sources), tuple(names), stale_after_s
        self.latest: dict[str, tuple[float, np.ndarray]] = {}

    def update(self, source: StateSource, names: Sequence[str], positions: Sequence[float],
               now: float) -> np.ndarray | None:
        """Take one message of `source` (ValueError: what it lacks); the joined state when this update completes
        one, else None (not the pacing source, or `stale()` says which source is missing)."""
        self.latest[source.topic] = (now, source.extract(names, positions))
        if source is not self.sources[0] or self.stale(now):
            return None
        by_name: dict[str, float] = {}
        for s in self.sources:
            by_name.update(zip(s.joints, self.latest[s.topic][1]))
        return np.array([by_name[n] for n in self.names])

    def stale(self, now: float) -> list[str]:
        return [s.topic for s in self.sources
                if s.topic not in self.latest or now - self.latest[s.topic][0] > self.stale_after_s]


def check_bundle(profile: RobotProfile, spec) -> None:
    """A policy bundle (vla_il_core.bundle.BundleSpec) may only drive a robot with its joints and cameras."""
    profile.check_joint_names(spec.joint_names, f"bundle {spec.path}")
    missing = [c for c in spec.cameras if c not in profile.camera_names]
    if missing:
        raise ProfileError(
            f"bundle {spec.path} reads camera(s) {missing}; robot profile '{profile.name}' has "
            f"{list(profile.camera_names)}"
        )


def robots_dir() -> Path:
    """The installed robot profiles (config/robots of the vla_il bringup package; see vla_il_core.paths)."""
    return config_dir() / "robots"


def list_profiles(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in Path(directory or robots_dir()).glob("*.yaml"))


def profile_path(name_or_path: str | Path, directory: Path | None = None) -> Path:
    """A shipped profile's name (aloha) or a path to a profile file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise ProfileError(f"robot profile file {path} does not exist")
        return path
    directory = Path(directory or robots_dir())
    path = directory / f"{text}.yaml"
    if not path.is_file():
        raise ProfileError(f"no robot profile '{text}' in {directory} (have: {', '.join(list_profiles(directory))})")
    return path


def load_profile(name_or_path: str | Path, directory: Path | None = None) -> RobotProfile:
    """Read and validate a profile; ProfileError names the file and the field that is wrong."""
    path = profile_path(name_or_path, directory)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return parse_profile(raw, path)
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from None


def parse_profile(raw: Any, path: Path | None = None) -> RobotProfile:
    """Validate a profile given as a dict (the YAML's content)."""
    if not isinstance(raw, dict):
        raise ProfileError("a profile is a mapping with name, control_rate_hz, joints, topics, cameras")
    for key in ("name", "control_rate_hz", "joints"):
        if key not in raw:
            raise ProfileError(f"missing field '{key}'")
    rate = _number(raw["control_rate_hz"], "control_rate_hz")
    if rate <= 0:
        raise ProfileError(f"control_rate_hz must be > 0, got {rate}")
    joints = _joints(raw["joints"])
    names = [j.name for j in joints]
    topics = dict(DEFAULT_TOPICS)
    for key, value in (raw.get("topics") or {}).items():
        if key not in DEFAULT_TOPICS:
            raise ProfileError(f"topics.{key}: unknown (known: {', '.join(DEFAULT_TOPICS)})")
        topics[key] = _topic(value, f"topics.{key}")
    cameras = tuple(_camera(c, i) for i, c in enumerate(raw.get("cameras") or []))
    _unique([c.name for c in cameras], "cameras")
    adapter = raw.get("adapter") or {}
    unknown = set(adapter) - {"state", "command"}
    if unknown:
        raise ProfileError(f"adapter: unknown section(s) {sorted(unknown)} (known: state, command)")
    sources = tuple(_state_source(s, i, names) for i, s in enumerate(adapter.get("state") or []))
    targets = tuple(_command_target(t, i, names) for i, t in enumerate(adapter.get("command") or []))
    if sources:
        _covers([j for s in sources for j in s.joints], names, "adapter.state")
        if any(s.topic == topics["joint_states"] for s in sources):
            raise ProfileError("adapter.state reads the topic it publishes (topics.joint_states)")
    if targets:
        _covers([j for t in targets for j in t.joints], names, "adapter.command")
        if any(t.topic == topics["command"] for t in targets):
            raise ProfileError("adapter.command writes the topic it reads (topics.command)")
    leader = raw.get("leader") or {}
    unknown = set(leader) - {"state", "command"}
    if unknown:
        raise ProfileError(f"leader: unknown section(s) {sorted(unknown)} (known: state, command)")
    leader_sources = tuple(_state_source(s, i, names, "leader") for i, s in enumerate(leader.get("state") or []))
    leader_targets = tuple(_command_target(t, i, names, "leader") for i, t in enumerate(leader.get("command") or []))
    if raw.get("leader") is not None and not leader_sources:
        raise ProfileError("leader: a state section is needed (the leader arms' joint-state topics)")
    if leader_sources:
        _covers([j for s in leader_sources for j in s.joints], names, "leader.state")
    if leader_targets:
        _covers([j for t in leader_targets for j in t.joints], names, "leader.command")
    return RobotProfile(
        name=str(raw["name"]),
        description=str(raw.get("description", "")).strip(),
        robot_type=str(raw.get("robot_type", raw["name"])),
        control_rate_hz=rate,
        joints=joints,
        topics=topics,
        cameras=cameras,
        state_sources=sources,
        command_targets=targets,
        leader_sources=leader_sources,
        leader_targets=leader_targets,
        path=path,
    )


# ---------------------------------------------------------------------------------------- parsing
def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProfileError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _topic(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or " " in value:
        raise ProfileError(f"{where}: expected an absolute topic name like /joint_states, got {value!r}")
    return value


def _unique(names: list[str], where: str) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise ProfileError(f"{where}: '{n}' appears twice")
        seen.add(n)


def _joints(raw: Any) -> tuple[Joint, ...]:
    if not isinstance(raw, list) or not raw:
        raise ProfileError("joints: expected a non-empty list of {name, lower, upper, max_velocity}")
    out = []
    for i, j in enumerate(raw):
        if not isinstance(j, dict):
            raise ProfileError(f"joints[{i}]: expected a mapping, got {j!r}")
        for key in ("name", "lower", "upper", "max_velocity"):
            if key not in j:
                raise ProfileError(f"joints[{i}] ({j.get('name', '?')}): missing '{key}'")
        name = j["name"]
        if not isinstance(name, str) or not name:
            raise ProfileError(f"joints[{i}].name: expected a non-empty string, got {name!r}")
        lower, upper = _number(j["lower"], f"joints.{name}.lower"), _number(j["upper"], f"joints.{name}.upper")
        if lower > upper:
            raise ProfileError(f"joints.{name}: lower limit {lower} > upper limit {upper}")
        vel = _number(j["max_velocity"], f"joints.{name}.max_velocity")
        if vel <= 0:
            raise ProfileError(f"joints.{name}.max_velocity must be > 0, got {vel}")
        out.append(Joint(name, lower, upper, vel))
    _unique([j.name for j in out], "joints")
    return tuple(out)


def _camera(raw: Any, i: int) -> Camera:
    if not isinstance(raw, dict) or "name" not in raw or "topic" not in raw:
        raise ProfileError(f"cameras[{i}]: expected a mapping with name, topic and driver, got {raw!r}")
    name = str(raw["name"])
    driver = raw.get("driver", "external")
    if driver not in CAMERA_DRIVERS:
        raise ProfileError(f"cameras.{name}.driver: one of {', '.join(CAMERA_DRIVERS)}, got {driver!r}")
    settings = dict(raw.get("settings") or {})
    if driver == "camera_node" and "source" not in settings:
        raise ProfileError(f"cameras.{name}: driver camera_node needs settings.source (device, URL or file)")
    return Camera(name, _topic(raw["topic"], f"cameras.{name}.topic"), driver, settings)


def _joint_maps(raw: Any, where: str, names: list[str]) -> dict[str, JointMap]:
    """`joints:` of an adapter entry: our name -> their name, or {joint, range}; a list means same names."""
    if isinstance(raw, list):
        raw = {n: n for n in raw}
    if not isinstance(raw, dict) or not raw:
        raise ProfileError(f"{where}.joints: expected a mapping of our joint -> the robot's joint")
    out = {}
    for ours, spec in raw.items():
        if ours not in names:
            raise ProfileError(f"{where}.joints: '{ours}' is not one of the profile's joints")
        if isinstance(spec, str):
            out[ours] = JointMap(spec)
            continue
        if not isinstance(spec, dict) or "joint" not in spec:
            raise ProfileError(f"{where}.joints.{ours}: expected a joint name or {{joint, range}}, got {spec!r}")
        rng = spec.get("range")
        if rng is not None:
            if not isinstance(rng, list) or len(rng) != 2:
                raise ProfileError(f"{where}.joints.{ours}.range: expected [raw at 0, raw at 1], got {rng!r}")
            rng = (_number(rng[0], f"{where}.joints.{ours}.range"), _number(rng[1], f"{where}.joints.{ours}.range"))
            if rng[0] == rng[1]:
                raise ProfileError(f"{where}.joints.{ours}.range: the two ends are equal ({rng[0]})")
        out[ours] = JointMap(str(spec["joint"]), rng)
    return out


def _state_source(raw: Any, i: int, names: list[str], section: str = "adapter") -> StateSource:
    where = f"{section}.state[{i}]"
    if not isinstance(raw, dict) or "topic" not in raw:
        raise ProfileError(f"{where}: expected a mapping with topic and joints")
    joints = _joint_maps(raw.get("joints", names), where, names)
    return StateSource(_topic(raw["topic"], f"{where}.topic"), joints)


def _command_target(raw: Any, i: int, names: list[str], section: str = "adapter") -> CommandTarget:
    where = f"{section}.command[{i}]"
    if not isinstance(raw, dict) or "topic" not in raw:
        raise ProfileError(f"{where}: expected a mapping with topic, type and joints")
    kind = raw.get("type", "sensor_msgs/JointState")
    if kind not in COMMAND_TYPES:
        raise ProfileError(f"{where}.type: one of {', '.join(COMMAND_TYPES)}, got {kind!r}")
    joints = _joint_maps(raw.get("joints", names), where, names)
    if kind == "interbotix_xs_msgs/JointSingleCommand" and len(joints) != 1:
        raise ProfileError(f"{where}: a JointSingleCommand carries one joint, got {len(joints)}")
    if kind == "interbotix_xs_msgs/JointGroupCommand" and not raw.get("group"):
        raise ProfileError(f"{where}: a JointGroupCommand needs its group (e.g. arm)")
    return CommandTarget(_topic(raw["topic"], f"{where}.topic"), kind, joints, str(raw.get("group", "")))


def _covers(mapped: list[str], names: list[str], where: str) -> None:
    _unique(mapped, where)
    missing = [n for n in names if n not in mapped]
    if missing:
        raise ProfileError(f"{where}: joint(s) {', '.join(missing)} come from nowhere")
