"""The exchange server's own order book: price string → quantity string, exactly as Binance prints them.

The server only needs to answer the depth snapshot request (`GET /api/v3/depth` on spot, `/fapi/v1/depth` on USD-M)
with the replayed market's book in Binance's own number format,
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
    """One `depthUpdate` payload's sequencing and levels (quantities are absolute; zero deletes).

    USD-M payloads also carry `pu` (the previous event's `u`: the only continuity proof there, update ids are not
    contiguous) and `T` (transaction time); both are None on spot.
    """

    first_id: int  # U
    last_id: int  # u
    event_ms: int  # E
    bids: Levels
    asks: Levels
    prev_id: int | None = None  # pu (USD-M)
    transact_ms: int | None = None  # T (USD-M)

    @classmethod
    def from_payload(cls, data: dict) -> DepthDiff:
        pu, t = data.get("pu"), data.get("T")
        return cls(int(data["U"]), int(data["u"]), int(data["E"]), data["b"], data["a"],
                   None if pu is None else int(pu), None if t is None else int(t))

    def continues(self, update_id: int, after_snapshot: bool = False) -> bool:
        """True when this diff follows a book at `update_id` with nothing missed in between (USD-M: `pu` equals
        it, or, first after a snapshot, `U <= update_id <= u`; spot: `U <= update_id + 1`)."""
        if self.prev_id is not None:
            return self.prev_id == update_id or (after_snapshot and self.first_id <= update_id <= self.last_id)
        return self.first_id <= update_id + 1


def _is_zero(qty: str) -> bool:
    return float(qty) == 0.0


class ReplayBook:
    """Full-depth L2 book of strings with Binance's update rules (drop `u <= id`; a diff that does not continue the
    book, `DepthDiff.continues`, is a gap). `transact_ms` is the `T` of the last applied diff (USD-M snapshots
    carry it)."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.update_id = 0
        self.gaps = 0
        self.transact_ms: int | None = None
        self._loaded = False  # update_id is a snapshot's label (the next diff may straddle it)

    def load(self, last_update_id: int, bids: Levels, asks: Levels) -> None:
        self.bids = {p: q for p, q, *_ in bids if not _is_zero(q)}
        self.asks = {p: q for p, q, *_ in asks if not _is_zero(q)}
        self.update_id = int(last_update_id)
        self._loaded = True

    def copy(self) -> ReplayBook:
        other = ReplayBook()
        other.bids, other.asks, other.update_id = dict(self.bids), dict(self.asks), self.update_id
        other.transact_ms, other._loaded = self.transact_ms, self._loaded
        return other

    def apply(self, diff: DepthDiff) -> bool:
        """Apply `diff` if it is new; returns True when applied. A gap is counted and applied anyway (the market moved)."""
        if diff.last_id <= self.update_id:
            return False
        if self.update_id and not diff.continues(self.update_id, self._loaded):
            self.gaps += 1
        self._loaded = False
        for side, levels in ((self.bids, diff.bids), (self.asks, diff.asks)):
            for p, q, *_ in levels:
                if _is_zero(q):
                    side.pop(p, None)
                else:
                    side[p] = q
        self.update_id = diff.last_id
        self.transact_ms = diff.transact_ms
        return True

    def top(self, limit: int) -> tuple[list[list[str]], list[list[str]]]:
        """Best `limit` levels per side, best first (bids descending, asks ascending)."""
        bids = heapq.nlargest(limit, self.bids.items(), key=lambda kv: float(kv[0]))
        asks = heapq.nsmallest(limit, self.asks.items(), key=lambda kv: float(kv[0]))
        return [list(kv) for kv in bids], [list(kv) for kv in asks]

    def best(self) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
        bids, asks = self.top(1)
        return (tuple(bids[0]) if bids else None), (tuple(asks[0]) if asks else None)  # type: ignore[return-value]

    def snapshot_body(self, limit: int, last_update_id: int | None = None, event_ms: int | None = None) -> str:
        """The REST depth body: spot `{"lastUpdateId":…,"bids":[[p,q]…],"asks":[…]}`; with `event_ms` (USD-M)
        `{"lastUpdateId":…,"E":…,"T":…,"bids":…,"asks":…}`, `T` the transaction time of the book's last
        update."""
        bids, asks = self.top(limit)
        lid = self.update_id if last_update_id is None else last_update_id
        body: dict = {"lastUpdateId": lid}
        if event_ms is not None:
            body |= {"E": event_ms, "T": self.transact_ms if self.transact_ms is not None else event_ms}
        return json.dumps(body | {"bids": bids, "asks": asks}, separators=(",", ":"))


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
