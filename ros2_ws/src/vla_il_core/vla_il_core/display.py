"""What the live view shows, logged to rerun: no ROS here (display_node.py feeds it messages' contents).

Entities (one recording; timeline `ros_time`, the messages' stamps):
    cameras/<name>              every camera the policy sees (JPEG, at most max_image_rate_hz each)
    joints/measured             the robot's joint positions          (one series per joint)
    joints/policy               the policy's proposal
    joints/expert               the expert's (teleop) proposal
    joints/command              the command the mux sent
    driver/expert, driver/policy  a band at 1 while the expert drives, 0 while the policy does
    driver/takeovers            takeovers so far (switches to the expert)
    events                      who took over, handed back, why; the policy node's state changes
    policy/latency_p50_ms, policy/latency_p99_ms
"""

from __future__ import annotations

from typing import Any

import numpy as np

EXPERT_COLOUR = (230, 80, 40)
POLICY_COLOUR = (60, 120, 230)
JOINT_STREAMS = ("measured", "policy", "expert", "command")


def layout(cameras: list[str]):
    """The view the operator opens: the cameras on the left; on the right who drives, the joints measured and
    commanded, the two proposals, the events and the policy's latency."""
    import rerun.blueprint as rrb

    plots = rrb.Vertical(
        rrb.TimeSeriesView(origin="driver", name="who drives (band: the expert), takeovers"),
        rrb.TimeSeriesView(origin="joints", contents=["joints/measured", "joints/command"],
                           name="joints: measured, command"),
        rrb.TimeSeriesView(origin="joints", contents=["joints/policy", "joints/expert"],
                           name="proposals: policy, expert"),
        rrb.Horizontal(rrb.TextLogView(origin="events", name="events"),
                       rrb.TimeSeriesView(origin="policy", name="policy latency (ms)")),
    )
    views = [rrb.Spatial2DView(origin=f"cameras/{c}", name=c) for c in cameras]
    main = rrb.Horizontal(rrb.Vertical(*views), plots, column_shares=[2, 3]) if views else plots
    return rrb.Blueprint(main, collapse_panels=True)


class LiveView:
    """Logs the loop's signals into a rerun RecordingStream. Thread-safe as rerun's logging is."""

    def __init__(self, recording, max_image_rate_hz: float = 10.0, cameras: list[str] | None = None) -> None:
        import rerun as rr

        self.rr = rr
        self.rec = recording
        self.min_image_period = 1.0 / max_image_rate_hz if max_image_rate_hz > 0 else 0.0
        self.last_image: dict[str, float] = {}
        self.named: set[str] = set()
        self.driver = "none"
        self.takeovers = 0
        self.policy_state = ""
        self.counts: dict[str, int] = {}
        rec = recording
        rec.log("driver/expert", rr.SeriesLines(colors=[EXPERT_COLOUR], widths=[8.0], names=["expert drives"]),
                static=True)
        rec.log("driver/policy", rr.SeriesLines(colors=[POLICY_COLOUR], widths=[3.0], names=["policy drives"]),
                static=True)
        rec.send_blueprint(layout(cameras or []))

    def _at(self, stamp: float) -> None:
        # sim time (lockstep) starts at 0: a duration; a robot's clock: a date
        if stamp > 1e9:
            self.rec.set_time("ros_time", timestamp=stamp)
        else:
            self.rec.set_time("ros_time", duration=stamp)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def image(self, camera: str, stamp: float, rgb: np.ndarray) -> bool:
        """One camera frame (H, W, 3 uint8); dropped (False) when the camera's last one is more recent than
        the rate limit allows."""
        last = self.last_image.get(camera)
        if last is not None and 0 <= stamp - last < self.min_image_period:
            return False
        self.last_image[camera] = stamp
        self._at(stamp)
        self.rec.log(f"cameras/{camera}", self.rr.Image(np.ascontiguousarray(rgb)).compress(85))
        self._count(f"cameras/{camera}")
        return True

    def joints(self, stream: str, stamp: float, names: list[str], positions: list[float]) -> None:
        """Joint positions of one stream (measured, policy, expert, command)."""
        if stream not in JOINT_STREAMS:
            raise ValueError(f"joint stream {stream!r}: one of {', '.join(JOINT_STREAMS)}")
        entity = f"joints/{stream}"
        if entity not in self.named and names:
            self.rec.log(entity, self.rr.SeriesLines(names=list(names)), static=True)
            self.named.add(entity)
        self._at(stamp)
        self.rec.log(entity, self.rr.Scalars(np.asarray(positions, np.float64)))
        self._count(entity)
        if stream == "command":  # the band: who drove each command
            expert = self.driver == "expert"
            self.rec.log("driver/expert", self.rr.Scalars(1.0 if expert else np.nan))
            self.rec.log("driver/policy", self.rr.Scalars(0.0 if self.driver == "policy" else np.nan))

    def switch(self, stamp: float, driver: str, previous: str, reason: str) -> None:
        """The mux's InterventionEvent: who drives from now on."""
        self._at(stamp)
        if driver == "expert" and previous != "expert":
            self.takeovers += 1
            text = f"the expert took over ({reason}): takeover {self.takeovers}"
        elif previous == "expert":
            text = f"{driver} drives again ({reason})"
        else:
            text = f"{driver} drives ({reason})"
        self.driver = driver
        self.rec.log("driver/takeovers", self.rr.Scalars(float(self.takeovers)))
        self.rec.log("events", self.rr.TextLog(text, level="WARN" if driver == "expert" else "INFO"))
        self._count("events")

    def policy_status(self, stamp: float, state: str, latency_p50_ms: float, latency_p99_ms: float,
                      message: str = "") -> None:
        self._at(stamp)
        self.rec.log("policy/latency_p50_ms", self.rr.Scalars(float(latency_p50_ms)))
        self.rec.log("policy/latency_p99_ms", self.rr.Scalars(float(latency_p99_ms)))
        if state != self.policy_state:
            self.policy_state = state
            text = f"policy node: {state}" + (f" ({message})" if message else "")
            self.rec.log("events", self.rr.TextLog(text, level="INFO" if state == "running" else "WARN"))

    def summary(self) -> dict[str, Any]:
        return {"takeovers": self.takeovers, "logged": dict(self.counts)}
