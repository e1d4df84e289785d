"""Binance spot local order book sync (research binance.md §2.2) as a pure, event-at-a-time state machine.

No I/O: the caller feeds diff events (`on_diff`) and REST snapshots (`on_snapshot`) in arrival order and reads
`needs_snapshot` to know when to fetch one. The same class serves the offline converter (events from a recording)
and the live capture (events from a WebSocket).

States: SYNCING (buffer diffs, wait for a usable snapshot) and LIVE (book valid at `book_id`).

LIVE rules, applied to live diffs AND to buffered diffs replayed after a snapshot:
  u <= book_id          stale: drop (quantities are absolute, so '<=' is safe). Covers a snapshot that is AHEAD
                        of the WebSocket (cryptofeed LRCBTC: diff [540..543] received after the snapshot L=543).
  U >  book_id + 1      gap: back to SYNCING, this diff starts the new buffer, the WebSocket is kept.
  otherwise             apply the levels, book_id = u (covers U == book_id+1 and a diff straddling L+1).

Snapshot L while SYNCING:
  drop buffered diffs with u <= L (the last buffered diff may end exactly at L: ETH, cryptofeed NKNUSDT);
  if the first remaining diff has U > L+1 the snapshot is older than the buffer: refetch and KEEP the buffer
  (clearing it is what made unicorn-binance-local-depth-cache loop forever);
  else load the snapshot (book_id = L) and replay the remaining buffer with the LIVE rules (the first one may
  contain L strictly inside [U, u]: BTC [208..224] with L=218, applied whole).
This is the official procedure with one deliberate relaxation: the official text refetches when the buffer is
empty or when L < U(first). Both are decided here by the overlap rule instead: with L+1 == U(first) the snapshot
is exactly aligned and usable, and with an empty buffer the book goes LIVE at L and the LIVE drop/gap rules
accept the next diff only if it continues L (otherwise it is a gap and a resync). The book is never valid on an
unproven continuity.

Snapshot L while LIVE: L >= book_id replaces the book (a newer snapshot, e.g. a periodic refresh or the recorder's
resync snapshot); an older one is ignored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np


class BookLike(Protocol):
    """What the sync needs from a book (the numba `lake_pipeline.book.OrderBook` or a test stand-in)."""

    def apply_levels(self, is_bid: bool, prices: np.ndarray, sizes: np.ndarray) -> None: ...

    def load_snapshot(self, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray) -> None: ...


@dataclass(frozen=True, slots=True, eq=False)
class DepthDiff:
    """One spot `depthUpdate` in int64 ticks/lots: update ids [first_id=U, last_id=u], absolute sizes (0 deletes).

    `meta` is the caller's tag (e.g. exchange time and receive time), handed back through `on_applied`.
    """

    first_id: int
    last_id: int
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    meta: Any = None


class SyncState(Enum):
    SYNCING = "syncing"
    LIVE = "live"


class DiffResult(Enum):
    BUFFERED = "buffered"  # SYNCING: kept for the next snapshot
    APPLIED = "applied"  # LIVE: levels applied, book_id = u
    STALE = "stale"  # LIVE: u <= book_id, dropped
    GAP = "gap"  # LIVE: U > book_id + 1; now SYNCING with this diff buffered -> fetch a snapshot


class SnapshotResult(Enum):
    LOADED = "loaded"  # the book is the snapshot (+ replayed buffer); LIVE unless the replay hit a gap
    TOO_OLD = "too_old"  # SYNCING: older than the buffered diffs; buffer kept, fetch another
    RELOADED = "reloaded"  # LIVE: a snapshot at or after book_id replaced the book
    IGNORED = "ignored"  # LIVE: older than the book


@dataclass(frozen=True)
class SnapshotOutcome:
    result: SnapshotResult
    applied: int = 0  # buffered diffs applied on top of the snapshot
    dropped: int = 0  # buffered diffs dropped as stale (u <= L)


@dataclass
class SyncStats:
    """Counters for session metadata and the fidelity report."""

    applied: int = 0
    stale: int = 0
    gaps: int = 0
    snapshots_loaded: int = 0
    snapshots_too_old: int = 0
    snapshots_reloaded: int = 0
    snapshots_ignored: int = 0
    buffer_overflow: int = 0  # oldest buffered diffs discarded because the buffer was full
    resyncs_requested: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class BookSync:
    """The spot sync state machine over a book. `on_applied(diff)` runs after each applied diff (book updated)."""

    book: BookLike
    on_applied: Callable[[DepthDiff], None] | None = None
    max_buffer: int = 20_000  # ~30 min of 100 ms diffs; the oldest are discarded beyond it (counted)
    state: SyncState = SyncState.SYNCING
    book_id: int | None = None
    stats: SyncStats = field(default_factory=SyncStats)
    _buffer: deque[DepthDiff] = field(init=False)

    def __post_init__(self) -> None:
        self._buffer = deque(maxlen=self.max_buffer)

    @property
    def is_live(self) -> bool:
        return self.state is SyncState.LIVE

    @property
    def needs_snapshot(self) -> bool:
        """SYNCING with at least one buffered diff: fetch a REST snapshot now (after a too-old one: again)."""
        return self.state is SyncState.SYNCING and bool(self._buffer)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def on_diff(self, diff: DepthDiff) -> DiffResult:
        if self.state is SyncState.SYNCING:
            self._buffer_diff(diff)
            return DiffResult.BUFFERED
        assert self.book_id is not None
        if diff.last_id <= self.book_id:
            self.stats.stale += 1
            return DiffResult.STALE
        if diff.first_id > self.book_id + 1:
            self.stats.gaps += 1
            self.state = SyncState.SYNCING
            self._buffer.clear()
            self._buffer_diff(diff)
            return DiffResult.GAP
        self._apply(diff)
        return DiffResult.APPLIED

    def on_snapshot(
        self, last_update_id: int, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray
    ) -> SnapshotOutcome:
        if self.state is SyncState.LIVE:
            assert self.book_id is not None
            if last_update_id < self.book_id:
                self.stats.snapshots_ignored += 1
                return SnapshotOutcome(SnapshotResult.IGNORED)
            self._load(last_update_id, bid_px, bid_sz, ask_px, ask_sz)
            self.stats.snapshots_reloaded += 1
            return SnapshotOutcome(SnapshotResult.RELOADED)
        before = len(self._buffer)
        remaining = [d for d in self._buffer if d.last_id > last_update_id]
        dropped = before - len(remaining)
        self.stats.stale += dropped
        self._buffer = deque(remaining, maxlen=self.max_buffer)
        if remaining and remaining[0].first_id > last_update_id + 1:
            self.stats.snapshots_too_old += 1
            return SnapshotOutcome(SnapshotResult.TOO_OLD, dropped=dropped)
        self._load(last_update_id, bid_px, bid_sz, ask_px, ask_sz)
        self.stats.snapshots_loaded += 1
        self._buffer = deque(maxlen=self.max_buffer)
        applied_before = self.stats.applied
        for diff in remaining:
            self.on_diff(diff)
        return SnapshotOutcome(SnapshotResult.LOADED, applied=self.stats.applied - applied_before, dropped=dropped)

    def request_resync(self) -> None:
        """Force a new snapshot (e.g. the caller saw a crossed book): SYNCING, buffering from the next diff."""
        self.stats.resyncs_requested += 1
        self.state = SyncState.SYNCING
        self._buffer.clear()

    def _buffer_diff(self, diff: DepthDiff) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.stats.buffer_overflow += 1
        self._buffer.append(diff)

    def _load(self, last_update_id: int, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray,
              ask_sz: np.ndarray) -> None:
        self.book.load_snapshot(bid_px, bid_sz, ask_px, ask_sz)
        self.book_id = int(last_update_id)
        self.state = SyncState.LIVE

    def _apply(self, diff: DepthDiff) -> None:
        self.book.apply_levels(True, diff.bid_px, diff.bid_sz)
        self.book.apply_levels(False, diff.ask_px, diff.ask_sz)
        self.book_id = diff.last_id
        self.stats.applied += 1
        if self.on_applied is not None:
            self.on_applied(diff)
