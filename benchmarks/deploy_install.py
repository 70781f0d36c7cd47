"""The robot install against the full environment: size on disk and the policy node's start-up time.

    python -m benchmarks.deploy_install [--runs 5] [--out docs/results/deploy_install]
    (or: vla-il bench deploy ...; needs scripts/setup.sh --deploy, which ./run-tests runs)

Size: the Python environment (du of the venv, links followed) plus the ROS packages of the workspace install.
Start-up: from starting the policy node's process to its "driving with" line (rclpy up, the bundle read, checked
and opened in ONNX Runtime, the test inference run, the timer started), the same bundle (an ALOHA-shaped chunking
MLP on joint states) in both environments, runs alternated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from vla_il.rosgraph import DEPLOY_INSTALL, INSTALL, ROOT, NodeProcess, deploy_environ, wait_until


def _du_bytes(*paths: Path) -> int:
    done = subprocess.run(["du", "-sbL", *map(str, paths)], capture_output=True, text=True, check=True)
    return sum(int(line.split()[0]) for line in done.stdout.splitlines())


def _start_up_s(bundle: Path, log_dir: Path, install: Path, env: dict[str, str] | None) -> float:
    started = time.monotonic()
    node = NodeProcess("policy_node", log_dir, params={"bundle": str(bundle)}, install=install, base_env=env)
    try:
        if not wait_until(lambda: "driving with" in node.log() or node.proc.poll() is not None, 120, 0.005):
            raise RuntimeError(f"the policy node did not start within 120 s:\n{node.log()[-2000:]}")
        if "driving with" not in node.log():
            raise RuntimeError(f"the policy node exited:\n{node.log()[-2000:]}")
        return time.monotonic() - started
    finally:
        node.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="start-ups per environment")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/results/deploy_install")
    args = parser.parse_args(argv)
    from training.export.sample_bundles import make_bundle  # a real bundle through the real exporter

    deploy_env = deploy_environ()
    sizes = {
        "full": (_du_bytes(ROOT / ".venv"), _du_bytes(INSTALL)),
        "deploy": (_du_bytes(ROOT / ".venv-deploy"), _du_bytes(DEPLOY_INSTALL)),
    }
    times: dict[str, list[float]] = {"full": [], "deploy": []}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = make_bundle(Path(tmp), "bench", chunk=10, obs_dim=14)
        for i in range(args.runs):
            for kind, install, env in (("full", INSTALL, None), ("deploy", DEPLOY_INSTALL, deploy_env)):
                times[kind].append(_start_up_s(bundle, Path(tmp), install, env))
                print(f"run {i + 1}/{args.runs} {kind}: policy node up in {times[kind][-1]:.2f} s", flush=True)
    rows = []
    for kind in ("full", "deploy"):
        venv, ros = sizes[kind]
        t = np.asarray(times[kind])
        rows.append({"environment": kind, "python_env_mb": venv / 1e6, "ros_packages_mb": ros / 1e6,
                     "total_mb": (venv + ros) / 1e6, "start_up_s_median": float(np.median(t)),
                     "start_up_s_min": float(t.min()), "start_up_s_max": float(t.max()), "runs": len(t)})
    lines = ["| environment | Python env | ROS packages | total | policy node start-up (median, min-max) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['environment']} | {r['python_env_mb']:.0f} MB | {r['ros_packages_mb']:.1f} MB | "
                     f"{r['total_mb'] / 1000:.2f} GB | {r['start_up_s_median']:.2f} s "
                     f"({r['start_up_s_min']:.2f}-{r['start_up_s_max']:.2f}, {r['runs']} runs) |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "cpu_count": os.cpu_count()}, indent=2))
    (args.out / "table.md").write_text(table + "\n")
    print(f"wrote {args.out / 'table.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
