"""Replay a recorded capture's depth diffs and REST snapshots through `BookSync`, in capture order.

Offline twin of the live capture loop: the recording already holds the snapshots the recorder fetched, so the
sync's `needs_snapshot` is only informational here; a snapshot arriving while LIVE is handled by the sync rules.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from lake_pipeline.capture.golden import GoldenFrames
from lake_pipeline.capture.sync import FUTURES_RULE, SPOT_RULE, BookSync, DepthDiff, SyncRule


@dataclass(frozen=True, slots=True)
class DiffMeta:
    """What a converter needs back from an applied diff."""

    exchange_ms: int  # E
    recv_ns: int
    frame_no: int
    transaction_ms: int | None = None  # USD-M `T` (matching engine time), None on spot


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    last_update_id: int
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    recv_ns: int
    frame_no: int


LEVEL_COLUMNS = ("bid_px", "bid_qty", "ask_px", "ask_qty")
_NO_LEVELS = np.empty(0, np.int64)


def flat_levels(frame: pl.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (offsets, flat int64 values): row i holds values[offsets[i]:offsets[i + 1]]."""
    lengths = frame[column].list.len().fill_null(0).to_numpy()
    offsets = np.zeros(lengths.size + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = frame[column].explode(empty_as_null=False).drop_nulls().to_numpy().astype(np.int64, copy=False)
    return offsets, np.ascontiguousarray(values)


def _split_lists(frame: pl.DataFrame, column: str) -> list[np.ndarray]:
    """A list column as one int64 array per row (views into one flat array)."""
    offsets, values = flat_levels(frame, column)
    return np.split(values, offsets[1:-1]) if frame.height else []


def book_events(frames: GoldenFrames, *, diff_levels: bool = True) -> Iterator[DepthDiff | Snapshot]:
    """Depth diffs (as `DepthDiff` with `DiffMeta`) and snapshots of one batch, merged in capture order.

    `frames` must have been read with a SymbolSpec (int64 ticks/lots). `diff_levels=False` leaves the diffs'
    level arrays empty, for a caller that lets the sync decide on ids and applies the levels itself
    (`fidelity.golden_book`).
    """
    depth, snaps = frames.depth, frames.snapshots
    diff_arrays = (zip(*(_split_lists(depth, c) for c in LEVEL_COLUMNS)) if diff_levels
                   else itertools.repeat((_NO_LEVELS,) * len(LEVEL_COLUMNS)))
    diffs = [
        DepthDiff(first, last, *arrays, meta=DiffMeta(e, recv, no, t), prev_id=pu)
        for (first, last, pu, e, t, recv, no), arrays in zip(
            depth.select("U", "u", "pu", "E", "T", "recv_ns", "frame_no").iter_rows(), diff_arrays)
    ]
    snapshots = [
        Snapshot(lid, *arrays, recv_ns=recv, frame_no=no)
        for (lid, recv, no), arrays in zip(snaps.select("last_update_id", "recv_ns", "frame_no").iter_rows(),
                                           zip(*(_split_lists(snaps, c) for c in LEVEL_COLUMNS)))
    ]
    if not snapshots:
        yield from diffs
        return
    # the few snapshots go between the diffs by frame number (a stable argsort, not a Python sort of every diff)
    order = np.argsort(np.concatenate([depth["frame_no"].to_numpy(), snaps["frame_no"].to_numpy()]), kind="stable")
    events = [*diffs, *snapshots]
    yield from (events[i] for i in order)


def recorded_rule(frames: GoldenFrames) -> SyncRule:
    """The sync rule a recording needs: USD-M diffs carry `pu` (the futures rule), spot diffs do not."""
    depth = frames.depth
    return FUTURES_RULE if depth.height and depth["pu"].null_count() < depth.height else SPOT_RULE


def feed(sync: BookSync, event: DepthDiff | Snapshot) -> None:
    """Hand one replayed event to the sync."""
    if isinstance(event, DepthDiff):
        sync.on_diff(event)
    else:
        sync.on_snapshot(event.last_update_id, event.bid_px, event.bid_sz, event.ask_px, event.ask_sz)
