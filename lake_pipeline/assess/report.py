"""DataAssessor: one partition's lake tables -> `assessment.json` + `assessment.md` (DESIGN §2, issue 4 §5).

The JSON's top-level `recommended_strategy`, `strategy_reasons` and `event_time_source` are read by the
reconstructor; everything else is evidence. Times in the report are ISO-8601 UTC strings.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict
from pathlib import Path

import polars as pl
from loguru import logger

from lake_pipeline import __version__
from lake_pipeline.assess.deltas import delta_report, interval_report
from lake_pipeline.assess.inputs import EVENT_BASIS, EVENT_BUILDERS, open_tables
from lake_pipeline.assess.memory import memory_estimate
from lake_pipeline.assess.render import render_markdown
from lake_pipeline.assess.snapshots import crossed_report, origin_order_inversions, snapshot_vs_deltas
from lake_pipeline.assess.strategy import StrategyThresholds, recommend
from lake_pipeline.assess.timing import latency, monotonicity, origin_availability, per_hour, time_range
from lake_pipeline.atomic import write_json_atomic, write_text_atomic
from lake_pipeline.instrument import Partition
from lake_pipeline.lake.validate import day_bounds_ns, iso_ns
from lake_pipeline.lake.infer import resolve_symbol_spec
from lake_pipeline.lake.partition_checks import check_partition
from lake_pipeline.lake.values import TIME_HOLE_S
from lake_pipeline.paths import assessment_dir

DEFAULT_CHUNK_ROWS = 1_000_000
DEFAULT_HOLE_THRESHOLD_S = TIME_HOLE_S


def _strip_private(obj):
    """Drop `_`-prefixed helper entries (frames kept for cross-checks) before serialising."""
    if isinstance(obj, dict):
        return {k: _strip_private(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_strip_private(v) for v in obj]
    return obj


def _table_section(name: str, t, events: pl.DataFrame | None, day_start: int) -> dict:
    if not t.present:
        return {"present": False}
    rng = time_range(events)
    return {
        "present": True,
        "files": [str(f.path.name) for f in t.files],
        "schema_variant": sorted({f.variant for f in t.files}),
        "rows": t.rows,
        "events": events.height,
        "event_basis": EVENT_BASIS[name],
        **{k: iso_ns(v) for k, v in rng.items()},
        "origin_time": origin_availability(t),
        "latency_ms": latency(events),
        "monotonicity": monotonicity(events),
        "per_hour": per_hour(events, day_start),
    }


def _value_checks(data_root: Path, part: Partition, tables: dict) -> dict:
    """The value policy exactly as reconstruct applies it (lake/partition_checks.py): `ok`, the error that
    reconstruct would stop with, and the counted repairs (repeated delta rows it drops)."""
    if not tables["trades"].present:
        return {"ok": True, "error": None, "repairs": {}}
    spec = resolve_symbol_spec(data_root, part)
    try:
        checks = check_partition(data_root, part, spec, all_rows=True)
    except ValueError as exc:
        return {"ok": False, "error": str(exc), "repairs": {}}
    return {"ok": True, "error": None, "repairs": checks.repairs}


def assess_partition(
    data_root: Path,
    part: Partition,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    hole_threshold_s: float = DEFAULT_HOLE_THRESHOLD_S,
    thresholds: StrategyThresholds = StrategyThresholds(),
) -> dict:
    """The assessment report of one partition as a dict (see `write_assessment` for the files)."""
    t0 = time.perf_counter()
    data_root = Path(data_root)
    day_start, _ = day_bounds_ns(part.date)
    tables = open_tables(data_root, part)
    events = {name: EVENT_BUILDERS[name](t) for name, t in tables.items() if t.present}
    report: dict = {
        "exchange": part.exchange, "symbol": part.symbol, "date": part.date,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tool": f"lake_pipeline {__version__}",
        "parameters": {"chunk_rows": chunk_rows, "hole_threshold_s": hole_threshold_s, **asdict(thresholds)},
        "tables": {name: _table_section(name, t, events.get(name), day_start) for name, t in tables.items()},
        "book_delta_v2": None, "book": None, "cross_table": {},
    }
    if "book_delta_v2" in events:
        report["book_delta_v2"] = delta_report(events["book_delta_v2"], tables["book_delta_v2"].rows, day_start,
                                               hole_threshold_s)
    if "book" in events:
        cadence = interval_report(events["book"]["received_time"], day_start, hole_threshold_s)
        report["book"] = {**cadence, "crossed": crossed_report(events["book"])}
    if "book" in events and "book_delta_v2" in events:
        report["cross_table"]["snapshot_vs_deltas"] = snapshot_vs_deltas(
            events["book"], events["book_delta_v2"], report["book_delta_v2"]["time_holes"]["_intervals"])
    report["cross_table"]["origin_order_inversions"] = origin_order_inversions(events)
    report["memory"] = memory_estimate(data_root, part, tables, chunk_rows)
    report["value_checks"] = _value_checks(data_root, part, tables)
    strategy, reasons = recommend(report, thresholds)
    report = {"recommended_strategy": strategy, "strategy_reasons": reasons, **_strip_private(report)}
    report["seconds"] = round(time.perf_counter() - t0, 3)
    logger.info(f"assessment {part}: {strategy} in {report['seconds']:.1f} s")
    return report


def write_assessment(report: dict, data_root: Path) -> tuple[Path, Path]:
    """Write `assessment.json` and `assessment.md` (each atomically) into the partition's assessment directory."""
    out = assessment_dir(Path(data_root), Partition(report["exchange"], report["symbol"], report["date"]))
    json_path, md_path = out / "assessment.json", out / "assessment.md"
    write_json_atomic(json_path, report)
    write_text_atomic(md_path, render_markdown(report))
    return json_path, md_path
