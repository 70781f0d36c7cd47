"""The teleop devices' logic without ROS: when the expert takes over, and what a device commands.

ExpertGate plays the human of human-gated DAgger in the sim (HG-DAgger, Kelly et al. 2019): the
scripted expert watches the policy and engages when the policy's action drifts from its own by more
than `drift_threshold` for `drift_ticks` ticks in a row, or when the task makes no progress for
`stall_ticks` ticks (with `gripper_drift_ticks` > 0, drift that only the `gripper_joints` show must
last that many ticks instead: a human watching waits to see whether a gripper closed a little early
still catches the object), or (optional, `off_course` > 0) when the expert's own measure of how far the
tool is off its course (the scripted expert's `off_course`, metres: on transfer_cube, how far beside the
cube a close would land) exceeds `off_course` for `drift_ticks` ticks in a row: a person who sees the hand
about to close beside the object takes over before the miss, not after it; it hands back after
`handback_ticks` ticks, or (optional, `agree_ticks` > 0) sooner, once the policy's own proposals have
agreed with it for `agree_ticks` ticks in a row.
Mode "beta" is classic DAgger (Ross et al. 2011) instead: every `mix_ticks` ticks the expert drives
with probability beta.
The demo and the trainers use the same class offline (no ROS), so a rule tested here is the rule
that ran on the graph.

JoyTeleop turns a gamepad into joint targets (a deadman button engages), LeaderArm maps a leader
arm's joint states onto the follower, and KEYMAP names the operator's keyboard commands.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MODES = ("gated", "beta", "always", "never")


@dataclass(frozen=True)
class GateConfig:
    """When the sim's expert takes over (see the module docstring)."""

    mode: str = "gated"
    drift_threshold: float = 0.3  # max |policy - expert| over the joints (rad; grippers are 0..1)
    drift_ticks: int = 5
    # drift on the grippers alone engages only after this many ticks in a row (0: drift_ticks, as any joint)
    gripper_drift_ticks: int = 0
    gripper_joints: tuple[int, ...] = ()  # indices of the grippers in the action vector
    # engage when the expert's off-course measure (m) exceeds this for drift_ticks ticks in a row (0: never)
    off_course: float = 0.0
    stall_ticks: int = 150  # 0: never engage for lack of progress
    handback_ticks: int = 60  # at most
    # hand back sooner, once the policy agrees this many ticks in a row (0: never). Off by default: on
    # transfer_cube (the demo's loop without ROS, 2 training seeds) it gave fewer labels per takeover but
    # 14-35 points less success than the fixed hand-back, compared at equal labels
    agree_ticks: int = 0
    beta: float = 0.5
    mix_ticks: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.drift_threshold > 0:
            raise ValueError(f"drift_threshold: must be > 0, got {self.drift_threshold}")
        for name in ("drift_ticks", "handback_ticks", "mix_ticks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.gripper_drift_ticks < 0:
            raise ValueError(f"gripper_drift_ticks: must be >= 0 (0: as drift_ticks), got {self.gripper_drift_ticks}")
        if self.gripper_drift_ticks and self.gripper_drift_ticks < self.drift_ticks:
            raise ValueError(f"gripper_drift_ticks: 0 (as drift_ticks) or >= drift_ticks ({self.drift_ticks}), "
                             f"got {self.gripper_drift_ticks}")
        if self.gripper_drift_ticks and not self.gripper_joints:
            raise ValueError("gripper_joints: gripper_drift_ticks needs the grippers' indices in the action")
        if not self.off_course >= 0:
            raise ValueError(f"off_course: must be >= 0 metres (0 disables), got {self.off_course}")
        if self.agree_ticks < 0:
            raise ValueError(f"agree_ticks: must be >= 0 (0 disables), got {self.agree_ticks}")
        if self.stall_ticks < 0:
            raise ValueError(f"stall_ticks: must be >= 0 (0 disables), got {self.stall_ticks}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta: must be in [0, 1], got {self.beta}")


class ExpertGate:
    """Decides, tick by tick, whether the expert drives. Call `reset()` at each episode's start."""

    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self.engagements = 0  # in this episode
        self.reset()

    def reset(self) -> None:
        self.engaged = self.config.mode == "always"
        self.ticks = 0
        self.engagements = int(self.engaged)
        self._drift_run = 0  # ticks in a row with drift on any joint
        self._arm_drift_run = 0  # ... on a joint that is not a gripper
        self._off_course_run = 0  # ticks in a row the expert found the tool off its course
        self._agree_run = 0
        self._engaged_ticks = 0
        self._best_progress = -np.inf
        self._last_progress_tick = 0
        self._done = False
        self.last_drift = 0.0
        self.last_off_course = 0.0

    def on_policy_action(self, policy: Sequence[float], expert: Sequence[float]) -> None:
        """The policy's proposal and the expert's label for the same state: measure the drift."""
        p, e = np.asarray(policy, dtype=np.float64), np.asarray(expert, dtype=np.float64)
        if p.shape != e.shape:
            raise ValueError(f"policy action has {p.size} values, the expert's {e.size}")
        drift = np.abs(p - e) if np.all(np.isfinite(p)) else np.full(p.shape, np.inf)
        self.last_drift = float(np.max(drift)) if drift.size else 0.0
        threshold = self.config.drift_threshold
        if self.engaged:
            self._agree_run = self._agree_run + 1 if self.last_drift <= threshold else 0
            return
        self._drift_run = self._drift_run + 1 if self.last_drift > threshold else 0
        arm = np.delete(drift, [j for j in self.config.gripper_joints if j < drift.size])
        self._arm_drift_run = self._arm_drift_run + 1 if arm.size and float(np.max(arm)) > threshold else 0

    def step(self, progress: float, success: bool, off_course: float = 0.0) -> str | None:
        """One control tick with the task's progress (e.g. reward) and the expert's off-course measure for this
        state (m; not finite counts as off course); returns why `engaged` changed, if it did."""
        cfg = self.config
        self.ticks += 1
        self.last_off_course = float(off_course) if np.isfinite(off_course) else np.inf
        off = cfg.off_course > 0 and not self.engaged and self.last_off_course > cfg.off_course
        self._off_course_run = self._off_course_run + 1 if off else 0
        if progress > self._best_progress:
            self._best_progress, self._last_progress_tick = progress, self.ticks
        self._done = self._done or success
        if cfg.mode in ("always", "never"):
            return None
        if cfg.mode == "beta":
            if (self.ticks - 1) % cfg.mix_ticks:
                return None
            return self._set(self._rng.random() < cfg.beta, "beta mixing")
        if self.engaged:
            self._engaged_ticks += 1
            if self._engaged_ticks >= cfg.handback_ticks:
                return self._set(False, f"hand-back after {self._engaged_ticks} ticks")
            if cfg.agree_ticks and self._agree_run >= cfg.agree_ticks:
                return self._set(False, f"the policy agreed for {self._agree_run} ticks "
                                        f"(after {self._engaged_ticks} ticks)")
            return None
        if self._done:
            return None  # the task is achieved: nothing to correct
        if cfg.gripper_drift_ticks:
            if self._arm_drift_run >= cfg.drift_ticks or self._drift_run >= cfg.gripper_drift_ticks:
                return self._set(True, f"drift {self.last_drift:.2f} > {cfg.drift_threshold:g} for {self._drift_run} "
                                       f"ticks ({self._arm_drift_run} of them off the grippers)")
        elif self._drift_run >= cfg.drift_ticks:
            return self._set(True, f"drift {self.last_drift:.2f} > {cfg.drift_threshold:g} for {self._drift_run} ticks")
        if self._off_course_run >= cfg.drift_ticks:
            return self._set(True, f"off course {100 * self.last_off_course:.1f} cm > {100 * cfg.off_course:g} cm "
                                   f"for {self._off_course_run} ticks")
        stalled = self.ticks - self._last_progress_tick
        if cfg.stall_ticks and stalled >= cfg.stall_ticks:
            return self._set(True, f"no progress for {stalled} ticks")
        return None

    def _set(self, engaged: bool, reason: str) -> str | None:
        if engaged == self.engaged:
            return None
        self.engaged = engaged
        if engaged:
            self.engagements += 1
            self._engaged_ticks = 0
            self._agree_run = 0
        else:  # the policy gets a fresh chance
            self._drift_run = self._arm_drift_run = self._off_course_run = 0
            self._last_progress_tick = self.ticks
        return ("engage: " if engaged else "hand back: ") + reason


# ---------------------------------------------------------------------------------------- gamepad
@dataclass(frozen=True)
class JoyConfig:
    """Gamepad layout: sticks move one arm's six joints; buttons engage, switch arm and grip."""

    deadman_button: int = 4  # held: the operator drives
    switch_arm_button: int = 5
    gripper_open_button: int = 0
    gripper_close_button: int = 1
    axes: tuple[int, ...] = (0, 1, 3, 4, 6, 7)  # axis per arm joint (waist .. wrist_rotate); -1: unused
    speed: float = 1.0  # rad/s at full deflection
    gripper_speed: float = 1.0  # normalised opening per second
    deadband: float = 0.1

    def __post_init__(self) -> None:
        if len(self.axes) != 6:
            raise ValueError(f"axes: one axis index per arm joint (6), got {len(self.axes)}")
        if not self.speed > 0 or not self.gripper_speed > 0:
            raise ValueError("speed, gripper_speed: must be > 0")


class JoyTeleop:
    """Integrates stick deflections into joint targets of the selected arm (7 joints per arm)."""

    def __init__(self, config: JoyConfig, lower: Sequence[float], upper: Sequence[float]) -> None:
        self.config = config
        self.lower, self.upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        self.arm = 1  # the right arm first (it picks in ALOHA's tasks)
        self.target: np.ndarray | None = None
        self._switch_was_down = False

    def on_joy(
        self, axes: Sequence[float], buttons: Sequence[int], state: Sequence[float] | None, dt: float
    ) -> tuple[bool, np.ndarray | None]:
        """One gamepad message: returns (engaged, target). Engaging starts from the measured state."""
        cfg = self.config
        pressed = lambda b: 0 <= b < len(buttons) and bool(buttons[b])  # noqa: E731
        switch = pressed(cfg.switch_arm_button)
        if switch and not self._switch_was_down:
            self.arm = 1 - self.arm
        self._switch_was_down = switch
        if not pressed(cfg.deadman_button):
            self.target = None
            return False, None
        if self.target is None:
            if state is None:
                return False, None  # no joint state yet: nothing to start from
            self.target = np.asarray(state, dtype=np.float64).copy()
        base = 7 * self.arm
        for j, axis in enumerate(cfg.axes):
            value = axes[axis] if 0 <= axis < len(axes) else 0.0
            if abs(value) > cfg.deadband:
                self.target[base + j] += cfg.speed * value * dt
        grip = pressed(cfg.gripper_open_button) - pressed(cfg.gripper_close_button)
        self.target[base + 6] += cfg.gripper_speed * grip * dt
        self.target = np.clip(self.target, self.lower, self.upper)
        return True, self.target.copy()


# ---------------------------------------------------------------------------------------- leader arm
class LeaderArm:
    """Maps a leader arm's joint states onto the follower's joints (by name), grippers normalised."""

    def __init__(
        self,
        follower_names: Sequence[str],
        leader_names: Sequence[str] = (),
        gripper_closed: float = 0.0,
        gripper_open: float = 1.0,
    ) -> None:
        self.follower_names = tuple(follower_names)
        self.leader_names = tuple(leader_names) or self.follower_names
        if len(self.leader_names) != len(self.follower_names):
            raise ValueError(
                f"leader_joint_names: {len(self.follower_names)} names expected (one per follower "
                f"joint), got {len(self.leader_names)}"
            )
        if gripper_open == gripper_closed:
            raise ValueError("leader_gripper_open and leader_gripper_closed must differ")
        self.gripper_closed, self.gripper_open = gripper_closed, gripper_open

    def map(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        """The follower's action from one leader message; ValueError naming missing joints."""
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.leader_names if n not in index]
        if missing:
            raise ValueError(f"leader joint states lack {', '.join(missing[:4])}")
        out = np.array([positions[index[n]] for n in self.leader_names], dtype=np.float64)
        for i, name in enumerate(self.follower_names):
            if name.endswith("gripper"):
                span = self.gripper_open - self.gripper_closed
                out[i] = float(np.clip((out[i] - self.gripper_closed) / span, 0.0, 1.0))
        return out


# ---------------------------------------------------------------------------------------- keyboard
KEYMAP = {
    "e": "engage",  # the operator takes over (the robot holds where it is)
    "h": "hand_back",  # the policy drives again
    "n": "start",  # start recording an episode
    "s": "success",  # end the episode: task achieved (saved)
    "f": "failure",  # end the episode: task failed (saved, for the record)
    "d": "discard",  # end the episode and throw it away
}
