"""The policy bundle contract (DESIGN.md): a folder with policy.onnx + policy.json.

Read and validated without PyTorch: the policy node loads bundles with this module and ONNX Runtime.
A bundle is refused (BundleError, with one reason) when a file is missing; when policy.json is not UTF-8
JSON holding an object whose every field has its type and range (fps within FPS_RANGE); when policy.onnx
is not the file whose sha256 policy.json names; or when the graph's inputs and outputs are not what the
node feeds and reads (`check_graph`: the same names, float32, the static dims policy.json declares).

`onnx.sha256` is required. Every exporter writes it, and without it nothing ties policy.onnx to the graph
that passed the export's parity check; a hand-made bundle adds it (`sha256sum policy.onnx`).

Optional `inputs.camera_views`: {camera: {"file": <a .npy in the bundle folder>, "sha256": ...}}, each camera's
view in training (uint8 H x W x 3 at the bundle's image size), which the policy node compares live frames with
(vla_il_core.camera_view; loaded and verified by `read_views`, a mismatch refuses the bundle).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
FPS_RANGE = (1.0, 1000.0)  # Hz: control rates a bundle may ask for
FLOAT32 = "tensor(float)"  # the element type the node feeds and reads (ONNX Runtime's name)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}


class BundleError(ValueError):
    """A bundle that must not drive anything; the message says why."""


@dataclass(frozen=True)
class StateComponent:
    name: str  # joint_positions | env_state | ...
    dim: int
    source: str  # the topic it comes from (relative name): joint_states, sim/state


@dataclass(frozen=True)
class BundleSpec:
    path: Path
    policy_id: str
    state_components: tuple[StateComponent, ...]
    cameras: tuple[str, ...]
    image_size: tuple[int, int] | None
    chunk_size: int
    action_dim: int
    joint_names: tuple[str, ...]
    fps: float
    n_action_steps: int
    temporal_ensembling: bool
    temporal_ensembling_k: float
    raw: dict[str, Any] = field(repr=False, hash=False, compare=False, default_factory=dict)
    output_name: str = "actions"
    onnx_sha256: str = ""
    # (camera, file in the bundle, its sha256): each camera's view in training (vla_il_core.camera_view)
    camera_views: tuple[tuple[str, str, str], ...] = ()

    @property
    def state_dim(self) -> int:
        return sum(c.dim for c in self.state_components)

    @property
    def onnx_path(self) -> Path:
        return self.path / "policy.onnx"

    def graph_inputs(self) -> dict[str, tuple[int | None, ...]]:
        """The float32 inputs the node feeds, with their dims (None: the batch axis; the node feeds 1)."""
        dims: dict[str, tuple[int | None, ...]] = {"state": (None, self.state_dim)}
        for cam in self.cameras:
            dims[f"image_{cam}"] = (None, 3, *self.image_size)
        return dims


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_bundle(path: Path) -> BundleSpec:
    """Parse policy.json and check it against itself; `check_graph` checks it against the ONNX."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path} is not a bundle directory")
    for name in ("policy.onnx", "policy.json"):
        if not (path / name).is_file():
            raise BundleError(f"{path}: {name} is missing")
    meta = _load_json(path / "policy.json")
    try:
        return _parse(path, meta)
    except _FieldError as exc:
        raise BundleError(f"{path}/policy.json: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        # every field is checked above; this keeps the contract (BundleError, never another exception)
        raise BundleError(f"{path}/policy.json lacks or mangles a field: {exc!r}") from exc


def read_onnx(spec: BundleSpec) -> bytes:
    """policy.onnx's bytes, once they hash to policy.json's sha256 (hand these bytes, not the path, to
    ONNX Runtime: what was checked is what runs)."""
    return read_verified(spec, "policy.onnx", spec.onnx_sha256, "policy.onnx")


def read_verified(spec: BundleSpec, file: str, sha256: str, what: str) -> bytes:
    """The bytes of `file` in the bundle, once they hash to `sha256` (what policy.json says); BundleError naming
    `what` when it cannot be read, naming the file when it hashes to something else."""
    try:
        data = (spec.path / file).read_bytes()
    except OSError as exc:
        raise BundleError(f"{spec.path}: {what} cannot be read: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise BundleError(f"{spec.path}: {file} sha256 mismatch: policy.json says {sha256[:12]}..., "
                          f"the file is {actual[:12]}... (changed or corrupted since export)")
    return data


def check_graph(spec: BundleSpec, session) -> None:
    """The graph's required inputs must be exactly what the node feeds (names, float32, static dims as in
    policy.json, a batch of one), and its output what policy.json says (name, float32, chunk x action_dim)."""
    want = spec.graph_inputs()
    got = {i.name: i for i in session.get_inputs()}
    unfed = [n for n in got if n not in want]
    if unfed:
        raise BundleError(f"{spec.path}: the graph requires input(s) {', '.join(unfed)} that the node does not feed "
                          f"(it feeds {', '.join(want)})")
    if "state" not in got:
        raise BundleError(f"{spec.path}: the graph has no 'state' input (inputs: {', '.join(got)})")
    for cam in spec.cameras:
        if f"image_{cam}" not in got:
            raise BundleError(f"{spec.path}: camera {cam} has no graph input image_{cam}")
    for name, dims in want.items():
        arg = got[name]
        _check_type(spec, "input", arg)
        if not _fits(arg.shape, dims):
            if name == "state":
                raise BundleError(f"{spec.path}: policy.json says state dim {spec.state_dim}, "
                                  f"the graph takes {arg.shape}")
            raise BundleError(f"{spec.path}: camera {name[len('image_'):]}: policy.json says 3 x "
                              f"{dims[2]} x {dims[3]} images, the graph takes {arg.shape}")
    outputs = {o.name: o for o in session.get_outputs()}
    if spec.output_name not in outputs:
        raise BundleError(f"{spec.path}: the graph has no output {spec.output_name!r} (outputs: {', '.join(outputs)})")
    out = outputs[spec.output_name]
    _check_type(spec, "output", out)
    shape = out.shape
    if len(shape) != 3 or not _fits(shape[:1], (None,)) or tuple(shape[1:]) != (spec.chunk_size, spec.action_dim):
        raise BundleError(f"{spec.path}: policy.json says chunk {spec.chunk_size} x {spec.action_dim}, "
                          f"the graph outputs {shape}")


def _check_type(spec: BundleSpec, kind: str, arg) -> None:
    if arg.type != FLOAT32:
        raise BundleError(f"{spec.path}: graph {kind} {arg.name} is {arg.type}; the node feeds and reads "
                          f"{FLOAT32} (float32)")


def _fits(shape, dims: tuple[int | None, ...]) -> bool:
    """A graph shape (ints for static dims, names or None for dynamic ones) takes `dims` with a batch of one."""
    if shape is None or len(shape) != len(dims):
        return False
    batch, *rest = shape
    if isinstance(batch, int) and batch != 1:
        return False
    return all(not isinstance(g, int) or g == w for g, w in zip(rest, dims[1:]))


# ---------------------------------------------------------------------------------------------- policy.json
class _FieldError(ValueError):
    """A field of policy.json with a wrong type or value; the message names it."""


_REQUIRED = object()


def _kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _load_json(file: Path) -> dict[str, Any]:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise BundleError(f"{file} cannot be read: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{file} is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{file} is not valid JSON: {exc}") from None
    except RecursionError:
        raise BundleError(f"{file} is not valid JSON: nested too deeply") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{file} must hold a JSON object, not {_kind(meta)}")
    return meta


def _get(obj: dict, key: str, where: str, default: Any) -> Any:
    if key in obj:
        return obj[key]
    if default is _REQUIRED:
        raise _FieldError(f"{where}{key} is missing")
    return default


def _object(obj: dict, key: str, where: str = "", default: Any = _REQUIRED) -> dict:
    value = _get(obj, key, where, default)
    if not isinstance(value, dict):
        raise _FieldError(f"{where}{key} must be an object, not {_kind(value)}")
    return value


def _array(obj: dict, key: str, where: str = "", default: Any = _REQUIRED) -> list:
    value = _get(obj, key, where, default)
    if not isinstance(value, list):
        raise _FieldError(f"{where}{key} must be an array, not {_kind(value)}")
    return value


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _FieldError(f"{name} must be a non-empty string, not {_kind(value)} {value!r}")
    return value


def _count(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _FieldError(f"{name} must be a whole number >= 1, not {_kind(value)} {value!r}")
    return value


def _number(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise _FieldError(f"{name} must be a finite number, not {_kind(value)} {value!r}")
    return float(value)


def _strings(values: list, name: str) -> tuple[str, ...]:
    out = tuple(_string(v, f"{name}[{i}]") for i, v in enumerate(values))
    if len(set(out)) != len(out):
        raise _FieldError(f"{name} has duplicates: {list(out)}")
    return out


def _parse(path: Path, meta: dict[str, Any]) -> BundleSpec:
    version = meta.get("schema_version")
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise _FieldError(f"schema_version {version!r}, this vla-il reads {SCHEMA_VERSION}")
    inputs = _object(meta, "inputs")
    state = _object(inputs, "state", "inputs.")
    components = []
    for i, c in enumerate(_array(state, "components", "inputs.state.")):
        where = f"inputs.state.components[{i}]"
        if not isinstance(c, dict):
            raise _FieldError(f"{where} must be an object, not {_kind(c)}")
        components.append(StateComponent(_string(_get(c, "name", f"{where}.", _REQUIRED), f"{where}.name"),
                                          _count(_get(c, "dim", f"{where}.", _REQUIRED), f"{where}.dim"),
                                          _string(_get(c, "source", f"{where}.", _REQUIRED), f"{where}.source")))
    if not components:
        raise _FieldError("inputs.state.components is empty: the node has no state to feed")
    cameras = _strings(_array(inputs, "cameras", "inputs.", []), "inputs.cameras")
    image_size = None
    if inputs.get("image_size") is not None:
        size = _array(inputs, "image_size", "inputs.")
        if len(size) != 2:
            raise _FieldError(f"inputs.image_size must be [height, width], not {size!r}")
        image_size = (_count(size[0], "inputs.image_size[0]"), _count(size[1], "inputs.image_size[1]"))
    if cameras and image_size is None:
        raise _FieldError("inputs.image_size is missing: the node sizes the cameras' images by it")
    camera_views = []
    for cam, view in _object(inputs, "camera_views", "inputs.", {}).items():
        where = f"inputs.camera_views.{cam}"
        if cam not in cameras:
            raise _FieldError(f"{where}: {cam!r} is not one of inputs.cameras {list(cameras)}")
        if not isinstance(view, dict):
            raise _FieldError(f"{where} must be an object, not {_kind(view)}")
        file = _string(_get(view, "file", f"{where}.", _REQUIRED), f"{where}.file")
        if "/" in file or "\\" in file or file.startswith("."):
            raise _FieldError(f"{where}.file must name a file in the bundle folder, not {file!r}")
        view_sha = _get(view, "sha256", f"{where}.", _REQUIRED)
        if not isinstance(view_sha, str) or not _SHA256.fullmatch(view_sha.lower()):
            raise _FieldError(f"{where}.sha256 must be 64 hex digits, not {view_sha!r}")
        camera_views.append((cam, file, view_sha.lower()))
    instruction = inputs.get("instruction")
    if instruction is not None and not (isinstance(instruction, dict) and instruction.get("baked") is True):
        raise _FieldError("inputs.instruction is not baked into the graph (\"baked\": true): this node feeds none")
    outputs = _object(meta, "outputs")
    chunk_size = _count(_get(outputs, "chunk_size", "outputs.", _REQUIRED), "outputs.chunk_size")
    action_dim = _count(_get(outputs, "action_dim", "outputs.", _REQUIRED), "outputs.action_dim")
    joint_names = _strings(_array(meta, "joint_names"), "joint_names")
    if len(joint_names) != action_dim:
        raise _FieldError(f"{len(joint_names)} joint names for an action dim of {action_dim}")
    fps = _number(_get(meta, "fps", "", _REQUIRED), "fps")
    if not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise _FieldError(f"fps {fps:g} is not a control rate: it must be within {FPS_RANGE[0]:g}..{FPS_RANGE[1]:g} Hz")
    rec = _object(meta, "recommended", default={})
    n_action_steps = _count(rec.get("n_action_steps", chunk_size), "recommended.n_action_steps")
    if n_action_steps > chunk_size:
        raise _FieldError(f"n_action_steps {n_action_steps} outside 1..{chunk_size}")
    ensembling = rec.get("temporal_ensembling", False)
    if not isinstance(ensembling, bool):
        raise _FieldError(f"recommended.temporal_ensembling must be true or false, not {ensembling!r}")
    sha = _object(meta, "onnx", default={}).get("sha256")
    if sha is None:
        raise _FieldError("onnx.sha256 is missing: nothing proves policy.onnx is the exported graph "
                          "(re-export the bundle, or add the file's sha256)")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha.lower()):
        raise _FieldError(f"onnx.sha256 must be 64 hex digits, not {sha!r}")
    return BundleSpec(
        path=path,
        policy_id=_string(_get(meta, "policy_id", "", _REQUIRED), "policy_id"),
        state_components=tuple(components),
        cameras=cameras,
        image_size=image_size,
        chunk_size=chunk_size,
        action_dim=action_dim,
        joint_names=joint_names,
        fps=fps,
        n_action_steps=n_action_steps,
        temporal_ensembling=ensembling,
        temporal_ensembling_k=_number(rec.get("temporal_ensembling_k", 0.01), "recommended.temporal_ensembling_k"),
        raw=meta,
        output_name=_string(_get(outputs, "name", "outputs.", _REQUIRED), "outputs.name"),
        onnx_sha256=sha.lower(),
        camera_views=tuple(camera_views),
    )
