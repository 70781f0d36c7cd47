"""The VLA's datasets: items with action chunks and pad masks from our recordings, episode splits,
statistics, dataloaders, PushT from gym-pusht, and clear errors for data that does not fit."""

import logging

import numpy as np
import pytest
import torch

from tests.vla_fixtures import aloha_dataset, pusht_dataset
from training.datasets.lerobot_dataset import (
    AlohaDataset,
    DatasetError,
    PushTDataset,
    create_lerobot_dataloader,
    split_episodes,
)


@pytest.fixture(scope="module")
def aloha(tmp_path_factory):
    return aloha_dataset(tmp_path_factory.getbasetemp())


def test_items_hold_images_state_instruction_and_the_next_actions_of_the_episode(aloha):
    ds = AlohaDataset(aloha, split="all", chunk_size=8)
    table = ds.lerobot.hf_dataset.with_format("numpy")
    actions, episodes = np.stack(table["action"]), np.asarray(table["episode_index"])
    for i in (0, 5, len(ds) - 3):
        item = ds[i]
        ep = int(item["episode_index"])
        rows = np.flatnonzero(episodes == ep)
        future = [r for r in range(i, i + 8) if r in set(rows)]
        np.testing.assert_allclose(item["action"][: len(future)].numpy(), actions[future], atol=1e-6)
        assert item["action_is_pad"].tolist() == [k >= len(future) for k in range(8)]
        image = item["observation.images.top"]
        assert image.shape == (3, 48, 64) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
        assert item["observation.state"].shape == (14,) and "red cube" in item["task"]
    again = ds[5]  # served from the cache: the same values
    assert torch.equal(again["observation.images.top"], ds[5]["observation.images.top"])


def test_train_and_val_split_whole_episodes(aloha):
    train = AlohaDataset(aloha, split="train", val_fraction=0.34)
    val = AlohaDataset(aloha, split="val", val_fraction=0.34)
    assert set(train.episodes).isdisjoint(val.episodes) and len(train.episodes) + len(val.episodes) == 3
    assert {int(val[i]["episode_index"]) for i in range(0, len(val), 7)} <= set(val.episodes)
    assert split_episodes(10, "val", 0.2, seed=1) == split_episodes(10, "val", 0.2, seed=1)
    with pytest.raises(DatasetError, match="split must be one of train, val, all"):
        split_episodes(3, "test", 0.1, 0)


def test_statistics_come_from_the_dataset(aloha):
    ds = AlohaDataset(aloha, split="all")
    stats = ds.stats()
    table = ds.lerobot.hf_dataset.with_format("numpy")
    np.testing.assert_allclose(stats["action_mean"], np.stack(table["action"]).mean(0), atol=1e-4)
    assert stats["state_std"].shape == (14,)


def test_dataloader_batches_and_shuffles_reproducibly(aloha):
    ds = AlohaDataset(aloha, split="all", chunk_size=5)
    first = next(iter(create_lerobot_dataloader(ds, batch_size=4, seed=3)))
    again = next(iter(create_lerobot_dataloader(ds, batch_size=4, seed=3)))
    assert first["observation.images.top"].shape == (4, 3, 48, 64) and first["action"].shape == (4, 5, 14)
    assert len(first["task"]) == 4 and torch.equal(first["action"], again["action"])


def test_missing_camera_or_column_is_a_clear_error(aloha, tmp_path):
    with pytest.raises(DatasetError, match="lacks the camera.*left_wrist.*it has: top"):
        AlohaDataset(aloha, cameras=["top", "left_wrist"])
    with pytest.raises(DatasetError, match="no 'reward' feature"):
        AlohaDataset(aloha, action_key="reward")
    with pytest.raises(FileNotFoundError, match="not a LeRobot dataset"):
        AlohaDataset(tmp_path)


def test_resizing_is_logged(aloha, caplog):
    with caplog.at_level(logging.WARNING):
        ds = AlohaDataset(aloha, split="all", image_size=(32, 48))
    assert "resizing images 48x64 -> 32x48" in caplog.text
    assert ds[0]["observation.images.top"].shape == (3, 32, 48)


def test_pusht_recorded_from_gym_pusht_loads_as_pusht_dataset(tmp_path_factory, tmp_path):
    root = pusht_dataset(tmp_path_factory.getbasetemp())
    ds = PushTDataset(split="all", chunk_size=10, root=root)
    item = ds[0]
    assert ds.cameras == ("image",) and item["observation.images.image"].shape == (3, 96, 96)
    assert item["observation.state"].shape == (2,) and item["action"].shape == (10, 2)
    assert "T-shaped" in item["task"] and len(ds) == 2 * 30
    with pytest.raises(DatasetError, match="not an ALOHA dataset"):
        AlohaDataset(root)
    with pytest.raises(FileNotFoundError, match="no PushT dataset at .*pusht_record"):
        PushTDataset(root=tmp_path / "absent")
