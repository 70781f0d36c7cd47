"""`vla-il`: the single entry point. Each subcommand is filled by the part of vla-il it belongs to."""

from __future__ import annotations

import argparse
import sys

# Subcommands whose capability has not landed yet: what they will do, and where it is tracked.
_PLANNED = {
    "collect": ("record scripted-expert demonstrations from the simulated ALOHA into a LeRobot dataset", 4),
    "eval": ("evaluate a policy (bundle, checkpoint or the expert) in the simulated ALOHA", 4),
    "train": ("train a policy: bc | dagger | gail (and the VLA variants)", 5),
    "export": ("export a trained checkpoint to an ONNX policy bundle", 7),
    "bench": ("run a benchmark: sim | il | policy | recorder | vla", 4),
}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vla-il",
        description="Demonstrations -> VLA policy on ROS 2 -> human corrections (HG-DAgger) -> better policy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")

    demo = sub.add_parser(
        "demo",
        help="the simulated HG-DAgger loop: sim, record, train, export, deploy, correct, retrain",
        description="Runs the whole loop on the simulated ALOHA. Until the loop lands (issue #8) it checks "
        "the environment that the loop runs on.",
    )
    demo.set_defaults(func=_demo)

    doctor = sub.add_parser("doctor", help="check that every part of the environment works here")
    doctor.set_defaults(func=lambda _args: 1 if _run_doctor() else 0)

    for name, (what, issue) in _PLANNED.items():
        p = sub.add_parser(name, help=f"{what} (arrives with issue #{issue})", description=what)
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=lambda _args, name=name, issue=issue: _not_yet(name, issue))
    return parser


def _run_doctor() -> int:
    from vla_il.doctor import run_doctor  # heavy imports only when asked for

    return run_doctor()


def _demo(_args: argparse.Namespace) -> int:
    print("vla-il demo: the simulated HG-DAgger loop is not in this version yet (issue #8).")
    print("Checking the environment it will run on instead:\n")
    return 1 if _run_doctor() else 0


def _not_yet(name: str, issue: int) -> int:
    print(f"vla-il {name}: not in this version yet (tracked in issue #{issue}).", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
