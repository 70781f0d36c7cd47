"""The two ALOHA tasks: initial object poses, reward and success, as ALOHA (ACT) defines them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Contacts = set[frozenset[str]]
_LEFT_FINGER = "vx300s_left/10_left_gripper_finger"
_RIGHT_FINGER = "vx300s_right/10_right_gripper_finger"
_SOCKET = ("socket-1", "socket-2", "socket-3", "socket-4")


def _touch(contacts: Contacts, a: str, b: str) -> bool:
    return frozenset((a, b)) in contacts


def _transfer_cube_reward(c: Contacts) -> int:
    touch_left = _touch(c, "red_box", _LEFT_FINGER)
    touch_right = _touch(c, "red_box", _RIGHT_FINGER)
    touch_table = _touch(c, "red_box", "table")
    reward = 0
    if touch_right:
        reward = 1
    if touch_right and not touch_table:  # lifted by the right arm
        reward = 2
    if touch_left:  # attempted transfer
        reward = 3
    if touch_left and not touch_table:  # held in the air by the left arm
        reward = 4
    return reward


def _insertion_reward(c: Contacts) -> int:
    touch_right = _touch(c, "red_peg", _RIGHT_FINGER)
    touch_left = any(_touch(c, s, _LEFT_FINGER) for s in _SOCKET)
    peg_table = _touch(c, "red_peg", "table")
    socket_table = any(_touch(c, s, "table") for s in _SOCKET)
    peg_socket = any(_touch(c, "red_peg", s) for s in _SOCKET)
    reward = 0
    if touch_left and touch_right:  # touching both
        reward = 1
    if touch_left and touch_right and not peg_table and not socket_table:  # both lifted
        reward = 2
    if peg_socket and not peg_table and not socket_table:  # peg in the socket's mouth
        reward = 3
    if _touch(c, "red_peg", "pin"):  # inserted
        reward = 4
    return reward


def _uniform_pose(rng: np.random.Generator, x: tuple[float, float], y: tuple[float, float], z: float) -> np.ndarray:
    return np.array([rng.uniform(*x), rng.uniform(*y), z, 1.0, 0.0, 0.0, 0.0])


@dataclass(frozen=True)
class Task:
    """One ALOHA task: its MJCF file, its objects (free bodies, in qpos order) and its rules."""

    name: str
    xml: str
    instruction: str
    objects: tuple[str, ...]
    sample_object_poses: Callable[[np.random.Generator], np.ndarray]
    reward: Callable[[Contacts], int]
    max_reward: int = 4

    @property
    def env_state_dim(self) -> int:
        return 7 * len(self.objects)


TASKS: dict[str, Task] = {
    "transfer_cube": Task(
        name="transfer_cube",
        xml="bimanual_viperx_transfer_cube.xml",
        instruction="Pick up the red cube with the right arm and hand it over to the left arm.",
        objects=("box",),
        sample_object_poses=lambda rng: _uniform_pose(rng, (0.0, 0.2), (0.4, 0.6), 0.05),
        reward=_transfer_cube_reward,
    ),
    "insertion": Task(
        name="insertion",
        xml="bimanual_viperx_insertion.xml",
        instruction="Pick up the red peg and the blue socket, and insert the peg into the socket.",
        objects=("peg", "socket"),
        sample_object_poses=lambda rng: np.concatenate(
            [_uniform_pose(rng, (0.1, 0.2), (0.4, 0.6), 0.05), _uniform_pose(rng, (-0.2, -0.1), (0.4, 0.6), 0.05)]
        ),
        reward=_insertion_reward,
    ),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None
