"""Has a camera moved since the policy's training frames were recorded? Pure numpy, no ROS.

A VLA trained on one fixed camera reads where the arm and the object are from absolute pixel positions:
the tiny VLA's transfer_cube policy measured 46% with its frames as recorded and 0/100 with them moved by
one pixel down (docs/results/vla_transfer_cube). A camera knocked by a few millimetres on a real robot does that,
and nothing else in the graph would notice. So a bundle can carry a reference view per camera (the median
of its training episodes' first frames: the scene without the moving object) and the policy node compares
the first frame of each episode with it, over whole-pixel shifts of up to `radius` pixels each way.

Convention: a shift (dy, dx) means the live frame shows the reference scene moved down by dy and right by
dx pixels: live[y, x] ~ reference[y - dy, x - dx].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RADIUS = 6  # pixels each way the check searches
# The view counts as moved when the best shift explains at least this share of the difference at zero shift
# and the difference at zero shift is this large on the 0-255 grey scale (sensor noise, lighting flicker and
# a cube somewhere on the table leave both far below; docs/results/vla_transfer_cube/camera_view).
MIN_GAIN = 0.3
MIN_ERROR = 2.0


@dataclass(frozen=True)
class ViewCheck:
    shift: tuple[int, int]  # (dy, dx) that best aligns the reference with the live frame
    error_at_zero: float  # mean absolute grey difference, frames as they are
    error_at_shift: float  # the same at the best shift

    @property
    def moved(self) -> bool:
        if self.shift == (0, 0) or self.error_at_zero < MIN_ERROR:
            return False
        return self.error_at_shift <= (1.0 - MIN_GAIN) * self.error_at_zero

    def describe(self, camera: str) -> str:
        dy, dx = self.shift
        parts = [f"{abs(dy)} px {'down' if dy > 0 else 'up'}" if dy else "",
                 f"{abs(dx)} px {'right' if dx > 0 else 'left'}" if dx else ""]
        where = " and ".join(p for p in parts if p)
        return (f"camera {camera} looks moved: its view matches the training frames shifted {where} "
                f"(mean grey difference {self.error_at_zero:.1f} as it is, {self.error_at_shift:.1f} shifted); "
                f"a policy trained on a fixed camera can fail on a view moved by 1 px: put the camera back")


def _grey(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 3:
        return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return img.astype(np.float32)


def check_view(live: np.ndarray, reference: np.ndarray, radius: int = RADIUS) -> ViewCheck:
    """Compare a live frame (H, W, 3) uint8 with the reference view of its camera (same size)."""
    live_g, ref_g = _grey(live), _grey(reference)
    if live_g.shape != ref_g.shape:
        raise ValueError(f"live frame {live_g.shape[1]}x{live_g.shape[0]}, reference "
                         f"{ref_g.shape[1]}x{ref_g.shape[0]}")
    h, w = ref_g.shape
    r = min(radius, (h - 1) // 4, (w - 1) // 4)  # keep most of the frame in every comparison
    core = ref_g[r:h - r, r:w - r]
    errors = {}
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            errors[(dy, dx)] = float(np.abs(live_g[r + dy:h - r + dy, r + dx:w - r + dx] - core).mean())
    best = min(errors, key=lambda s: (errors[s], abs(s[0]) + abs(s[1])))
    return ViewCheck(best, errors[(0, 0)], errors[best])


def reference_view(frames: np.ndarray) -> np.ndarray:
    """The per-pixel median of frames (N, H, W, 3) uint8: the scene's fixed parts (whatever moves between
    episodes, like the object, drops out)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"need frames (N, H, W, 3), got {frames.shape}")
    return np.median(frames, axis=0).round().astype(np.uint8)


def read_views(spec) -> dict[str, np.ndarray]:
    """A bundle's reference views (inputs.camera_views) by camera, each checked against the sha256 policy.json
    gives and the bundle's image size; BundleError naming the file otherwise. {} for a bundle without them."""
    import io

    from vla_il_core.bundle import BundleError, read_verified

    views = {}
    for camera, file, sha in spec.camera_views:
        data = read_verified(spec, file, sha, f"the view of camera {camera} ({file})")
        try:
            view = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise BundleError(f"{spec.path}: {file} is not a .npy array: {exc}") from exc
        want = (*spec.image_size, 3)
        if view.shape != want or view.dtype != np.uint8:
            raise BundleError(f"{spec.path}: {file} holds {view.dtype} {view.shape}; the camera's view must be uint8 "
                              f"{want} (the bundle's image size)")
        views[camera] = view
    return views
