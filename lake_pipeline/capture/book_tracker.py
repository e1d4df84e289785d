"""The capture's live order book: Binance payloads → the shared sync state machine → the shared book engine.

`BookTracker` converts payloads to ticks/lots, drives `sync.BookSync` over `book.OrderBook`, and records what
session.json must tell: gaps (update ids that never arrived on the wire, whatever the sync state; on USD-M, where ids
are not contiguous, a diff whose `pu` is not the previous diff's `u`), resyncs (why, when asked, when done, how many
snapshots it took) and the bookTicker self-check. The check compares the book with every bookTicker whose `u`
equals the `u` of an applied diff (an update-aligned checkpoint; research §1.2: exact on real data), whichever of
the two arrives first; a mismatch or a crossed book is a desync, so it asks for a resync.
"""

from __future__ import annotations

import json
import time

import numpy as np
from dataclasses import dataclass, field

from loguru import logger

from lake_pipeline.book import OrderBook
from lake_pipeline.capture.levels import LevelParser
from lake_pipeline.capture.sync import (
    SPOT_RULE,
    BookSync,
    DepthDiff,
    DiffResult,
    SnapshotOutcome,
    SnapshotResult,
    SyncRule,
)
from lake_pipeline.config import SymbolSpec

MAX_PENDING_TICKERS = 50_000
MAX_LISTED = 50


def _units(levels: LevelParser, side: list, what: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return levels.arrays(side)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def diff_from_payload(data: dict, levels: LevelParser) -> DepthDiff:
    """A `depthUpdate` payload (spot, or USD-M with `pu`) → `DepthDiff` in ticks/lots tagged with its `E`; the
    same digit rule and kernel as the golden reader, so the live and the recorded path cannot disagree on a value.
    A level off the grid is a ValueError naming the diff and the side."""
    where = f"depthUpdate U={data.get('U')} u={data.get('u')}"
    bid_px, bid_sz = _units(levels, data["b"], f"{where} bids")
    ask_px, ask_sz = _units(levels, data["a"], f"{where} asks")
    pu = data.get("pu")
    return DepthDiff(int(data["U"]), int(data["u"]), bid_px, bid_sz, ask_px, ask_sz, meta=int(data["E"]),
                     prev_id=None if pu is None else int(pu))


def snapshot_from_body(body: dict, levels: LevelParser) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A REST depth body (spot, or USD-M with `E`/`T`) → `(lastUpdateId, bid_px, bid_sz, ask_px, ask_sz)`."""
    where = f"snapshot lastUpdateId={body.get('lastUpdateId')}"
    try:
        return (int(body["lastUpdateId"]), *_units(levels, body["bids"], f"{where} bids"),
                *_units(levels, body["asks"], f"{where} asks"))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"depth snapshot lacks {exc}: {str(body)[:120]!r}") from None


@dataclass
class Resync:
    reason: str
    requested_ns: int
    completed_ns: int | None = None
    snapshot_id: int | None = None
    snapshots: int = 0
    too_old: int = 0
    buffered_applied: int = 0
    buffered_dropped: int = 0
    checks_after: int = 0  # bookTicker checkpoints passed after this resync completed
    mismatches_after: int = 0


@dataclass
class TickerCheck:
    checked: int = 0
    mismatched: int = 0
    mismatches: list[dict] = field(default_factory=list)


class BookTracker:
    """One symbol's live book and its sync bookkeeping (single-threaded: call from the capture's event loop)."""

    def __init__(self, spec: SymbolSpec, rule: SyncRule = SPOT_RULE) -> None:
        self.spec = spec
        self.book = OrderBook()
        self.sync = BookSync(self.book, on_applied=self._applied, rule=rule)
        self.levels = LevelParser(spec.tick, spec.lot)
        self.gaps: list[dict] = []
        self.resyncs: list[Resync] = []
        self.ticker = TickerCheck()
        self.crossed = 0
        self.last_event_ms = 0
        self._pending: dict[int, str] = {}  # bookTicker u -> frame, waiting for the diff that ends at u
        self._id_from_diff = False  # book_id was set by an applied diff (exact state), not by a snapshot label
        self._wire_u = 0  # highest diff update id received on the wire
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile (or load from cache) the engine and parser kernels now, not on the first live diff."""
        one = np.array([1], dtype=np.int64)
        self.book.load_snapshot(one, one, one + 1, one)
        self.book.apply_levels(True, one, one * 0)
        self.book.is_crossed()
        self.book.clear()
        self.levels.arrays([["1", "1"]] * 3)
        self._open(reason="initial")

    # ----------------------------------------------------------------------------------------------- resyncs
    def _open(self, reason: str) -> None:
        if self.resyncs and self.resyncs[-1].completed_ns is None:
            return
        self.resyncs.append(Resync(reason, time.time_ns()))
        if reason != "initial":
            logger.warning("book resync: {}", reason)

    @property
    def current_resync(self) -> Resync | None:
        r = self.resyncs[-1] if self.resyncs else None
        return r if r is not None and r.completed_ns is None else None

    @property
    def needs_snapshot(self) -> bool:
        return self.sync.needs_snapshot

    # ----------------------------------------------------------------------------------------------- diffs
    def on_diff(self, data: dict, recv_wall_ns: int) -> DiffResult:
        diff = diff_from_payload(data, self.levels)
        wire = self._wire_u
        # events never delivered, whatever the sync state: a flagged gap (USD-M: the pu chain breaks; the ids in
        # between are not all events there, so the gap names the last u received and the pu that was expected)
        missed = diff.prev_id > wire if diff.prev_id is not None else diff.first_id > wire + 1
        if wire and missed:
            to_id = diff.prev_id if diff.prev_id is not None else diff.first_id - 1
            gap = {"kind": "depth", "recv_wall_ns": recv_wall_ns, "from_id": wire + 1, "to_id": to_id,
                   "missing_ids": to_id - wire}
            self.gaps.append(gap)
            logger.warning("depth gap: update ids {}..{} never arrived", gap["from_id"], gap["to_id"])
        self._wire_u = max(wire, diff.last_id)
        result = self.sync.on_diff(diff)
        if result is DiffResult.GAP:
            self._id_from_diff = False
            self._open("gap")
        return result

    def _applied(self, diff: DepthDiff) -> None:
        self._id_from_diff = True
        self.last_event_ms = diff.meta
        u = diff.last_id
        pending = self._pending
        while pending:
            first = next(iter(pending))
            if first > u:
                break
            values = pending.pop(first)
            if first == u:
                self._compare(u, values)
        if self.book.is_crossed():
            self.crossed += 1
            self._desync(f"crossed book after diff u={u}")

    # ----------------------------------------------------------------------------------------------- snapshots
    def on_snapshot(self, text: str) -> SnapshotOutcome:
        last_id, bid_px, bid_sz, ask_px, ask_sz = snapshot_from_body(json.loads(text), self.levels)
        outcome = self.sync.on_snapshot(last_id, bid_px, bid_sz, ask_px, ask_sz)
        r = self.current_resync
        if r is not None:
            r.snapshots += 1
            if outcome.result is SnapshotResult.TOO_OLD:
                r.too_old += 1
                logger.info("snapshot {} older than the buffered diffs: fetching another (buffer kept)", last_id)
            elif outcome.result is SnapshotResult.LOADED:
                r.completed_ns, r.snapshot_id = time.time_ns(), last_id
                r.buffered_applied, r.buffered_dropped = outcome.applied, outcome.dropped
                if self.sync.is_live:
                    logger.info("book synced at snapshot {} ({} buffered diffs applied, {} dropped)", last_id,
                                outcome.applied, outcome.dropped)
                else:  # the buffer replay itself hit a gap: that gap opened nothing new yet
                    self.resyncs.append(Resync("gap in buffered diffs", time.time_ns()))
        if outcome.result in (SnapshotResult.LOADED, SnapshotResult.RELOADED) and not outcome.applied:
            self._id_from_diff = False
        return outcome

    # ----------------------------------------------------------------------------------------------- bookTicker
    def on_ticker(self, u: int, frame: str) -> None:
        """A bookTicker frame with update id `u`; parsed only if it becomes a checkpoint (most never do)."""
        book_id = self.sync.book_id
        if self.sync.is_live and book_id == u:
            if self._id_from_diff:
                self._compare(u, frame)
        elif book_id is None or u > book_id:
            if len(self._pending) >= MAX_PENDING_TICKERS:
                self._pending.pop(next(iter(self._pending)))
            self._pending[u] = frame

    def _ticker_values(self, frame: str) -> tuple[int, int, int, int]:
        data = json.loads(frame)
        data = data.get("data", data)
        px, sz = self.levels.arrays([[data["b"], data["B"]], [data["a"], data["A"]]])
        return int(px[0]), int(sz[0]), int(px[1]), int(sz[1])

    def _compare(self, u: int, frame: str) -> None:
        values = self._ticker_values(frame)
        bid, ask = self.book.best_bid(), self.book.best_ask()
        got = (int(bid[0]), int(bid[1]), int(ask[0]), int(ask[1]))
        self.ticker.checked += 1
        r = self.resyncs[-1] if self.resyncs else None
        if r is not None and r.completed_ns is not None:
            r.checks_after += 1
        if got == values:
            return
        self.ticker.mismatched += 1
        if r is not None and r.completed_ns is not None:
            r.mismatches_after += 1
        if len(self.ticker.mismatches) < MAX_LISTED:
            self.ticker.mismatches.append({"u": u, "book": got, "bookTicker": values})
        self._desync(f"book differs from bookTicker at u={u}: book {got} vs ticker {values}")

    def _desync(self, why: str) -> None:
        logger.error("book desync: {}; resyncing", why)
        self.sync.request_resync()
        self._id_from_diff = False
        self._open(why)

    # ----------------------------------------------------------------------------------------------- report
    def report(self) -> dict:
        return {
            "sync": self.sync.stats.to_dict(),
            "state": self.sync.state.value,
            "book_id": self.sync.book_id,
            "gaps": self.gaps[:MAX_LISTED] if len(self.gaps) > MAX_LISTED else self.gaps,
            "gap_count": len(self.gaps),
            "resyncs": [r.__dict__ for r in self.resyncs],
            "book_checks": {"checked": self.ticker.checked, "mismatched": self.ticker.mismatched,
                            "mismatches": self.ticker.mismatches},
            "crossed": self.crossed,
        }
