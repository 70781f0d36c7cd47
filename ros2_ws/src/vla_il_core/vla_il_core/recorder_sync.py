"""The DAgger recorder's logic without ROS: one dataset frame per control tick, synchronised by stamp.

A frame is a command tick: each command the robot executes becomes one frame, with the observation
it answered and the proposals around it, all chosen by header stamp (t = the command's stamp):

  observation.state   the latest joint state stamped at or before t
  images, env state   the message of each stream nearest the state's stamp, within `image_tolerance_s`
  policy_action       the latest policy action stamped at or before t, if it is fresh (not older than
                      the state by more than `action_fresh_s`) and finite; else the executed action
                      and `policy_valid` false
  expert_action       the same for the teleop action, flagged by `expert_label`
  intervention        the driver announced by the mux (/intervention) at t is the expert
  next.success        the sim's success flag after the step (when the sim's state is recorded)

Messages of different topics arrive in any order, so a tick is assembled only when it is resolved:
the joint states and the proposals have moved past t (so what they hold up to t is final), or
`settle_s` has passed since its command. A tick whose observations do not arrive within
`max_lag_s` is dropped and counted, never filled with a stale image: an observation stream that
lags shows up as dropped frames.

An episode starts with the first observation after its start (`clear_pending`): a command answering an
observation the recorder had before then (a driver's last one re-sent while the sim waited for the
recorder, a controller's late answer to the last episode's end) is no frame of it, nor a drop.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_il_core import schema

EXPERT = "expert"


@dataclass(frozen=True)
class SyncConfig:
    """How observations are matched to a command tick (seconds of header stamps)."""

    cameras: tuple[str, ...] = ()
    env_state: bool = False
    image_tolerance_s: float = 0.009  # an image (or env state) belongs to a joint state this close in stamp
    action_fresh_s: float = 0.1  # an action older than the tick's joint state by more is not this tick's
    settle_s: float = 0.05  # assemble a tick at the latest this long after its command
    max_lag_s: float = 0.25  # drop a tick still missing an observation this long after its command
    buffer_len: int = 32  # messages kept per stream

    def __post_init__(self) -> None:
        for name in ("image_tolerance_s", "action_fresh_s", "settle_s", "max_lag_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.max_lag_s < self.settle_s:
            raise ValueError(f"max_lag_s ({self.max_lag_s}) must be >= settle_s ({self.settle_s})")
        if self.buffer_len < 2:
            raise ValueError(f"buffer_len: must be >= 2, got {self.buffer_len}")


class StampedBuffer:
    """The last messages of one stream, kept in stamp order."""

    def __init__(self, maxlen: int) -> None:
        self.stamps: deque[float] = deque(maxlen=maxlen)
        self.values: deque[Any] = deque(maxlen=maxlen)

    def add(self, stamp: float, value: Any) -> None:
        if self.stamps and stamp < self.stamps[-1]:  # out of order (rare): insert in place
            i = bisect.bisect_right(list(self.stamps), stamp)
            if len(self.stamps) == self.stamps.maxlen:  # full: the oldest goes (a deque cannot insert when full)
                if i == 0:
                    return  # older than everything kept: it would be the one to go
                self.stamps.popleft()
                self.values.popleft()
                i -= 1
            self.stamps.insert(i, stamp)
            self.values.insert(i, value)
            return
        self.stamps.append(stamp)
        self.values.append(value)

    def at_or_before(self, t: float) -> tuple[float, Any] | None:
        i = bisect.bisect_right(list(self.stamps), t) - 1
        return (self.stamps[i], self.values[i]) if i >= 0 else None

    def after(self, t: float) -> tuple[float, Any] | None:
        i = bisect.bisect_right(list(self.stamps), t)
        return (self.stamps[i], self.values[i]) if i < len(self.stamps) else None

    def nearest(self, t: float, tolerance: float) -> tuple[float, Any] | None:
        best = None
        for s, v in zip(self.stamps, self.values, strict=True):
            if abs(s - t) <= tolerance and (best is None or abs(s - t) < abs(best[0] - t)):
                best = (s, v)
        return best

    def newest_stamp(self) -> float | None:
        return self.stamps[-1] if self.stamps else None

    def clear(self) -> None:
        self.stamps.clear()
        self.values.clear()


@dataclass
class Tick:
    stamp: float  # the command's header stamp
    arrival: float  # when the command was received (same clock as the stamps)
    action: list[float]


@dataclass
class Drop:
    stamp: float
    reason: str


@dataclass
class SyncResult:
    frames: list[dict[str, Any]] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    lags_s: list[float] = field(default_factory=list)  # command stamp - observation stamp, per frame


class TickSynchronizer:
    """Buffers every stream by stamp and turns command ticks into schema frames (or drops)."""

    def __init__(self, config: SyncConfig) -> None:
        self.config = config
        n = config.buffer_len
        self.state = StampedBuffer(n)
        self.images = {cam: StampedBuffer(n) for cam in config.cameras}
        self.env = StampedBuffer(n)  # values: (env_state, success)
        self.policy = StampedBuffer(n)
        self.expert = StampedBuffer(n)
        self.driver = StampedBuffer(n)
        self.pending: deque[Tick] = deque()
        self._arrivals: dict[str, float] = {}
        self._episode_start = True  # the next tick is an episode's first
        self._started_after: float | None = None  # the newest joint state's stamp when the episode started
        # proposal streams that answered the last assembled tick's state: they label every state
        self._answering = {"policy": False, "expert": False}

    # ----------------------------------------------------------------- inputs
    def on_state(self, stamp: float, positions: Sequence[float]) -> None:
        self.state.add(stamp, np.asarray(positions, dtype=np.float32))

    def on_image(self, camera: str, stamp: float, image: np.ndarray) -> None:
        self.images[camera].add(stamp, image)

    def on_env_state(self, stamp: float, env_state: Sequence[float], success: bool) -> None:
        self.env.add(stamp, (np.asarray(env_state, dtype=np.float32), bool(success)))

    def on_policy_action(self, stamp: float, action: Sequence[float], arrival: float | None = None) -> None:
        self.policy.add(stamp, np.asarray(action, dtype=np.float64))
        self._arrivals["policy"] = stamp if arrival is None else arrival

    def on_expert_action(self, stamp: float, action: Sequence[float], arrival: float | None = None) -> None:
        self.expert.add(stamp, np.asarray(action, dtype=np.float64))
        self._arrivals["expert"] = stamp if arrival is None else arrival

    def on_driver(self, stamp: float, driver: str) -> None:
        self.driver.add(stamp, driver)

    def on_command(self, stamp: float, arrival: float, action: Sequence[float]) -> None:
        self.pending.append(Tick(stamp, arrival, [float(x) for x in action]))

    def pending_in_episode(self) -> int:
        """Commands not yet assembled, less those answering an observation from before the episode's start."""
        return sum(1 for tick in self.pending if not self._before_start(tick))

    def _before_start(self, tick: Tick) -> bool:
        state = self.state.at_or_before(tick.stamp)
        return self._started_after is not None and state is not None and state[0] <= self._started_after

    def drop_newest_pending(self, n: int) -> None:
        """Forget the `n` newest commands not yet assembled (commands past an episode's end, never executed)."""
        for _ in range(min(n, len(self.pending))):
            self.pending.pop()

    def clear_pending(self) -> None:
        """A new episode: forget unassembled ticks; its first tick waits for the proposal streams, and its
        frames answer joint states newer than any received until now."""
        self.pending.clear()
        self._started_after = self.state.newest_stamp()
        self._episode_start = True
        self._answering = {"policy": False, "expert": False}

    # ----------------------------------------------------------------- assembly
    def poll(self, now: float, flush: bool = False) -> SyncResult:
        """Assemble the resolved ticks in order; `flush` (episode end) resolves all with what is there."""
        out = SyncResult()
        while self.pending:
            tick = self.pending[0]
            age = now - tick.arrival
            resolved = flush or age >= self.config.max_lag_s or self._resolved(tick, now)
            if not resolved:
                break
            if self._before_start(tick):
                self.pending.popleft()
                continue
            frame, missing = self._assemble(tick)
            if frame is None and not flush and age < self.config.max_lag_s and not self._lost(tick, missing):
                break  # still waiting for an observation
            self.pending.popleft()
            self._episode_start = False
            if frame is None:
                out.drops.append(Drop(tick.stamp, missing))
            else:
                self._answering = {name: self._answered(buf, tick.stamp, frame["_state_stamp"])
                                   for name, buf in (("policy", self.policy), ("expert", self.expert))}
                out.frames.append(frame)
                out.lags_s.append(tick.stamp - frame.pop("_state_stamp"))
        return out

    def _resolved(self, tick: Tick, now: float) -> bool:
        """What every stream holds up to the tick is final: it has a message stamped after the tick,
        or (joint states) `settle_s` has passed, or (proposals) it has been quiet for `settle_s`.

        A sim expert labelling every state keeps speaking but may come after the next joint state
        (it is slower than the policy, and on a loaded machine quiet for longer than `settle_s`): a
        stream that answered the previous tick's state is waited for, up to `max_lag_s`, until it has
        answered this one. An episode's first tick follows a pause (the reset) in which every stream
        was quiet: there, a stream that has spoken before is waited for the same way, so the first
        frame keeps its label. A stream that stops (a human lets go) costs one wait, not a frame.
        """
        settle = self.config.settle_s
        if self.state.after(tick.stamp) is None and now - tick.arrival < settle:
            return False
        for name, buf in (("policy", self.policy), ("expert", self.expert)):
            newest = buf.newest_stamp()
            if newest is None or newest > tick.stamp:
                continue
            if now - self._arrivals[name] < settle:
                return False
            if (self._episode_start or self._answering[name]) and now - tick.arrival < self.config.max_lag_s:
                state = self.state.at_or_before(tick.stamp)
                if state is None or newest < state[0]:  # nothing yet for the state this tick answered
                    return False
        return True

    @staticmethod
    def _answered(buf: StampedBuffer, tick_stamp: float, state_stamp: float) -> bool:
        """The stream spoke about this state (not only about an earlier one) before the command."""
        found = buf.at_or_before(tick_stamp)
        return found is not None and found[0] >= state_stamp

    def _assemble(self, tick: Tick) -> tuple[dict[str, Any] | None, str]:
        cfg = self.config
        state = self.state.at_or_before(tick.stamp)
        if state is None:
            return None, "no joint state before the command"
        s_stamp, positions = state
        frame: dict[str, Any] = {"_state_stamp": s_stamp, schema.STATE: positions}
        for cam, buf in self.images.items():
            img = buf.nearest(s_stamp, cfg.image_tolerance_s)
            if img is None:
                return None, f"no {cam} image within {1000 * cfg.image_tolerance_s:.0f} ms of the joint state"
            frame[schema.image_key(cam)] = img[1]
        success = False
        if cfg.env_state:
            env = self.env.nearest(s_stamp, cfg.image_tolerance_s)
            if env is None:
                return None, "no sim state within tolerance of the joint state"
            frame[schema.ENV_STATE] = env[1][0]
            after = self.env.after(tick.stamp)
            success = after[1][1] if after is not None else env[1][1]
        action = np.asarray(tick.action, dtype=np.float32)
        frame[schema.ACTION] = action
        frame[schema.POLICY_ACTION], frame[schema.POLICY_VALID] = self._proposal(
            self.policy, tick.stamp, s_stamp, action
        )
        frame[schema.EXPERT_ACTION], frame[schema.EXPERT_LABEL] = self._proposal(
            self.expert, tick.stamp, s_stamp, action
        )
        driver = self.driver.at_or_before(tick.stamp)
        frame[schema.INTERVENTION] = driver is not None and driver[1] == EXPERT
        frame[schema.SUCCESS] = bool(success)
        return frame, ""

    def _proposal(self, buf: StampedBuffer, t: float, state_stamp: float, executed: np.ndarray):
        found = buf.at_or_before(t)
        if found is None or found[0] < state_stamp - self.config.action_fresh_s:
            return executed, False
        value = found[1]
        if value.shape != executed.shape or not np.all(np.isfinite(value)):
            return executed, False
        return value.astype(np.float32), True

    def _lost(self, tick: Tick, missing: str) -> bool:
        """A stream that has moved past the tick's joint state without a match will never match it."""
        state = self.state.at_or_before(tick.stamp)
        if state is None:
            return False
        tol = self.config.image_tolerance_s
        streams = list(self.images.values()) + ([self.env] if self.config.env_state else [])
        for buf in streams:
            newest = buf.newest_stamp()
            if buf.nearest(state[0], tol) is None and newest is not None and newest > state[0] + tol:
                return True
        return False


def finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(x) for x in values)
