"""Diagnosis script (not part of the product; run from the repository root with PYTHONPATH=.): results.json and
seeds.png of this directory from the runs' outputs under output/ (see ../README.md)."""
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.success_plots import success_errorbars

o = Path("output")
def ep(path):
    return [json.loads(line)["success"] for line in open(path)]
rows = {
    "seed 1": json.load(open(o / "vt_base/run1/result.json"))["outcomes"]["bundle"],
    "seed 11": ep(o / "vt_seeds/s11/eval/episodes.jsonl"),
    "seed 21": ep(o / "vt_seeds/s21/eval/episodes.jsonl"),
    "seed 31": ep(o / "vt_seeds/s31/eval/episodes.jsonl"),
    "seed 41": ep(o / "vt_seeds/s41/eval/episodes.jsonl"),
    "ensemble of seeds\n1, 11, 21": json.load(open(o / "vt_seeds/ensemble.json"))["outcomes"],
    "seed 1 trained with\n--image_shift 4": json.load(open(o / "vt_shift4/run1/result.json"))["outcomes"]["bundle"],
    "seed 1, run-time frames\nshifted 4 px right": json.load(open(o / "vt_seeds/shift_0_4.json"))["outcomes"],
    "seed 1, run-time frames\nshifted 2 px down-right": json.load(open(o / "vt_seeds/shift_2_2.json"))["outcomes"],
    "seeds 1, 11, 21 as one\nensemble bundle": ep(o / "vt_seeds/eval_ens3/episodes.jsonl"),
    "all five as one\nensemble bundle": ep(o / "vt_seeds/eval_ens5/episodes.jsonl"),
    "seed 11, frames\n1 px right": json.load(open(o / "vt_seeds/s11_shift_0_1.json"))["outcomes"],
    "seed 11, frames\n1 px down": json.load(open(o / "vt_seeds/s11_shift_1_0.json"))["outcomes"],
    "seed 11, frames\n2 px down-right": json.load(open(o / "vt_seeds/s11_shift_2_2.json"))["outcomes"],
    "seed 11 trained with\n--image_shift 1": ep(o / "vt_seeds/eval_s11_shift1/episodes.jsonl"),
    "seed 11 (shift 1),\nframes 1 px right": json.load(open(o / "vt_seeds/s11_shift1_0_1.json"))["outcomes"],
    "seed 11 (shift 1),\nframes 1 px down": json.load(open(o / "vt_seeds/s11_shift1_1_0.json"))["outcomes"],
    "seed 11 (shift 1),\nframes 2 px down-right": json.load(open(o / "vt_seeds/s11_shift1_2_2.json"))["outcomes"],
    "seed 21 trained with\n--image_shift 1": ep(o / "vt_seeds/eval_s21_shift1/episodes.jsonl"),
    "seed 21 (shift 1),\nframes 1 px down": json.load(open(o / "vt_seeds/s21_shift1_1_0.json"))["outcomes"],
    "seed 1 trained with\n--image_shift 1": ep(o / "vt_seeds/eval_s1_shift1/episodes.jsonl"),
    "seed 1 (shift 1),\nframes 1 px down": json.load(open(o / "vt_seeds/s1_shift1_1_0.json"))["outcomes"],
}
out = Path("docs/results/vla_transfer_cube/seeds")
other = {f"seed {s}": ep(o / f"vt_seeds/val_s{s}/episodes.jsonl") for s in (1, 11, 21)}
(out / "results.json").write_text(json.dumps({"seeds": list(range(200000, 200100)), "outcomes": rows,
                                              "other_seeds": list(range(300000, 300100)), "other_outcomes": other},
                                             indent=1))
fig, ax = plt.subplots(figsize=(16, 6.5))
colors = ["tab:blue"] * 5 + ["tab:green", "tab:red", "tab:grey", "tab:grey", "tab:green", "tab:green",
                              "tab:grey", "tab:grey", "tab:grey", "tab:red", "tab:grey", "tab:grey", "tab:grey",
                              "tab:red", "tab:grey", "tab:red", "tab:grey"]
for i, outcomes in enumerate(rows.values()):
    success_errorbars(ax, [i], [outcomes], color=colors[i])
ax.set_xticks(range(len(rows)), [r.replace("\n", " ") for r in rows], fontsize=7, rotation=40, ha="right")
ax.set_ylabel("transfer_cube success (%), Wilson 95%")
ax.set_ylim(0, 100)
ax.set_title("tiny VLA, one recording (run 1, 400 demos): training seeds, ensembles, image shifts")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(out / "seeds.png", dpi=120)
print("ok")
