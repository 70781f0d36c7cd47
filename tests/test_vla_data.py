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
    actions, episodes = ds.table["action"], ds.table["episode_index"]
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
    # the frames are lerobot's own, decoded once
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    theirs = LeRobotDataset("local/aloha", root=aloha)
    for i in (0, 41, len(ds) - 1):
        assert torch.equal(ds[i]["observation.images.top"], theirs[i]["observation.images.top"])


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
    np.testing.assert_allclose(stats["action_mean"], ds.table["action"].mean(0), atol=1e-4)
    assert stats["state_std"].shape == (14,)


def test_dataloader_batches_and_shuffles_reproducibly(aloha):
    ds = AlohaDataset(aloha, split="all", chunk_size=5)
    first = next(iter(create_lerobot_dataloader(ds, batch_size=4, seed=3)))
    again = next(iter(create_lerobot_dataloader(ds, batch_size=4, seed=3)))
    assert first["observation.images.top"].shape == (4, 3, 48, 64) and first["action"].shape == (4, 5, 14)
    assert len(first["task"]) == 4 and torch.equal(first["action"], again["action"])


def test_weighted_loading_draws_items_in_proportion_in_as_many_batches(aloha):
    """weights: item 0 weighted as all the others together is about half of every epoch's draws, the epoch
    keeps its number of batches, and the same seed draws the same; weights that cannot be are refused."""
    ds = AlohaDataset(aloha, split="all", chunk_size=5)
    weights = np.ones(len(ds))
    weights[0] = len(ds) - 1
    loader = create_lerobot_dataloader(ds, batch_size=16, seed=1, weights=weights)
    plain = create_lerobot_dataloader(ds, batch_size=16, seed=1)
    assert len(loader) == len(plain)
    drawn = np.concatenate([list(loader.sampler) for _ in range(4)])
    assert 0.4 < np.mean(drawn == 0) < 0.6 and len(np.unique(drawn)) > len(ds) // 4
    assert list(create_lerobot_dataloader(ds, batch_size=16, seed=1, weights=weights).sampler) == \
        list(create_lerobot_dataloader(ds, batch_size=16, seed=1, weights=weights).sampler)
    for bad, says in ((np.ones(3), "one per item"), (np.full(len(ds), np.nan), "finite"),
                      (np.zeros(len(ds)), "not all 0"), (-weights, ">= 0")):
        with pytest.raises(ValueError, match=says):
            create_lerobot_dataloader(ds, batch_size=16, weights=bad)


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


def _mixed_dataset(root, image_size=(24, 32), storage="auto", recorder_flags=False):
    """Two episodes written through lerobot's API: who drove changes mid-episode (as the recorder writes);
    with `recorder_flags`, every frame carries the expert's label (as the sim expert gives)."""
    from training.datasets.writer import EpisodeWriter
    from vla_il_core import schema

    features = schema.features([f"j{i}" for i in range(14)], ("top",), image_size, 0, image_storage=storage,
                               recorder_flags=recorder_flags)
    writer = EpisodeWriter(root, features, fps=50)
    rng = np.random.default_rng(0)
    drove = [[0, 0, 1, 1, 1, 0, 1, 1], [1, 1, 1, 0, 0, 0]]
    n = 0
    for flags in drove:
        for f in flags:
            frame = {k: np.zeros(v["shape"], np.float32) for k, v in features.items() if v["dtype"] == "float32"}
            frame["observation.state"][:] = n
            frame["action"][:] = -n  # what was executed
            frame["expert_action"][:] = n  # the expert's label
            frame["intervention"] = np.array([bool(f)])
            frame["next.success"] = np.array([False])
            if recorder_flags:
                frame["expert_label"], frame["policy_valid"] = np.array([True]), np.array([True])
            frame["observation.images.top"] = rng.integers(0, 255, (*image_size, 3), dtype=np.uint8)
            writer.add(frame, "hand it over")
            n += 1
        writer.save_episode()
    writer.close()
    return root


def test_intervention_labels_are_the_expert_driven_stretches_with_chunks_that_end_with_them(tmp_path):
    root = _mixed_dataset(tmp_path / "mixed")
    ds = AlohaDataset(root, split="all", chunk_size=3, labels="intervention", action_key="expert_action")
    # frames 2, 3, 4, 6, 7 of episode 0 and 0, 1, 2 of episode 1 (frames 8, 9, 10 of the dataset)
    assert len(ds) == 8
    states = [int(ds[i]["observation.state"][0]) for i in range(len(ds))]
    assert states == [2, 3, 4, 6, 7, 8, 9, 10]
    item = ds[1]  # frame 3: its stretch ends at frame 4; frame 5 was the policy's
    assert item["action"][:, 0].tolist() == [3, 4, 4] and item["action_is_pad"].tolist() == [False, False, True]
    item = ds[4]  # frame 7: the episode's last
    assert item["action_is_pad"].tolist() == [False, True, True]
    item = ds[5]  # episode 1's first: chunks never cross into another episode or stretch
    assert item["action"][:, 0].tolist() == [8, 9, 10] and not item["action_is_pad"].any()
    every = AlohaDataset(root, split="all", chunk_size=3)
    assert len(every) == 14 and every[0]["action"][:, 0].tolist() == [0, -1, -2]
    with pytest.raises(DatasetError, match="labels must be one of"):
        AlohaDataset(root, labels="human")


def test_expert_labels_cut_chunks_as_hg_dagger_does(tmp_path):
    """Every frame labelled (DAgger's labels): an expert-driven stretch is one segment, a frame the policy drove
    a segment of its own (the labels after it were given on states the policy led to: no expert chunk), as
    training.demonstrations.label_segments cuts a recording for the state policies."""
    root = _mixed_dataset(tmp_path / "labelled", recorder_flags=True)
    ds = AlohaDataset(root, split="all", chunk_size=3, labels="expert", action_key="expert_action")
    assert len(ds) == 14
    first = ds[0]  # the policy drove frame 0: only its own label is a target
    assert first["action"][:, 0].tolist() == [0, 0, 0] and first["action_is_pad"].tolist() == [False, True, True]
    item = ds[2]  # frame 2 starts the expert's stretch 2..4
    assert item["action"][:, 0].tolist() == [2, 3, 4] and not item["action_is_pad"].any()
    assert ds[4]["action_is_pad"].tolist() == [False, True, True]  # frame 5 (the policy's) is not in its chunk


def test_frames_are_decoded_once_and_again_only_when_the_dataset_changes(tmp_path, caplog):
    root = _mixed_dataset(tmp_path / "cached")
    with caplog.at_level(logging.INFO, logger="training.datasets.frame_cache"):
        first = AlohaDataset(root, split="all")
    assert caplog.text.count("decoded 14 frames") == 1
    cached = sorted((root / "cache").glob("frames-top-*.npy"))
    assert len(cached) == 1
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="training.datasets.frame_cache"):
        again = AlohaDataset(root, split="train", val_fraction=0.5)  # another split reads the same file
    assert "decoded" not in caplog.text
    assert torch.equal(again[0]["observation.images.top"], first[again._rows[0]]["observation.images.top"])
    info = root / "meta" / "info.json"
    info.write_text(info.read_text())  # the dataset changed (a recorder appended, say): decoded anew
    with caplog.at_level(logging.INFO, logger="training.datasets.frame_cache"):
        AlohaDataset(root, split="all")
    assert caplog.text.count("decoded 14 frames") == 1
    now = sorted((root / "cache").glob("frames-top-*.npy"))
    assert len(now) == 1 and now != cached  # the stale file is gone
    now[0].write_bytes(b"not an array")
    with caplog.at_level(logging.WARNING):
        ds = AlohaDataset(root, split="all")
    assert "damaged; decoding again" in caplog.text and ds[0]["observation.images.top"].shape == (3, 24, 32)


def test_the_shared_frame_cache_keeps_its_budget_by_evicting_what_was_used_least_recently(tmp_path, monkeypatch):
    """VLA_IL_FRAME_CACHE names a cache shared by every dataset (as ~/.cache/vla-il/frames is for read-only
    ones): it grew without bound (1,200 transfer_cube episodes at 96x128: 5.6 GB a dataset). It keeps
    VLA_IL_FRAME_CACHE_GB: room for two of these files, not three."""
    roots = [_mixed_dataset(tmp_path / name) for name in ("a", "b", "c")]
    shared = tmp_path / "shared"
    monkeypatch.setenv("VLA_IL_FRAME_CACHE", str(shared))
    one = 14 * 24 * 32 * 3
    monkeypatch.setenv("VLA_IL_FRAME_CACHE_GB", str(2.5 * one / 1e9))

    def cached():
        return {f.name.split("-")[0] for f in shared.glob("*.npy")}

    digests = {}
    for root in roots[:2]:
        AlohaDataset(root, split="all")
        digests[root.name] = (cached() - set(digests.values())).pop()
    assert not (roots[0] / "cache").exists()  # nothing beside the datasets
    a_first = AlohaDataset(roots[0], split="all")[3]["observation.images.top"]  # a is used again: b is older
    AlohaDataset(roots[2], split="all")
    assert digests["b"] not in cached() and digests["a"] in cached() and len(cached()) == 2
    assert torch.equal(AlohaDataset(roots[0], split="all")[3]["observation.images.top"], a_first)
    monkeypatch.setenv("VLA_IL_FRAME_CACHE_GB", "0")
    with pytest.raises(DatasetError, match="VLA_IL_FRAME_CACHE_GB must be a number of GB > 0, got '0'"):
        AlohaDataset(roots[1], split="all")


def test_a_decode_the_disk_has_no_room_for_is_refused_before_it_starts(tmp_path, monkeypatch):
    """Decoding writes a memory-mapped file: on a full disk the write kills the process with SIGBUS, whatever
    it had trained. A full disk is simulated (test double of the OS's free-space figure): the decode is
    refused with one line naming what it needs and where, and writes nothing."""
    import shutil
    from collections import namedtuple

    from training.datasets import frame_cache

    root = _mixed_dataset(tmp_path / "full")
    usage, real = namedtuple("usage", "total used free"), shutil.disk_usage
    monkeypatch.setattr(frame_cache.shutil, "disk_usage", lambda path: usage(10**12, 10**12 - 10**8, 10**8))
    with pytest.raises(DatasetError, match=r"decoding observation.images.top needs 32.3 KB in .*cache, 100.0 MB free"):
        AlohaDataset(root, split="all")
    assert not list((root / "cache").iterdir())
    monkeypatch.setattr(frame_cache.shutil, "disk_usage", real)
    assert AlohaDataset(root, split="all")[0]["observation.images.top"].shape == (3, 24, 32)


def test_video_frames_decode_as_lerobot_decodes_them(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = _mixed_dataset(tmp_path / "video", image_size=(64, 96), storage="video")
    ds = AlohaDataset(root, split="all")
    theirs = LeRobotDataset("local/video", root=root, video_backend="pyav")
    assert ds.meta.features["observation.images.top"]["dtype"] == "video"
    for i in range(len(ds)):
        diff = (ds[i]["observation.images.top"] - theirs[i]["observation.images.top"]).abs().max()
        assert diff <= 1 / 255 + 1e-6, i
