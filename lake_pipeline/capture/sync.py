"""Binance local order book sync, spot (research binance.md §2.2) and USD-M futures (§2.3), as a pure,
event-at-a-time state machine.

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

USD-M futures (`FUTURES_RULE`, official "How to manage a local order book correctly"): update ids are NOT
contiguous between events (`U != pu + 1` is normal), continuity is proven only by `pu`, the previous event's `u`.
  first event after a snapshot L:  drop u < L; apply if U <= L <= u (L may equal u exactly: cryptofeed
                                   BINANCE_FUTURES, the snapshot's T equals that diff's T; or lie strictly inside
                                   [U, u]: the hftbacktest 2024 BTCUSDT recording); also apply if pu == L (the
                                   event right after L, when the one ending at L never reached us; tardis-node
                                   accepts it, and it is what follows a snapshot taken exactly at book_id)
  every later event:               pu == book_id applies; u <= book_id is a stale duplicate; else a gap (resync)
The SYNCING/LIVE machine, the buffer and the counters are shared; only these two predicates differ.
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
    """One `depthUpdate` in int64 ticks/lots: update ids [first_id=U, last_id=u], absolute sizes (0 deletes).

    `prev_id` is USD-M's `pu` (the previous event's `u`; None on spot). `meta` is the caller's tag (e.g. exchange
    time and receive time), handed back through `on_applied`.
    """

    first_id: int
    last_id: int
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    meta: Any = None
    prev_id: int | None = None


class SyncRule:
    """Spot continuity: a diff is stale when u <= book_id and continues the book when U <= book_id + 1.

    `first` is True for the first diff after a snapshot (book_id = the snapshot's lastUpdateId); spot uses the
    same test for both (the first diff may straddle L+1), futures does not.
    """

    name = "spot"

    def stale(self, diff: DepthDiff, book_id: int, first: bool) -> bool:
        return diff.last_id <= book_id

    def continues(self, diff: DepthDiff, book_id: int, first: bool) -> bool:
        return diff.first_id <= book_id + 1


class FuturesSyncRule(SyncRule):
    """USD-M continuity through `pu` (module docstring); a diff without `pu` is an error, not a guess."""

    name = "futures"

    def stale(self, diff: DepthDiff, book_id: int, first: bool) -> bool:
        return diff.last_id < book_id if first else diff.last_id <= book_id

    def continues(self, diff: DepthDiff, book_id: int, first: bool) -> bool:
        if diff.prev_id is None:
            raise ValueError(f"futures depthUpdate U={diff.first_id} u={diff.last_id} has no pu (previous u); "
                             "is this a spot stream?")
        if first:
            return diff.first_id <= book_id <= diff.last_id or diff.prev_id == book_id
        return diff.prev_id == book_id


SPOT_RULE = SyncRule()
FUTURES_RULE = FuturesSyncRule()


def rule_for(exchange: str) -> SyncRule:
    """The sync rule of a venue spelt like Crypto Lake: `BINANCE_FUTURES` (USD-M) or `BINANCE` (spot)."""
    from lake_pipeline.instrument import FUTURES, SPOT

    if exchange == FUTURES:
        return FUTURES_RULE
    if exchange == SPOT:
        return SPOT_RULE
    raise ValueError(f"no Binance order book sync rule for venue {exchange!r} (expected {SPOT} or {FUTURES})")


class SyncState(Enum):
    SYNCING = "syncing"
    LIVE = "live"


class DiffResult(Enum):
    BUFFERED = "buffered"  # SYNCING: kept for the next snapshot
    APPLIED = "applied"  # LIVE: levels applied, book_id = u
    STALE = "stale"  # LIVE: older than the book (spot u <= book_id; futures u < L first, then u <= book_id)
    GAP = "gap"  # LIVE: does not continue the book (spot U > book_id + 1; futures pu != book_id); now SYNCING


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
    """The sync state machine over a book. `on_applied(diff)` runs after each applied diff (book updated).

    `rule`: `SPOT_RULE` (default) or `FUTURES_RULE` (`rule_for(exchange)` picks it from the venue).
    """

    book: BookLike
    on_applied: Callable[[DepthDiff], None] | None = None
    max_buffer: int = 20_000  # ~30 min of 100 ms diffs; the oldest are discarded beyond it (counted)
    rule: SyncRule = SPOT_RULE
    state: SyncState = SyncState.SYNCING
    book_id: int | None = None
    stats: SyncStats = field(default_factory=SyncStats)
    _buffer: deque[DepthDiff] = field(init=False)
    _first: bool = field(init=False, default=False)  # LIVE on a snapshot label, no diff applied on top yet

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
        if self.rule.stale(diff, self.book_id, self._first):
            self.stats.stale += 1
            return DiffResult.STALE
        if not self.rule.continues(diff, self.book_id, self._first):
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
        remaining = [d for d in self._buffer if not self.rule.stale(d, last_update_id, first=True)]
        dropped = before - len(remaining)
        self.stats.stale += dropped
        self._buffer = deque(remaining, maxlen=self.max_buffer)
        if remaining and not self.rule.continues(remaining[0], last_update_id, first=True):
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
        self._first = True

    def _apply(self, diff: DepthDiff) -> None:
        self.book.apply_levels(True, diff.bid_px, diff.bid_sz)
        self.book.apply_levels(False, diff.ask_px, diff.ask_sz)
        self.book_id = diff.last_id
        self._first = False
        self.stats.applied += 1
        if self.on_applied is not None:
            self.on_applied(diff)
