"""The assessor's view of one partition: raw columns of the ready-zone files, resolved through the lake reader's
alias resolution, and the per-EVENT frames every analysis works on.

Why raw columns and not `lake.read.scan_table`: the assessment must describe the data as it is — null vs `<= 0`
origin times, float-quantised times, off-grid values — where the normalised reader already maps or rejects them.
Why events: all rows of a `book_delta_v2` message share both timestamps and `sequence_number` (research
cryptolake.md §3.3), so timing and sequence questions are about messages, not rows (peer_lessons.md trap 2).
The one full-day pass over the deltas is a streaming `group_by` down to ~1 M messages; trades and book are read
with a handful of projected columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from lake_pipeline.instrument import Partition
from lake_pipeline.lake.files import LakeFile, partition
from lake_pipeline.schemas import LAKE_TABLES

ROW = "row"
NS = 1_000_000_000
STREAMING = "streaming"


def raw_ns(f: LakeFile, canonical: str) -> pl.Expr:
    """A time column as int64 ns exactly as stored (null stays null, `<= 0` stays): int ns, any timestamp, float s."""
    name, dtype = f.columns[canonical], f.dtype(canonical)
    if pa.types.is_timestamp(dtype):
        expr = pl.col(name).dt.epoch("ns")
    elif pa.types.is_floating(dtype):
        expr = pl.when(pl.col(name).is_nan()).then(None).otherwise(pl.col(name) * 1e9).cast(pl.Int64)
    else:
        expr = pl.col(name).cast(pl.Int64)
    return expr.alias(canonical)


def origin_or_null(f: LakeFile) -> pl.Expr:
    """origin_time in ns, null where missing (null or `<= 0`, DESIGN §3)."""
    o = raw_ns(f, "origin_time")
    return pl.when(o > 0).then(o).otherwise(None).alias("origin_time")


def raw(f: LakeFile, canonical: str, dtype: pl.DataType = pl.Float64) -> pl.Expr:
    return pl.col(f.columns[canonical]).cast(dtype, strict=False).alias(canonical)


@dataclass
class TableInput:
    """The files of one table in the ready zone (empty when the partition has no such table)."""

    table: str
    files: list[LakeFile] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return bool(self.files)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def scan(self, columns) -> pl.LazyFrame:
        """Lazy concat over the files of `columns(f) -> list[pl.Expr]`, with `row` = partition input order."""
        frames = [
            pl.scan_parquet(f.path, hive_partitioning=False, row_index_name=ROW, row_index_offset=f.offset)
            .select([pl.col(ROW).cast(pl.Int64), *columns(f)])
            for f in self.files
        ]
        return pl.concat(frames, how="vertical")


def open_tables(data_root: Path, part: Partition) -> dict[str, TableInput]:
    """Every lake table of the partition; an absent table is an empty TableInput (the report says so)."""
    out = {}
    for table in LAKE_TABLES:
        try:
            out[table] = TableInput(table, partition(data_root, part, table))
        except FileNotFoundError:
            out[table] = TableInput(table)
    if not any(t.present for t in out.values()):
        raise FileNotFoundError(
            f"no lake table in the ready zone for {part.hive} under {data_root}"
        )
    return out


# ------------------------------------------------------------------------------------------------------------------
# Event frames: one row per event with `received_time`, `origin_time` (null if missing), `seq`, `row`, `rows`.
# ------------------------------------------------------------------------------------------------------------------
def delta_messages(t: TableInput) -> pl.DataFrame:
    """One row per `book_delta_v2` message: the run of rows sharing (received_time, sequence_number).

    `rows` counts its rows, `first_row`/`last_row` bound them (contiguous iff last-first+1 == rows), origin min/max
    tell whether the rows of one message disagree on the exchange time, `zero_rows` counts deletes.
    """
    lf = t.scan(lambda f: [raw_ns(f, "received_time"), origin_or_null(f),
                           raw(f, "sequence_number", pl.Int64).alias("seq"), raw(f, "size")])
    msgs = (
        lf.group_by("received_time", "seq")
        .agg(
            pl.col(ROW).min().alias(ROW),
            pl.col(ROW).max().alias("last_row"),
            pl.len().alias("rows"),
            pl.col("origin_time").min().alias("origin_time"),
            pl.col("origin_time").max().alias("origin_max"),
            (pl.col("size") == 0).sum().alias("zero_rows"),
        )
        .collect(engine=STREAMING)
    )
    return msgs.sort(ROW)


def book_rows(t: TableInput) -> pl.DataFrame:
    """Snapshot rows with their times, sequence_number and touch (float prices: crossing needs no grid)."""
    lf = t.scan(lambda f: [raw_ns(f, "received_time"), origin_or_null(f),
                           raw(f, "sequence_number", pl.Int64).alias("seq"),
                           raw(f, "bid_0_price"), raw(f, "bid_0_size"), raw(f, "ask_0_price"), raw(f, "ask_0_size")])
    return lf.with_columns(pl.lit(1, pl.UInt32).alias("rows")).collect(engine=STREAMING).sort(ROW)


def trade_rows(t: TableInput) -> pl.DataFrame:
    lf = t.scan(lambda f: [raw_ns(f, "received_time"), origin_or_null(f),
                           raw(f, "trade_id", pl.Int64).alias("seq")])
    return lf.with_columns(pl.lit(1, pl.UInt32).alias("rows")).collect(engine=STREAMING).sort(ROW)


EVENT_BUILDERS = {"trades": trade_rows, "book": book_rows, "book_delta_v2": delta_messages}
EVENT_BASIS = {"trades": "row", "book": "row", "book_delta_v2": "message"}
