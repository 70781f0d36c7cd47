"""The sample bundles the tests build (training/export/sample_bundles.py, which the benchmarks use too)."""

from training.export.sample_bundles import (  # noqa: F401 - re-exported for the tests
    copy_bundle,
    graph_bundle,
    make_bundle,
    read_meta,
    slow_follower_bundle,
    write_meta,
)
