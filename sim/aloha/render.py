"""Our render path: only the cameras asked for, at the size asked for, costly effects off.

gym-aloha renders three 480x640 cameras with shadows every step (about 6 steps/s on 2 CPU cores).
Here one `mujoco.Renderer` per image size is shared by all cameras, and shadows, reflections and
multisampling are off unless `effects=True`.
"""

from __future__ import annotations

import atexit
import os
import weakref

import mujoco
import numpy as np


def check_gl_backend() -> None:
    """Fail with a clear message when no headless GL backend can be created."""
    backend = os.environ.get("MUJOCO_GL", "")
    if backend not in ("egl", "osmesa", "glfw", ""):
        raise RuntimeError(f"MUJOCO_GL={backend!r} is not a MuJoCo backend; use MUJOCO_GL=egl (headless, Mesa)")


_LIVE: weakref.WeakSet = weakref.WeakSet()
_HOOKED = False


def _close_all() -> None:
    for renderer in list(_LIVE):
        renderer.close()


def _track(renderer: CameraRenderer) -> None:
    # GL contexts must be freed before MuJoCo's EGL module terminates its display at exit. Its
    # exit hook is registered when the first context is made; ours, registered after it, runs first.
    global _HOOKED
    _LIVE.add(renderer)
    if not _HOOKED:
        atexit.register(_close_all)
        _HOOKED = True


class CameraRenderer:
    """Renders named cameras of one model/data pair into uint8 HxWx3 arrays."""

    def __init__(self, model: mujoco.MjModel, cameras: tuple[str, ...], height: int, width: int,
                 effects: bool = False) -> None:
        valid = [model.camera(i).name for i in range(model.ncam)]
        unknown = [c for c in cameras if c not in valid]
        if unknown:
            raise ValueError(f"unknown camera(s) {', '.join(unknown)}; this model has: {', '.join(valid)}")
        if height <= 0 or width <= 0:
            raise ValueError(f"image size must be positive, got {height}x{width}")
        self.cameras = cameras
        self.height, self.width = height, width
        self._renderer = None
        if not cameras:
            return
        check_gl_backend()
        # The offscreen buffer must hold the largest image; multisampling costs ~2x in software GL.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        if not effects:
            model.vis.quality.offsamples = 0
        try:
            self._renderer = mujoco.Renderer(model, height, width)
        except Exception as exc:  # the GL context is created here
            raise RuntimeError(
                f"MuJoCo could not create a {os.environ.get('MUJOCO_GL', 'default')} GL context ({exc}). "
                "Headless rendering needs MUJOCO_GL=egl and Mesa's EGL (Debian/Ubuntu: apt-get install libegl1 "
                "libgl1-mesa-dri), or MUJOCO_GL=osmesa with libosmesa6."
            ) from exc
        self._options = mujoco.MjvOption()
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = effects
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = effects
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = effects
        _track(self)

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        images = {}
        for cam in self.cameras:
            self._renderer.update_scene(data, camera=cam, scene_option=self._options)
            images[cam] = self._renderer.render()  # a fresh array each call
        return images

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
