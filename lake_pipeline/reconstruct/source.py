"""Row-range reads of one lake table, normalised by `lake_pipeline.lake` and flattened to numpy for the kernel.

Why row ranges: the reconstruction streams each table in fixed, aligned batches and, after a crash, re-reads
exactly the rows its checkpoint says were pending; polars pushes the slice into the parquet scan, so a range
costs what it holds, not the file. Every error names the file (and row) it comes from: they are the lake
reader's errors (`lake_pipeline.lake`), including for the book's 80 level columns, which take a faster path
(`levels.py`) that defers to the lake reader whenever a value is not clean.
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
from lake_pipeline.lake.files import LakeFile, collect_file, partition
from lake_pipeline.lake.normalise import scan_file
from lake_pipeline.reconstruct.buffers import NULL_I64
from lake_pipeline.reconstruct.levels import LevelGrid
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS

TRADES, DELTAS, BOOK = "trades", "book_delta_v2", "book"
TABLE_ORDER = (TRADES, DELTAS, BOOK)
"""Stream index = position here (the kernel's trades/deltas/snapshots arguments)."""

_VALUE_COLUMNS = {
    TRADES: ("trade_id", "side_is_buy", "price", "quantity"),
    DELTAS: ("sequence_number", "side_is_bid", "price", "size"),
    BOOK: ("sequence_number",),
}


@dataclass
class Rows:
    """A block of rows of one table: `time` (event time), `recv`, `row` (partition input order), `seq` (book
    tables; NULL_I64 where missing) and the table's value columns, all numpy, all the same length."""

    cols: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.cols["time"].shape[0])

    def take(self, index: np.ndarray | slice) -> Rows:
        return Rows({k: v[index] for k, v in self.cols.items()})

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        parts = [p for p in parts if len(p)] or parts[:1]
        if len(parts) == 1:
            return parts[0]
        return Rows({k: np.concatenate([p.cols[k] for p in parts]) for k in parts[0].cols})


class TableSource:
    """One table of one partition: total rows, file boundaries, and `read(start, stop)`."""

    def __init__(self, data_root: Path, part: Partition, table: str, spec: SymbolSpec) -> None:
        self.table = table
        self.spec = spec
        self.files: list[LakeFile] = partition(Path(data_root), part, table)
        self.total_rows = sum(f.rows for f in self.files)
        self._levels = LevelGrid(spec) if table == BOOK else None
        self.reference_price_ticks: float | None = None
        """Median trade price (ticks) of the day: trade and delta prices must lie in `values.PRICE_BAND` of it."""

    def fingerprint(self) -> list[list]:
        return [[str(f.path), f.bytes, f.path.stat().st_mtime_ns, f.rows] for f in self.files]

    def file_of(self, row: int) -> LakeFile:
        for f in self.files:
            if f.offset <= row < f.offset + f.rows:
                return f
        raise IndexError(f"{self.table}: row {row} is outside the partition ({self.total_rows} rows)")

    def read(self, start: int, stop: int) -> tuple[Rows, int]:
        """(rows [start, stop) of the partition in input order, how many lacked origin_time); errors name the file.

        Event time is origin_time, falling back to received_time where origin_time is missing. The book's `levels`
        may be a view of a reused buffer: valid until the next read.
        """
        parts = []
        missing = 0
        spans = [(f, max(start, f.offset), min(stop, f.offset + f.rows)) for f in self.files]
        spans = [(f, lo, hi) for f, lo, hi in spans if lo < hi]
        for f, lo, hi in spans:
            rows, n_missing = self._read_file(f, lo - f.offset, hi - lo)
            if len(spans) > 1 and "levels" in rows.cols:
                rows.cols["levels"] = rows.cols["levels"].copy()  # the next file's read reuses the buffer
            parts.append(rows)
            missing += n_missing
        if not parts:
            return self.empty(), 0
        rows = Rows.concat(parts)
        self._check_band(rows)
        if self.table == DELTAS:
            rows = self._drop_repeated_rows(rows, start)
        return rows, missing

    def _check_band(self, rows: Rows) -> None:
        if self.table == BOOK or not len(rows):
            return
        bad = values.check_price_band("price", rows.cols["price"], self.reference_price_ticks)
        if bad is not None:
            f = self.file_of(int(rows.cols["row"][bad.row]))
            tick = float(self.spec.tick)
            raise BadValueError.at(f.path, f.columns["price"], int(rows.cols["row"][bad.row]) - f.offset,
                                   bad.value * tick, f"is more than {values.PRICE_BAND:g}x away from the partition's "
                                   f"median trade price {self.reference_price_ticks * tick:g}")

    def _drop_repeated_rows(self, rows: Rows, start: int) -> Rows:
        """The lake/values.py repair: a delta row equal to the row before it (in input order) is dropped; the
        row before `start` is read too, so any slice drops exactly what a whole read would."""
        if not len(rows):
            return rows
        previous = None
        if start > 0:
            f = self.file_of(start - 1)
            prev = self._to_rows(collect_file(f, scan_file(f, self.spec).slice(start - 1 - f.offset, 1)))
            previous = {k: v[0] for k, v in prev.cols.items()}
        key = [k for k in rows.cols if k != "row"]
        mask = values.duplicate_row_mask({k: rows.cols[k] for k in key}, previous and {k: previous[k] for k in key})
        return rows.take(np.flatnonzero(~mask)) if mask.any() else rows

    def empty(self) -> Rows:
        cols = {k: np.empty(0, np.int64) for k in ("time", "recv", "row")}
        for name in _VALUE_COLUMNS[self.table]:
            cols[name] = np.empty(0, np.bool_ if name.startswith("side") else np.int64)
        if self.table == BOOK:
            cols["levels"] = np.empty((0, len(BOOK_LEVEL_COLUMNS)), np.int64)
        return Rows(cols)

    def _read_file(self, f: LakeFile, offset: int, length: int) -> tuple[Rows, int]:
        if self._levels is None:
            frame = collect_file(f, scan_file(f, self.spec).slice(offset, length))
            levels = None
        else:  # the 80 level columns go through the fast converter, the rest through the lake reader
            columns = ["origin_time", "received_time", "sequence_number", "row"]
            frame = collect_file(f, scan_file(f, self.spec, columns).slice(offset, length))
            levels = self._levels.read(f, offset, length, lambda: scan_file(f, self.spec).slice(offset, length))
        if frame.height == 0:
            return self.empty(), 0
        rows = self._to_rows(frame)
        if levels is not None:
            rows.cols["levels"] = levels
        return rows, frame["origin_time"].null_count()

    def _to_rows(self, frame: pl.DataFrame) -> Rows:
        origin = frame["origin_time"]
        cols = {
            "time": origin.fill_null(frame["received_time"]).to_numpy(),
            "recv": frame["received_time"].to_numpy(),
            "row": frame["row"].to_numpy(),
        }
        for name in _VALUE_COLUMNS[self.table]:
            series = frame[name]
            if series.dtype == pl.Int64:
                series = series.fill_null(NULL_I64)
            cols[name] = series.to_numpy()
        return Rows(cols)
