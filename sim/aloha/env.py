"""AlohaEnv: the bimanual ALOHA tasks as a gymnasium environment, on MuJoCo directly.

Observation (a dict):
    agent_pos   float64[14]  joint positions, grippers normalised (robot.JOINT_NAMES order)
    pixels      {camera: uint8[H, W, 3]}   only when cameras are asked for
    env_state   float64[7 * objects]       object poses (x y z qw qx qy qz), the privileged
                                            state; in the observation only with privileged=True
                                            (state-based policies), always in info["env_state"]
Action: float64[14] joint position targets, grippers normalised; 50 Hz (10 physics steps of 2 ms).
Reward: ALOHA's staged reward (0..4); success when it reaches 4 (`info["is_success"]`).
Ends: terminated on success; truncated at the episode's length, when the physics blows up
(`info["physics_unstable"]`) or when an object has fallen off the table (`info["object_lost"]`).
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from sim.aloha import robot
from sim.aloha.render import CameraRenderer
from sim.aloha.tasks import TASKS, Task, get_task

CONTROL_DT = 0.02
FPS = 50
DEFAULT_EPISODE_LENGTH = 400
OBJECT_LOST_Z = -0.1  # an object whose centre is this far below the table top has fallen off it (metres)
ENV_IDS = {"transfer_cube": "vla_il/AlohaTransferCube-v0", "insertion": "vla_il/AlohaInsertion-v0"}


class AlohaEnv(gym.Env):
    """One ALOHA task. Render only what is asked: `cameras=()` runs physics alone."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(
        self,
        task: str = "transfer_cube",
        cameras: tuple[str, ...] | list[str] = ("top",),
        image_size: tuple[int, int] = (480, 640),
        privileged: bool = False,
        episode_length: int = DEFAULT_EPISODE_LENGTH,
        clamp_actions: bool = False,
        terminate_on_success: bool = True,
        render_effects: bool = False,
        render_mode: str | None = "rgb_array",
        warn_clamp: bool = True,
    ) -> None:
        """`warn_clamp`: warn (once) when clamp_actions clamps an action; `clamped` counts the steps per joint
        either way, for a caller that reports them itself (an evaluation over many envs: one line)."""
        super().__init__()
        self.warn_clamp = warn_clamp
        self.clamped: dict[str, int] = {}
        self.task: Task = get_task(task)
        if episode_length <= 0:
            raise ValueError(f"episode_length must be positive, got {episode_length}")
        self.episode_length = episode_length
        self.clamp_actions = clamp_actions
        self.terminate_on_success = terminate_on_success
        self.privileged = privileged
        self.render_mode = render_mode

        self.model = mujoco.MjModel.from_xml_path(str(robot.assets_dir() / self.task.xml))
        self.data = mujoco.MjData(self.model)
        self.n_substeps = round(CONTROL_DT / self.model.opt.timestep)
        self.cameras = tuple(cameras)
        self.image_size = tuple(image_size)
        self._renderer = CameraRenderer(self.model, self.cameras, *self.image_size, effects=render_effects)
        self._viz_renderer: CameraRenderer | None = None
        self._geom_names = [self.model.geom(i).name for i in range(self.model.ngeom)]

        obs: dict[str, spaces.Space] = {
            # Measured, not commanded: violent commands push joints past their (soft) limits.
            "agent_pos": spaces.Box(-np.inf, np.inf, (robot.STATE_DIM,), dtype=np.float64),
        }
        if self.cameras:
            h, w = self.image_size
            obs["pixels"] = spaces.Dict({c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in self.cameras})
        if privileged:
            obs["env_state"] = spaces.Box(-5.0, 5.0, (self.task.env_state_dim,), np.float64)  # metres, quaternions
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(robot.JOINT_LOWER, robot.JOINT_UPPER, dtype=np.float64)

        self._step = 0
        self._max_reward = 0
        self._warned_clamp = False

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Options: `object_poses` (float[7 * objects]) places the objects instead of sampling them."""
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:16] = robot.START_QPOS_16
        self.data.ctrl[:] = robot.START_QPOS_16
        poses = (options or {}).get("object_poses")
        if poses is None:
            poses = self.task.sample_object_poses(self.np_random)
        poses = np.asarray(poses, dtype=np.float64)
        if poses.shape != (self.task.env_state_dim,):
            raise ValueError(f"object_poses: expected {self.task.env_state_dim} values, got shape {poses.shape}")
        self.data.qpos[16:] = poses
        mujoco.mj_forward(self.model, self.data)
        self._step = 0
        self._max_reward = 0
        return self._observation(), self._info(reward=0)

    def step(self, action):
        action = self._checked_action(action)
        self.data.ctrl[:] = robot.state_to_qpos16(action)
        unstable_before = self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        self._step += 1
        # MuJoCo resets the state itself when accelerations blow up; the episode is then meaningless.
        unstable = self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number > unstable_before
        reward = self.task.reward(self.contacts())
        self._max_reward = max(self._max_reward, reward)
        success = reward == self.task.max_reward
        # an object pushed off the table falls without end (there is no floor): nothing can be done any more,
        # and its states (z in the hundreds of metres below) would only poison a dataset's statistics
        lost = bool((self.env_state()[2::7] < OBJECT_LOST_Z).any())
        terminated = bool(success and self.terminate_on_success)
        truncated = (self._step >= self.episode_length or unstable or lost) and not terminated
        info = self._info(reward)
        if unstable:
            warnings.warn("physics became unstable (huge accelerations): the episode ends here", stacklevel=2)
            info["physics_unstable"] = True
        if lost:
            info["object_lost"] = True
        return self._observation(), float(reward), terminated, truncated, info

    def render(self) -> np.ndarray:
        """A frame for people (videos): the first requested camera, or `top`, at the env's size."""
        if self._viz_renderer is None:
            cam = self.cameras[0] if self.cameras else "top"
            self._viz_renderer = CameraRenderer(self.model, (cam,), *self.image_size)
        return next(iter(self._viz_renderer.render(self.data).values()))

    def close(self) -> None:
        self._renderer.close()
        if self._viz_renderer is not None:
            self._viz_renderer.close()

    # ------------------------------------------------------------------ state
    def agent_pos(self) -> np.ndarray:
        return robot.qpos16_to_state(self.data.qpos[:16])

    def env_state(self) -> np.ndarray:
        """Object poses (x y z qw qx qy qz per object): what the scripted expert reads."""
        return self.data.qpos[16:].copy()

    def contacts(self) -> set[frozenset[str]]:
        names = self._geom_names
        return {frozenset((names[c.geom1], names[c.geom2])) for c in self.data.contact[: self.data.ncon]}

    @property
    def elapsed_steps(self) -> int:
        return self._step

    # ------------------------------------------------------------------ helpers
    def _checked_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (robot.STATE_DIM,):
            raise ValueError(f"action must have shape ({robot.STATE_DIM},) (ALOHA joint targets), got {a.shape}")
        if not np.all(np.isfinite(a)):
            bad = [robot.JOINT_NAMES[i] for i in np.flatnonzero(~np.isfinite(a))]
            raise ValueError(f"action has non-finite values for {', '.join(bad)}")
        low, high = robot.JOINT_LOWER, robot.JOINT_UPPER
        outside = (a < low - 1e-9) | (a > high + 1e-9)
        if outside.any():
            names = [robot.JOINT_NAMES[i] for i in np.flatnonzero(outside)]
            if not self.clamp_actions:
                raise ValueError(
                    f"action outside the joint limits for {', '.join(names)} "
                    "(create the env with clamp_actions=True to clamp instead)"
                )
            for name in names:
                self.clamped[name] = self.clamped.get(name, 0) + 1
            if self.warn_clamp and not self._warned_clamp:
                warnings.warn(f"clamping actions to the joint limits ({', '.join(names)})", stacklevel=3)
                self._warned_clamp = True
            a = np.clip(a, low, high)
        return a

    def _observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = {"agent_pos": self.agent_pos()}
        if self.cameras:
            obs["pixels"] = self._renderer.render(self.data)
        if self.privileged:
            obs["env_state"] = self.env_state()
        return obs

    def _info(self, reward: float) -> dict[str, Any]:
        return {
            "env_state": self.env_state(),
            "is_success": reward == self.task.max_reward,
            "max_reward": self._max_reward,
            "step": self._step,
            "task": self.task.name,
            "instruction": self.task.instruction,
        }


def register_envs() -> None:
    """Register the gymnasium ids (idempotent)."""
    for task, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="sim.aloha.env:AlohaEnv",
                kwargs={"task": task},
                max_episode_steps=None,
                disable_env_checker=True,
            )


__all__ = ["AlohaEnv", "ENV_IDS", "FPS", "TASKS", "register_envs"]
