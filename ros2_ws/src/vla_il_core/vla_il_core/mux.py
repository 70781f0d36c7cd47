"""Who drives the robot, and the safety rules every command passes. Plain Python, no ROS.

The intervention mux takes the policy's actions and the expert's (teleop) actions and decides which
one becomes the robot's command:

- the expert takes over at once when it engages, and hands back explicitly (engaged -> false);
- every action is checked: wrong length or non-finite values are rejected (the last safe command
  holds), values outside the joint limits are clamped;
- the step limit is a guarantee: no joint of a command differs from the previous command by more
  than `max_step`, whatever arrives. The first command is limited from the measured pose. When the
  measured joints jump (a sim reset teleports the arms, an arm moved by hand while held, a glitch),
  the command walks to the measured pose by steps of at most `max_step`, and the drivers' actions
  pass again once it is there;
- a watchdog holds the last safe command when the observations or the active driver go stale;
- an operator can hold the robot and resume it;
- the limits can change while it runs (`reconfigure`): the next command obeys them; a tightened
  joint limit is reached by steps of at most `max_step` too.

Every safety action is counted per rule; `SafetyEvent.first` marks the onset of a condition so that
the node logs it once instead of on every tick.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

POLICY = "policy"
EXPERT = "expert"
NONE = "none"

RULES = ("wrong_length", "nan", "joint_names", "joint_limit", "max_step", "stale_observation", "stale_driver",
         "operator_hold", "reanchor")
# what may change while the mux runs (the node's live parameters); the joints and lockstep are fixed
LIVE_FIELDS = ("joint_lower", "joint_upper", "max_step", "stale_after_s", "reanchor_steps")


@dataclass(frozen=True)
class MuxConfig:
    """Limits and timing of the mux; one entry per joint in every per-joint list."""

    joint_names: tuple[str, ...]
    joint_lower: tuple[float, ...]
    joint_upper: tuple[float, ...]
    max_step: tuple[float, ...]
    stale_after_s: float = 0.1
    # a measured joint moving more than this many max_steps between two observations is a jump, not motion:
    # the command walks to the measured pose before the drivers' actions pass again
    reanchor_steps: float = 3.0
    # lockstep (the sim steps once per command): exactly one command per observation, also in the tick of
    # a switch, whatever order the engage flag and the two drivers' actions arrive in
    one_command_per_observation: bool = False

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if n == 0:
            raise ValueError("joint_names: at least one joint is needed")
        for name in ("joint_lower", "joint_upper", "max_step"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: expected {n} values (one per joint), got {len(getattr(self, name))}")
        for j, lo, hi in zip(self.joint_names, self.joint_lower, self.joint_upper, strict=False):
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
                raise ValueError(f"joint_lower/joint_upper of {j}: need finite lower <= upper, got [{lo}, {hi}]")
        for j, step in zip(self.joint_names, self.max_step, strict=False):
            if not step > 0:
                raise ValueError(f"max_step of {j}: must be > 0, got {step}")
        if not self.stale_after_s > 0:
            raise ValueError(f"stale_after_s: must be > 0, got {self.stale_after_s}")
        if not self.reanchor_steps >= 1:
            raise ValueError(f"reanchor_steps: must be >= 1 (max_steps per observation), got {self.reanchor_steps}")


@dataclass(frozen=True)
class SafetyEvent:
    """One firing of a safety rule. `first` is true at the onset of the condition (log it then)."""

    rule: str
    source: str
    detail: str
    count: int
    first: bool


@dataclass(frozen=True)
class DriverSwitch:
    """A change of who drives the robot."""

    driver: str
    previous: str
    previous_since: float
    reason: str
    count: int


@dataclass
class MuxOutput:
    """What one input produced: an optional command to publish, safety events and a driver switch."""

    command: list[float] | None = None
    events: list[SafetyEvent] = field(default_factory=list)
    switch: DriverSwitch | None = None


def order_by_names(names: Sequence[str], values: Sequence[float], joint_names: Sequence[str]) -> list[float]:
    """Reorder `values` (named by `names`) into `joint_names` order; no names means already in order.

    Raises ValueError naming the joints that are missing, so a message from a differently named
    robot is rejected rather than silently mis-assigned.
    """
    if not names:
        return list(values)
    if len(names) != len(values):
        raise ValueError(f"{len(names)} names but {len(values)} values")
    index = {n: i for i, n in enumerate(names)}
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise ValueError(f"missing joints {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    return [values[index[j]] for j in joint_names]


class InterventionMux:
    """The mux's state machine. Feed it inputs with their arrival time (seconds); publish its outputs."""

    def __init__(self, config: MuxConfig) -> None:
        self.config = config
        self.counts: Counter[str] = Counter()
        self.driver = POLICY
        self.driver_since = 0.0
        self.switch_count = 0
        self.last_command: list[float] | None = None
        self.last_observation: list[float] | None = None
        self._last_obs_time: float | None = None
        self._last_action_time: dict[str, float] = {}
        self._active: set[str] = set()  # conditions in force, as "rule/source", for log-once
        self.operator_hold = False
        self.holding = False
        self._tick_commanded = False  # one_command_per_observation: this observation got its command
        self._tick_actions: dict[str, list[float]] = {}  # each source's action since the last observation
        self.catching_up = False  # the measured pose jumped: commands walk there before drivers pass again

    def reconfigure(self, **changes: object) -> MuxConfig:
        """Change limits or timing at once (the next command obeys them); ValueError names what is wrong
        and changes nothing."""
        fixed = sorted(set(changes) - set(LIVE_FIELDS))
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change while the mux runs (restart it)")
        converted = {k: (tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else float(v))
                     for k, v in changes.items()}
        self.config = dataclasses.replace(self.config, **converted)  # __post_init__ validates
        return self.config

    def reject(self, source: str, rule: str, detail: str) -> MuxOutput:
        """A message refused before it reached the rules (e.g. foreign joint names): report it."""
        out = MuxOutput()
        self._fire(rule, source, detail, out)
        return out

    # ----------------------------------------------------------------- inputs
    def on_observation(self, positions: Sequence[float], now: float) -> MuxOutput:
        """Joint positions measured on the robot (in `joint_names` order)."""
        out = MuxOutput()
        if self._check_shape_and_values(positions, "observation", out):
            current = [float(x) for x in positions]
            self._check_jump(current, out)
            self.last_observation = current
            self._last_obs_time = now
            self._clear("stale_observation", "observation")
            self._tick_commanded, self._tick_actions = False, {}
        return out

    def on_engaged(self, engaged: bool, now: float) -> MuxOutput:
        """The expert engages (takes over at once) or hands back to the policy."""
        out = MuxOutput()
        want = EXPERT if engaged else POLICY
        if want != self.driver:
            reason = "expert engaged" if engaged else "expert handed back"
            out.switch = self._switch(want, reason, now)
            if self.config.one_command_per_observation and not self._tick_commanded and want in self._tick_actions:
                # the new driver's action for this tick came before the switch: it is this tick's command
                self._command(want, self._tick_actions[want], now, out)
        return out

    def on_action(self, source: str, action: Sequence[float], now: float) -> MuxOutput:
        """An action from `source` (policy or expert). Only the active driver's actions become commands."""
        out = MuxOutput()
        if not self._check_shape_and_values(action, source, out):
            return out  # rejected: the last safe command holds
        self._last_action_time[source] = now
        self._clear("stale_driver", source)
        self._tick_actions[source] = list(map(float, action))
        if source != self.driver:
            return out
        if self.config.one_command_per_observation and self._tick_commanded:
            return out  # this observation has its command (the driver's, before a switch)
        self._command(source, self._tick_actions[source], now, out)
        return out

    def _command(self, source: str, action: list[float], now: float, out: MuxOutput) -> None:
        if self.operator_hold:
            return
        if self._observation_stale(now):
            self._fire("stale_observation", "observation", "no fresh joint states: holding", out)
            return
        out.command = self._make_safe(action, source, out)
        self.last_command = out.command
        self.holding = False
        self._tick_commanded = True

    def check_watchdog(self, now: float) -> MuxOutput:
        """Call periodically: holds when the observations or the active driver go stale."""
        out = MuxOutput()
        if self._observation_stale(now):
            detail = self._age_text("joint states", self._last_obs_time, now)
            if self._fire("stale_observation", "observation", detail, out):
                self._hold(out)
        last = self._last_action_time.get(self.driver)
        if last is not None and now - last > self.config.stale_after_s:
            if self._fire("stale_driver", self.driver, self._age_text(f"{self.driver} actions", last, now), out):
                self._hold(out)
        return out

    def hold(self, now: float) -> MuxOutput:
        """The operator holds the robot: no driver's action passes until `resume`."""
        out = MuxOutput()
        self.operator_hold = True
        self._fire("operator_hold", "operator", "hold requested", out)
        self._hold(out)
        return out

    def resume(self, now: float) -> MuxOutput:
        self.operator_hold = False
        self._clear("operator_hold", "operator")
        return MuxOutput()

    # ----------------------------------------------------------------- rules
    def _check_shape_and_values(self, values: Sequence[float], source: str, out: MuxOutput) -> bool:
        n = len(self.config.joint_names)
        if len(values) != n:
            self._fire("wrong_length", source, f"expected {n} values, got {len(values)}", out)
            return False
        bad = [self.config.joint_names[i] for i, x in enumerate(values) if not math.isfinite(x)]
        if bad:
            self._fire("nan", source, f"non-finite value for {', '.join(bad)}", out)
            return False
        self._clear("wrong_length", source)
        self._clear("nan", source)
        return True

    def _make_safe(self, action: list[float], source: str, out: MuxOutput) -> list[float]:
        cfg = self.config
        if self.catching_up and self.last_observation is not None:
            action = list(self.last_observation)  # walk to where the robot is, not where the driver points
        clamped = [min(max(x, lo), hi) for x, lo, hi in zip(action, cfg.joint_lower, cfg.joint_upper, strict=False)]
        if clamped != action and not self.catching_up:
            names = [j for j, a, c in zip(cfg.joint_names, action, clamped, strict=False) if a != c]
            self._fire("joint_limit", source, f"clamped {', '.join(names)} to the joint limits", out)
        else:
            self._clear("joint_limit", source)
        reference = self.last_command if self.last_command is not None else self.last_observation
        if reference is None:
            return clamped
        limited = [min(max(c, r - s), r + s) for c, r, s in zip(clamped, reference, cfg.max_step, strict=False)]
        if self.catching_up:
            if limited == clamped:
                self.catching_up = False  # there: the drivers' actions pass from the next command on
        elif limited != clamped:
            names = [j for j, c, lim in zip(cfg.joint_names, clamped, limited, strict=False) if c != lim]
            self._fire("max_step", source, f"limited the step of {', '.join(names)}", out)
        else:
            self._clear("max_step", source)
        return limited

    def _check_jump(self, current: list[float], out: MuxOutput) -> None:
        """The robot is not where it was a tick ago (a sim reset, an arm moved by hand, a glitch): the
        commands walk to the measured pose by max_step before the drivers' actions pass again."""
        if self.last_observation is None or self.last_command is None:
            return
        cfg = self.config
        jumped = [j for j, a, b, s in zip(cfg.joint_names, self.last_observation, current, cfg.max_step, strict=False)
                  if abs(b - a) > cfg.reanchor_steps * s]
        if jumped:
            self.catching_up = True
            self._fire("reanchor", "observation", f"{', '.join(jumped[:3])}{' ...' if len(jumped) > 3 else ''} "
                       "jumped: the command walks to the measured pose by max_step", out)
            self._clear("reanchor", "observation")  # each jump is its own onset

    def _observation_stale(self, now: float) -> bool:
        return self._last_obs_time is None or now - self._last_obs_time > self.config.stale_after_s

    # ----------------------------------------------------------------- bookkeeping
    def _switch(self, driver: str, reason: str, now: float) -> DriverSwitch:
        previous, since = self.driver, self.driver_since
        self.driver, self.driver_since = driver, now
        self.switch_count += 1
        # The new driver starts fresh: its staleness is measured from the switch.
        self._last_action_time.setdefault(driver, now)
        self._last_action_time[driver] = max(self._last_action_time[driver], now)
        self._clear("stale_driver", previous)
        return DriverSwitch(driver, previous, since, reason, self.switch_count)

    def _hold(self, out: MuxOutput) -> None:
        """Re-publish the last safe command once when a hold starts (a robot holds it anyway)."""
        if not self.holding and self.last_command is not None:
            out.command = list(self.last_command)
        self.holding = True

    def _fire(self, rule: str, source: str, detail: str, out: MuxOutput) -> bool:
        """Count a firing; return True when it is the onset of the condition."""
        key = f"{rule}/{source}"
        first = key not in self._active
        self._active.add(key)
        self.counts[rule] += 1
        out.events.append(SafetyEvent(rule, source, detail, self.counts[rule], first))
        return first

    def _clear(self, rule: str, source: str) -> None:
        self._active.discard(f"{rule}/{source}")

    @staticmethod
    def _age_text(what: str, last: float | None, now: float) -> str:
        if last is None:
            return f"no {what} received yet: holding"
        return f"{what} are {1000 * (now - last):.0f} ms old: holding"
