"""dagger_recorder: records every control tick, with who was driving, into a LeRobot v3 dataset.

Subscribes  command (JointState: the frame clock, one frame per command answering a joint state received
            after the episode's start), joint_states (JointState),
            cameras/<name>/image_raw (Image rgb8), sim/state (SimState, when sim_task is set),
            policy/action, teleop/action (JointState), intervention (InterventionEvent, latched),
            sim/episode (EpisodeEvent: the sim's "done" saves the episode, when stop_on_sim_done)
Publishes   recorder/episode (EpisodeEvent: started / saved / discarded / failed, with frame, drop
            and intervention counts)
Services    ~/start_episode (StartEpisode), ~/stop_episode (StopEpisode: save with the task's
            success, or discard). With cameras, a saved episode is encoded in the background
            (recorder_session.py): stop_episode answers at once and the next episode can start;
            recorder/episode says "saved" (or "failed") when it is in the dataset. wait_saved in
            the request, or no cameras: it answers once the episode is on disk and merged.
            Both are offered once lerobot is loaded (it imports torch: seconds to a minute); the
            log line "ready:" follows.
Output      <record_dir>/dataset: all saved episodes as one LeRobot dataset (see recorder_store.py)
Parameters  read-only, except min_free_mb: a SetParameters call applies it at once, to an episode in
            progress too. One recorder per record_dir: a second one refuses to start (recorder_lock.py).
Synchronisation and drops: vla_il_core.recorder_sync; episodes and write errors: recorder_session.py.
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from vla_il_msgs.msg import EpisodeEvent, InterventionEvent, SimState
from vla_il_msgs.srv import StartEpisode, StopEpisode

from training.progress import quiet_library_output
from vla_il_core.mux import order_by_names
from vla_il_core.recorder_sync import SyncConfig, TickSynchronizer
from vla_il_nodes.node_runtime import ParameterError, apply_on_set, declare, run
from vla_il_nodes.recorder_lock import RecordDirInUse
from vla_il_nodes.recorder_session import DatasetSpec, EpisodeSummary, RecorderError, RecordingSession
from vla_il_nodes.recorder_store import StoreError

quiet_library_output()  # a launch's pipe or a log file: lerobot's bars would be a frame per refresh there

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


class DaggerRecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("dagger_recorder")
        record_dir = declare(self, "record_dir", "", "Directory of the recording (created; appended to if it exists).")
        names = declare(self, "joint_names", [""], "Joints in state/action order (the robot's names).")
        cameras = declare(self, "cameras", [""], "Cameras to record (empty list: none).")
        height = declare(self, "image_height", 480, "Image height (pixels).")
        width = declare(self, "image_width", 640, "Image width (pixels).")
        fps = declare(self, "fps", 50, "Control rate of the dataset (Hz).")
        self.instruction = declare(self, "instruction", "", "Default task instruction (else the sim task's).")
        sim_task = declare(self, "sim_task", "", "In the sim: its task; records its privileged object poses.")
        reliability = declare(self, "image_reliability", "best_effort", "Camera QoS: best_effort | reliable.")
        image_depth = declare(self, "image_depth", 10, "Camera QoS history depth.")
        tolerance = declare(self, "image_tolerance_s", 0.009, "An image belongs to a joint state this close in stamp.")
        fresh = declare(self, "action_fresh_s", 0.1, "A proposal older than the tick's joint state by more is stale.")
        settle = declare(self, "settle_s", 0.05, "Assemble a frame at the latest this long after its command.")
        max_lag = declare(self, "max_lag_s", 0.25, "Drop a frame whose observations are this late.")
        min_free_mb = declare(
            self, "min_free_mb", 500.0, "Fail the episode, refuse to start one, below this free disk space (MB).",
            live=True,
        )
        writer_threads = declare(self, "image_writer_threads", 4, "Threads writing image files (per process).")
        writer_procs = declare(self, "image_writer_processes", 0, "Processes writing image files (0: threads here).")
        spool = declare(self, "spool_images", True, "Raw images to disk while recording; encode after the episode.")
        storage = declare(
            self, "image_storage", "auto", "video (lossy AV1), image (lossless PNG) or auto (image up to 128x160)."
        )
        merge = declare(self, "merge_after_save", True, "Update <record_dir>/dataset after every saved episode.")
        self.stop_on_sim_done = declare(self, "stop_on_sim_done", True, "Save the episode when the sim says done.")
        if not record_dir:
            raise ParameterError("parameter 'record_dir': a directory to record into is required")
        if reliability not in RELIABILITY:
            raise ParameterError(f"parameter 'image_reliability': one of {', '.join(RELIABILITY)}, got {reliability!r}")
        self.joint_names = tuple(n for n in names if n)
        if not self.joint_names:
            raise ParameterError("parameter 'joint_names': at least one joint is needed")
        if fps <= 0 or image_depth <= 0:
            raise ParameterError(f"parameters 'fps', 'image_depth': must be > 0, got {fps}, {image_depth}")
        self.cameras = tuple(c for c in cameras if c)
        self.image_size = (height, width)
        env_dim = 0
        if sim_task:
            from sim.aloha.tasks import get_task

            try:
                task = get_task(sim_task)
            except ValueError as exc:
                raise ParameterError(f"parameter 'sim_task': {exc}") from exc
            env_dim = task.env_state_dim
            self.instruction = self.instruction or task.instruction
        try:
            sync_config = SyncConfig(self.cameras, env_dim > 0, tolerance, fresh, settle, max_lag)
            spec = DatasetSpec(
                self.joint_names,
                self.cameras,
                self.image_size,
                env_dim,
                fps,
                writer_threads,
                writer_procs,
                spool,
                storage,
            )
            self.session = RecordingSession(
                Path(record_dir).expanduser(), spec, min_free_mb, merge, on_encoded=self._report
            )
        except (RecordDirInUse, OSError) as exc:  # another recorder's, or not a directory we can write
            raise ParameterError(f"parameter 'record_dir': {exc}") from None
        except (ValueError, StoreError) as exc:
            raise ParameterError(f"parameter {exc}") from exc
        self.sync = TickSynchronizer(sync_config)
        for cut in self.session.cut_episodes:  # its frames were in the dead process's memory: nothing to save
            self.get_logger().warning(f"discarded {cut}: a recorder was killed or crashed while recording it")
        for resumed in self.session.resumed:  # stopped, spooled completely, not yet encoded: nothing is lost
            self.get_logger().warning(
                f"episode {resumed.index} was stopped but not yet encoded when a recorder ended: encoding it now"
            )

        self.episode_pub = self.create_publisher(EpisodeEvent, "recorder/episode", LATCHED)
        image_qos = QoSProfile(depth=image_depth, reliability=RELIABILITY[reliability], history=HistoryPolicy.KEEP_LAST)
        self.create_subscription(JointState, "command", self._on_command, RELIABLE)
        self.create_subscription(JointState, "joint_states", self._on_joint_states, RELIABLE)
        self._image_topics = {}
        for cam in self.cameras:
            sub = self.create_subscription(
                Image, f"cameras/{cam}/image_raw", lambda m, c=cam: self._on_image(c, m), image_qos
            )
            self._image_topics[cam] = sub.topic_name  # resolved: remaps and namespace applied
        if env_dim:
            self.create_subscription(SimState, "sim/state", self._on_sim_state, RELIABLE)
        self.create_subscription(JointState, "policy/action", self._on_policy_action, RELIABLE)
        self.create_subscription(JointState, "teleop/action", self._on_teleop_action, RELIABLE)
        self.create_subscription(InterventionEvent, "intervention", self._on_intervention, LATCHED)
        self.create_subscription(EpisodeEvent, "sim/episode", self._on_sim_episode, RELIABLE)
        self._sim_done: tuple[EpisodeEvent, float] | None = None  # the sim's "done", until its last command is in
        # with use_sim_time (lockstep) its own work on the steady clock: the sim's clock stands still between steps
        # and before the first episode (which waits for this recorder's services), and must not stall it
        steady = Clock(clock_type=ClockType.STEADY_TIME) if self.get_parameter("use_sim_time").value else None
        self.create_timer(0.02, self._poll, clock=steady)
        # lerobot imports torch (tens of seconds on a busy machine): load it aside, the topics are up
        # already; the services appear once it is ready, so waiting for them waits for the recorder
        self._preparing = threading.Thread(target=self._prepare, daemon=True)
        self._preparing.start()
        self._services_timer = self.create_timer(0.1, self._offer_services_when_ready, clock=steady)
        apply_on_set(self, self._apply_parameters)
        self.get_logger().info(
            f"recording into {self.session.store.root} ({len(self.session.store.episodes())} episodes there): "
            f"{len(self.joint_names)} joints, cameras {', '.join(self.cameras) or 'none'} ({reliability}), "
            f"{'sim state, ' if env_dim else ''}one frame per command"
        )

    def _apply_parameters(self, changes: dict) -> None:
        unknown = sorted(set(changes) - {"min_free_mb"})
        if unknown:  # rclpy refuses read-only ones before this; anything else is not ours to change
            raise ValueError(f"{', '.join(unknown)}: read-only")
        failed = self.session.set_min_free_mb(changes["min_free_mb"])
        if failed is not None:
            self._report(failed)

    def _prepare(self) -> None:
        try:
            self.session.prepare()
        except Exception as exc:  # noqa: BLE001 - reported; start_episode retries and answers with it
            self.get_logger().error(f"preparing the record directory failed: {exc}")

    def _offer_services_when_ready(self) -> None:
        if self._preparing.is_alive():
            return
        self.destroy_timer(self._services_timer)
        self.create_service(StartEpisode, "~/start_episode", self._on_start)
        self.create_service(StopEpisode, "~/stop_episode", self._on_stop)
        n = len(self.session.store.episodes())
        self.get_logger().info(f"ready: {self.session.dataset_path} holds {n} episodes; services offered")

    # ------------------------------------------------------------------ inputs
    def _stamp(self, header: Header) -> float:
        t = header.stamp.sec + 1e-9 * header.stamp.nanosec
        return t if t > 0 else self._now()  # an unstamped message counts from its arrival

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _ordered(self, msg: JointState, what: str) -> list[float] | None:
        try:
            values = order_by_names(list(msg.name), list(msg.position), self.joint_names)
        except ValueError as exc:
            self.get_logger().warning(f"ignoring {what}: {exc}", throttle_duration_sec=2.0)
            return None
        if len(values) != len(self.joint_names):
            self.get_logger().warning(
                f"ignoring {what}: {len(values)} values for {len(self.joint_names)} joints", throttle_duration_sec=2.0
            )
            return None
        return values

    def _on_command(self, msg: JointState) -> None:
        values = self._ordered(msg, "command")
        if values is not None and self.session.recording:
            self.sync.on_command(self._stamp(msg.header), self._now(), values)
            self._poll()

    def _on_joint_states(self, msg: JointState) -> None:
        values = self._ordered(msg, "joint state")
        if values is not None:
            self.sync.on_state(self._stamp(msg.header), values)
            if self.session.recording:
                self._poll()

    def _on_image(self, camera: str, msg: Image) -> None:
        h, w = self.image_size
        if msg.encoding != "rgb8" or (msg.height, msg.width) != (h, w) or len(msg.data) != h * w * 3:
            what = (
                f"images on {self._image_topics[camera]}: {msg.encoding} {msg.width}x{msg.height} "
                f"({len(msg.data)} bytes), expected rgb8 {w}x{h}"
            )
            self.session.refuse(what)
            self.get_logger().warning(f"refusing {what}", throttle_duration_sec=2.0)
            return
        self.sync.on_image(camera, self._stamp(msg.header), np.frombuffer(msg.data, np.uint8).reshape(h, w, 3))

    def _on_sim_state(self, msg: SimState) -> None:
        self.sync.on_env_state(self._stamp(msg.header), msg.env_state, msg.success)

    def _on_policy_action(self, msg: JointState) -> None:
        values = self._ordered(msg, "policy action")
        if values is not None:
            self.sync.on_policy_action(self._stamp(msg.header), values, self._now())

    def _on_teleop_action(self, msg: JointState) -> None:
        values = self._ordered(msg, "teleop action")
        if values is not None:
            self.sync.on_expert_action(self._stamp(msg.header), values, self._now())

    def _on_intervention(self, msg: InterventionEvent) -> None:
        self.sync.on_driver(self._stamp(msg.header), msg.driver)

    def _on_sim_episode(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.EVENT_DONE and self.stop_on_sim_done and self.session.recording:
            # the command of the sim's last step travels on another topic and may come after this event:
            # the episode ends once every one of its num_frames commands is in (or max_lag_s has passed)
            self._sim_done = (msg, time.monotonic() + self.sync.config.max_lag_s)  # steady: sim time may stand still
            self._end_if_sim_done()

    def _end_if_sim_done(self) -> None:
        if self._sim_done is None:
            return
        msg, deadline = self._sim_done
        ep = self.session.episode if self.session.recording else None
        if ep is None:
            self._sim_done = None
            return
        seen = ep.frames + ep.dropped_frames + self.sync.pending_in_episode()
        if seen >= msg.num_frames or time.monotonic() >= deadline:
            # a controller answers the sim's last observation too: that command was never executed (the episode
            # had ended), so it is no frame of it
            self.sync.drop_newest_pending(seen - msg.num_frames)
            self._sim_done = None
            self._finish(lambda: self.session.stop(task_success=msg.success, background=True))

    # ------------------------------------------------------------------ episodes
    def _poll(self, flush: bool = False) -> None:
        if not self.session.recording:
            return
        slow = self.session.episode.slow_writes
        failed = self.session.add(self.sync.poll(self._now(), flush))
        if failed is None and self.session.episode.slow_writes > slow:
            self.get_logger().warning(
                f"falling behind: {self.session.episode.slow_writes} frames of this episode took over half a tick "
                "to write (the disk is slower than the cameras); frames will drop if it goes on",
                throttle_duration_sec=2.0,
            )
        if failed is not None:
            self._report(failed)
            return
        if not flush:
            self._end_if_sim_done()

    def _on_start(self, req: StartEpisode.Request, resp: StartEpisode.Response) -> StartEpisode.Response:
        task = req.task or self.instruction
        try:
            index = self.session.start(task)
        except Exception as exc:  # noqa: BLE001 - a full disk, lerobot's errors: refused, the recorder lives on
            resp.success, resp.message, resp.episode_index = False, str(exc), -1
            self.get_logger().error(f"cannot start an episode: {exc}")
            return resp
        self.sync.clear_pending()
        self._sim_done = None
        resp.success, resp.episode_index = True, index
        resp.message = f"recording episode {index}: {task}"
        if encoding := self.session.encoding:
            resp.message += f" (episodes {', '.join(map(str, encoding))} still encoding)"
        self.get_logger().info(resp.message)
        self.episode_pub.publish(
            EpisodeEvent(header=self._header(), event=EpisodeEvent.EVENT_STARTED, episode_index=index, task=task)
        )
        return resp

    def _on_stop(self, req: StopEpisode.Request, resp: StopEpisode.Response) -> StopEpisode.Response:
        if not self.session.recording:
            resp.success, resp.message, resp.episode_index = False, "no episode is being recorded", -1
            return resp
        if req.discard:
            summary = self._finish(self.session.discard)
        else:
            background = not req.wait_saved
            summary = self._finish(lambda: self.session.stop(task_success=req.task_success, background=background))
        resp.success = summary.outcome in ("saved", "discarded", "encoding")
        resp.message, resp.episode_index, resp.num_frames = summary.line(), summary.index, summary.frames
        return resp

    def _finish(self, end) -> EpisodeSummary:
        if not self.session.recording:
            raise RecorderError("no episode")
        self._poll(flush=True)
        if not self.session.recording:  # the flush hit a write error: already reported
            return self._last
        return self._report(end())

    def _report(self, summary: EpisodeSummary) -> EpisodeSummary:
        """Log an episode's end and publish it; called from the encoder thread too (background saves)."""
        self._last = summary
        if summary.outcome == "encoding":  # stopped: its "saved" or "failed" comes when the encoding ends
            self.get_logger().info(summary.line())
            return summary
        event = {"saved": EpisodeEvent.EVENT_SAVED, "discarded": EpisodeEvent.EVENT_DISCARDED}.get(
            summary.outcome, EpisodeEvent.EVENT_FAILED
        )
        line = summary.line()
        if summary.outcome == "failed":
            self.get_logger().error(line)
        elif summary.dropped_frames or (summary.outcome == "saved" and summary.message):  # e.g. not merged
            self.get_logger().warning(line)
        else:
            self.get_logger().info(line)
        self.episode_pub.publish(
            EpisodeEvent(
                header=self._header(),
                event=event,
                episode_index=summary.index,
                task=summary.task,
                success=summary.success,
                num_frames=summary.frames,
                intervention_frames=summary.intervention_frames,
                dropped_frames=summary.dropped_frames,
                message=line,
            )
        )
        return summary

    def _header(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg())

    def destroy_node(self) -> None:
        if hasattr(self, "session"):
            # the lock stays until the process exits: the loading thread may still be merging
            summary = self.session.close(unlock=False)
            if summary is not None:
                self.get_logger().warning(summary.line())
            for index in self.session.encoding:
                self.get_logger().warning(
                    f"episode {index} is stopped but not encoded yet: its raw frames stay in "
                    f"{self.session.store.staging_dir} and the next start encodes them"
                )
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    code = run(DaggerRecorderNode, args)
    # The node is down and its files are closed. What is left is the interpreter's last garbage
    # collection over everything lerobot imported (torch, datasets, pandas): about 2 s on a busy
    # 2-core machine. Those objects live as long as the process anyway: exclude them from it.
    gc.freeze()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
