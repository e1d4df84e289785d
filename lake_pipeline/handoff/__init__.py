"""Hand-off to users and backtesters (DESIGN §10): read published partitions, export to hftbacktest.

    from lake_pipeline.handoff import events, book_states, book_at

Reading needs polars only; `export_hftbacktest` needs the optional `hftbacktest` extra. Names are imported on
first use, so `lake-pipeline` (which imports this package's cli) starts without polars.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "events": "lake_pipeline.handoff.read",
    "book_states": "lake_pipeline.handoff.read",
    "book_at": "lake_pipeline.handoff.read",
    "published": "lake_pipeline.handoff.readable",
    "published_range": "lake_pipeline.handoff.readable",
    "PublishedPartition": "lake_pipeline.handoff.readable",
    "UnpublishedPartition": "lake_pipeline.handoff.readable",
    "export_hftbacktest": "lake_pipeline.handoff.hftbacktest",
}
__all__ = list(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'lake_pipeline.handoff' has no attribute {name!r}")
    return getattr(importlib.import_module(_NAMES[name]), name)
