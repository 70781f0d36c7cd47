"""The dataset schema (DESIGN.md): what every frame of a vla-il LeRobot dataset holds.

    observation.state              float32[14]  joint positions (grippers normalised)
    observation.environment_state  float32[7k]  object poses, in the sim (privileged; absent on robots)
    observation.images.<camera>    video        HxWx3 RGB; frames of at most LOSSLESS_MAX_PIXELS are
                                   `image` (lossless PNG in the parquet files) instead, see below
    action                         float32[14]  what the robot executed
    expert_action                  float32[14]  the expert's label (where the expert was queried)
    policy_action                  float32[14]  the policy's proposal (equals action where no policy ran)
    intervention                   bool         the expert was driving
    next.success                   bool         the task was achieved at this step
                                   (no float `next.reward`: lerobot 0.4.4 cannot write a float of
                                   shape (1,) with NumPy 2 — success is ALOHA's metric anyway)
    task                           the language instruction (LeRobot's per-frame task string)
Recorded on the robot (the DAgger recorder, `recorder_flags=True`), two more per-frame flags:
    expert_label                   bool         expert_action is the expert's label for this frame
                                                (else it repeats the executed action)
    policy_valid                   bool         policy_action is the policy's finite, fresh proposal
                                                (else: none, stale or NaN; it repeats the executed action)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

STATE = "observation.state"
ENV_STATE = "observation.environment_state"
IMAGE_PREFIX = "observation.images."
ACTION = "action"
EXPERT_ACTION = "expert_action"
POLICY_ACTION = "policy_action"
INTERVENTION = "intervention"
SUCCESS = "next.success"
EXPERT_LABEL = "expert_label"
POLICY_VALID = "policy_valid"


IMAGE_STORAGES = ("auto", "video", "image")
# lerobot encodes videos as AV1, 4:2:0 chroma, crf 30. At 48x64 that destroys what a policy needs:
# transfer_cube's cube, 2x2 pixels rendered, came back from the video as a dim red blot 2x4 pixels
# wide (measured on a recorded episode against the same seed rendered live), so a model trained on
# decoded frames met a different cube at run time. Small frames cost little as PNG.
LOSSLESS_MAX_PIXELS = 128 * 160


def image_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def image_dtype(image_size: tuple[int, int], storage: str = "auto") -> str:
    """How camera frames of this size are stored: `video` (lossy, small files) or `image` (lossless)."""
    if storage not in IMAGE_STORAGES:
        raise ValueError(f"image storage must be one of {', '.join(IMAGE_STORAGES)}, got {storage!r}")
    if storage != "auto":
        return storage
    return "image" if image_size[0] * image_size[1] <= LOSSLESS_MAX_PIXELS else "video"


def features(
    joint_names: Sequence[str],
    cameras: Sequence[str] = (),
    image_size: tuple[int, int] = (480, 640),
    env_state_dim: int = 0,
    recorder_flags: bool = False,
    image_storage: str = "auto",
) -> dict[str, dict[str, Any]]:
    """LeRobot `features` for a dataset of this schema (`image_storage`: see `image_dtype`)."""
    names = list(joint_names)
    vec = {"dtype": "float32", "shape": (len(names),), "names": names}
    out: dict[str, dict[str, Any]] = {STATE: dict(vec)}
    if env_state_dim:
        out[ENV_STATE] = {"dtype": "float32", "shape": (env_state_dim,), "names": None}
    dtype = image_dtype(image_size, image_storage)
    for cam in cameras:
        out[image_key(cam)] = {"dtype": dtype, "shape": (*image_size, 3), "names": ["height", "width", "channels"]}
    out[ACTION] = dict(vec)
    out[EXPERT_ACTION] = dict(vec)
    out[POLICY_ACTION] = dict(vec)
    out[INTERVENTION] = {"dtype": "bool", "shape": (1,), "names": None}
    out[SUCCESS] = {"dtype": "bool", "shape": (1,), "names": None}
    if recorder_flags:
        out[EXPERT_LABEL] = {"dtype": "bool", "shape": (1,), "names": None}
        out[POLICY_VALID] = {"dtype": "bool", "shape": (1,), "names": None}
    return out


def cameras_of(features_: dict[str, Any]) -> list[str]:
    return [k[len(IMAGE_PREFIX):] for k in features_ if k.startswith(IMAGE_PREFIX)]
