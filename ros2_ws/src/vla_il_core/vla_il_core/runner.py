"""The policy node's logic without ROS: run a bundle with ONNX Runtime at the control rate.

- Observations arrive per input (joint positions, object poses, images) with their time; an input
  older than `stale_after_s`, or never seen, stops the policy: no action rather than a blind one.
- Actions come from a chunk queue (run the chunk open loop; ask for the next one when the queue runs
  low, inference on a worker thread so a slow inference does not stall the ticks, late chunks
  trimmed by the ticks that passed; "low" is a quarter of the chunk, or as many ticks as the slowest
  recent inference took, plus one; on a worker thread, a chunk that arrives while the last one still
  has actions is cross-faded into it over their common ticks: `blend_chunks`) or from ACT temporal
  ensembling (a chunk per tick, blended).
- A bundle is proved before it drives (`load_policy`): policy.json parsed strictly, policy.onnx's sha256
  checked, the graph's inputs and outputs compared with what the runner feeds and reads, and a trial
  inference on a neutral observation (zero state, mid-grey images) must give a finite chunk of the
  declared shape. A new bundle is proved aside, then swapped in atomically; a bad one is refused and
  the running one keeps driving.
- A non-finite (or wrongly shaped) chunk at run time is never acted on: the runner holds (no action),
  forgets its queued and ensembled chunks, and says why in `fault` until an inference is good again.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_il_core.bundle import BundleError, BundleSpec, check_graph, read_bundle, read_onnx
from vla_il_core.camera_view import read_views
from vla_il_core.chunking import TemporalEnsembler


@dataclass
class LoadedPolicy:
    spec: BundleSpec
    session: object  # onnxruntime.InferenceSession
    provider: str
    camera_views: dict[str, np.ndarray] = field(default_factory=dict)  # vla_il_core.camera_view: what training saw


def load_policy(path: str, prefer_gpu: bool = True) -> LoadedPolicy:
    """Read, verify, open and try a bundle; BundleError (with the reason) when it must not drive."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BundleError(f"ONNX Runtime is not installed here ({exc}): pip install onnxruntime "
                          "(or onnxruntime-gpu on a machine with CUDA 12)") from exc

    spec = read_bundle(path)
    model = read_onnx(spec)  # the bytes whose sha256 policy.json names: ONNX Runtime runs exactly these
    views = read_views(spec)
    providers = ["CPUExecutionProvider"]
    if prefer_gpu and gpu_present() and "CUDAExecutionProvider" in ort.get_available_providers():
        if hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA 12 / cuDNN 9 from the nvidia-* wheels that torch brings
        providers.insert(0, "CUDAExecutionProvider")
    try:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1  # the control loop owns the other core
        options.log_severity_level = 3  # a missing CUDA is reported below, once, not as an error dump
        session = ort.InferenceSession(model, options, providers=providers)
    except Exception as exc:  # ORT raises its own types for a corrupted model
        raise BundleError(f"{spec.path}: ONNX Runtime cannot load policy.onnx: {exc}") from exc
    check_graph(spec, session)
    policy = LoadedPolicy(spec, session, session.get_providers()[0], views)
    try_neutral_observation(policy)
    return policy


def neutral_observation(spec: BundleSpec) -> dict[str, np.ndarray]:
    """Zero state, mid-grey images of the declared size (the instruction is baked into the graph)."""
    obs = {c.name: np.zeros(c.dim, np.float32) for c in spec.state_components}
    for cam in spec.cameras:
        obs[f"image_{cam}"] = np.full((*spec.image_size, 3), 128, np.uint8)
    return obs


def feeds_for(spec: BundleSpec, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Observations -> the graph's inputs: the state components concatenated, images CHW in [0, 1]; batch 1."""
    state = np.concatenate([np.asarray(obs[c.name], np.float32) for c in spec.state_components])
    feeds = {"state": state[None]}
    for cam in spec.cameras:
        img = obs[f"image_{cam}"]
        feeds[f"image_{cam}"] = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    return feeds


def chunk_problem(spec: BundleSpec, out: np.ndarray) -> str | None:
    """Why the graph's output must not be acted on (shape, non-finite values), or None."""
    if out.shape != (1, spec.chunk_size, spec.action_dim):
        return f"output shape {out.shape}, policy.json says 1 x {spec.chunk_size} x {spec.action_dim}"
    bad = int(out.size - np.count_nonzero(np.isfinite(out)))
    if bad:
        return f"output {bad} non-finite values (NaN/inf) of {out.size}"
    return None


def try_neutral_observation(policy: LoadedPolicy) -> None:
    """The trial inference a bundle passes before it drives: a finite chunk of the declared shape."""
    spec = policy.spec
    try:
        out = policy.session.run([spec.output_name], feeds_for(spec, neutral_observation(spec)))[0]
    except Exception as exc:  # ORT's own exception types
        raise BundleError(f"{spec.path}: the trial inference on a neutral observation failed: {exc}") from exc
    problem = chunk_problem(spec, out)
    if problem is not None:
        raise BundleError(f"{spec.path}: the trial inference on a neutral observation (zero state, mid-grey "
                          f"images) gave {problem}")


def resolve_bundle_path(requested: str, bundle_dir: Path) -> Path:
    """Where load_policy may read `requested` (relative: to bundle_dir): resolved, symlinks followed, it and
    its policy files must lie inside bundle_dir; BundleError otherwise."""
    root = Path(bundle_dir).resolve()
    path = (root / requested).resolve()  # an absolute `requested` replaces root

    def inside(p: Path) -> bool:
        return p == root or root in p.parents

    if not inside(path):
        raise BundleError(f"{requested} resolves to {path}, outside bundle_dir {root}: refused")
    for name in ("policy.onnx", "policy.json"):
        target = (path / name).resolve()
        if not inside(target):
            raise BundleError(f"{requested}: {name} resolves to {target}, outside bundle_dir {root}: refused")
    return path


def gpu_present() -> bool:
    """An NVIDIA GPU with its driver (asking ONNX Runtime for CUDA without one logs a load error)."""
    import os

    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")


def blend_chunks(old: deque, new: deque) -> deque:
    """A chunk that arrives while the last one still has actions: over the ticks both cover, cross-fade
    from the old to the new (weights 1/(m+1) ... m/(m+1) for an overlap of m ticks), then the new alone.

    Both are (tick, action) pairs in tick order. Switching at once would step the command by the two
    chunks' disagreement (the new one saw a later observation); the fade spreads it over the overlap.
    """
    ahead = dict(old)
    m = sum(1 for t, _ in new if t in ahead)
    out, j = deque(), 0
    for t, action in new:
        if t in ahead:
            j += 1
            w = j / (m + 1)
            action = (1.0 - w) * ahead[t] + w * action
        out.append((t, action))
    return out


@dataclass
class LatencyStats:
    samples: deque = field(default_factory=lambda: deque(maxlen=500))

    def add(self, ms: float) -> None:
        self.samples.append(ms)

    def summary(self) -> tuple[float, float, float]:
        if not self.samples:
            return (math.nan, math.nan, math.nan)
        a = np.asarray(self.samples)
        return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


class TickWork:
    """What a tick costs outside the model, per stage (ms), over the last 500 ticks.

    inputs: observations -> the graph's feeds (state concatenated, images to float CHW) on the tick thread;
    runner: the rest of the runner's tick (staleness, chunk queue or ensembling); publish: the action
    message; images: the image callbacks since the last tick (bytes -> array, checks); total: the sum,
    the node's own work for that tick. Inference on the tick thread (the first chunk, ensembling,
    lockstep) is the model's time and not counted here (latency_* has it).
    """

    STAGES = ("inputs", "runner", "publish", "images")

    def __init__(self) -> None:
        self.stages = {name: LatencyStats() for name in (*self.STAGES, "total")}

    def add(self, **ms: float) -> None:
        for name in self.STAGES:
            self.stages[name].add(ms.get(name, 0.0))
        self.stages["total"].add(sum(ms.get(name, 0.0) for name in self.STAGES))

    def p50(self, name: str) -> float:
        return self.stages[name].summary()[0]

    def line(self) -> str:
        """'inputs 0.05, runner 0.02, publish 0.08, images 0.01 ms (p50)' or '' before the first tick."""
        if not self.stages["total"].samples:
            return ""
        return ", ".join(f"{name} {self.p50(name):.3f}" for name in self.STAGES) + " ms (p50)"


def checked_stale_after_s(value: float) -> float:
    """A staleness limit: a finite number of seconds > 0 (ValueError with the reason otherwise)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"stale_after_s must be a finite number of seconds > 0, got {value!r}")
    return float(value)


class PolicyRunner:
    """Ticks -> actions. Call `observe_*` from subscriptions and `tick()` from the control timer."""

    def __init__(self, policy: LoadedPolicy, stale_after_s: float = 0.2, async_inference: bool = True,
                 refill_at: int | None = None, blend: bool = True) -> None:
        self._lock = threading.Lock()
        self.stale_after_s = stale_after_s  # validated by its setter
        self.async_inference = async_inference
        self.blend = blend  # cross-fade a chunk arriving mid-chunk (worker-thread inference only)
        self._refill_at = refill_at
        self.latency = LatencyStats()
        self.ticks = self.missed_ticks = self.inferences = 0
        self._obs: dict[str, tuple[np.ndarray, float]] = {}
        self._worker: threading.Thread | None = None
        self._last_tick_time: float | None = None
        self._epoch = 0  # bumped by reset() and swap(): chunks inferred before it are dropped
        self.resets = 0
        self.fault: str | None = None  # why the last inference was not acted on (cleared by a good one)
        self.on_chunk = None  # called as on_chunk(chunk, latency_ms, policy) after every inference
        # the last tick's cost on the tick thread (s): assembling feeds, and the model run inline
        self.tick_inputs_s = self.tick_model_s = 0.0
        self._tick_thread: int | None = None
        self._install(policy)

    @property
    def stale_after_s(self) -> float:
        """Inputs older than this (s) stop the policy."""
        return self._stale_after_s

    @stale_after_s.setter
    def stale_after_s(self, value: float) -> None:
        self._stale_after_s = checked_stale_after_s(value)

    # ------------------------------------------------------------------ bundle
    @property
    def policy(self) -> LoadedPolicy:
        return self._policy

    def _install(self, policy: LoadedPolicy) -> None:
        spec = policy.spec
        self._policy = policy
        self._queue: deque[tuple[int, np.ndarray]] = deque()  # (tick, action)
        self._ensembler = TemporalEnsembler(spec.chunk_size, spec.temporal_ensembling_k) \
            if spec.temporal_ensembling else None
        self._in_flight = False
        self._epoch += 1  # a chunk still being inferred by the old bundle is dropped
        self.fault = None
        # when the next chunk is asked for: this many actions left (adapted to the latency, see _accept). Inline
        # inference (lockstep, the evaluation) has no latency to cover: it plays all n_action_steps of a chunk,
        # as training's evaluation (VLASimPolicy) and lerobot's policies do, so both give the same actions
        default = max(1, spec.n_action_steps // 4) if self.async_inference else 0
        self.refill_at = self._refill_at if self._refill_at is not None else default

    def reset(self) -> None:
        """A new episode: forget the queued chunk and the ensembled predictions (they were made on the last
        episode's states), and drop an inference still running on them."""
        with self._lock:
            self._forget_chunks()
            self._in_flight = False
            self._epoch += 1
            self.resets += 1

    def _forget_chunks(self) -> None:
        self._queue.clear()
        if self._ensembler is not None:
            self._ensembler.reset()

    def swap(self, policy: LoadedPolicy) -> None:
        """Atomically replace the running bundle (the next tick uses the new one)."""
        with self._lock:
            self._install(policy)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ observations
    def observe(self, name: str, value: np.ndarray, now: float) -> str | None:
        """Store an input (name: a state component or `image_<camera>`); the reason when refused."""
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            return f"{name}: non-finite values"
        expected = self._expected_shape(name)
        if expected is not None and value.shape != expected:
            return f"{name}: expected shape {expected}, got {value.shape}"
        self._obs[name] = (value, now)
        return None

    def _expected_shape(self, name: str) -> tuple[int, ...] | None:
        spec = self._policy.spec
        for c in spec.state_components:
            if c.name == name:
                return (c.dim,)
        if name.startswith("image_") and spec.image_size:
            return (*spec.image_size, 3)
        return None

    def missing_or_stale(self, now: float) -> list[str]:
        spec = self._policy.spec
        names = [c.name for c in spec.state_components] + [f"image_{c}" for c in spec.cameras]
        return [n for n in names if n not in self._obs or now - self._obs[n][1] > self.stale_after_s]

    def _inputs(self) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        feeds = feeds_for(self._policy.spec, {name: value for name, (value, _) in self._obs.items()})
        self.tick_inputs_s += time.perf_counter() - start
        return feeds

    # ------------------------------------------------------------------ control
    def tick(self, now: float) -> np.ndarray | None:
        """The action for this tick, or None (inputs stale, no chunk yet: a missed tick; or a bad output:
        `fault` says why). Never a non-finite action."""
        action = self._tick(now)
        if action is not None and not np.all(np.isfinite(action)):  # a last guard: chunks were checked
            self.fault = "a non-finite action"
            return None
        return action

    def _tick(self, now: float) -> np.ndarray | None:
        self.tick_inputs_s = self.tick_model_s = 0.0
        self._tick_thread = threading.get_ident()
        with self._lock:
            tick = self.ticks
            self.ticks += 1
            paused = self._last_tick_time is not None and now - self._last_tick_time > self.stale_after_s
            try:
                return self._act(tick, now, paused)
            finally:
                # a tick that ran the model itself ends that much later: the gap to the next one is not a pause
                self._last_tick_time = now + self.tick_model_s

    def _act(self, tick: int, now: float, paused: bool) -> np.ndarray | None:
        stale = bool(self.missing_or_stale(now))
        if paused or stale:
            # a pause (the robot stopped, the sim was reset) or stale inputs: the queued chunk and
            # the ensembled predictions belong to another moment; start again from this one
            self._forget_chunks()
        if stale:
            return None
        if self._ensembler is not None:
            return self._ensembler.act() if self._ensembler_chunk(tick) else None
        while self._queue and self._queue[0][0] < tick:
            self._queue.popleft()  # trimmed: those ticks passed while the chunk was computed
        if not self._queue and not self._in_flight:
            # Nothing to act on (first tick, or after a stall): infer inline rather than miss it.
            self._accept(tick, *self._infer(self._inputs(), self._policy), self._policy, self._epoch)
        elif len(self._queue) <= self.refill_at and not self._in_flight:
            self._start_inference(tick)
        if self._queue and self._queue[0][0] == tick:
            return self._queue.popleft()[1]
        self.missed_ticks += 1
        return None

    def _ensembler_chunk(self, tick: int) -> bool:
        chunk, self.fault = self._infer(self._inputs(), self._policy)
        if chunk is None:
            self._forget_chunks()  # hold; start again from the next good chunk
            return False
        self._ensembler.add(chunk)
        return True

    def _start_inference(self, tick: int) -> None:
        feeds, policy, epoch = self._inputs(), self._policy, self._epoch
        if not self.async_inference:
            self._accept(tick, *self._infer(feeds, policy), policy, epoch)
            return
        self._in_flight = True

        def work() -> None:
            chunk, fault = None, "inference ended without a result"
            try:
                chunk, fault = self._infer(feeds, policy)
            finally:  # whatever happened, the next tick may ask again
                with self._lock:
                    self._accept(tick, chunk, fault, policy, epoch)

        # Not a daemon: an interpreter that exits while this thread is inside ONNX Runtime aborts; a
        # finishing inference is waited for instead (wait_idle, and the interpreter's own join).
        self._worker = threading.Thread(target=work, name="policy_inference")
        self._worker.start()

    def _accept(self, tick: int, chunk: np.ndarray | None, fault: str | None, policy: LoadedPolicy,
                epoch: int) -> None:
        if epoch != self._epoch:
            return  # a chunk of the bundle that was swapped out, or of the episode before a reset()
        self._in_flight = False
        self.fault = fault
        if chunk is None:
            self._forget_chunks()  # a bad output: hold rather than finish a chunk inferred before it
            return
        n = policy.spec.n_action_steps
        new = deque((tick + i, chunk[i]) for i in range(n))
        if self.async_inference and self.blend and self._queue:
            new = blend_chunks(self._queue, new)
        self._queue = new
        if self.async_inference and self._refill_at is None:
            # Ask for the next chunk while enough of this one is left to cover an inference (the slowest
            # of the last 50, plus a tick) and then a quarter of the chunk to fade the next one in over.
            # A slow model (a VLA at full camera size on a CPU) then never leaves a tick without an
            # action as long as it infers in at most half its chunk (a chunk's first actions have passed
            # when it arrives); a fast one keeps the default (a quarter of the chunk).
            recent = list(self.latency.samples)[-50:]
            need = math.ceil(max(recent) / 1000 * policy.spec.fps) + 1 if recent else 0
            self.refill_at = min(n, max(1, n // 4, need + n // 4 if need > 1 else 0))

    def _infer(self, feeds: dict[str, np.ndarray], policy: LoadedPolicy) -> tuple[np.ndarray | None, str | None]:
        """(the chunk, chunk_size x action_dim, None), or (None, why it must not be acted on)."""
        start = time.perf_counter()
        try:
            out = policy.session.run([policy.spec.output_name], feeds)[0]
        except Exception as exc:  # ORT's own exception types
            return None, f"{policy.spec.policy_id}: inference failed: {exc}"
        latency_ms = 1000 * (time.perf_counter() - start)
        if threading.get_ident() == self._tick_thread:
            self.tick_model_s += latency_ms / 1000
        self.latency.add(latency_ms)
        self.inferences += 1
        problem = chunk_problem(policy.spec, out)
        if problem is not None:
            return None, f"{policy.spec.policy_id}: {problem}"
        if self.on_chunk is not None:
            self.on_chunk(out[0], latency_ms, policy)
        return out[0], None

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Let an in-flight inference finish (tests, shutdown)."""
        if self._worker is not None:
            self._worker.join(timeout)
