"""The golden capture's own book: top-20 ladder and BBO after every applied depth diff, rebuilt with the official
sync (`capture.sync.BookSync`) on the shared engine (`book.engine`).

The sync decides (which snapshot is loaded, which diff is applied, stale or gap) on update ids alone, so it runs
over diffs that carry only their ids and row number; the book work it decided on is then replayed from the flat
level arrays in one numba pass per loaded snapshot, recording the top 20 after each diff. Same decisions, same
engine as feeding `OrderBook` diff by diff (`capture.replay.book_events`), without building a diff object with four
arrays and copying the top 20 out in Python for every diff: an hour of simulated BTC capture (36 k diffs) went from
1.57 s to 0.24 s.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from lake_pipeline.book.engine import apply_side, book_top
from lake_pipeline.book.handle import BookStateError, OrderBook
from lake_pipeline.capture.golden import GoldenFrames
from lake_pipeline.capture.replay import recorded_rule
from lake_pipeline.capture.sync import BookSync, DepthDiff
from lake_pipeline.fidelity.frames import BBO_SCHEMA, LADDER_SCHEMA, conform, empty
from lake_pipeline.fidelity.hawkes import MS
from lake_pipeline.schemas import N_LEVELS

_NO_LEVELS = np.empty(0, np.int64)


class _SyncLog:
    """A `BookLike` that applies nothing: it logs what the sync decided, in order. `ops` holds the depth row of
    each applied diff, or -(k+1) for the k-th loaded snapshot (its arrays in `snapshots`)."""

    def __init__(self) -> None:
        self.ops: list[int] = []
        self.snapshots: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def apply_levels(self, is_bid: bool, prices: np.ndarray, sizes: np.ndarray) -> None:
        """Diffs are logged through the sync's `on_applied` (their row), not here."""

    def load_snapshot(self, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray) -> None:
        self.snapshots.append((bid_px, bid_sz, ask_px, ask_sz))
        self.ops.append(-len(self.snapshots))

    def applied(self, diff: DepthDiff) -> None:
        self.ops.append(diff.meta)


def _flat_levels(frame: pl.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (offsets, flat int64 values): row i holds values[offsets[i]:offsets[i + 1]]."""
    lengths = frame[column].list.len().fill_null(0).to_numpy()
    offsets = np.zeros(lengths.size + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = frame[column].explode(empty_as_null=False).drop_nulls().to_numpy().astype(np.int64, copy=False)
    return offsets, np.ascontiguousarray(values)


def _check_sizes(values: np.ndarray, what: str) -> None:
    if values.size and values.min() < 0:
        raise BookStateError(f"golden {what} holds a negative size ({int(values.min())}); sizes are absolute lots, "
                             "0 deletes")


def _sync_log(frames: GoldenFrames) -> _SyncLog:
    """Run the official sync over the capture's diffs and snapshots in capture order (ids only)."""
    log = _SyncLog()
    sync = BookSync(log, on_applied=log.applied, rule=recorded_rule(frames))
    depth, snaps = frames.depth, frames.snapshots
    snap_levels = [_flat_levels(snaps, c) for c in ("bid_px", "bid_qty", "ask_px", "ask_qty")]
    snap_at = np.searchsorted(depth["frame_no"].to_numpy(), snaps["frame_no"].to_numpy())
    k = 0
    for row, (first, last, prev) in enumerate(depth.select("U", "u", "pu").iter_rows()):
        while k < snaps.height and snap_at[k] <= row:
            _feed_snapshot(sync, snaps["last_update_id"][k], snap_levels, k)
            k += 1
        sync.on_diff(DepthDiff(first, last, _NO_LEVELS, _NO_LEVELS, _NO_LEVELS, _NO_LEVELS, meta=row, prev_id=prev))
    for j in range(k, snaps.height):
        _feed_snapshot(sync, snaps["last_update_id"][j], snap_levels, j)
    return log


def _feed_snapshot(sync: BookSync, last_update_id: int, levels: list[tuple[np.ndarray, np.ndarray]],
                   k: int) -> None:
    sync.on_snapshot(int(last_update_id), *(values[offsets[k]: offsets[k + 1]] for offsets, values in levels))


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
    bid_off, bid_px = _flat_levels(depth, "bid_px")
    _, bid_sz = _flat_levels(depth, "bid_qty")
    ask_off, ask_px = _flat_levels(depth, "ask_px")
    _, ask_sz = _flat_levels(depth, "ask_qty")
    _check_sizes(bid_sz, "depth bid sizes")
    _check_sizes(ask_sz, "depth ask sizes")
    log = _sync_log(frames)
    ops = np.asarray(log.ops, dtype=np.int64)
    rows = ops[ops >= 0]
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
