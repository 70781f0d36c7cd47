"""VLAModel: a vision-language-action policy — SigLIP vision tower -> projector -> Qwen2 decoder -> action head.

The decoder reads one sequence per observation:

    [ image tokens (every camera) | instruction tokens | proprioceptive state | action queries ]

and the hidden states at the `chunk_size` action queries become a chunk of actions: directly
(`action_head="regression"`, MSE on normalised actions) or by denoising (`"flow_matching"`: a
velocity field conditioned on each query, integrated from noise in `flow_steps` Euler steps).

    VLAModel(vision_model_name="google/siglip-base-patch16-224", llm_model_name="Qwen/Qwen2-1.5B-Instruct",
             action_dim=2)          # weights through from_pretrained (a local dir or the hub cache)
    VLAModel.tiny(action_dim=14, state_dim=14, cameras=("top",), image_size=(48, 64))   # CPU preset

It is an `ILPolicy`: `loss(batch)`, `predict(obs)`, `spec()`. Batches and observations are dicts
in LeRobot's keys: `observation.state` (B, S), `observation.images.<camera>` (B, 3, H, W) float in
[0, 1] (uint8 is accepted and scaled), `task` (one instruction per row), and for the loss `action`
(B, chunk, A) with `action_is_pad` (B, chunk). Normalisation statistics live in buffers.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from training.models.policies import ILPolicy
from training.models.vla_config import VLAConfig, tiny_backbone_configs
from training.models.vla_tokenizer import build_tiny_tokenizer, load_pretrained_tokenizer, wrap_tokenizer_json

STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
IMAGE_PREFIX = "observation.images."


class VLAInputError(ValueError):
    """An observation or batch the model cannot read; the message names what was expected."""


def _load_backbone(kind: str, name: str | None, config: dict[str, Any] | None) -> nn.Module:
    """SigLIP vision tower / Qwen2 decoder: from a config (random init) or through from_pretrained."""
    from transformers import Qwen2Config, Qwen2Model, SiglipVisionConfig, SiglipVisionModel

    model_cls, config_cls = (SiglipVisionModel, SiglipVisionConfig) if kind == "vision" else (Qwen2Model, Qwen2Config)
    if config is not None:
        cfg = config_cls(**{k: v for k, v in config.items() if k not in ("model_type", "transformers_version")})
        cfg._attn_implementation = "sdpa"
        return model_cls(cfg)
    try:
        return model_cls.from_pretrained(name, attn_implementation="sdpa")
    except (OSError, ValueError) as exc:  # ValueError: huggingface_hub's invalid repo id (a missing path)
        from training.models.vla_tokenizer import _first_line, _where

        raise FileNotFoundError(
            f"the {kind} weights {name!r} are not available in {_where(name)}: {_first_line(exc)}. "
            f"Put them there (e.g. `huggingface-cli download {name}` where there is network, or a directory "
            "written by save_pretrained), or build a small model with VLAModel.tiny() / VLAModel.from_config()."
        ) from exc


class FlowMatchingHead(nn.Module):
    """A velocity field v(x_t, t | query): trained on straight paths noise -> action (flow matching)."""

    def __init__(self, hidden: int, action_dim: int, time_dim: int = 32) -> None:
        super().__init__()
        self.time_dim = time_dim
        self.net = nn.Sequential(
            nn.Linear(hidden + action_dim + time_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, action_dim),
        )

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        half = self.time_dim // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=t.dtype) / half)
        angles = t[:, None] * freqs[None] * 100.0
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def velocity(self, cond: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embedding(t)[:, None].expand(-1, cond.shape[1], -1)
        return self.net(torch.cat([cond, x_t, emb.to(cond.dtype)], dim=-1))

    def sample(self, cond: torch.Tensor, steps: int, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Integrate from `noise` ((1 or B, n, action_dim): every row of the batch starts from it), or from noise
        drawn per row from `generator`."""
        b, n, _ = cond.shape
        if noise is None:
            noise = torch.randn(b, n, self.net[-1].out_features, generator=generator, device="cpu")
        x = noise.to(cond).expand(b, n, -1)
        for i in range(steps):
            t = torch.full((b,), i / steps, device=cond.device, dtype=cond.dtype)
            x = x + self.velocity(cond, x, t) / steps
        return x


class VLAModel(ILPolicy):
    discrete = False

    def __init__(
        self,
        vision_model_name: str | None = "google/siglip-base-patch16-224",
        llm_model_name: str | None = "Qwen/Qwen2-1.5B-Instruct",
        action_dim: int = 2,
        config: VLAConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if config is None:
            config = VLAConfig(
                vision_model_name=vision_model_name, llm_model_name=llm_model_name, action_dim=action_dim, **kwargs
            )
        self.config = c = config
        self.action_dim, self.state_dim, self.chunk_size = c.action_dim, c.state_dim, c.chunk_size
        self.cameras = c.cameras
        if c.tokenizer_json is not None:
            self.tokenizer = wrap_tokenizer_json(c.tokenizer_json)
        else:
            self.tokenizer = load_pretrained_tokenizer(c.llm_model_name)

        self.vision = _load_backbone("vision", c.vision_model_name, c.vision_config)
        vm = self.vision.vision_model
        if getattr(vm, "use_head", False):  # SigLIP's pooling head: we read the patch tokens instead
            vm.use_head, vm.head = False, None
            self.vision.config.vision_use_head = False
        self.llm = _load_backbone("llm", c.llm_model_name, c.llm_config)
        vcfg, lcfg = self.vision.config, self.llm.config
        if len(self.tokenizer) > lcfg.vocab_size:
            raise ValueError(f"the tokenizer has {len(self.tokenizer)} tokens, the LLM's vocabulary {lcfg.vocab_size}")
        side = vcfg.image_size
        self.image_size: tuple[int, int] = tuple(c.image_size) if c.image_size else (side, side)
        if any(s % vcfg.patch_size for s in self.image_size):
            raise ValueError(f"image size {self.image_size} is not a multiple of the patch size {vcfg.patch_size}")
        self._interpolate = self.image_size != (side, side)
        self.patches = (self.image_size[0] // vcfg.patch_size) * (self.image_size[1] // vcfg.patch_size)
        seq = self.patches * len(self.cameras) + c.max_instruction_tokens + 1 + c.chunk_size
        if seq > lcfg.max_position_embeddings:
            raise ValueError(
                f"the sequence ({seq} tokens: images, instruction, state, action queries) exceeds the "
                f"LLM's context of {lcfg.max_position_embeddings}"
            )

        hidden = lcfg.hidden_size
        self.projector = nn.Sequential(nn.Linear(vcfg.hidden_size, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.camera_embed = nn.Parameter(torch.zeros(len(self.cameras), hidden))
        self.state_proj = nn.Linear(c.state_dim, hidden)
        if c.state_dropout:  # only then: checkpoints without it load as before
            self.no_state = nn.Parameter(torch.zeros(hidden))
        if c.camera_dropout:  # only then: checkpoints without it load as before
            self.no_view = nn.Parameter(torch.zeros(len(self.cameras), hidden))
        if c.state_keep:  # the state values every sample sees, however state_dropout hides the rest
            self.kept_state_proj = nn.Linear(len(c.state_keep), hidden)
        self.action_queries = nn.Parameter(torch.randn(c.chunk_size, hidden) * 0.02)
        if c.action_head == "regression":
            self.head: nn.Module = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, c.action_dim))
        else:
            self.head = FlowMatchingHead(hidden, c.action_dim)
            # where inference's integration starts: fixed (seed 0), so an observation gives the same chunk in any
            # row of any batch, and the ONNX graph holds it as a constant; not saved (drawn again on load)
            start = torch.randn(1, c.chunk_size, c.action_dim, generator=torch.Generator().manual_seed(0))
            self.register_buffer("flow_noise", start, persistent=False)
        self.aux_head = nn.Linear(hidden, c.aux_state_dim) if c.aux_state_dim else None
        if c.aux_state_dim:  # only then: checkpoints without the head load as before
            self.register_buffer("aux_mean", torch.zeros(c.aux_state_dim))
            self.register_buffer("aux_std", torch.ones(c.aux_state_dim))
        self.register_buffer("state_mean", torch.zeros(c.state_dim))
        self.register_buffer("state_std", torch.ones(c.state_dim))
        self.register_buffer("action_mean", torch.zeros(c.action_dim))
        self.register_buffer("action_std", torch.ones(c.action_dim))
        self._register_binary_actions(c.action_dim)  # grippers snap to open / closed (ILPolicy)
        self._apply_tuning()
        self._token_cache: dict[str, list[int]] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(
        cls, vision_config: dict[str, Any], llm_config: dict[str, Any], tokenizer_json: str | None = None, **kwargs: Any
    ) -> VLAModel:
        """Backbones from configs (random init), the built-in tokenizer unless one is given."""
        if tokenizer_json is None:
            tokenizer_json = build_tiny_tokenizer().backend_tokenizer.to_str()
        return cls(
            config=VLAConfig(
                vision_model_name=None,
                llm_model_name=None,
                vision_config=vision_config,
                llm_config=llm_config,
                tokenizer_json=tokenizer_json,
                **kwargs,
            )
        )

    @classmethod
    def tiny(
        cls,
        action_dim: int = 14,
        state_dim: int = 14,
        cameras: tuple[str, ...] = ("top",),
        image_size: tuple[int, int] = (48, 64),
        chunk_size: int = 10,
        hidden: int = 64,
        layers: int = 2,
        patch_size: int = 8,
        **kwargs: Any,
    ) -> VLAModel:
        """The CPU preset: 2-layer SigLIP and Qwen2 of width 64, the built-in tokenizer."""
        tokenizer = build_tiny_tokenizer()
        vision, llm = tiny_backbone_configs(image_size, len(tokenizer), hidden, layers, patch_size)
        vision["vision_use_head"] = False
        return cls.from_config(
            vision,
            llm,
            tokenizer.backend_tokenizer.to_str(),
            action_dim=action_dim,
            state_dim=state_dim,
            cameras=tuple(cameras),
            image_size=tuple(image_size),
            chunk_size=chunk_size,
            **kwargs,
        )

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> VLAModel:
        """Rebuild from policy.json (the backbones from their saved configs; weights come from model.pt)."""
        return cls(config=VLAConfig.from_dict(spec["config"]))

    def spec(self) -> dict[str, Any]:
        config = self.config.to_dict()
        config["vision_config"] = _config_dict(self.vision.config)
        config["llm_config"] = _config_dict(
            self.llm.get_base_model().config if self.config.lora_rank else self.llm.config
        )
        return {"class": "VLAModel", "config": config}

    def _apply_tuning(self) -> None:
        c = self.config
        if c.freeze_vision:
            self.vision.requires_grad_(False)
        if c.freeze_llm:
            self.llm.requires_grad_(False)
        elif c.llm_train_last_n_layers:
            self.llm.requires_grad_(False)
            for layer in self.llm.layers[-c.llm_train_last_n_layers :]:
                layer.requires_grad_(True)
            self.llm.norm.requires_grad_(True)
        if c.lora_rank:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=c.lora_rank,
                lora_alpha=c.lora_alpha,
                lora_dropout=0.0,
                target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            )
            self.llm = get_peft_model(self.llm, lora)
        if c.gradient_checkpointing:
            for module in (self.vision, self.llm):
                module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # ------------------------------------------------------------------ normalisation
    def set_normalization(self, state_mean, state_std, action_mean, action_std, binary_mask=None, binary_low=None,
                          binary_high=None, env_state_mean=None, env_state_std=None) -> None:
        """Statistics from the dataset (std floored at 1e-2 so constant joints do not explode)."""
        if binary_mask is not None:
            self.set_binary_actions(binary_mask, binary_low, binary_high)
        values = [
            ("state_mean", state_mean, None),
            ("state_std", state_std, 1e-2),
            ("action_mean", action_mean, None),
            ("action_std", action_std, 1e-2),
        ]
        if self.aux_head is not None and env_state_mean is not None:
            values += [("aux_mean", env_state_mean, None), ("aux_std", env_state_std, 1e-2)]
        for name, value, floor in values:
            arr = np.asarray(value, dtype=np.float32).reshape(-1)
            buf = getattr(self, name)
            if arr.shape != tuple(buf.shape):
                raise ValueError(f"{name}: expected {tuple(buf.shape)} values, got {arr.shape}")
            if floor is not None:
                arr = np.maximum(arr, floor)
            buf.copy_(torch.as_tensor(arr))

    # ------------------------------------------------------------------ inputs
    @property
    def device(self) -> torch.device:
        return self.state_mean.device

    def tokenize(self, texts: list[str] | tuple[str, ...] | str) -> tuple[torch.Tensor, torch.Tensor]:
        """Instructions -> ids and mask, padded to max_instruction_tokens; too long is an error."""
        if isinstance(texts, str):
            texts = [texts]
        limit = self.config.max_instruction_tokens
        rows = []
        for text in texts:
            if not isinstance(text, str):
                raise VLAInputError(f"an instruction must be a string, got {type(text).__name__}")
            ids = self._token_cache.get(text)
            if ids is None:
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                self._token_cache[text] = ids
            if len(ids) > limit:
                raise VLAInputError(
                    f"the instruction {text[:60]!r}... has {len(ids)} tokens, the model's instruction "
                    f"context is {limit} (VLAConfig.max_instruction_tokens)"
                )
            rows.append(ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), limit), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), limit), dtype=torch.long)
        for i, ids in enumerate(rows):
            input_ids[i, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            mask[i, : len(ids)] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def prepare(self, obs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """An observation batch (LeRobot keys) -> (state, images (B, cams, 3, H, W), ids, mask), all checked."""
        if STATE_KEY not in obs:
            raise VLAInputError(f"the observation has no '{STATE_KEY}' (keys: {', '.join(sorted(obs))})")
        state = torch.as_tensor(obs[STATE_KEY], dtype=torch.float32, device=self.device)
        if state.dim() != 2 or state.shape[1] != self.state_dim:
            raise VLAInputError(f"'{STATE_KEY}' must be (batch, {self.state_dim}), got {tuple(state.shape)}")
        missing = [cam for cam in self.cameras if IMAGE_PREFIX + cam not in obs]
        if missing:
            have = [k[len(IMAGE_PREFIX) :] for k in obs if k.startswith(IMAGE_PREFIX)]
            raise VLAInputError(
                f"the model sees cameras {', '.join(self.cameras)}; missing {', '.join(missing)} "
                f"(the data has: {', '.join(have) or 'no cameras'})"
            )
        images = torch.stack([self._check_image(cam, obs[IMAGE_PREFIX + cam]) for cam in self.cameras], dim=1)
        if "task" not in obs:
            raise VLAInputError("the observation has no 'task' (the language instruction)")
        task = obs["task"]
        texts = [task] * state.shape[0] if isinstance(task, str) else list(task)
        if len(texts) != state.shape[0]:
            raise VLAInputError(f"{len(texts)} instructions for a batch of {state.shape[0]}")
        ids, mask = self.tokenize(texts)
        return state, images, ids, mask

    def _check_image(self, camera: str, image: Any) -> torch.Tensor:
        x = torch.as_tensor(image, device=self.device)
        h, w = self.image_size
        if x.dim() != 4:
            raise VLAInputError(f"camera {camera}: expected a batch of images (B, 3, {h}, {w}), got {tuple(x.shape)}")
        if x.shape[1] != 3:
            hint = " (channel-last? expected channel-first)" if x.shape[-1] == 3 else ""
            raise VLAInputError(f"camera {camera}: expected (B, 3, {h}, {w}) RGB images, got {tuple(x.shape)}{hint}")
        if tuple(x.shape[2:]) != (h, w):
            raise VLAInputError(
                f"camera {camera}: images are {x.shape[2]}x{x.shape[3]}, the model takes {h}x{w} "
                "(VLAConfig.image_size); resize in the dataset (image_size=...), which logs it"
            )
        if x.dtype == torch.uint8:
            return x.float() / 255.0
        x = x.float()
        if x.numel() and (x.max() > 1.0 + 1e-3 or x.min() < -1e-3):
            raise VLAInputError(
                f"camera {camera}: float images must be in [0, 1], got [{x.min():.3g}, {x.max():.3g}] "
                "(0..255 values? pass uint8 or divide by 255)"
            )
        return x

    # ------------------------------------------------------------------ the network
    def _autocast(self):
        c = self.config
        dev = self.device.type
        use = dev == "cuda" and (c.precision == "bf16" or (c.precision == "auto" and torch.cuda.is_bf16_supported()))
        return torch.autocast("cuda", dtype=torch.bfloat16) if use else contextlib.nullcontext()

    def visual_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, cams, 3, H, W) in [0, 1] -> the vision tower's patch tokens (B, cams * patches, Dv)."""
        b, n = images.shape[:2]
        pixels = (images.flatten(0, 1) - 0.5) / 0.5  # SigLIP's normalisation
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.vision.parameters())
        with torch.set_grad_enabled(grad):
            out = self.vision(pixel_values=pixels, interpolate_pos_encoding=self._interpolate).last_hidden_state
        return out.reshape(b, n * out.shape[1], out.shape[2])

    def query_states(
        self, state: torch.Tensor, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """The decoder's hidden states at the action queries (B, chunk, hidden)."""
        return self._decode(state, images, input_ids, attention_mask)[:, -self.chunk_size :]

    def _hide_views(self, vis: torch.Tensor) -> torch.Tensor:
        """camera_dropout: per sample, a dropped camera's image tokens become its learned "no view" token."""
        blocks = list(vis.split(self.patches, dim=1))
        for i, cam in enumerate(self.cameras):
            share = self.config.camera_dropout.get(cam, 0.0)
            if share:
                hide = torch.rand(vis.shape[0], 1, 1, device=vis.device) < share
                blocks[i] = torch.where(hide, self.no_view[i].to(vis.dtype).expand_as(blocks[i]), blocks[i])
        return torch.cat(blocks, dim=1)

    def _decode(
        self, state: torch.Tensor, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """The decoder's hidden states over [image tokens | instruction | state | action queries]."""
        b = state.shape[0]
        with self._autocast():
            vis = self.projector(self.visual_tokens(images))
            if self.training and self.config.camera_dropout:
                vis = self._hide_views(vis)
            vis = vis + self.camera_embed.repeat_interleave(self.patches, dim=0)[None]
            text = self.llm.get_input_embeddings()(input_ids)
            if self.config.state_dropout >= 1.0:  # vision only: the state never reaches the decoder
                st = self.no_state.to(vis.dtype).view(1, 1, -1).expand(b, 1, -1)
            else:
                st = self.state_proj((state - self.state_mean) / self.state_std)[:, None]
                if self.training and self.config.state_dropout:
                    drop = torch.rand(b, 1, 1, device=st.device) < self.config.state_dropout
                    st = torch.where(drop, self.no_state.to(st.dtype).expand_as(st), st)
            if self.config.state_keep:
                keep = list(self.config.state_keep)
                kept = (state[:, keep] - self.state_mean[keep]) / self.state_std[keep]
                add = self.kept_state_proj(kept)[:, None].to(st.dtype)
                if self.training and self.config.state_keep_dropout:
                    seen = torch.rand(b, 1, 1, device=add.device) >= self.config.state_keep_dropout
                    add = add * seen.to(add.dtype)
                st = st + add
            queries = self.action_queries[None].expand(b, -1, -1)
            x = torch.cat([vis, text.to(vis.dtype), st.to(vis.dtype), queries.to(vis.dtype)], dim=1)
            ones = torch.ones(b, vis.shape[1], dtype=attention_mask.dtype, device=attention_mask.device)
            tail = torch.ones(b, 1 + self.chunk_size, dtype=attention_mask.dtype, device=attention_mask.device)
            mask = torch.cat([ones, attention_mask, tail], dim=1)
            # Our own 4-D mask (causal, padded instruction tokens hidden): the decoder uses it as given,
            # which also traces to ONNX (transformers' mask builder vmaps, which tracing cannot).
            n = x.shape[1]
            causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
            mask4 = causal[None, None] & mask.bool()[:, None, None, :]
            hidden = self.llm(inputs_embeds=x, attention_mask=mask4).last_hidden_state
        return hidden.float()

    def forward(
        self, state: torch.Tensor, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Tensors in, a chunk of actions in the environment's units out (B, chunk, action_dim)."""
        cond = self.query_states(state, images, input_ids, attention_mask)
        if self.config.action_head == "regression":
            out = self.head(cond)
        else:  # from the fixed noise: the same observation gives the same chunk
            out = self.head.sample(cond, self.config.flow_steps, noise=self.flow_noise)
        return self.snap_binary(out * self.action_std + self.action_mean)

    def predict(self, obs: dict[str, Any]) -> torch.Tensor:
        return self.forward(*self.prepare(obs))

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        state, images, ids, mask = self.prepare(batch)
        action = torch.as_tensor(batch["action"], dtype=torch.float32, device=self.device)
        if action.shape[1:] != (self.chunk_size, self.action_dim):
            raise VLAInputError(
                f"'action' must be (batch, {self.chunk_size}, {self.action_dim}) (a chunk), got {tuple(action.shape)}"
            )
        pad = batch.get("action_is_pad")
        valid = (
            (~torch.as_tensor(pad, device=self.device).bool()).float()
            if pad is not None
            else torch.ones(action.shape[:2], device=self.device)
        )
        target = (action - self.action_mean) / self.action_std
        if self.training and self.config.image_shift:
            images = random_shift(images, self.config.image_shift)
        hidden = self._decode(state, images, ids, mask)
        cond = hidden[:, -self.chunk_size :]
        if self.config.action_head == "regression":
            per = ((self.head(cond) - target) ** 2).mean(-1)
        else:
            noise = torch.randn_like(target)
            t = torch.rand(target.shape[0], device=self.device)
            x_t = t[:, None, None] * target + (1 - t[:, None, None]) * noise
            per = ((self.head.velocity(cond, x_t, t) - (target - noise)) ** 2).mean(-1)
        loss = (per * valid).sum() / valid.sum().clamp(min=1.0)
        if self.aux_head is not None and ENV_STATE_KEY in batch:
            env = torch.as_tensor(batch[ENV_STATE_KEY], dtype=torch.float32, device=self.device)
            if env.shape[1:] != (self.config.aux_state_dim,):
                raise VLAInputError(
                    f"'{ENV_STATE_KEY}' must be (batch, {self.config.aux_state_dim}), got {tuple(env.shape)}"
                )
            predicted = self.aux_head(hidden[:, -self.chunk_size - 1])  # the state token: it has seen everything
            aux = ((predicted - (env - self.aux_mean) / self.aux_std) ** 2).mean()
            loss = loss + self.config.aux_state_weight * aux
        return loss

    @torch.no_grad()
    def visual_features(self, images: torch.Tensor) -> torch.Tensor:
        """Mean-pooled patch tokens per camera, concatenated (B, cams * Dv): GAIL's view of the scene."""
        b, n = images.shape[:2]
        tokens = self.visual_tokens(images).float()
        return tokens.reshape(b, n, -1, tokens.shape[-1]).mean(2).reshape(b, -1)

    def parameter_counts(self) -> dict[str, int]:
        parts = {"vision": self.vision, "llm": self.llm, "projector": self.projector, "head": self.head}
        out = {name: sum(p.numel() for p in m.parameters()) for name, m in parts.items()}
        out["trainable"] = sum(p.numel() for p in self.parameters() if p.requires_grad)
        out["total"] = sum(p.numel() for p in self.parameters())
        return out


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, cams, 3, H, W) -> the same size, each image moved by a random whole number of pixels in -pad..pad
    on each axis, its edge pixels repeated into the gap (DrQ's random shift)."""
    b, n, c, h, w = images.shape
    flat = images.reshape(b * n, c, h, w)
    padded = torch.nn.functional.pad(flat, (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, b * n, 1), generator=generator).to(images.device)
    rows = (dy + torch.arange(h, device=images.device))[:, :, None]  # (B*cams, H, 1)
    cols = (dx + torch.arange(w, device=images.device))[:, None, :]  # (B*cams, 1, W)
    index = torch.arange(b * n, device=images.device)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[index, rows, cols]  # (B*cams, H, W, 3)
    return shifted.permute(0, 3, 1, 2).reshape(b, n, c, h, w)


def _config_dict(config) -> dict[str, Any]:
    skip = {
        "transformers_version",
        "architectures",
        "_name_or_path",
        "torch_dtype",
        "dtype",
        "model_type",
        "_attn_implementation_autoset",
    }
    return {k: v for k, v in config.to_dict().items() if k not in skip and not k.startswith("_")}
