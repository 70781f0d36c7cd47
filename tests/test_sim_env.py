"""The simulated ALOHA env: gymnasium contract, determinism, cameras, and clear errors on bad input."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim
from sim.aloha import robot
from sim.aloha.env import ENV_IDS, AlohaEnv


@pytest.mark.parametrize("task", sorted(sim.TASKS))
def test_env_passes_gymnasium_checker(task):
    env = AlohaEnv(task, cameras=("top",), image_size=(48, 64), privileged=True)
    check_env(env, skip_render_check=True)
    env.close()


def test_registered_ids_make_the_env():
    for task, env_id in ENV_IDS.items():
        env = gym.make(env_id, cameras=())
        assert env.unwrapped.task.name == task
        env.close()


def _rollout(seed, steps=30):
    env = AlohaEnv("transfer_cube", cameras=("top",), image_size=(48, 64))
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(0)
    states, images = [info["env_state"]], [obs["pixels"]["top"]]
    for _ in range(steps):
        action = np.clip(robot.START_STATE + rng.normal(0, 0.05, 14), robot.JOINT_LOWER, robot.JOINT_UPPER)
        obs, _, _, _, info = env.step(action)
        states.append(np.concatenate([obs["agent_pos"], info["env_state"]]))
        images.append(obs["pixels"]["top"])
    env.close()
    return states, images


def test_same_seed_same_episode_other_seed_other_cube():
    a_states, a_images = _rollout(seed=3)
    b_states, b_images = _rollout(seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a_states, b_states))
    assert all(np.array_equal(x, y) for x, y in zip(a_images, b_images))
    c_states, _ = _rollout(seed=4)
    assert not np.allclose(a_states[0], c_states[0])


def test_only_requested_cameras_are_rendered_at_the_requested_size():
    env = AlohaEnv("insertion", cameras=("left_wrist", "right_wrist"), image_size=(60, 80))
    obs, _ = env.reset(seed=0)
    assert set(obs["pixels"]) == {"left_wrist", "right_wrist"}
    assert obs["pixels"]["left_wrist"].shape == (60, 80, 3) and obs["pixels"]["left_wrist"].dtype == np.uint8
    assert obs["pixels"]["left_wrist"].std() > 0  # a real picture, not a blank buffer
    env.close()
    state_only = AlohaEnv("insertion", cameras=())
    obs, info = state_only.reset(seed=0)
    assert set(obs) == {"agent_pos"} and info["env_state"].shape == (14,)


def test_privileged_state_is_separate_and_matches_the_objects():
    env = AlohaEnv("transfer_cube", cameras=(), privileged=True)
    obs, info = env.reset(seed=0, options={"object_poses": [0.1, 0.5, 0.05, 1, 0, 0, 0]})
    assert np.allclose(obs["env_state"][:3], [0.1, 0.5, 0.05])
    assert np.array_equal(obs["env_state"], info["env_state"])


@pytest.mark.parametrize("task, poses", [("transfer_cube", [1.5, 0.5, 0.05, 1, 0, 0, 0]),
                                         ("insertion", [0.1, 0.5, 0.05, 1, 0, 0, 0, 1.5, 0.5, 0.05, 1, 0, 0, 0])])
def test_an_object_that_falls_off_the_table_ends_the_episode(task, poses):
    env = AlohaEnv(task, cameras=())
    env.reset(seed=0, options={"object_poses": poses})  # the last object is placed beyond the table's edge
    for _ in range(100):
        _obs, _r, terminated, truncated, info = env.step(robot.START_STATE)
        if truncated:
            break
    assert truncated and not terminated and info.get("object_lost"), info
    # ended as it fell, not hundreds of metres later
    assert -0.5 < info["env_state"][2::7].min() < -0.1 and info["step"] < 60, info
    env.reset(seed=0)
    for _ in range(20):  # on the table: the episode goes on
        _obs, _r, terminated, truncated, info = env.step(robot.START_STATE)
        assert not truncated and "object_lost" not in info


@pytest.mark.parametrize(
    "action, message",
    [
        (np.zeros(13), r"shape \(14,\)"),
        (np.r_[robot.START_STATE[:3], np.nan, robot.START_STATE[4:]], "non-finite values for left_forearm_roll"),
        (np.r_[robot.START_STATE[:13], 1.5], "outside the joint limits for right_gripper"),
    ],
)
def test_bad_actions_raise_a_clear_error(action, message):
    env = AlohaEnv("transfer_cube", cameras=())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_out_of_limit_actions_are_clamped_when_configured():
    env = AlohaEnv("transfer_cube", cameras=(), clamp_actions=True)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="clamping actions"):
        env.step(np.r_[robot.START_STATE[:13], 1.5])
    assert env.data.ctrl[14] == pytest.approx(robot.gripper_from_normalized(1.0))


def test_unknown_task_and_camera_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid tasks: transfer_cube, insertion"):
        AlohaEnv("stacking")
    with pytest.raises(ValueError, match="unknown camera.*wrist_cam.*this model has: .*top"):
        AlohaEnv("transfer_cube", cameras=("wrist_cam",))


def test_gripper_normalisation_round_trips():
    state = np.r_[robot.START_STATE[:6], 0.3, robot.START_STATE[7:13], 0.9]
    assert np.allclose(robot.qpos16_to_state(robot.state_to_qpos16(state)), state)
