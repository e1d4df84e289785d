"""The golden capture's own book: top-20 ladder and BBO after every applied depth diff, rebuilt with the official
sync (`capture.sync.BookSync`) on the shared engine (`book.engine`).

The sync decides (which snapshot is loaded, which diff is applied, stale or gap) on update ids alone, so it runs
over diffs that carry only their ids (`book_events(diff_levels=False)`); the book work it decided on is then
replayed from the flat level arrays in one numba pass per loaded snapshot, recording the top 20 after each diff.
Same decisions, same engine as feeding `OrderBook` diff by diff, without four level arrays per diff and copying
the top 20 out in Python for every diff: an hour of simulated BTC capture (36 k diffs) went from 1.57 s to ~0.4 s.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from lake_pipeline.book.engine import apply_side, book_top
from lake_pipeline.book.handle import OrderBook, require_non_negative
from lake_pipeline.capture.golden import GoldenFrames
from lake_pipeline.capture.replay import book_events, feed, flat_levels, recorded_rule
from lake_pipeline.capture.sync import BookSync, DepthDiff
from lake_pipeline.fidelity.frames import BBO_SCHEMA, LADDER_SCHEMA, conform, empty
from lake_pipeline.fidelity.hawkes import MS
from lake_pipeline.schemas import N_LEVELS


class _SyncLog:
    """A `BookLike` that applies nothing: it logs what the sync decided, in order. `ops` holds the capture frame
    number of each applied diff, or -(k+1) for the k-th loaded snapshot (its arrays in `snapshots`)."""

    def __init__(self) -> None:
        self.ops: list[int] = []
        self.snapshots: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def apply_levels(self, is_bid: bool, prices: np.ndarray, sizes: np.ndarray) -> None:
        """Diffs are logged through the sync's `on_applied` (their frame number), not here."""

    def load_snapshot(self, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray) -> None:
        self.snapshots.append((bid_px, bid_sz, ask_px, ask_sz))
        self.ops.append(-len(self.snapshots))

    def applied(self, diff: DepthDiff) -> None:
        self.ops.append(diff.meta.frame_no)


def _sync_log(frames: GoldenFrames) -> _SyncLog:
    """Run the official sync over the capture's diffs (ids only) and snapshots, in capture order."""
    log = _SyncLog()
    sync = BookSync(log, on_applied=log.applied, rule=recorded_rule(frames))
    for event in book_events(frames, diff_levels=False):
        feed(sync, event)
    return log


@njit(cache=True, nogil=True)
def _replay(bid, ask, meta, rows, bid_off, bid_px, bid_sz, ask_off, ask_px, ask_sz, n, out):
    """Apply the logged diffs (depth rows) in order on the engine's state, the top `n` after each into out[j]."""
    for j in range(rows.size):
        r = rows[j]
        apply_side(bid, ask, meta, True, bid_px[bid_off[r]: bid_off[r + 1]], bid_sz[bid_off[r]: bid_off[r + 1]])
        apply_side(bid, ask, meta, False, ask_px[ask_off[r]: ask_off[r + 1]], ask_sz[ask_off[r]: ask_off[r + 1]])
        book_top(bid, ask, meta, n, out[j, 0], out[j, 1], out[j, 2], out[j, 3])


def rebuild_golden_book(frames: GoldenFrames) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Top-20 ladder and BBO after every applied diff (frames read with a SymbolSpec: int64 ticks/lots)."""
    depth = frames.depth
    bid_off, bid_px = flat_levels(depth, "bid_px")
    _, bid_sz = flat_levels(depth, "bid_qty")
    ask_off, ask_px = flat_levels(depth, "ask_px")
    _, ask_sz = flat_levels(depth, "ask_qty")
    require_non_negative(bid_sz, "golden depth bid sizes")
    require_non_negative(ask_sz, "golden depth ask sizes")
    log = _sync_log(frames)
    ops = np.asarray(log.ops, dtype=np.int64)
    applied = ops >= 0
    ops[applied] = np.searchsorted(depth["frame_no"].to_numpy(), ops[applied])  # frame number -> depth row
    rows = ops[applied]
    out = np.zeros((rows.size, 4, N_LEVELS), np.int64)
    book = OrderBook()
    done = 0
    for segment in np.split(ops, np.flatnonzero(ops < 0)):  # each starts with its snapshot (but the first)
        if segment.size and segment[0] < 0:
            book.load_snapshot(*log.snapshots[-segment[0] - 1])
            segment = segment[1:]
        _replay(book.bid, book.ask, book.meta, segment, bid_off, bid_px, bid_sz, ask_off, ask_px, ask_sz, N_LEVELS,
               out[done: done + segment.size])
        done += segment.size
    if rows.size == 0:
        return empty(LADDER_SCHEMA), empty(BBO_SCHEMA)
    times = depth["E"].to_numpy()[rows].astype(np.int64) * MS
    cols: dict[str, np.ndarray] = {"time_ns": times}
    for si, side in ((0, "bid"), (2, "ask")):
        for k in range(N_LEVELS):
            px = out[:, si, k]
            cols[f"{side}_{k}_price"] = np.where(px > 0, px, -1)
            cols[f"{side}_{k}_size"] = out[:, si + 1, k]
    ladder = pl.DataFrame(cols).with_columns(
        [pl.when(pl.col(c) < 0).then(None).otherwise(pl.col(c)).alias(c) for c in cols if c.endswith("_price")])
    bbo = pl.DataFrame({"time_ns": times, "update_id": depth["u"].to_numpy()[rows].astype(np.int64),
                        "bid_px": out[:, 0, 0], "bid_sz": out[:, 1, 0], "ask_px": out[:, 2, 0], "ask_sz": out[:, 3, 0]})
    bbo = bbo.filter((pl.col("bid_px") > 0) & (pl.col("ask_px") > 0))
    return conform(ladder, LADDER_SCHEMA, "golden ladder"), conform(bbo, BBO_SCHEMA, "golden book bbo")
