"""The VLA trainers: the spec's stage pipeline BC -> DAgger -> GAIL through the CLIs on a tiny model,
DistributedDataParallel with 2 CPU processes under torchrun, and bad input stopping cleanly."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.ros_harness import ROOT
from tests.vla_fixtures import aloha_dataset
from training.checkpoint import load_checkpoint, read_provenance
from training.cli import run_il_cli
from training.models.vla import VLAModel

TINY = ["--vla_hidden", "32", "--batch_size", "16", "--learning_rate", "1e-3"]


@pytest.fixture(scope="module")
def aloha(tmp_path_factory):
    return aloha_dataset(tmp_path_factory.getbasetemp())


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_stage_pipeline_bc_then_dagger_then_gail_runs_end_to_end(aloha, tmp_path):
    bc, dagger, gail = tmp_path / "bc", tmp_path / "dagger", tmp_path / "gail"
    assert (
        run_il_cli(
            "bc",
            [
                "--dataset",
                str(aloha),
                "--bc_epochs",
                "2",
                "--action_chunk_size",
                "5",
                "--bc_validation_split",
                "0.34",
                "--ema_decay",  # the VLA's fit keeps its weights' average too (ILConfig.ema_decay)
                "0.9",
                "--camera_dropout",  # training hides the camera from a share of the samples
                "top=0.25",
                "--eval_episodes",
                "1",
                "--episode_length",
                "20",
                "--output_dir",
                str(bc),
                *TINY,
            ],
        )
        == 0
    )
    history = rows(bc)
    assert [r["val/loss"] for r in history if "val/loss" in r] and any("success_rate" in r for r in history)
    assert all("val/loss_trained_weights" in r for r in history if "val/loss" in r)
    model, config, metrics = load_checkpoint(bc)
    assert isinstance(model, VLAModel) and model.chunk_size == 5 and read_provenance(bc)["dataset"] == str(aloha)
    assert model.config.camera_dropout == {"top": 0.25}
    assert (bc / "learning_curves.png").exists() and (bc / "last/model.pt").exists()

    assert (
        run_il_cli(
            "dagger",
            [
                "--model_path",
                str(bc / "best"),
                "--dataset",  # aggregated with the rollouts (its items carry the sim's object poses; theirs too)
                str(aloha),
                "--dagger_iterations",
                "2",
                "--dagger_episodes_per_iter",
                "1",
                "--episode_length",
                "15",
                "--bc_epochs",
                "1",
                "--dagger_beta_schedule",
                "exponential",
                "--eval_episodes",
                "0",
                "--output_dir",
                str(dagger),
                *TINY,
            ],
        )
        == 0
    )
    history = [r for r in rows(dagger) if "dagger/beta" in r]
    assert [r["dagger/beta"] for r in history] == pytest.approx([1.0, 0.9])
    assert [r["dagger/expert_labels"] for r in history] == [15, 30]  # every visited state labelled, aggregated
    loaded, _, _ = load_checkpoint(dagger)
    assert not torch.equal(loaded.head[-1].weight, model.head[-1].weight)  # it trained on the new labels

    assert (
        run_il_cli(
            "gail",
            [
                "--model_path",
                str(dagger / "best"),
                "--total_timesteps",
                "24",
                "--ppo_rollout_steps",
                "12",
                "--ppo_minibatch_size",
                "6",
                "--num_expert_episodes",
                "1",
                "--episode_length",
                "12",
                "--eval_episodes",
                "1",
                "--output_dir",
                str(gail),
                *TINY,
            ],
        )
        == 0
    )
    last = rows(gail)[-1]
    assert {"train/loss", "disc_loss", "gail_reward", "mean_reward"} <= set(last)
    assert (gail / "best/discriminator.pt").exists() and (gail / "best/value_head.pt").exists()


def test_bad_dataset_or_checkpoint_stops_the_cli_with_a_message(aloha, tmp_path, capsys):
    assert (
        run_il_cli(
            "bc",
            ["--dataset", str(aloha), "--cameras", "left_wrist", "--vla", "tiny", "--output_dir", str(tmp_path / "x")],
        )
        == 2
    )
    assert "lacks the camera(s) left_wrist" in capsys.readouterr().err
    bad_key = ["--dataset", str(aloha), "--action_key", "reward", "--output_dir", str(tmp_path / "k")]
    assert run_il_cli("bc", bad_key) == 2
    assert "has no 'reward' feature" in capsys.readouterr().err
    assert run_il_cli("bc", ["--vla", "tiny", "--output_dir", str(tmp_path / "y")]) == 2
    assert "needs --dataset" in capsys.readouterr().err
    keep = ["--dataset", str(aloha), "--vla", "tiny", "--state_keep", "13", "14", "--output_dir", str(tmp_path / "s")]
    assert run_il_cli("bc", keep) == 2
    assert "--state_keep 14: the dataset's state has 14 values (indices 0..13)" in capsys.readouterr().err
    alone = ["--dataset", str(aloha), "--vla", "tiny", "--state_keep_dropout", "0.5", "--output_dir",
             str(tmp_path / "s")]
    assert run_il_cli("bc", alone) == 2
    assert "--state_keep_dropout drops the --state_keep values: give --state_keep" in capsys.readouterr().err
    unseen = ["--dataset", str(aloha), "--vla", "tiny", "--camera_dropout", "right_wrist=0.5", "--output_dir",
              str(tmp_path / "s")]
    assert run_il_cli("bc", unseen) == 2
    assert "--camera_dropout right_wrist=0.5: CAMERA=P with CAMERA one of the cameras (top)" in capsys.readouterr().err
    assert not (tmp_path / "s" / "best").exists()
    assert (
        run_il_cli(
            "bc",
            [
                "--dataset",
                str(aloha),
                "--vision_model_name",
                str(tmp_path / "none"),
                "--llm_model_name",
                str(tmp_path / "none"),
                "--output_dir",
                str(tmp_path / "z"),
            ],
        )
        == 2
    )
    assert "no tokenizer for" in capsys.readouterr().err


def test_a_continued_fit_refuses_flags_that_would_shape_another_model(aloha, tmp_path, capsys):
    """--model_path continues the checkpoint's model as it is: a new-model flag at another value than the
    checkpoint's is refused naming both (before, it was ignored without a word); at the same value it is fine."""
    from training.checkpoint import save_checkpoint
    from training.config import ILConfig

    model = VLAModel.tiny(chunk_size=5, hidden=32, state_keep=(6, 13), camera_dropout={"top": 0.25})
    model.set_normalization(np.zeros(14), np.full(14, 0.5), np.ones(14), np.full(14, 0.2))
    save_checkpoint(tmp_path / "ckpt", model, ILConfig(action_chunk_size=5))
    base = ["--model_path", str(tmp_path / "ckpt"), "--dataset", str(aloha), "--bc_epochs", "1", "--eval_episodes",
            "0", "--output_dir", str(tmp_path / "refused")]
    refused = {
        ("--camera_dropout", "top=0.5"): "--camera_dropout top=0.5 (the checkpoint's: top=0.25)",
        ("--vla_hidden", "64"): "--vla_hidden 64 (the checkpoint's: 32)",
        ("--state_dropout", "1.0"): "--state_dropout 1.0 (the checkpoint's: 0.0)",
        ("--state_keep_dropout", "0.5"): "--state_keep_dropout 0.5 (the checkpoint's: 0.0)",
        ("--action_chunk_size", "10"): "--action_chunk_size 10 (the checkpoint's: 5)",
        ("--image_size", "96", "128"): "--image_size 96 128 (the checkpoint's: 48 64)",
    }
    for flags, says in refused.items():
        assert run_il_cli("bc", [*base, *flags]) == 2, flags
        err = " ".join(capsys.readouterr().err.split())
        assert says in err and "drop these flags, or train a new model without --model_path" in err, err
    assert not (tmp_path / "refused").exists()  # refused before anything was written
    same = ["--camera_dropout", "top=0.25", "--vla_hidden", "32", "--state_keep", "6", "13", "--batch_size", "16",
            "--output_dir", str(tmp_path / "continued")]
    assert run_il_cli("bc", [*base[:-2], *same]) == 0
    assert load_checkpoint(tmp_path / "continued")[0].config.camera_dropout == {"top": 0.25}


def test_ddp_with_two_cpu_processes_under_torchrun(aloha, tmp_path):
    import socket

    out = tmp_path / "ddp"
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        str(ROOT / "training/il/behavioral_cloning.py"),
        "--dataset",
        str(aloha),
        "--bc_epochs",
        "2",
        "--bc_validation_split",
        "0",
        "--eval_episodes",
        "0",
        "--action_chunk_size",
        "4",
        "--num_workers",
        "0",
        "--output_dir",
        str(out),
        *TINY,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=280)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    frames = 3 * 40
    per_rank_steps = -(-frames // 2 // 16)  # each rank iterates its own half of the frames
    assert [r["step"] for r in rows(out) if "train/loss" in r] == [per_rank_steps, 2 * per_rank_steps]
    assert read_provenance(out)["world_size"] == 2
    assert done.stdout.count("bc done") == 2 and not list(out.glob("*.tmp"))


def test_fit_vla_trains_the_tiny_preset_or_backbones_from_local_directories_on_expert_labels(aloha, tmp_path):
    """The demo's VLA fit: the tiny preset, or SigLIP + Qwen2 weights through from_pretrained (here small ones
    saved locally, as the GPU recipe's hub weights would be cached), tuned as asked; continued from a checkpoint."""
    from transformers import Qwen2Config, Qwen2Model, SiglipVisionConfig, SiglipVisionModel

    from training.datasets.lerobot_dataset import AlohaDataset
    from training.il.vla_trainers import fit_vla

    torch.set_num_threads(1)
    data = AlohaDataset(aloha, split="all", chunk_size=4, labels="intervention", action_key="expert_action")
    shape = dict(cameras=("top",), image_size=(48, 64), chunk_size=4, epochs=1, task="transfer_cube", batch_size=16)
    ckpt, labels = fit_vla(data, tmp_path / "tiny", state_keep=(6, 13), state_keep_dropout=0.5, ema_decay=0.9,
                           **shape)
    tiny = load_checkpoint(ckpt)[0]
    assert labels == len(data) and tiny.config.state_dropout == 1.0 and tiny.image_size == (48, 64)
    assert tiny.config.state_keep == (6, 13)  # the grippers, read however the rest of the state is hidden
    assert tiny.config.state_keep_dropout == 0.5
    assert json.loads((ckpt / "config.json").read_text())["ema_decay"] == 0.9
    with pytest.raises(ValueError, match="one per item"):  # refused before any backbone loads or anything is written
        fit_vla(data, tmp_path / "weighted", sample_weights=[1.0, 3.0], backbones=("/nowhere/a", "/nowhere/b"),
                **shape)
    assert not (tmp_path / "weighted").exists()
    from training.checkpoint import read_provenance

    assert read_provenance(ckpt)["dataset"] == str(aloha)  # where the export takes the camera's view from
    assert abs(float(tiny.action_std.mean()) - 1.0) > 1e-3  # normalised from the data
    vision = SiglipVisionModel(SiglipVisionConfig(**tiny.spec()["config"]["vision_config"]))
    llm = Qwen2Model(Qwen2Config(**tiny.spec()["config"]["llm_config"]))
    vision.save_pretrained(tmp_path / "siglip")
    llm.save_pretrained(tmp_path / "qwen2")
    tiny.tokenizer.save_pretrained(tmp_path / "qwen2")
    ckpt, _ = fit_vla(data, tmp_path / "backbones", backbones=(str(tmp_path / "siglip"), str(tmp_path / "qwen2")),
                      freeze_vision=True, **shape)
    tuned = load_checkpoint(ckpt)[0]
    assert tuned.config.vision_model_name == str(tmp_path / "siglip") and tuned.config.freeze_vision
    assert not any(p.requires_grad for p in tuned.vision.parameters())
    before = {k: v.clone() for k, v in tuned.state_dict().items()}
    ckpt, _ = fit_vla(data, tmp_path / "continued", previous=ckpt, lr_schedule="constant", **shape)
    after = load_checkpoint(ckpt)[0].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("head"))
    # a continued fit anneals whatever a new VLA's schedule is (constant there measured 24% against 74%)
    assert json.loads((ckpt / "config.json").read_text())["lr_schedule"] == "cosine"
    # it continues the checkpoint's model as it is: its own tuning passes, another is refused before any write
    fit_vla(data, tmp_path / "same", previous=ckpt, freeze_vision=True, **shape)
    with pytest.raises(ValueError, match="action_head is 'regression' there, not 'flow_matching'"):
        fit_vla(data, tmp_path / "other", previous=ckpt, action_head="flow_matching", **shape)
    assert not (tmp_path / "other").exists()


def test_bc_trains_on_several_recordings_with_statistics_pooled_over_them(aloha, tmp_path, capsys):
    """`--extra_dataset`: a second recording's episodes are items too, and the normalisation fits both
    recordings' frames, not the first's alone; a recording that does not go with the first is refused."""
    import numpy as np

    from sim.collect import collect
    from training.datasets.frame_cache import read_table
    from training.datasets.lerobot_dataset import open_recordings
    from vla_il_core import schema

    second = aloha_dataset(tmp_path, episodes=2, episode_length=30)
    both = open_recordings([aloha, second], "train", chunk_size=5, val_fraction=0.34)
    alone = open_recordings([aloha], "train", chunk_size=5, val_fraction=0.34)
    assert len(both) > len(alone) and both.episodes[-1][0] == str(second)
    frames = np.concatenate([read_table(root)[schema.STATE] for root in (aloha, second)]).astype(np.float64)
    stats = both.stats()
    np.testing.assert_allclose(stats["state_mean"], frames.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats["state_std"], frames.std(0), atol=1e-4)
    assert not np.allclose(alone.stats()["state_mean"], frames.mean(0), atol=1e-5)  # so the test can tell

    def bc(extra, out):
        return run_il_cli("bc", ["--dataset", str(aloha), "--extra_dataset", str(extra), "--bc_epochs", "1",
                                 "--action_chunk_size", "5", "--bc_validation_split", "0.34", "--eval_episodes", "0",
                                 "--output_dir", str(out), *TINY])

    assert bc(second, tmp_path / "bc") == 0
    assert read_provenance(tmp_path / "bc")["extra_datasets"] == [str(second)]
    assert rows(tmp_path / "bc")[0]["step"] == -(-len(both) // 16)  # an epoch is the batches of both recordings
    model = load_checkpoint(tmp_path / "bc")[0]
    np.testing.assert_allclose(model.state_mean.numpy(), stats["state_mean"], atol=1e-5)

    smaller = tmp_path / "smaller"
    collect("transfer_cube", 1, smaller, cameras=("top",), image_size=(24, 32), keep_failed=True,
            episode_length=10, progress=False)
    capsys.readouterr()
    assert bc(smaller, tmp_path / "refused") == 2
    assert f"{smaller} does not go with {aloha}: image_size" in " ".join(capsys.readouterr().err.split())


def _recorded_round(root, episodes):
    """A dataset in the dagger_recorder's schema with the top camera (48x64): each episode a list of flags, True
    where the expert drove. The expert's labels are near +0.5, the policy's commands -1 (what `action` holds where
    the policy drove); where the expert drove, `action` (the mux's step-limited command) lags its label by 0.6: a VLA
    that learnt from the policy's frames, or from `action` instead of `expert_action`, would show it."""
    from sim.aloha import robot
    from training.datasets.writer import EpisodeWriter
    from vla_il_core import schema

    writer = EpisodeWriter(root, schema.features(robot.JOINT_NAMES, ("top",), (48, 64), env_state_dim=7,
                                                 recorder_flags=True), fps=50)
    rng = np.random.default_rng(0)
    for flags in episodes:
        for t, driven in enumerate(flags):
            expert = np.full(14, 0.5 + 0.01 * t, np.float32)
            policy = np.full(14, -1.0, np.float32)
            writer.add({
                schema.STATE: robot.START_STATE + 0.001 * t, schema.ENV_STATE: np.r_[0.1, 0.5, 0.02, 1, 0, 0, 0],
                schema.image_key("top"): rng.integers(0, 256, (48, 64, 3), np.uint8),
                schema.ACTION: expert - 0.6 if driven else policy, schema.EXPERT_ACTION: expert,
                schema.POLICY_ACTION: policy, schema.INTERVENTION: driven, schema.SUCCESS: False,
                schema.EXPERT_LABEL: True, schema.POLICY_VALID: True,
            }, task="transfer the cube")
        writer.save_episode()
    writer.close()
    return root


def test_hg_dagger_from_a_recording_trains_the_next_vla_on_the_experts_segments(aloha, tmp_path, capsys):
    """The README's step 8 with a VLA: `vla-il train dagger --dagger_mode human_gated --model_path <VLA>` trains
    the next VLA on the expert-driven frames of the recording (their camera frames, the expert's labels), continuing
    the checkpoint, and exports its bundle (before, it failed on the MLP's data path: "no 'observation.state'")."""
    from training.datasets.lerobot_dataset import LeRobotVLADataset

    flags = [[False] * 6 + [True] * 14 + [False] * 4, [False] * 10 + [True] * 12 + [False] * 2]
    rec = _recorded_round(tmp_path / "rec", flags)
    driven = sum(map(sum, flags))
    assert run_il_cli("bc", ["--dataset", str(aloha), "--vla", "tiny", *TINY, "--bc_epochs", "1", "--eval_episodes",
                             "0", "--action_chunk_size", "4", "--output_dir", str(tmp_path / "bc")]) == 0
    hg = ["--dagger_mode", "human_gated", "--dataset", str(rec), "--model_path", str(tmp_path / "bc"),
          "--bc_validation_split", "0", "--bc_epochs", "25", "--batch_size", "8", "--learning_rate", "3e-3",
          "--eval_episodes", "0", "--output_dir", str(tmp_path / "r1"), "--export_bundle", str(tmp_path / "b1")]
    assert run_il_cli("dagger", hg) == 0
    assert f"HG-DAgger: {driven} labels ({driven} of them expert-driven) from 1 recording(s), imitating " \
           "expert_action" in capsys.readouterr().out
    prov = read_provenance(tmp_path / "r1" / "best")
    assert (prov["labels"], prov["expert_driven_labels"], prov["dagger_labels"]) == (driven, driven, "intervention")
    assert prov["model_path"] == str(tmp_path / "bc")
    spec = json.loads((tmp_path / "b1" / "policy.json").read_text())
    assert (tmp_path / "b1" / "policy.onnx").is_file() and "top" in json.dumps(spec)
    # it learnt the expert's labels on the segments' frames (about 0.63): not the policy's -1, nor `action`'s 0.03
    model = load_checkpoint(tmp_path / "r1")[0].eval()
    seg = LeRobotVLADataset(rec, split="all", chunk_size=4, labels="intervention", action_key="expert_action",
                            progress=False)
    with torch.no_grad():
        first = model.predict(torch.utils.data.default_collate([seg[i] for i in range(len(seg))]))[:, 0]
    assert abs(float(first.mean()) - 0.63) < 0.25, float(first.mean())
    # every expert-labelled frame, the segments drawn 3x as often: said in the provenance
    every = [*hg[:-4], "--dagger_labels", "expert", "--intervention_weight", "3", "--bc_epochs", "1",
             "--output_dir", str(tmp_path / "r1e")]
    assert run_il_cli("dagger", every) == 0
    prov = read_provenance(tmp_path / "r1e" / "best")
    assert (prov["labels"], prov["expert_driven_labels"], prov["intervention_weight"]) == (
        sum(map(len, flags)), driven, 3.0)
    # a recording where the expert never drove: nothing to learn, said so
    none = _recorded_round(tmp_path / "none", [[False] * 8])
    assert run_il_cli("dagger", [*hg[:3], str(none), *hg[4:-4], "--output_dir", str(tmp_path / "r0")]) == 2
    assert "no expert labels in the training episodes of" in capsys.readouterr().err


def test_the_mlp_refuses_the_vlas_flags_instead_of_ignoring_them(tmp_path, capsys):
    """A run that trains the MLP policy names the VLA flags it was given (they used to be ignored without a word);
    so does a pretrained VLA given the tiny preset's sizes."""
    from tests.test_hg_dagger import _write_recording

    mlp = ["--env", "CartPole-v1", "--bc_epochs", "1", "--output_dir", str(tmp_path / "m")]
    assert run_il_cli("bc", [*mlp, "--camera_dropout", "top=0.5", "--vla_hidden", "32"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--vla_hidden, --camera_dropout: flags of the VLA, and this run trains the MLP policy (--env " \
           "CartPole-v1)" in err, err
    rec = _write_recording(tmp_path / "rec", [[False, True, True, True]])
    hg = ["--dagger_mode", "human_gated", "--dataset", str(rec), "--output_dir", str(tmp_path / "h")]
    assert run_il_cli("dagger", [*hg, "--state_dropout", "1.0"]) == 2
    assert "--state_dropout: a flag of the VLA, and this run trains the MLP policy (human-gated DAgger trains the " \
           "MLP without --vla or a VLA --model_path)" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "m").exists() and not (tmp_path / "h").exists()
    pretrained = ["--dataset", str(rec), "--vla", "pretrained", "--vla_layers", "1", "--output_dir", str(tmp_path)]
    assert run_il_cli("bc", pretrained) == 2
    assert "--vla_layers 1: the tiny preset's size; a pretrained VLA takes its size from its backbones" in \
        " ".join(capsys.readouterr().err.split())
