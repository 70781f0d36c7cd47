"""VLAConfig: what a VLAModel is made of, validated, and saved with every checkpoint (in policy.json).

The backbones are named (`vision_model_name`, `llm_model_name`: a hub id or a local directory,
loaded with `from_pretrained`) or given as configs (`vision_config`, `llm_config`: dicts of
`SiglipVisionConfig` / `Qwen2Config`, randomly initialised) — the tiny CPU preset is the latter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

ACTION_HEADS = ("regression", "flow_matching")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class VLAConfig:
    vision_model_name: str | None = "google/siglip-base-patch16-224"
    llm_model_name: str | None = "Qwen/Qwen2-1.5B-Instruct"
    vision_config: dict[str, Any] | None = None  # used instead of a name: random init from this config
    llm_config: dict[str, Any] | None = None
    action_dim: int = 2
    state_dim: int = 2
    chunk_size: int = 10  # actions predicted per observation (the spec's action_chunk_size)
    cameras: tuple[str, ...] = ("top",)
    image_size: tuple[int, int] | None = None  # (H, W) the model takes; None: the vision tower's square size
    max_instruction_tokens: int = 32
    action_head: str = "regression"  # or flow_matching (denoises the chunk from noise, pi0-style)
    flow_steps: int = 10  # Euler steps of the flow-matching head at inference
    freeze_vision: bool = False
    freeze_llm: bool = False
    llm_train_last_n_layers: int = 0  # > 0: freeze the LLM except its last N decoder layers
    lora_rank: int = 0  # > 0: LoRA adapters (peft) on the LLM's attention projections, base frozen
    lora_alpha: int = 16
    gradient_checkpointing: bool = False
    precision: str = "auto"  # auto: bf16 autocast on a CUDA GPU that supports it, else fp32
    tokenizer_json: str | None = None  # the built-in tokenizer travels inside the checkpoint
    # > 0: a training-only head reads the decoder at the state token and predicts the scene's object poses
    # (observation.environment_state, recorded in the sim), weighted aux_state_weight in the loss: it asks
    # the vision side to localise the objects. Inference and the exported graph do not use it.
    aux_state_dim: int = 0
    aux_state_weight: float = 1.0
    # In training, this fraction of samples sees a learned "no state" token instead of the robot state. Demos
    # leak the scene through the arm (a scripted arm already heading for the cube says where it is), and a
    # model that reads it never learns to see: it then follows its own arm wherever it drifted.
    # 1.0: vision only, the model never sees the state (training and inference; the input stays in the graph).
    state_dropout: float = 0.0
    # Indices of the state the model reads however state_dropout hides the rest, e.g. the grippers' openings
    # (ALOHA: 6 and 13). A correction that depends on how far a gripper has already closed (the expert's
    # "open and come in again") contradicts the demos in the picture alone: measured in
    # docs/results/vla_hg_dagger_seeds. A robot's joint states report them, so no recording lacks them.
    state_keep: tuple[int, ...] = ()
    # In training, this fraction of samples does not see the kept state either (the copycat remedy: a model that
    # reads the gripper's opening learns to continue what the gripper is doing, and nothing in the picture starts a
    # close; measured on round 0: state_keep alone 6% against 63% vision only, with 0.5 of it 60%, docs/results/
    # vla_hg_dagger_seeds). Run time and the exported graph read it always.
    state_keep_dropout: float = 0.0
    # In training, each camera named here is hidden from this share of the samples: its image tokens are replaced by
    # a learned "no view" token. A view that shows what the robot is doing (the wrist camera sees the fingers'
    # opening) is the copycat input of state_keep again, in pixels: hidden from a share, it cannot be the whole
    # answer. Run time and the exported graph see every camera always. E.g. {"right_wrist": 0.5}.
    camera_dropout: dict[str, float] = field(default_factory=dict)
    # In training, every image is shifted by up to this many pixels in each direction, per sample and camera (edges
    # repeated): DrQ's random shift (Kostrikov et al., 2020), robomimic's crop randomisation. Run time and the
    # exported graph are unaffected. 0: off. Measured on the vision-only recipe, which places the arm by absolute
    # pixel positions (1 px of shift at run time took a 46% policy to 0%): 4 px harmful (5% against 23%), 1 px kept
    # policies working with the camera 1 px off, 51/64/7% against 46/15/23% over three seeds (docs/results).
    image_shift: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        if self.image_size is not None:
            self.image_size = tuple(int(x) for x in self.image_size)
            if len(self.image_size) != 2 or min(self.image_size) < 1:
                raise ValueError(f"VLAConfig.image_size must be (height, width), got {self.image_size!r}")
        if self.vision_config is None and not self.vision_model_name:
            raise ValueError("VLAConfig needs a vision_model_name (hub id or local dir) or a vision_config")
        if self.llm_config is None and not self.llm_model_name:
            raise ValueError("VLAConfig needs an llm_model_name (hub id or local dir) or an llm_config")
        for name in ("action_dim", "state_dim", "chunk_size", "max_instruction_tokens", "flow_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VLAConfig.{name} must be a positive integer, got {value!r}")
        if not self.cameras:
            raise ValueError("VLAConfig.cameras must name at least one camera (a VLA sees)")
        if self.action_head not in ACTION_HEADS:
            raise ValueError(
                f"VLAConfig.action_head must be one of {', '.join(ACTION_HEADS)}, got {self.action_head!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"VLAConfig.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 0.0 <= self.state_dropout <= 1.0:
            raise ValueError(f"VLAConfig.state_dropout must be in [0, 1], got {self.state_dropout}")
        self.state_keep = tuple(self.state_keep)
        if not 0.0 <= self.state_keep_dropout <= 1.0:
            raise ValueError(f"VLAConfig.state_keep_dropout must be in [0, 1], got {self.state_keep_dropout}")
        if self.state_keep_dropout and not self.state_keep:
            raise ValueError("VLAConfig.state_keep_dropout drops the kept state: give state_keep")
        if (not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < self.state_dim for i in self.state_keep)
                or len(set(self.state_keep)) != len(self.state_keep)):
            raise ValueError(f"VLAConfig.state_keep must be distinct state indices in 0..{self.state_dim - 1}, "
                             f"got {list(self.state_keep)}")
        self.camera_dropout = {str(cam): float(p) for cam, p in dict(self.camera_dropout).items()}
        for cam, p in self.camera_dropout.items():
            if cam not in self.cameras:
                raise ValueError(f"VLAConfig.camera_dropout names {cam!r}, not one of the cameras "
                                 f"({', '.join(self.cameras)})")
            if not 0.0 <= p < 1.0:
                raise ValueError(f"VLAConfig.camera_dropout[{cam!r}] must be in [0, 1) (a camera never shown: leave "
                                 f"it out of cameras), got {p}")
        if not isinstance(self.image_shift, int) or isinstance(self.image_shift, bool) or self.image_shift < 0:
            raise ValueError(f"VLAConfig.image_shift must be a number of pixels >= 0, got {self.image_shift!r}")
        if self.image_size is not None and 2 * self.image_shift >= min(self.image_size):
            raise ValueError(f"VLAConfig.image_shift {self.image_shift} is too large for images of "
                             f"{self.image_size[0]}x{self.image_size[1]}")
        if self.aux_state_dim < 0 or not self.aux_state_weight >= 0:
            raise ValueError("VLAConfig.aux_state_dim and aux_state_weight must be >= 0")
        if self.llm_train_last_n_layers < 0 or self.lora_rank < 0:
            raise ValueError("VLAConfig.llm_train_last_n_layers and lora_rank must be >= 0")
        if self.lora_rank and (self.freeze_llm or self.llm_train_last_n_layers):
            raise ValueError(
                "VLAConfig: choose one way to tune the LLM: lora_rank, llm_train_last_n_layers or freeze_llm"
            )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["cameras"] = list(self.cameras)
        out["image_size"] = list(self.image_size) if self.image_size else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VLAConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown VLAConfig fields {', '.join(unknown)}")
        return cls(**data)


def camera_dropout_pairs(pairs: list[str], cameras: list[str] | tuple[str, ...], flag: str) -> dict[str, float]:
    """A command line's CAMERA=P pairs (after `flag`) -> VLAConfig.camera_dropout; ValueError naming the flag and the
    pair that is not one."""
    shares: dict[str, float] = {}
    for pair in pairs:
        cam, sep, value = pair.partition("=")
        try:
            share = float(value) if sep else float("nan")
        except ValueError:
            share = float("nan")
        if cam not in cameras or not 0.0 <= share < 1.0:
            raise ValueError(f"{flag} {pair}: CAMERA=P with CAMERA one of the cameras ({', '.join(cameras)}) "
                             "and P a share in [0, 1)")
        shares[cam] = share
    return shares


def tiny_backbone_configs(
    image_size: tuple[int, int], vocab_size: int, hidden: int = 64, layers: int = 2, patch_size: int = 8
) -> tuple[dict[str, Any], dict[str, Any]]:
    """SigLIP and Qwen2 configs small enough to train on a CPU in minutes (the `tiny` preset)."""
    side = max(image_size) // patch_size * patch_size
    vision = {
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "image_size": side,
        "patch_size": patch_size,
    }
    llm = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,  # rotary: no parameters, room for 3 cameras
        "tie_word_embeddings": False,
        "use_cache": False,
    }
    return vision, llm
