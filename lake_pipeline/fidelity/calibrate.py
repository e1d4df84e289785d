"""Tolerance calibration from golden-vs-golden variability (research fidelity.md §3.1 step 4).

Each golden session (every real recording we have, plus simulated sessions of distinct regimes) is cut into
halves and quarters; every pair of windows of the same length is compared with the Tier B code (unpaired, no
bootstrap) as if one were the reconstruction. Per session, the 95th percentile of those distances; the tolerance
of a metric is the LARGEST per-session p95 times a margin, floored so that it is never zero — a regime with more
natural variability must not be flagged because a calmer session set the bar. The result says how much two
stretches of the market differ from each other — the smallest difference the report can honestly call a
reconstruction error. The config records every session (files, sha256) and each one's p95.
"""

from __future__ import annotations

import copy
import datetime as dt
from itertools import combinations
from typing import Any

import numpy as np
from loguru import logger

from lake_pipeline.fidelity import catalog, tier_b
from lake_pipeline.fidelity.compare import Comparison
from lake_pipeline.fidelity.frames import MarketView
from lake_pipeline.fidelity.tolerances import Tolerances

DEFAULT_MARGIN = 1.5
DEFAULT_FLOOR = 1e-3
SPLITS = (2, 4)


def windows(view: MarketView, parts: int) -> list[MarketView]:
    """`parts` equal consecutive windows of the view (each labelled with its position)."""
    edges = np.linspace(view.start_ns, view.end_ns, parts + 1).astype(np.int64)
    out = []
    for i in range(parts):
        w = view.restrict(int(edges[i]), int(edges[i + 1]))
        w.label = f"{view.label} {i + 1}/{parts}"
        out.append(w)
    return out


def golden_pair_distances(views: list[MarketView], base: Tolerances,
                          splits: tuple[int, ...] = SPLITS) -> dict[str, dict[str, list[float]]]:
    """Per metric, per session label: the Tier B distance of every same-length window pair (halves, quarters)."""
    quick = copy.deepcopy(base)
    quick.bootstrap = {**quick.bootstrap, "reps": 0}
    values: dict[str, dict[str, list[float]]] = {m.name: {} for m in catalog.METRICS if m.calibrated}
    for view in views:
        for parts in splits:
            for a, b in combinations(windows(view, parts), 2):
                results, _ = tier_b.run(Comparison.build(a, b, quick, paired=False))
                for r in results:
                    if r.name in values and r.value is not None:
                        values[r.name].setdefault(view.label, []).append(float(r.value))
                logger.debug("calibration pair {} vs {} done", a.label, b.label)
    return values


def calibrate(views: list[MarketView], base: Tolerances, *, margin: float = DEFAULT_MARGIN,
              floor: float = DEFAULT_FLOOR, sources: list[dict[str, Any]] | None = None,
              notes: list[str] | None = None) -> Tolerances:
    """A new config (version + 1): calibrated Tier B tolerances, declared ones and settings carried over."""
    values = golden_pair_distances(views, base)
    new = copy.deepcopy(base)
    new.version = base.version + 1
    for name, by_session in values.items():
        entry = {k: v for k, v in new.metrics.get(name, {"critical": False}).items()
                 if k in ("critical", "note")}
        if by_session:
            p95 = {label: round(float(np.quantile(v, 0.95)), 6) for label, v in by_session.items()}
            worst = max(p95, key=p95.get)
            entry.update(tolerance=round(max(p95[worst] * margin, floor), 6), source="calibrated",
                         p95=p95[worst], p95_from=worst, pairs=sum(len(v) for v in by_session.values()),
                         p95_by_session=p95)
        else:
            entry.update(tolerance=new.metrics.get(name, {}).get("tolerance"), source="calibrated", pairs=0,
                         note="no golden pair produced this metric")
        new.metrics[name] = entry
    new.calibration = {
        "method": f"per session p95 over golden-vs-golden window pairs (splits {list(SPLITS)}); tolerance = "
                  f"largest session p95 x margin, floor {floor}",
        "margin": margin,
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sessions": sources or [{"label": v.label, "seconds": round(v.duration_s, 3)} for v in views],
        "notes": list(notes or []),
        "based_on_version": base.version,
    }
    return new
