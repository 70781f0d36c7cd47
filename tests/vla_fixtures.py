"""Small datasets the VLA tests share: recorded once per test session from our own environments."""

from __future__ import annotations

from pathlib import Path

ALOHA_IMAGE_SIZE = (48, 64)  # stored as lossless images (schema.image_dtype)


def aloha_dataset(base: Path, episodes: int = 3, episode_length: int = 40) -> Path:
    """transfer_cube episodes from the scripted expert (kept whether or not it succeeds), top camera."""
    from sim.collect import collect

    out = base / f"aloha_tc_{episodes}x{episode_length}"
    if not (out / "meta" / "info.json").exists():
        collect(
            "transfer_cube",
            episodes,
            out,
            cameras=("top",),
            image_size=ALOHA_IMAGE_SIZE,
            keep_failed=True,
            episode_length=episode_length,
            progress=False,
        )
    return out


def pusht_dataset(base: Path, episodes: int = 2, max_steps: int = 30) -> Path:
    from training.datasets.pusht_record import record

    out = base / f"pusht_{episodes}x{max_steps}"
    if not (out / "meta" / "info.json").exists():
        record(out, episodes, max_steps=max_steps, progress=False)
    return out
