"""How a bundle's runner plays its chunks, chosen at export: ACT's temporal ensembling or each chunk played out."""

from __future__ import annotations

import dataclasses

from vla_il_core.bundle import BundleError


def with_ensembling(config, temporal_ensembling: bool | None):
    """The training config (ILConfig) with the bundle's chunk playback chosen at export (None: as trained). An
    inference-time choice: the weights are the same."""
    if temporal_ensembling is None or temporal_ensembling == config.temporal_aggregation:
        return config
    try:
        return dataclasses.replace(config, temporal_aggregation=temporal_ensembling)
    except ValueError as exc:  # e.g. a policy without chunks
        raise BundleError(f"temporal ensembling: {exc}") from exc
