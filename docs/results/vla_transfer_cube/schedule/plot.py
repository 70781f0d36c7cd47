"""Diagnosis script (not part of the product; run from the repository root with PYTHONPATH=.): results.json and
schedule.png of this directory from the trainings under output/vt_sched (see ../README.md): run 1's recording,
the recipe with a constant rate (../seeds/results.json), with --lr_schedule cosine, with --ema_decay 0.999."""
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.success_plots import success_errorbars

o, here = Path("output/vt_sched"), Path("docs/results/vla_transfer_cube/schedule")
constant = json.load(open(here.parent / "seeds/results.json"))["outcomes"]


def episodes(name):
    path = o / f"eval_{name}" / "episodes.jsonl"
    return [json.loads(line)["success"] for line in open(path)] if path.exists() else None


def metrics(name):
    path = o / name / "metrics.jsonl"
    return [json.loads(line) for line in open(path)] if path.exists() else []


def mcnemar(a, b):
    """Exact two-sided McNemar p of paired outcomes: (b won, a won, p)."""
    won = sum(y and not x for x, y in zip(a, b))
    lost = sum(x and not y for x, y in zip(a, b))
    n = won + lost
    p = min(1.0, 2 * sum(math.comb(n, k) for k in range(min(won, lost) + 1)) / 2**n) if n else 1.0
    return won, lost, p


rows, table = {}, []
for seed in (1, 11, 21, 31, 41):
    base = constant[f"seed {seed}"]
    rows[f"seed {seed}\nconstant"] = base
    for variant, flag in (("cos", "cosine"), ("ema", "EMA 0.999")):
        outcome = episodes(f"{variant}_s{seed}")
        if outcome is None:
            continue
        rows[f"seed {seed}\n{flag}"] = outcome
        history = [r for r in metrics(f"{variant}_s{seed}") if "val/loss" in r]
        won, lost, p = mcnemar(base, outcome)
        table.append({"seed": seed, "variant": flag, "success": sum(outcome), "constant": sum(base),
                      "won": won, "lost": lost, "p": p, "val_loss": [r["val/loss"] for r in history],
                      "val_loss_trained_weights": [r.get("val/loss_trained_weights") for r in history],
                      "outcomes": outcome})
for row in table:
    print(f"seed {row['seed']:>2} {row['variant']:>9}: {row['success']}% (constant {row['constant']}%), "
          f"won {row['won']} lost {row['lost']} p={row['p']:.2g}, last val {row['val_loss'][-1]:.4f}")
(here / "results.json").write_text(json.dumps({"seeds": list(range(200000, 200100)), "runs": table}, indent=1))
fig, ax = plt.subplots(figsize=(max(7, 0.9 * len(rows)), 4.5))
color = {"constant": "tab:grey", "cosine": "tab:blue", "EMA 0.999": "tab:green"}
for i, (label, outcome) in enumerate(rows.items()):
    success_errorbars(ax, [i], [outcome], color=color[label.split("\n")[1]])
ax.set_xticks(range(len(rows)), [r.replace("\n", " ") for r in rows], fontsize=7, rotation=40, ha="right")
ax.set_ylabel("transfer_cube success (%), Wilson 95%")
ax.set_ylim(0, 100)
ax.set_title("tiny VLA, run 1's 400 demos, 8 epochs: constant rate, cosine, weight average (bundle)")
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(here / "schedule.png", dpi=120)
