"""The book table's 80 price/size columns -> an int64 (rows, 80) array of ticks/lots, in one numba pass.

Why not the lake reader alone: it converts and validates every column through its own Python UDF (one per column
per batch), ~5 µs per book row, which made the 860 k book rows of a day cost more than its 30 M deltas. Here the
same rules run fused over all 80 columns: a value that is 0, NaN or null is an absent level; any other value must
be non-negative and within float tolerance of the symbol's grid (the lake reader's tolerance constants); a level
missing its price or its size is absent on both. When a value breaks a rule, the slice is handed to the lake
reader, which raises its own error naming the file, column and row, so errors stay exactly the reader's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
from numba import njit

from lake_pipeline.config import SymbolSpec
from lake_pipeline.lake.errors import BadValueError
from lake_pipeline.lake.files import LakeFile, collect_file
from lake_pipeline.lake.grid import GRID_ABS_TOL, GRID_REL_TOL, MAX_EXACT_STEPS, step_scaler
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS

N_COLUMNS = len(BOOK_LEVEL_COLUMNS)


@njit(cache=True, nogil=True)
def _convert(values, multiply, factor, out) -> int:
    """Fill out[i, c] with the grid count of values[i, c]; return the first bad row (-1: all clean)."""
    n, n_cols = out.shape
    for i in range(n):
        for c in range(n_cols):
            x = values[i, c]
            if x != x or x == 0.0:  # NaN (null) or 0: level absent
                out[i, c] = 0
                continue
            if x < 0.0:
                return i
            q = x * factor[c] if multiply[c] else x / factor[c]
            r = np.rint(q)
            if not (abs(q - r) <= max(GRID_ABS_TOL, GRID_REL_TOL * abs(q)) and abs(q) <= MAX_EXACT_STEPS):
                return i
            out[i, c] = np.int64(r)
        for k in range(0, n_cols, 2):  # (price, size) pairs: missing either -> both absent
            if out[i, k] == 0 or out[i, k + 1] == 0:
                out[i, k] = 0
                out[i, k + 1] = 0
    return -1


class LevelGrid:
    """Converter for one symbol's book levels (price columns on the tick grid, size columns on the lot grid)."""

    def __init__(self, spec: SymbolSpec) -> None:
        scales = [step_scaler(spec.tick if c.endswith("_price") else spec.lot) for c in BOOK_LEVEL_COLUMNS]
        self.multiply = np.array([m for m, _ in scales], dtype=np.bool_)
        self.factor = np.array([f for _, f in scales], dtype=np.float64)
        self._out = np.empty((0, N_COLUMNS), dtype=np.int64)

    def read(self, f: LakeFile, offset: int, length: int, checked: Callable[[], pl.LazyFrame]) -> np.ndarray:
        """Rows [offset, offset + length) of file `f` as int64 (rows, 80); `checked()` is the lake reader's query
        for the same rows, run only to raise its error when a value is not clean. The result is a view of a
        reused buffer: valid until the next call."""
        names = [f.columns[c] for c in BOOK_LEVEL_COLUMNS]
        query = pl.scan_parquet(f.path, hive_partitioning=False).select(
            [pl.col(n).cast(pl.Float64) for n in names]).slice(offset, length)
        frame = collect_file(f, query)
        values = np.asfortranarray(frame.to_numpy(), dtype=np.float64)  # polars hands columns over as F-order
        if self._out.shape[0] < frame.height:  # reused: fresh memory costs page faults on every batch
            self._out = np.empty((frame.height + frame.height // 4, N_COLUMNS), dtype=np.int64)
        out = self._out[: frame.height]
        bad = _convert(values, self.multiply, self.factor, out) if frame.height else -1
        if bad >= 0:
            collect_file(f, checked())  # raises the reader's error (file, column, row)
            raise BadValueError(f"{f.path}: book level value at row {offset + bad} (0-based, in this file) is not on "
                                "the grid or negative")
        return out
