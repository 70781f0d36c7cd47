"""VLA training throughput and peak memory: the tiny preset on this CPU, the spec's full size on a GPU.

    python benchmarks/vla_train.py [--steps 20] [--batch_sizes 8 32] [--out output/vla_train]
    (or: vla-il bench vla)
    python benchmarks/vla_train.py --data [--episodes 20] [--cameras 3]     # the data path instead

`--data`: samples/s of the training data path on a dataset `vla-il collect` records here (the recipe's
96x128 frames, stored lossless), in the same run: lerobot's own per-item path (LeRobotDataset with
the chunk's delta timestamps, each image decoded on access: what the VLA's first epoch did before the
frame cache), the frame cache's first epoch (decoding included) and an epoch on a cached dataset.

Each configuration runs in its own process (a clean peak-memory reading): a few warm-up steps,
then `--steps` timed training steps (forward, backward, AdamW) on synthetic batches of the model's
inputs, so the number is the model's cost, not the data pipeline's. Baseline in the same run: the
state-only MLP policy of the BC trainers. The full-size configuration (SigLIP base/16 at 224 +
Qwen2-1.5B, bf16 autocast) is built from its configs (no download) and runs only where CUDA is;
otherwise it is skipped with a message. Peak memory: the process's peak RSS on CPU, the CUDA
allocator's peak on GPU.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path
from typing import Any

INSTRUCTION = "Pick up the red cube with the right arm and hand it over to the left arm."

CONFIGS: dict[str, dict[str, Any]] = {
    "mlp (baseline, state only)": {"kind": "mlp", "device": "cpu"},
    "vla tiny 48x64 1 cam, 1 thread": {"kind": "tiny", "image_size": (48, 64), "cameras": 1, "threads": 1},
    "vla tiny 48x64 1 cam, 2 threads": {"kind": "tiny", "image_size": (48, 64), "cameras": 1, "threads": 2},
    "vla tiny 96x128 3 cams, 2 threads": {"kind": "tiny", "image_size": (96, 128), "cameras": 3, "threads": 2},
    "vla full (SigLIP-B/16 + Qwen2-1.5B), GPU bf16": {"kind": "full", "device": "cuda"},
    "vla full, LoRA r=16 + frozen vision, GPU bf16": {
        "kind": "full",
        "device": "cuda",
        "lora_rank": 16,
        "freeze_vision": True,
    },
}


def _full_configs() -> tuple[dict, dict]:
    vision = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 16,
        "vision_use_head": False,
    }
    llm = {
        "vocab_size": 151936,
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
        "tie_word_embeddings": True,
        "use_cache": False,
    }
    return vision, llm


def _build(spec: dict[str, Any]):
    import torch

    from training.models.policies import MLPPolicy
    from training.models.vla import VLAModel

    if spec["kind"] == "mlp":
        return MLPPolicy(obs_dim=21, action_dim=14, discrete=False, chunk_size=10), None
    cams = ("top", "left_wrist", "right_wrist")[: spec.get("cameras", 1)]
    if spec["kind"] == "tiny":
        return VLAModel.tiny(cameras=cams, image_size=spec["image_size"]), spec["image_size"]
    vision, llm = _full_configs()
    from training.models.vla_tokenizer import build_tiny_tokenizer

    tok = build_tiny_tokenizer().backend_tokenizer.to_str()  # ids only; the vocabulary size is Qwen's
    model = VLAModel.from_config(
        vision,
        llm,
        tok,
        action_dim=14,
        state_dim=14,
        cameras=cams,
        chunk_size=10,
        lora_rank=spec.get("lora_rank", 0),
        freeze_vision=spec.get("freeze_vision", False),
        gradient_checkpointing=True,
        precision="bf16",
    )
    torch.cuda.empty_cache()
    return model, (224, 224)


def _measure(args: tuple[dict[str, Any], int, int]) -> dict[str, Any]:
    spec, batch_size, steps = args
    import torch

    torch.set_num_threads(spec.get("threads", 2))
    device = spec.get("device", "cpu")
    torch.manual_seed(0)
    model, size = _build(spec)
    model.to(device).train()
    b = batch_size
    if size is None:
        batch = {
            "obs": torch.randn(b, 21, device=device),
            "action": torch.randn(b, 10, 14, device=device),
            "mask": torch.ones(b, 10, device=device),
        }
    else:
        batch = {
            "observation.state": torch.randn(b, 14, device=device),
            "task": [INSTRUCTION] * b,
            "action": torch.randn(b, 10, 14, device=device),
            "action_is_pad": torch.zeros(b, 10, dtype=torch.bool, device=device),
        }
        for cam in model.cameras:
            batch[f"observation.images.{cam}"] = torch.rand(b, 3, *size, device=device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated()
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "samples_per_s": b * steps / elapsed,
        "step_ms": 1000 * elapsed / steps,
        "peak_mb": peak / 2**20,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_m": trainable / 1e6,
    }


def _epoch(dataset, batch_size: int = 32) -> int:
    from training.datasets.lerobot_dataset import create_lerobot_dataloader

    return sum(len(b["task"]) for b in create_lerobot_dataloader(dataset, batch_size, num_workers=0))


def data_path(out: Path, episodes: int, cameras: int, image_size=(96, 128), chunk: int = 10) -> list[dict]:
    import shutil

    import torch

    from sim.collect import collect_once
    from training.datasets.lerobot_dataset import AlohaDataset

    cams = ("top", "left_wrist", "right_wrist")[:cameras]
    root = out / f"data_{episodes}x{cameras}cam_{image_size[0]}x{image_size[1]}"
    try:
        collect_once("transfer_cube", episodes, root, cameras=cams, image_size=image_size, keep_failed=True,
                     announce=f"recording {episodes} episodes ({', '.join(cams)} at {image_size[0]}x{image_size[1]}) "
                              f"into {root}")
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    torch.set_num_threads(2)
    rows = []

    def row(name: str, samples: int, seconds: float) -> None:
        rows.append({"path": name, "samples": samples, "seconds": seconds, "samples_per_s": samples / seconds})
        print(f"{name:58s} {samples:8d} {seconds:9.1f} {samples / seconds:10.0f}", flush=True)

    print(f"{'data path (' + str(cameras) + ' camera(s), batch 32)':58s} {'samples':>8s} {'seconds':>9s} "
          f"{'samples/s':>10s}")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    start = time.perf_counter()
    theirs = LeRobotDataset("local/bench", root=root, video_backend="pyav",
                            delta_timestamps={"action": [i / 50 for i in range(chunk)]})
    n = min(len(theirs), 2000)
    order = torch.randperm(len(theirs), generator=torch.Generator().manual_seed(0))[:n].tolist()
    for i in order:
        item = theirs[i]
        _ = [item[f"observation.images.{c}"] for c in cams]
    row("lerobot per item (the path before the frame cache)", n, time.perf_counter() - start)
    shutil.rmtree(root / "cache", ignore_errors=True)
    start = time.perf_counter()
    ds = AlohaDataset(root, split="all", chunk_size=chunk, image_size=image_size, progress=False)
    row("frame cache, first epoch (decoding every frame once)", _epoch(ds), time.perf_counter() - start)
    start = time.perf_counter()
    ds = AlohaDataset(root, split="all", chunk_size=chunk, image_size=image_size, progress=False)
    row("frame cache, a later epoch or training (decoded file)", _epoch(ds), time.perf_counter() - start)
    base = rows[0]["samples_per_s"]
    for r in rows[1:]:
        print(f"  {r['path']}: {r['samples_per_s'] / base:.1f}x lerobot per item")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--out", type=Path, default=Path("output/vla_train"))
    parser.add_argument("--data", action="store_true", help="measure the data path instead of the model")
    parser.add_argument("--episodes", type=int, default=20, help="--data: episodes to record")
    parser.add_argument("--cameras", type=int, default=3, choices=[1, 2, 3], help="--data: cameras")
    args = parser.parse_args(argv)
    if args.data:
        args.out.mkdir(parents=True, exist_ok=True)
        rows = data_path(args.out, args.episodes, args.cameras)
        (args.out / f"data_path_{args.cameras}cam.json").write_text(json.dumps(rows, indent=2))
        return 0
    import torch

    has_gpu = torch.cuda.is_available()
    ctx = mp.get_context("spawn")
    rows = []
    print(f"{'configuration':50s} {'batch':>5s} {'samples/s':>10s} {'ms/step':>9s} {'peak MB':>9s} {'params M':>9s}")
    for name, spec in CONFIGS.items():
        if spec.get("device") == "cuda" and not has_gpu:
            print(f"{name:50s} skipped: no CUDA GPU here (this configuration needs one)")
            rows.append({"config": name, "skipped": "no CUDA GPU"})
            continue
        for bs in args.batch_sizes:
            with ctx.Pool(1) as pool:  # a fresh process: its peak memory is this configuration's
                r = pool.apply(_measure, ((spec, bs, args.steps),))
            rows.append({"config": name, "batch_size": bs, **r})
            print(
                f"{name:50s} {bs:5d} {r['samples_per_s']:10.1f} {r['step_ms']:9.1f} {r['peak_mb']:9.0f} "
                f"{r['params_m']:9.2f}"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
