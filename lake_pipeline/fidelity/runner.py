"""Assemble a fidelity report for one partition: load the sides, run the tiers, judge, record provenance.

Which comparisons run:
* a golden session overlapping the partition → Tier A paired, Tier B paired (same period, same bootstrap blocks);
* a golden session or reference from another period → Tier A "not available", Tier B unpaired;
* nothing to compare against → Tier A (paired parts) and Tier B "not available" — never a silent PASS.
Tier A checks the reconstruction can fail on its own (trade-id holes, sequence breaks, drift) always run.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from loguru import logger

from lake_pipeline import paths
from lake_pipeline.config import SymbolSpec
from lake_pipeline.fidelity import adapters, catalog, tier_a, tier_b
from lake_pipeline.fidelity import tolerances as tol_mod
from lake_pipeline.fidelity.compare import Comparison
from lake_pipeline.fidelity.frames import MarketView
from lake_pipeline.fidelity.scoring import HEADLINE_RULE, MetricResult, family_status, overall
from lake_pipeline.instrument import Partition
from lake_pipeline.memory import release_free_memory

REPORT_SCHEMA_VERSION = 1


@dataclass
class FidelityReport:
    partition: dict[str, str]
    metrics: list[MetricResult]
    plots: dict[str, Any]
    provenance: dict[str, Any]
    comparison: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        verdict = overall(self.metrics)
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "status": verdict.status,
            "score": verdict.score,
            "status_reason": verdict.reason,
            "deciding_metrics": list(verdict.deciding),
            "headline_rule": HEADLINE_RULE,
            "calibration": calibration_summary(self.provenance.get("tolerances") or {}),
            "partition": self.partition,
            "comparison": self.comparison,
            "families": {f: family_status(self.metrics, f) for f in catalog.FAMILIES},
            "metrics": [m.to_json() for m in self.metrics],
            "plots": self.plots,
            "provenance": self.provenance,
            "timings": self.timings,
            "generated_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def calibration_summary(tol: dict[str, Any]) -> str:
    """One line saying which calibration the tolerances came from (version, sources, sha256)."""
    cal = tol.get("calibration") or {}
    sources = cal.get("sources") or cal.get("sessions") or []
    names = [str(s.get("name") or s.get("session") or s.get("label")) for s in sources]
    return (f"tolerances v{tol.get('version')} (sha256 {str(tol.get('sha256', ''))[:12]}), calibrated "
            f"{cal.get('created_utc', '?')} from {len(names)} source(s): {', '.join(names) or 'none recorded'}")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("lake_pipeline", "numpy", "polars", "pyarrow", "scipy", "numba", "plotly", "jinja2"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _strategy(unified_dir: Path) -> str | None:
    """The reconstruction strategy, from the reconstructor's JSON summary when it wrote one."""
    for p in sorted(unified_dir.glob("*.json")):
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("strategy"):
            return str(doc["strategy"])
    return None


def _view_summary(v: MarketView) -> dict[str, Any]:
    return {"label": v.label, "start_ns": v.start_ns, "end_ns": v.end_ns, "seconds": round(v.duration_s, 3),
            "trades": v.trades.height, "bbo_rows": v.bbo.height,
            "ladder_rows": None if v.ladder is None else v.ladder.height, "bbo_convention": v.bbo_convention,
            "tick": str(v.tick), "lot": str(v.lot), "notes": v.notes,
            "inputs": [f.__dict__ for f in v.inputs]}


def load_reference(path: Path, spec, label: str = "reference") -> MarketView:
    """A golden session directory or a unified partition directory, as a reference view for Tier B."""
    path = Path(path)
    if any(path.glob("part-*.parquet")):
        part = paths.parse_partition_path(path)
        root = path.parents[3]
        return adapters.recon_view(root, part, label=label, load_ladder=False)
    return adapters.read_golden_session(adapters.golden_session_files(path), spec, label=label)


def _timed(fn, *args):
    """(fn(*args), seconds it took)."""
    t = time.perf_counter()
    return fn(*args), time.perf_counter() - t


def compare_views(recon: MarketView, golden: MarketView | None, tol: tol_mod.Tolerances, *,
                  golden_is_capture: bool = True) -> tuple[list[MetricResult], dict[str, Any], dict[str, Any]]:
    """Every metric for the reconstruction against an optional golden/reference view (see module doc)."""
    timings: dict[str, float] = {}
    tier_b_names = [m.name for m in catalog.METRICS if m.tier == "B"]
    info: dict[str, Any] = {"paired": False, "tier_a_available": False}
    base = Comparison.build(recon, recon, tol, paired=True)
    overlap = golden is not None and min(golden.end_ns, recon.end_ns) > max(golden.start_ns, recon.start_ns)
    cmp = None if golden is None else Comparison.build(golden, recon, tol, paired=overlap)
    # Tier B (bootstraps: numpy, scipy) runs beside Tier A on the second core
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending_b = None if cmp is None else pool.submit(_timed, tier_b.run, cmp)
        (solo, plots), timings["tier_a_recon_only_s"] = _timed(tier_a.run_recon_only, base)
        results = list(solo)
        paired_names = [m.name for m in catalog.METRICS if m.tier == "A" and m.name not in {r.name for r in solo}]
        if cmp is None:
            why = "no golden session for this partition"
            results += [base.na(n, why) for n in paired_names]
            results += [base.na(n, why + " and no reference given") for n in tier_b_names]
            info.update(tier_a_reason=why, tier_b_reference=None)
        elif overlap and golden_is_capture:
            (paired, p), timings["tier_a_paired_s"] = _timed(tier_a.run_paired, cmp)
            results += paired
            plots.update(p)
            info.update(paired=True, tier_a_available=True, tier_a_reason="",
                        window_ns=[cmp.g.start_ns, cmp.g.end_ns])
        else:
            why = ("the golden session does not overlap the reconstruction" if golden_is_capture
                   else "the reference is not a golden capture of the same period")
            results += [base.na(n, why) for n in paired_names]
            info.update(tier_a_reason=why)
        if pending_b is not None:
            (b, p), timings["tier_b_s"] = pending_b.result()
            results += b
            plots.update(p)
            info.update(tier_b_reference=golden.label, tier_b_paired=cmp.paired, bootstrap=cmp.ci_method)
    order = {m.name: i for i, m in enumerate(catalog.METRICS)}
    results.sort(key=lambda r: order[r.name])
    return results, plots, {**info, "timings": timings}


def _require_overlap(golden: MarketView, recon: MarketView, session_dir: Path | None, partition: str,
                     min_s: float) -> None:
    """A golden session of the partition that barely overlaps it is a wrong input (wrong session, clock or date),
    not a reason to report a handful of seconds as Tier A: a clear error naming both windows."""
    from lake_pipeline.fidelity.report import iso_ts as _ts

    overlap = (min(golden.end_ns, recon.end_ns) - max(golden.start_ns, recon.start_ns)) / 1e9
    if overlap < min_s:
        raise adapters.FidelityInputError(
            f"partition {partition}: golden session {session_dir} covers {_ts(golden.start_ns)} → "
            f"{_ts(golden.end_ns)}, the reconstruction {_ts(recon.start_ns)} → {_ts(recon.end_ns)}; they overlap "
            f"for {max(overlap, 0.0):.1f} s (< {min_s:g} s). Choose an overlapping --golden-session, or compare "
            f"unpaired against another period with --reference")


def _golden_and_ladder(root: Path, part: Partition, spec: SymbolSpec, session_dir: Path,
                       timings: dict[str, float]) -> tuple[MarketView, adapters.PartitionLadder]:
    """The golden session, then the reconstruction's book states in its window (the paired depth comparison)."""
    t = time.perf_counter()
    golden = adapters.read_golden_session(adapters.golden_session_files(session_dir), spec,
                                          label=f"golden {session_dir.name}")
    timings["load_golden_s"] = time.perf_counter() - t
    release_free_memory()  # the parsed JSON blocks: returned before the book states are decoded
    t = time.perf_counter()
    ladder = adapters.read_ladder(root, part, spec, (golden.start_ns, golden.end_ns))
    timings["load_book_states_s"] = time.perf_counter() - t
    return golden, ladder


def run_fidelity(data_root: Path, part: Partition, *, golden_session: str | None = None,
                 reference: Path | None = None, tolerances_path: Path | None = None) -> FidelityReport:
    """Compute the report for one partition (nothing written; see `report.write_report`)."""
    t0 = time.perf_counter()
    tol = tol_mod.load(tolerances_path)
    root = Path(data_root)
    spec = adapters.recon_spec(part.instrument, adapters.unified_parts(root, part))
    golden, is_capture = None, True
    session_dir = adapters.find_golden_session(root, part, golden_session)
    # the golden capture (JSON parsing, then the book states in its window) and the reconstruction (parquet, numba:
    # GIL released, two parts at a time) are read at the same time
    timings: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        if session_dir is not None:
            pending = pool.submit(_golden_and_ladder, root, part, spec, session_dir, timings)
        elif reference is not None:
            pending, is_capture = pool.submit(lambda: (load_reference(Path(reference), spec), None)), False
        recon = adapters.recon_view(root, part, load_ladder=False)
        timings["load_reconstruction_s"] = time.perf_counter() - t0
        golden, ladder = (None, None) if pending is None else pending.result()
    timings["load_inputs_s"] = time.perf_counter() - t0
    release_free_memory()  # the decoded parquet columns are gone; the comparison should not stack on their heap
    if golden is not None and is_capture:
        _require_overlap(golden, recon, session_dir, part.key,
                         float(tol.setting("min_overlap_s")))
        recon = adapters.attach_ladder(recon, ladder)
    else:
        recon = replace(recon, notes=[*recon.notes, "book states not loaded (no paired golden capture to compare "
                                                    "depth with)"])
    logger.info("fidelity {}: reconstruction {} s, golden {}", part,
                round(recon.duration_s, 1), None if golden is None else round(golden.duration_s, 1))
    metrics, plots, info = compare_views(recon, golden, tol, golden_is_capture=is_capture)
    timings.update(info.pop("timings"))
    udir = paths.unified_dir(data_root, part)
    provenance = {
        "reconstruction": _view_summary(recon),
        "golden": None if golden is None else _view_summary(golden),
        "golden_session_dir": None if session_dir is None else str(session_dir),
        "strategy": _strategy(udir),
        "tolerances": {"path": tol.path, "version": tol.version, "sha256": tol.sha256,
                       "calibration": tol.calibration},
        "settings": tol.settings,
        "versions": _versions(),
    }
    timings["total_s"] = time.perf_counter() - t0
    return FidelityReport({"exchange": part.exchange, "symbol": part.symbol, "date": part.date}, metrics, plots, provenance, info,
                          {k: round(v, 3) for k, v in timings.items()})
