"""Columnar output buffers the replay kernel fills, one set per chunk in flight, reused across chunks.

Why reuse: the output of a full day is ~5 GB of int64 columns; first-touching fresh memory runs at ~1 GB/s on
this VM class (research performance.md §2c lesson 3), so a small pool of buffer sets that the writer thread hands
back after encoding keeps that cost out of the hot path.

Nulls travel as sentinels (no masks in the kernel): see the `NULL_*` constants; the writer turns them into Arrow
validity bitmaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from lake_pipeline.schemas import EVENT_DELTA, EVENT_SNAPSHOT, EVENT_TRADE, EVENT_TYPES, N_LEVELS

NULL_I64 = np.iinfo(np.int64).min
"""sequence_number / trade_id / price / quantity null (trades have no sequence number, snapshots no price)."""
NULL_I32 = -1
"""side / drift_levels null."""
EMPTY_PRICE = 0
"""Best price 0 = that side of the book is empty -> best price and best quantity null."""

TYPE_TRADE = EVENT_TYPES.index(EVENT_TRADE)
TYPE_SNAPSHOT = EVENT_TYPES.index(EVENT_SNAPSHOT)
TYPE_DELTA = EVENT_TYPES.index(EVENT_DELTA)

SIDES = ("buy", "sell", "bid", "ask")
SIDE_BUY, SIDE_SELL, SIDE_BID, SIDE_ASK = range(4)

LEVEL_COLS = 4 * N_LEVELS
"""Book-state columns after event_time: bid_0_price, bid_0_size, …, ask_19_size (lake `book` order)."""


def _grow(arr: np.ndarray, rows: int) -> np.ndarray:
    if arr.shape[0] >= rows:
        return arr
    shape = (rows + rows // 4,) + arr.shape[1:]
    return np.empty(shape, dtype=arr.dtype)


@dataclass
class UnifiedBuffers:
    """One unified-event column per array (kernel writes rows [0, n))."""

    time: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    recv: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    etype: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    seq: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    tid: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    side: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    px: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    qty: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    bbp: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    bbq: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    bap: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    baq: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    flags: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    drift: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))

    def reserve(self, rows: int) -> None:
        for f in fields(self):
            setattr(self, f.name, _grow(getattr(self, f.name), rows))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass
class BookStateBuffers:
    """Top-20 rows: `time[i]` and `levels[c, i]` for column c in lake order (price 0 = level absent).

    Column-major so each output column is contiguous for the decimal conversion.
    """

    time: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    levels: np.ndarray = field(default_factory=lambda: np.empty((LEVEL_COLS, 0), np.int64))

    def reserve(self, rows: int) -> None:
        self.time = _grow(self.time, rows)
        if self.levels.shape[1] < rows:
            self.levels = np.empty((LEVEL_COLS, rows + rows // 4), np.int64)


@dataclass
class ChunkBuffers:
    """Everything one chunk produces; `n` unified rows and `m` book-state rows are valid after the kernel ran."""

    unified: UnifiedBuffers = field(default_factory=UnifiedBuffers)
    states: BookStateBuffers = field(default_factory=BookStateBuffers)
    n: int = 0
    m: int = 0

    def reserve(self, rows: int, state_rows: int) -> None:
        self.unified.reserve(rows)
        self.states.reserve(state_rows)
        self.n = 0
        self.m = 0
