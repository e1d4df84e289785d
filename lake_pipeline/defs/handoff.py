"""The `hftbacktest_export` asset: a partition's unified events as hftbacktest's event array (thin wrapper).

Materialized on demand (a day is ~2 GB of events), so it is neither in `chain_job` nor automated; select it in the
UI for the partitions to hand to a backtest. The files land in `exports/hftbacktest/exchange=E/symbol=S/dt=D/`.

No `from __future__ import annotations` here: Dagster validates the `context` annotation at definition time.
"""

import dagster as dg
from dagster import AssetExecutionContext

from lake_pipeline.partitions import instrument_date_partitions, partition_of
from lake_pipeline.resources import DataRoot

HFTBACKTEST_EXPORT = dg.AssetKey("hftbacktest_export")
EXPORT_ZONE = "exports/hftbacktest"


@dg.asset(
    key=HFTBACKTEST_EXPORT,
    group_name="handoff",
    partitions_def=instrument_date_partitions,
    deps=[dg.AssetKey("unified_events")],
    kinds={"numpy", "hftbacktest"},
    description="hftbacktest's event array of the partition (exch_ts = event time, local_ts = received time; depth "
    "deltas, trades with taker side, snapshots that changed the book as clear + snapshot) in events.npz, and the "
    "initial snapshot in events_snapshot.npz: BacktestAsset().data([...]).initial_snapshot(...).",
)
def hftbacktest_export(context: AssetExecutionContext, data_root: DataRoot) -> dg.MaterializeResult:
    from lake_pipeline.handoff.hftbacktest import export_hftbacktest

    part = partition_of(context)
    with data_root.staged(part, reads=["unified", "book_states"],
                          optional_reads=["lake/ready/trades", "lake/ready/book", "lake/ready/book_delta_v2"],
                          writes=[EXPORT_ZONE]) as root:
        s = export_hftbacktest(root, part.instrument, [part.date], part.dir(root, EXPORT_ZONE) / "events.npz")
    metadata = {
        "dagster/row_count": s.rows,
        "path": dg.MetadataValue.path(s.out),
        "initial_snapshot": dg.MetadataValue.path(s.snapshot_out),
        "bytes": s.bytes,
        "events": dg.MetadataValue.json(s.events),
        "split_rows": s.split_rows,
        "local_ts_offset_ns": s.local_ts_offset_ns,
        "tick": s.tick,
        "lot": s.lot,
        "seconds": s.seconds,
    }
    return dg.MaterializeResult(metadata=data_root.for_ui(metadata, root))


assets = [hftbacktest_export]
