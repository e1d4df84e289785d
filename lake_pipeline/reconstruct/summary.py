"""The run summary (`_summary.json`): what was built, how faithful the replay looked, and where time went."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lake_pipeline.reconstruct.state import DRIFT_BINS


def drift_stats(hist: np.ndarray) -> dict[str, Any]:
    """Summary statistics of drift_levels over the compared snapshots, from the kernel's histogram."""
    n = int(hist.sum())
    if n == 0:
        return {"snapshots_compared": 0, "mean": None, "p50": None, "p99": None, "max": None, "histogram": {}}
    values = np.arange(DRIFT_BINS)
    cdf = np.cumsum(hist)

    def quantile(q: float) -> int:
        return int(values[np.searchsorted(cdf, q * n, side="left")])

    top = int(values[np.flatnonzero(hist)[-1]])
    return {
        "snapshots_compared": n,
        "snapshots_with_drift": int(n - hist[0]),
        "share_with_drift": float((n - hist[0]) / n),
        "mean": float((hist * values).sum() / n),
        "p50": quantile(0.5),
        "p99": quantile(0.99),
        "max": top,
        "max_is_lower_bound": bool(hist[-1] > 0),
        "histogram": {str(int(v)): int(hist[v]) for v in np.flatnonzero(hist)},
    }


@dataclass
class ReconstructSummary:
    """What `reconstruct_partition` returns and writes as `_summary.json`."""

    exchange: str
    symbol: str
    date: str
    strategy: dict[str, Any]
    spec: dict[str, str]
    rows: dict[str, int]
    book_state_rows: int
    drift: dict[str, Any]
    gaps: dict[str, int]
    replay: dict[str, int]
    origin_time_fallback: dict[str, int]
    book: dict[str, int]
    chunks: dict[str, int]
    output: dict[str, Any]
    timings_s: dict[str, float]
    cpu_s: dict[str, float]
    throughput: dict[str, float]
    params: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    repairs: dict[str, int] = field(default_factory=dict)
    """Counted repairs of input values (lake/values.py policy), e.g. repeated delta rows dropped."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReconstructSummary:
        return cls(**data)

    @property
    def total_rows(self) -> int:
        return int(self.rows["total"])
