"""The value checks that need a whole table at once (lake/values.py policy), run before anything is derived.

`reconstruct` runs them before its replay and `assess` runs the same function, so an assessment never recommends a
strategy for a partition that reconstruct then refuses. Row-local rules (price > 0, size >= 0, times in the day)
are applied by the reader itself (`normalise.py`) as batches stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from lake_pipeline.config import SymbolSpec
from lake_pipeline.instrument import Partition
from lake_pipeline.lake import values
from lake_pipeline.lake.errors import BadValueError
from lake_pipeline.lake.files import LakeFile, collect_file, partition, partition_files
from lake_pipeline.lake.normalise import scan_file

DELTA_KEY = ("origin_time", "received_time", "sequence_number", "side_is_bid", "price", "size")
"""Columns that make two book_delta_v2 rows "the same row" (`values.duplicate_row_mask`)."""


@dataclass(frozen=True)
class PartitionChecks:
    """What the whole-table checks found: the reference of the price band (trade median, in ticks) and the
    counted repairs (`values.REPAIR_*` -> rows)."""

    reference_price_ticks: float | None
    trades: int
    repairs: dict[str, int]

    def to_dict(self) -> dict:
        return {"reference_price_ticks": self.reference_price_ticks, "trades": self.trades, "repairs": self.repairs}


def _file_row(files: list[LakeFile], row: int) -> tuple[LakeFile, int]:
    for f in files:
        if f.offset <= row < f.offset + f.rows:
            return f, row - f.offset
    raise IndexError(row)


def check_trades(files: list[LakeFile], spec: SymbolSpec) -> tuple[float | None, int]:
    """Unique trade ids and every price inside the band around the median: (median price in ticks, rows)."""
    frame = pl.concat([collect_file(f, scan_file(f, spec, ["trade_id", "price", "row"])) for f in files])
    rows = frame["row"].to_numpy()
    dup = values.find_duplicate_trade_id(frame["trade_id"].to_numpy())
    if dup is not None:
        f, r = _file_row(files, int(rows[dup.row]))
        earlier = int(np.flatnonzero(frame["trade_id"].to_numpy() == dup.value)[0])
        ef, er = _file_row(files, int(rows[earlier]))
        raise BadValueError.at(f.path, f.columns["trade_id"], r, dup.value,
                               f"repeats the trade id of row {er} of {ef.path.name}: trade ids must be unique")
    prices = frame["price"].to_numpy()
    reference = values.median_price(prices)
    band = values.check_price_band("price", prices, reference)
    if band is not None:
        f, r = _file_row(files, int(rows[band.row]))
        tick = float(spec.tick)
        raise BadValueError.at(f.path, f.columns["price"], r, band.value * tick,
                               f"is more than {values.PRICE_BAND:g}x away from the partition's median trade price "
                               f"{reference * tick:g}")
    return reference, frame.height


def count_duplicate_delta_rows(files: list[LakeFile], spec: SymbolSpec) -> int:
    """Rows of book_delta_v2 equal to the row before them (dropped and counted by reconstruct)."""
    key = list(DELTA_KEY)
    frame = pl.concat([collect_file(f, scan_file(f, spec, key)) for f in files])
    same = pl.all_horizontal([(pl.col(c) == pl.col(c).shift(1)).fill_null(False) for c in key])
    return int(frame.select(same.sum()).item())


ROW_CHECKED = {
    "trades": ["origin_time", "received_time", "trade_id", "side_is_buy", "price", "quantity", "row"],
    "book_delta_v2": ["origin_time", "received_time", "sequence_number", "side_is_bid", "price", "size", "row"],
    "book": ["origin_time", "received_time", "sequence_number", "row"],
}
"""What `check_rows` reads: every row-local rule of the reader, except the book's 80 level columns."""


def check_rows(files: list[LakeFile], spec: SymbolSpec) -> None:
    """Every row-local rule (times in the day, prices > 0, sizes >= 0, on-grid values) and the merge's disorder
    limit, as reconstruct applies them; raises the reader's BadValueError / reconstruct's rule as ValueError."""
    limit = int(values.MAX_DISORDER_S * values.NS)
    for f in files:
        cols = ROW_CHECKED[f.table]
        t = pl.col("origin_time").fill_null(pl.col("received_time"))
        frame = collect_file(f, scan_file(f, spec, cols).select(
            *[pl.col(c).null_count().alias(c) for c in cols],
            back=(t.cum_max().shift(1) - t).max(),
            back_row=(t.cum_max().shift(1) - t).arg_max(),
        ))
        back = frame["back"][0]
        if back is not None and back > limit:
            raise ValueError(f"{f.path}: event times go backwards by up to {back / 1e9:.3f} s (worst at row "
                             f"{frame['back_row'][0]}, 0-based, in this file); reconstruct's merge absorbs at most {values.MAX_DISORDER_S:g} s "
                             f"(the {f.table} table must be in event-time order)")


def check_partition(data_root: Path, part: Partition, spec: SymbolSpec, *,
                    count_delta_repairs: bool = True, all_rows: bool = False) -> PartitionChecks:
    """Run the whole-table checks of one partition (BadValueError naming file, column, row, value).

    `all_rows` (assess) also runs every row-local rule over trades, deltas and the book's times: what reconstruct
    applies as it streams, so an assessment never recommends a strategy for data reconstruct refuses."""
    trades = partition(Path(data_root), part, "trades")
    reference, n = check_trades(trades, spec)  # first, like reconstruct, so both name the same fault
    if all_rows:
        for table in ("trades", "book_delta_v2", "book"):
            try:
                check_rows(partition(Path(data_root), part, table), spec)
            except FileNotFoundError:
                continue
    repairs = {values.REPAIR_DUPLICATE_DELTA_ROWS: 0}
    if count_delta_repairs:
        try:
            partition_files(Path(data_root), part, "book_delta_v2")
        except FileNotFoundError:
            pass
        else:
            deltas = partition(Path(data_root), part, "book_delta_v2")
            repairs[values.REPAIR_DUPLICATE_DELTA_ROWS] = count_duplicate_delta_rows(deltas, spec)
    return PartitionChecks(reference, n, repairs)
