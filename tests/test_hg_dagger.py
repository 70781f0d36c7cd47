"""HG-DAgger from recorded datasets: which frames are labels, segments, and a round that exports a bundle."""

import numpy as np
import pytest

from sim.aloha import robot
from training.config import ILConfig
from training.datasets.writer import EpisodeWriter
from training.il.hg_dagger import HGDAgger, export_bundle, load_labelled, load_rounds
from vla_il_core import schema

ENV_DIM = 7
# the VLA seeds benchmark at a tiny budget (both of its tests): two cameras, the wrist hidden from half the samples
TINY_VLA_BENCH = ["--cameras", "top", "right_wrist", "--image-size", "48", "64", "--demos", "2", "--rounds", "1",
                  "--episodes-per-round", "1", "--epochs", "1", "--round-epochs", "1", "--eval-episodes", "1",
                  "--gated-episodes", "1", "--episode-length", "40", "--workers", "1", "--seeds", "1",
                  "--camera-dropout", "right_wrist=0.5"]


def _write_recording(root, episodes):
    """A dataset with the recorder's schema; each episode is a list of intervention flags."""
    feats = schema.features(robot.JOINT_NAMES, (), env_state_dim=ENV_DIM, recorder_flags=True)
    writer = EpisodeWriter(root, feats, fps=50)
    for e, flags in enumerate(episodes):
        for t, driven in enumerate(flags):
            state = robot.START_STATE + 0.001 * t
            expert = np.full(14, 0.1 * e + 0.01 * t, np.float32)
            policy = np.full(14, -1.0, np.float32)
            writer.add({
                schema.STATE: state, schema.ENV_STATE: np.r_[0.1, 0.5, 0.02, 1, 0, 0, 0] + 0.0 * t,
                schema.ACTION: expert if driven else policy, schema.EXPERT_ACTION: expert, schema.POLICY_ACTION: policy,
                schema.INTERVENTION: driven, schema.SUCCESS: t == len(flags) - 1 and e == 0,
                schema.EXPERT_LABEL: True, schema.POLICY_VALID: True,
            }, task="transfer the cube")
        writer.save_episode()
    writer.close()
    return root


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec") / "dataset"
    return _write_recording(root, [[False, False, True, True, True, False, True, True],
                                   [False, True, True, False, False, False, False, False]])


def test_intervention_labels_are_the_expert_driven_frames_in_segments(recording):
    demos, stats = load_labelled(recording, "intervention")
    assert stats.frames == 16 and stats.episodes == 2 and stats.intervention_frames == 7
    assert len(demos) == 7 and stats.segments == 3 and len(demos.episodes) == 3
    # labels are the expert's actions, never the policy's
    assert np.all(demos.actions > -0.5)
    np.testing.assert_allclose(demos.actions[:3, 0], [0.02, 0.03, 0.04], atol=1e-6)
    # a chunk never joins two stretches: the frame before a gap has no next action in its segment
    _, mask = demos.chunk_targets(2)
    assert mask[:, 1].tolist() == [True, True, False, True, False, True, False]
    # an episode's success is carried by its segments
    assert sorted(demos.returns.values()) == [0.0, 1.0, 1.0]


def test_expert_labels_keep_every_labelled_frame_and_oversample_interventions(recording):
    demos, stats = load_labelled(recording, "expert")
    assert len(demos) == 16 and stats.labels == 16
    # a frame the policy drove has only its own label as a target: the labels after it were given on states
    # the policy's actions led to; an expert-driven stretch chunks as before
    _, mask = demos.chunk_targets(2)
    driven = [False, False, True, True, True, False, True, True, False, True, True, False, False, False, False, False]
    assert mask[:, 1].tolist() == [False, False, True, True, False, False, True, False,
                                   False, True, False, False, False, False, False, False]
    assert not np.any(mask[~np.array(driven), 1])
    heavy, _ = load_labelled(recording, "expert", intervention_weight=3.0)
    assert len(heavy) == 16 + 2 * 7  # the driven frames twice more


def test_a_dataset_without_intervention_flags_is_refused(tmp_path):
    feats = schema.features(robot.JOINT_NAMES, ())
    feats.pop(schema.INTERVENTION)
    writer = EpisodeWriter(tmp_path / "plain", feats, fps=50)
    for _ in range(3):
        writer.add({k: np.zeros(v["shape"], np.float32 if v["dtype"] == "float32" else bool)
                    for k, v in feats.items()}, task="t")
    writer.save_episode()
    writer.close()
    with pytest.raises(ValueError, match="intervention"):
        load_labelled(tmp_path / "plain")


def test_no_expert_frames_is_a_clear_error(tmp_path):
    root = _write_recording(tmp_path / "none", [[False, False, False]])
    with pytest.raises(ValueError, match="no expert labels"):
        load_rounds([root], ILConfig.dagger(dagger_mode="human_gated"))


def test_a_round_trains_from_the_previous_policy_and_exports_a_bundle(recording, tmp_path):
    from training.checkpoint import load_checkpoint
    from vla_il_core.runner import load_policy

    config = ILConfig.dagger(dagger_mode="human_gated", bc_epochs=3, eval_episodes=0, batch_size=4,
                             action_chunk_size=2, hidden_dim=32, output_dir=str(tmp_path / "r0"))
    first = HGDAgger(config, env_name="aloha:transfer_cube")
    first.train([recording])
    previous, _, _ = load_checkpoint(tmp_path / "r0" / "best")
    second = HGDAgger(ILConfig.dagger(**{**config.to_dict(), "output_dir": str(tmp_path / "r1")}), previous,
                      env_name="aloha:transfer_cube")
    result = second.train([recording, recording])  # aggregation: the union of both
    assert result["dagger/labels"] == 14 and result["dagger/intervention_frames"] == 14
    # continuing keeps the first round's input normalisation
    np.testing.assert_allclose(second.policy.obs_mean.numpy(), previous.obs_mean.numpy())
    message = export_bundle(tmp_path / "r1" / "best", tmp_path / "bundle")
    assert "exported" in message
    loaded = load_policy(str(tmp_path / "bundle"), prefer_gpu=False)
    assert [c.name for c in loaded.spec.state_components] == ["joint_positions", "env_state"]


def test_the_seeds_benchmark_runs_the_demo_loop_without_ros(tmp_path):
    """benchmarks/hg_dagger_seeds.py at a tiny budget: the gate, the mux core and both learners run, and
    the report says how many labels each side had (the figures themselves are the benchmark's, not a test's)."""
    import json

    from benchmarks import hg_dagger_seeds

    out = tmp_path / "hgs"
    assert hg_dagger_seeds.main(["--seeds", "1", "--demos", "2", "--rounds", "1", "--episodes-per-round", "1",
                                 "--epochs", "2", "--eval-episodes", "2", "--workers", "1", "--episode-length", "60",
                                 "--drift-threshold", "0.01", "--drift-ticks", "1", "--gated-episodes", "2",
                                 "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    row = result["rows"][0]
    assert row["rounds"][0]["intervention_frames"] > 0  # a threshold this tight: the expert took over
    assert row["hg_labels"] > 0 and abs(row["bc_labels"] - row["hg_labels"]) <= 60
    assert len(row["help_needed"]) == 2 and min(row["help_needed"]) > 0  # BC and round 1, the expert watching
    assert (out / "hg_vs_bc.png").stat().st_size > 0 and "HG-DAgger - BC" in (out / "table.txt").read_text()
    # --report: runs put together without running anything; the same seed twice is refused
    assert hg_dagger_seeds.main(["--report", str(out / "results.json"), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep/table.txt").read_text() == (out / "table.txt").read_text()
    with pytest.raises(SystemExit, match="a seed appears in more than one run"):
        hg_dagger_seeds.main(["--report", str(out / "results.json"), str(out / "results.json"), "--out",
                              str(tmp_path / "rep2")])


def test_the_takeover_trend_is_a_slope_per_seed_over_the_hg_rounds():
    from benchmarks.hg_dagger_seeds import takeover_trend

    rows = [{"help_needed": [2.0, 1.0, 0.8, 0.6]}, {"help_needed": [3.0, 0.9, 0.9, 0.5]},
            {"help_needed": [2.5, 0.5, 0.7, 0.9]}]
    slopes, mean, (lo, hi) = takeover_trend(rows)  # BC (the first value) is left out
    assert np.allclose(slopes, [-0.2, -0.2, 0.2]) and np.isclose(mean, -0.2 / 3)
    assert lo < mean < hi and lo < -0.2 and hi > 0.1  # one seed rising: the interval holds zero
    assert takeover_trend(rows[:1]) is None  # one seed: no interval


def test_the_vla_seeds_benchmark_continues_each_round_and_resumes_what_it_measured(tmp_path, capsys):
    """benchmarks/vla_hg_dagger_seeds.py at a tiny budget on a recording of ours (--pool-from): the rounds
    continue the last VLA and BC at equal labels continues round 0 (their checkpoints' provenance); run again,
    it resumes from its results instead of measuring again; other settings into the same --out, or a
    recording that does not fit, are refused and lose nothing. Two cameras (the top and the right hand's),
    so the expert's segments carry every view the VLA reads; the wrist's hidden from half the training samples."""
    import json
    import shutil

    import torch

    from benchmarks import vla_hg_dagger_seeds
    from sim.collect import collect
    from training.checkpoint import load_checkpoint, read_provenance

    pool, out = tmp_path / "pool", tmp_path / "out"
    collect("transfer_cube", 3, pool, cameras=("top", "right_wrist"), image_size=(48, 64), seed=0)
    argv = ["--pool-from", str(pool), *TINY_VLA_BENCH, "--out", str(out)]
    assert vla_hg_dagger_seeds.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    row = results["rows"][0]
    assert row["seed"] == 0 and row["bc_labels"] >= row["hg_labels"] > 0
    runs = out / "runs" / "seed_0"
    assert read_provenance(runs / "round_0")["model_path"] is None  # round 0: a new VLA
    round_0 = next(load_checkpoint(runs / "round_0")[0].parameters())
    for name in ("round_1", "bc_equal_labels"):  # both continued from round 0, and trained on
        assert read_provenance(runs / name)["model_path"] == str(runs / "round_0"), name
        assert not torch.equal(next(load_checkpoint(runs / name)[0].parameters()), round_0), name
    assert load_checkpoint(runs / "round_1")[0].config.cameras == ("top", "right_wrist")
    assert load_checkpoint(runs / "round_0")[0].config.camera_dropout == {"right_wrist": 0.5}
    no_dropout = vla_hg_dagger_seeds.parse_args([a for a in argv if a != "right_wrist=0.5"])
    differs = vla_hg_dagger_seeds.trained_otherwise(runs / "round_0" / "best", no_dropout, 0, pool,
                                                    read_provenance(runs / "round_0")["frames"])
    assert differs == "camera_dropout {'right_wrist': 0.5} (this run: {})", differs
    assert row["rounds"][0]["intervention_frames"] > 0  # segments with both views went into round 1

    capsys.readouterr()
    assert vla_hg_dagger_seeds.main(argv) == 0  # nothing left to measure
    assert "seed 0: measured before" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["rows"] == results["rows"]
    # seeds measured before a setting existed ran with its default: resumed, not refused
    new_settings = ("ema_decay", "state_keep_dropout", "lr_schedule", "gate", "through_mux")
    older = {**results, "args": {k: v for k, v in results["args"].items() if k not in new_settings}}
    assert older["args"] != results["args"]
    (out / "results.json").write_text(json.dumps(older))
    assert vla_hg_dagger_seeds.main(argv) == 0
    assert "seed 0: measured before" in capsys.readouterr().out
    assert vla_hg_dagger_seeds.main([*argv, "--ema-decay", "0.999"]) == 2  # but not with another value
    assert "other settings (ema_decay)" in capsys.readouterr().err
    assert vla_hg_dagger_seeds.main([*argv, "--gate", "agree_ticks=5"]) == 2  # nor with another gate
    assert "other settings (gate)" in capsys.readouterr().err
    for bad, says in ((["handback=5"], "--gate handback=5: FIELD=VALUE with FIELD one of agree_ticks, beta"),
                      (["agree_ticks=0.5"], "--gate agree_ticks=0.5: agree_ticks takes a int"),
                      (["drift_ticks=9", "gripper_drift_ticks=3"], "gripper_drift_ticks: 0 (as drift_ticks) or >= ")):
        assert vla_hg_dagger_seeds.main([*argv, "--gate", *bad]) == 2
        assert says in capsys.readouterr().err
    assert vla_hg_dagger_seeds.main([*argv, "--state-keep-dropout", "0.5"]) == 2  # nothing kept to drop
    assert "--state-keep-dropout 0.5: a share in [0, 1] of the --state-keep values' samples" in capsys.readouterr().err

    # seeds measured with one --camera, before --cameras: the same setting
    one = {**older, "args": {**{k: v for k, v in older["args"].items() if k != "cameras"}, "camera": "top"}}
    (out / "results.json").write_text(json.dumps(one))
    top_only = [a for a in argv if a != "right_wrist"]
    assert list(vla_hg_dagger_seeds.measured_seeds(out / "results.json", vla_hg_dagger_seeds.parse_args(top_only)))
    with pytest.raises(ValueError, match=r"other settings \(cameras\)"):
        vla_hg_dagger_seeds.measured_seeds(out / "results.json", vla_hg_dagger_seeds.parse_args(argv))
    (out / "results.json").write_text(json.dumps(older))
    for bad in ("right_wrist=1", "left_wrist=0.5", "right_wrist"):
        assert vla_hg_dagger_seeds.main([*argv, "--camera-dropout", bad, "--out", str(tmp_path / "y")]) == 2
        assert f"--camera-dropout {bad}: CAMERA=P with CAMERA one of the cameras" in capsys.readouterr().err
    assert vla_hg_dagger_seeds.main([*argv, "--cameras", "top", "left_wrist", "--camera-dropout",
                                     "--out", str(tmp_path / "y")]) == 2
    assert "has no left_wrist camera" in capsys.readouterr().err

    before = (out / "results.json").read_text()
    assert vla_hg_dagger_seeds.main([*argv, "--round-epochs", "2"]) == 2
    assert "other settings (round_epochs)" in capsys.readouterr().err
    assert vla_hg_dagger_seeds.main([*argv, "--image-size", "96", "128", "--out", str(tmp_path / "x")]) == 2
    assert "its top frames are 48x64, the benchmark's 96x128" in capsys.readouterr().err
    assert (out / "results.json").read_text() == before

    # a seed stopped after round 0 (no row in results.json) keeps it when trained as this run would train it
    round_0 = (runs / "round_0" / "best" / "model.pt").read_bytes()
    (out / "results.json").unlink()
    shutil.rmtree(runs / "round_0" / "bundle")  # a stop during its export: exported again, not trained again
    assert vla_hg_dagger_seeds.main(argv) == 0
    assert f"seed 0: round 0 kept from {runs / 'round_0'}" in capsys.readouterr().out
    assert (runs / "round_0" / "best" / "model.pt").read_bytes() == round_0
    assert (runs / "round_0" / "bundle" / "policy.onnx").is_file()
    args = vla_hg_dagger_seeds.parse_args(argv)
    alike = dict(args=args, seed=0, pool=pool, frames=read_provenance(runs / "round_0")["frames"])
    assert vla_hg_dagger_seeds.trained_otherwise(runs / "round_0" / "best", **alike) is None
    for other, says in ((["--lr-schedule", "constant"], "lr_schedule cosine (this run: constant)"),
                        (["--state-keep", "6", "13"], "state_keep [] (this run: [6, 13])"),
                        (["--learning-rate", "3e-4"], "learning_rate 0.001 (this run: 0.0003)"),
                        (["--action-head", "flow_matching"], "action_head regression (this run: flow_matching)")):
        changed = vla_hg_dagger_seeds.parse_args([*argv, *other])
        assert says in vla_hg_dagger_seeds.trained_otherwise(runs / "round_0" / "best", **{**alike, "args": changed})
    assert "seed 0 (this run: 2)" in vla_hg_dagger_seeds.trained_otherwise(runs / "round_0" / "best",
                                                                           **{**alike, "seed": 2})
    assert "frames" in vla_hg_dagger_seeds.trained_otherwise(runs / "round_0" / "best",
                                                               **{**alike, "frames": alike["frames"] + 1})
    assert "round_0 (this run: None)" in vla_hg_dagger_seeds.trained_otherwise(runs / "round_1" / "best", **alike)
    assert "no readable checkpoint" in vla_hg_dagger_seeds.trained_otherwise(tmp_path / "nowhere", **alike)
    # trained otherwise (here: a constant rate asked of a fresh --out's copy): trained again, and said so
    other = tmp_path / "other"
    shutil.copytree(runs / "round_0", other / "runs" / "seed_0" / "round_0")
    assert vla_hg_dagger_seeds.main([*argv, "--lr-schedule", "constant", "--out", str(other)]) == 0
    assert "was trained with lr_schedule cosine (this run: constant): training it again" in capsys.readouterr().out
    assert read_provenance(other / "runs" / "seed_0" / "round_0")["model_path"] is None

    def schedule(name):
        return json.loads((other / "runs" / "seed_0" / name / "best" / "config.json").read_text())["lr_schedule"]

    assert schedule("round_0") == "constant"
    assert schedule("round_1") == schedule("bc_equal_labels") == "cosine"  # continued fits anneal

    # --through-mux: refused on this recording, made without the mux (its meta/recording.json says so)
    assert vla_hg_dagger_seeds.main([*argv, "--through-mux", "--out", str(tmp_path / "z")]) == 2
    assert "recorded without the intervention mux" in capsys.readouterr().err
    assert "frame_weights" not in read_provenance(runs / "round_1")  # weight 1 (the default): shuffled as BC's
    assert "mux_limited_per_episode" not in results["rows"][0]["hg"]  # evaluated without the mux


def test_the_vla_seeds_benchmark_fits_bc_k_times_and_compares_hg_with_their_mean(tmp_path, capsys):
    """--bc-fits 2: BC at equal labels fitted twice from round 0, the second with another training seed (one fit's
    own spread is as large as the gaps measured); the gap is against their mean, the table lists both.
    --temporal-ensembling: every bundle the run exports plays its chunks so."""
    import json

    from benchmarks import vla_hg_dagger_seeds
    from sim.collect import collect
    from training.checkpoint import read_provenance

    pool, out = tmp_path / "pool", tmp_path / "out"
    collect("transfer_cube", 3, pool, cameras=("top",), image_size=(48, 64), seed=0)
    tiny = [a for a in TINY_VLA_BENCH if a not in ("right_wrist", "--camera-dropout", "right_wrist=0.5")]
    argv = ["--pool-from", str(pool), *tiny, "--bc-fits", "2", "--temporal-ensembling", "--out", str(out)]
    assert vla_hg_dagger_seeds.main(argv) == 0
    row = json.loads((out / "results.json").read_text())["rows"][0]
    fits = row["bc"]["fits"]
    assert len(fits) == 2 and row["bc"]["episodes"] == 2 * fits[0]["episodes"]
    assert row["gap_points"] == pytest.approx(100 * (row["hg"]["success_rate"] - np.mean(
        [f["success_rate"] for f in fits])))
    runs = out / "runs" / "seed_0"
    for name, seed in (("bc_equal_labels", 0), ("bc_equal_labels_1", vla_hg_dagger_seeds.BC_SEED_STEP)):
        assert read_provenance(runs / name)["model_path"] == str(runs / "round_0"), name
        assert json.loads((runs / name / "best" / "config.json").read_text())["seed"] == seed, name
    assert "seed 0: BC at equal labels, 2 fits (training seeds differ)" in (out / "table.txt").read_text()
    bundles = sorted(runs.glob("*/bundle/policy.json"))
    assert len(bundles) >= 4  # round 0, a round, the two BC fits
    for meta in bundles:
        assert json.loads(meta.read_text())["recommended"]["temporal_ensembling"] is True, meta
    capsys.readouterr()
    assert vla_hg_dagger_seeds.main([*argv, "--bc-fits", "0", "--out", str(tmp_path / "none")]) == 2
    assert "--bc-fits 0: at least one fit" in capsys.readouterr().err


def test_the_vla_seeds_benchmark_through_the_mux_with_weighted_segments_and_its_control(tmp_path, capsys):
    """The benchmark on a recording made through the mux, with another gate (here the expert drives every tick of
    the round's episode): the rounds run with that gate, and HG-DAgger and BC alone are evaluated through the mux,
    as the rounds drove; the segments weighted 3 times a demo's frame (--intervention-weight): round 1 draws them
    so; --control: round 0 alone, and round 0 continued on its own demos as long as the rounds continued it."""
    import json

    from benchmarks import vla_hg_dagger_seeds
    from sim.collect import collect
    from training.checkpoint import read_provenance

    muxed_pool, gated = tmp_path / "pool_mux", tmp_path / "gated"
    collect("transfer_cube", 3, muxed_pool, cameras=("top", "right_wrist"), image_size=(48, 64), seed=0,
            through_mux=True)
    muxed = ["--pool-from", str(muxed_pool), *TINY_VLA_BENCH, "--gate", "mode=always", "--through-mux",
             "--intervention-weight", "3"]
    assert vla_hg_dagger_seeds.main([*muxed, "--control", "--out", str(gated)]) == 0
    printed = capsys.readouterr().out
    row = json.loads((gated / "results.json").read_text())["rows"][0]
    assert row["rounds"][0]["intervention_frames"] == 40 and row["rounds"][0]["interventions_per_episode"] == 1
    weighted = gated / "runs" / "seed_0"
    assert read_provenance(weighted / "round_1")["frame_weights"] == {"1": row["rounds"][0]["labels"] - 40, "3": 40}
    assert "frame_weights" not in read_provenance(weighted / "bc_equal_labels")  # whole demos: nothing to weight
    assert "mux_limited_per_episode" in row["hg"] and "mux_limited_per_episode" in row["bc"]
    # the control: round 0 continued on the demos alone (round 0's frames), both evaluated as HG-DAgger and BC are
    control = read_provenance(weighted / "control_demos_only")
    assert control["model_path"] == str(weighted / "round_0")
    assert control["frames"] == read_provenance(weighted / "round_0")["frames"]
    assert row["round0"]["episodes"] == row["control"]["episodes"] == 1
    assert "mux_limited_per_episode" in row["control"]
    assert "round 0 continued on its demos alone" in printed
    assert "seed 0: round 0 alone" in (gated / "table.txt").read_text()
    assert vla_hg_dagger_seeds.main([*muxed, "--control", "--round-init", "scratch", "--out", str(tmp_path / "s")]) == 2
    assert "--control continues round 0 on its demos as the rounds continue it" in capsys.readouterr().err
    assert vla_hg_dagger_seeds.main([*muxed, "--intervention-weight", "0.5", "--out", str(tmp_path / "v")]) == 2
    assert "--intervention-weight 0.5: a weight >= 1" in capsys.readouterr().err
    assert vla_hg_dagger_seeds.main([a for a in muxed if a != "--through-mux"] + ["--out", str(tmp_path / "w")]) == 2
    assert "recorded through the intervention mux, this run evaluates without it" in capsys.readouterr().err
