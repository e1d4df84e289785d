"""The exchange server's own order book: price string → quantity string, exactly as Binance prints them.

The server only needs to answer `GET /api/v3/depth` with the replayed market's book in Binance's own number format,
so it keeps the strings it was given. Being independent of the numba engine the capture uses is deliberate: the
capture's book is checked against this one, and a shared bug could not hide.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Sequence
from dataclasses import dataclass

Levels = Sequence[Sequence[str]]


@dataclass(frozen=True)
class DepthDiff:
    """One `depthUpdate` payload's sequencing and levels (quantities are absolute; zero deletes)."""

    first_id: int  # U
    last_id: int  # u
    event_ms: int  # E
    bids: Levels
    asks: Levels

    @classmethod
    def from_payload(cls, data: dict) -> DepthDiff:
        return cls(int(data["U"]), int(data["u"]), int(data["E"]), data["b"], data["a"])


def _is_zero(qty: str) -> bool:
    return float(qty) == 0.0


class ReplayBook:
    """Full-depth L2 book of strings with the spot update rules (drop `u <= id`; `U > id + 1` is a gap)."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.update_id = 0
        self.gaps = 0

    def load(self, last_update_id: int, bids: Levels, asks: Levels) -> None:
        self.bids = {p: q for p, q, *_ in bids if not _is_zero(q)}
        self.asks = {p: q for p, q, *_ in asks if not _is_zero(q)}
        self.update_id = int(last_update_id)

    def copy(self) -> ReplayBook:
        other = ReplayBook()
        other.bids, other.asks, other.update_id = dict(self.bids), dict(self.asks), self.update_id
        return other

    def apply(self, diff: DepthDiff) -> bool:
        """Apply `diff` if it is new; returns True when applied. A gap is counted and applied anyway (the market moved)."""
        if diff.last_id <= self.update_id:
            return False
        if self.update_id and diff.first_id > self.update_id + 1:
            self.gaps += 1
        for side, levels in ((self.bids, diff.bids), (self.asks, diff.asks)):
            for p, q, *_ in levels:
                if _is_zero(q):
                    side.pop(p, None)
                else:
                    side[p] = q
        self.update_id = diff.last_id
        return True

    def top(self, limit: int) -> tuple[list[list[str]], list[list[str]]]:
        """Best `limit` levels per side, best first (bids descending, asks ascending)."""
        bids = heapq.nlargest(limit, self.bids.items(), key=lambda kv: float(kv[0]))
        asks = heapq.nsmallest(limit, self.asks.items(), key=lambda kv: float(kv[0]))
        return [list(kv) for kv in bids], [list(kv) for kv in asks]

    def best(self) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
        bids, asks = self.top(1)
        return (tuple(bids[0]) if bids else None), (tuple(asks[0]) if asks else None)  # type: ignore[return-value]

    def snapshot_body(self, limit: int, last_update_id: int | None = None) -> str:
        """The REST `/api/v3/depth` body: `{"lastUpdateId":…,"bids":[[p,q]…],"asks":[…]}` (no E/T on spot)."""
        bids, asks = self.top(limit)
        lid = self.update_id if last_update_id is None else last_update_id
        return json.dumps({"lastUpdateId": lid, "bids": bids, "asks": asks}, separators=(",", ":"))


class BookCursor:
    """A ReplayBook that follows the feed's diff sequence at a fixed `offset` (negative = behind, positive = ahead).

    The server keeps a lagging one for stale-snapshot faults and a leading one for snapshots ahead of the WebSocket.
    """

    def __init__(self, start: ReplayBook, diffs: Sequence[DepthDiff], offset: int) -> None:
        self.book = start.copy()
        self.diffs = diffs
        self.offset = offset
        self._next = 0

    def advance(self, emitted: int) -> ReplayBook:
        """Bring the book to diff index `emitted + offset` (the main book has applied diffs[0..emitted])."""
        target = min(emitted + self.offset, len(self.diffs) - 1)
        while self._next <= target:
            self.book.apply(self.diffs[self._next])
            self._next += 1
        return self.book
