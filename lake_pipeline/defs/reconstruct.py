"""The `unified_events` asset: Chronological Event Replay of one instrument-day (unified events + book states).

No `from __future__ import annotations` here: Dagster validates the `context` annotation at definition time.
"""

import dagster as dg
from dagster import AssetExecutionContext

from lake_pipeline import paths
from lake_pipeline.defs.automation import downstream_of_new_data
from lake_pipeline.defs.metadata import column_schema
from lake_pipeline.partitions import instrument_date_partitions, partition_of
from lake_pipeline.resources import DataRoot
from lake_pipeline.schemas import BOOK_STATE, UNIFIED_EVENT

RAW_LAKE = [dg.AssetKey(["lake", t]) for t in ("trades", "book", "book_delta_v2")]


@dg.asset(
    name="unified_events",
    group_name="reconstruct",
    partitions_def=instrument_date_partitions,
    deps=[dg.AssetKey(["data_assessment"]), *RAW_LAKE],
    pool="reconstruct",
    automation_condition=downstream_of_new_data(),
    kinds={"parquet", "numba"},
    description="Unified market event stream (decimal128 Parquet, one row per trade / book row / delta row with the "
    "book state after it) and the top-20 book states on a 100 ms grid, replayed with the strategy the assessment "
    "recommends. Crash-safe: a killed run resumes from its last durable chunk.",
)
def unified_events(context: AssetExecutionContext, data_root: DataRoot) -> dg.MaterializeResult:
    from lake_pipeline.reconstruct.run import reconstruct_partition

    part = partition_of(context)
    with data_root.staged(part, **paths.RECONSTRUCT_ZONES) as root:
        summary = reconstruct_partition(root, part)
    return dg.MaterializeResult(metadata=data_root.for_ui(summary_metadata(summary.to_dict()), root))


def summary_metadata(s: dict) -> dict:
    """The run summary as Dagster metadata: the figures a user scans in the UI, the rest as JSON."""
    drift, gaps, out = s["drift"], s["gaps"], s["output"]
    return {
        "dagster/row_count": int(s["rows"]["total"]),
        "rows_by_type": dg.MetadataValue.json(s["rows"]),
        "book_state_rows": int(s["book_state_rows"]),
        "first_event_time": out.get("first_event_time") or "",
        "last_event_time": out.get("last_event_time") or "",
        "bytes": int(out["unified_bytes"] + out["book_states_bytes"]),
        "unified_bytes": int(out["unified_bytes"]),
        "book_states_bytes": int(out["book_states_bytes"]),
        "path": dg.MetadataValue.path(out["unified"]),
        "book_states_path": dg.MetadataValue.path(out["book_states"]),
        "strategy": s["strategy"]["name"],
        "strategy_reasons": dg.MetadataValue.json(s["strategy"]),
        "events_per_s": float(s["throughput"]["events_per_s"]),
        "replay_events_per_cpu_s": float(s["throughput"]["replay_events_per_cpu_s"]),
        "wall_s": float(s["timings_s"]["total"]),
        "drift_snapshots_compared": int(drift.get("snapshots_compared") or 0),
        "drift_share_with_drift": float(drift.get("share_with_drift") or 0.0),
        "drift_mean_levels": float(drift.get("mean") or 0.0),
        "drift_p99_levels": int(drift.get("p99") or 0),
        "drift_max_levels": int(drift.get("max") or 0),
        "gaps_total": int(gaps["total"]),
        "gaps": dg.MetadataValue.json(gaps),
        "reseeds": int(s["replay"]["reseeds"]),
        "value_repairs": dg.MetadataValue.json(s.get("repairs") or {}),
        "tick_lot": dg.MetadataValue.json(s["spec"]),
        "timings_s": dg.MetadataValue.json(s["timings_s"]),
        "cpu_s": dg.MetadataValue.json(s["cpu_s"]),
        "dagster/column_schema": column_schema((f.name, f.type) for f in UNIFIED_EVENT),
        "book_states_columns": f"event_time + {len(BOOK_STATE) - 1} level columns (lake `book` layout, decimal128)",
    }


assets = [unified_events]
