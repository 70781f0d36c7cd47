"""Diagnosis script (not part of the product; run from the repository root with PYTHONPATH=.): p50/p99 of one
inference through the node's runner path (ONNX Runtime, 1 thread) for each bundle given.

    python docs/results/vla_transfer_cube/seeds/latency.py <bundle>...
"""
import sys
import time

import numpy as np

from vla_il_core.runner import feeds_for, load_policy, neutral_observation

for path in sys.argv[1:]:
    policy = load_policy(path, prefer_gpu=False)
    obs = neutral_observation(policy.spec)
    rng = np.random.default_rng(0)
    for cam in policy.spec.cameras:
        obs[f"image_{cam}"] = rng.integers(0, 256, obs[f"image_{cam}"].shape, np.uint8)
    feeds = feeds_for(policy.spec, obs)
    for _ in range(20):
        policy.session.run(None, feeds)
    times = []
    for _ in range(300):
        start = time.perf_counter()
        policy.session.run(None, feeds)
        times.append(1000 * (time.perf_counter() - start))
    print(f"{path}: p50 {np.percentile(times, 50):.2f} ms, p99 {np.percentile(times, 99):.2f} ms")
