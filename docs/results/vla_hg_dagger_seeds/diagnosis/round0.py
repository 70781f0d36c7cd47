"""Round 0 fitted as the benchmark fits it (80 demos, 12 epochs (--epochs) at a constant 1e-3, the grippers kept and
hidden from half the samples, EMA 0.999) on any 80 episodes of a recording and cameras, then evaluated alone in
PyTorch (no mux) on 50 held-out seeds; or an existing checkpoint evaluated with one camera's tokens replaced by its
learned no-view token (a model trained with --camera-dropout) at run time.

    python docs/results/vla_hg_dagger_seeds/diagnosis/round0.py fit output/r0_top output/pool_wrist_160 top \
        --first 80 --seed 0
    python docs/results/vla_hg_dagger_seeds/diagnosis/round0.py eval output/hg80wrist_cd/runs/seed_0/round_0/best \
        --hide right_wrist
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from common import HELD_OUT

from training.checkpoint import load_checkpoint
from training.datasets.lerobot_dataset import AlohaDataset
from training.il.vla_rollouts import evaluate_in_sim
from training.il.vla_trainers import fit_vla
from vla_il_core.schema import EXPERT_ACTION


def hide_camera(model, camera: str) -> None:
    """Every sample's `camera` tokens become the model's learned no-view token: the model's own camera_dropout
    (VLAModel._hide_views) at a share of 1 for that camera, applied at run time too."""
    model.config.camera_dropout = {camera: 1.0}
    project = model.projector

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.project = project

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return model._hide_views(self.project(x))

    model.projector = Hidden()


def success(checkpoint: Path, hide: str | None, episodes: int) -> float:
    model, config, _ = load_checkpoint(checkpoint)
    model.eval()
    if hide:
        hide_camera(model, hide)
    return evaluate_in_sim(model, "transfer_cube", episodes, HELD_OUT, config).success_rate


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit")
    f.add_argument("out", type=Path)
    f.add_argument("pool", type=Path)
    f.add_argument("cameras", nargs="+")
    f.add_argument("--first", type=int, default=0, help="the first of the 80 episodes")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--epochs", type=int, default=12, help="the benchmark's round 0 trains 12")
    f.add_argument("--state-keep", type=int, nargs="+", default=[6, 13],
                   help="the state indices kept (hidden from half the samples); the benchmark keeps the grippers 6 13")
    f.add_argument("--action-head", default="regression", choices=("regression", "flow_matching"))
    e = sub.add_parser("eval")
    e.add_argument("checkpoint", type=Path)
    e.add_argument("--hide", default=None, help="a camera the model sees as its no-view token")
    for s in (f, e):
        s.add_argument("--episodes", type=int, default=50)
    args = p.parse_args()
    torch.set_num_threads(2)
    if args.cmd == "fit":
        cams = tuple(args.cameras)
        demos = AlohaDataset(args.pool, episodes=range(args.first, args.first + 80), split="all", chunk_size=10,
                             cameras=cams, labels="intervention", action_key=EXPERT_ACTION, progress=False)
        checkpoint, _ = fit_vla(demos, args.out, cameras=cams, image_size=(96, 128), chunk_size=10, epochs=args.epochs,
                                task="transfer_cube", learning_rate=1e-3, seed=args.seed,
                                state_keep=tuple(args.state_keep), state_keep_dropout=0.5, ema_decay=0.999,
                                lr_schedule="constant", action_head=args.action_head)
    else:
        checkpoint = args.checkpoint
    print(f"{checkpoint}: success {100 * success(checkpoint, getattr(args, 'hide', None), args.episodes):.0f}% "
          f"on seeds {HELD_OUT}..{HELD_OUT + args.episodes - 1}")


if __name__ == "__main__":
    main()
