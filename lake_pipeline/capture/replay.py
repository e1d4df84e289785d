"""Replay a recorded capture's depth diffs and REST snapshots through `BookSync`, in capture order.

Offline twin of the live capture loop: the recording already holds the snapshots the recorder fetched, so the
sync's `needs_snapshot` is only informational here; a snapshot arriving while LIVE is handled by the sync rules.
"""

from __future__ import annotations

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


def _split_lists(frame: pl.DataFrame, column: str) -> list[np.ndarray]:
    """A list column as one int64 array per row (views into one flat array)."""
    flat = frame[column].explode(empty_as_null=False).drop_nulls().to_numpy().astype(np.int64, copy=False)
    ends = np.cumsum(frame[column].list.len().to_numpy())
    return np.split(flat, ends[:-1]) if len(ends) else []


def book_events(frames: GoldenFrames) -> Iterator[DepthDiff | Snapshot]:
    """Depth diffs (as `DepthDiff` with `DiffMeta`) and snapshots of one batch, merged in capture order.

    `frames` must have been read with a SymbolSpec (int64 ticks/lots).
    """
    depth, snaps = frames.depth, frames.snapshots
    levels = {kind: [_split_lists(df, c) for c in ("bid_px", "bid_qty", "ask_px", "ask_qty")]
              for kind, df in (("depth", depth), ("snapshots", snaps))}
    diffs = [
        DepthDiff(first, last, *(col[i] for col in levels["depth"]), meta=DiffMeta(e, recv, no, t), prev_id=pu)
        for i, (first, last, pu, e, t, recv, no) in enumerate(
            depth.select("U", "u", "pu", "E", "T", "recv_ns", "frame_no").iter_rows())
    ]
    snapshots = [
        Snapshot(lid, *(col[i] for col in levels["snapshots"]), recv_ns=recv, frame_no=no)
        for i, (lid, recv, no) in enumerate(snaps.select("last_update_id", "recv_ns", "frame_no").iter_rows())
    ]
    if not snapshots:
        yield from diffs
        return
    yield from sorted([*diffs, *snapshots], key=_frame_no)


def _frame_no(event: DepthDiff | Snapshot) -> int:
    return event.meta.frame_no if isinstance(event, DepthDiff) else event.frame_no


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
