"""Streams the recordings do not contain, derived from the ones they do (research binance.md §4–§5).

- `@aggTrade`: consecutive trades of one taker order (same `T`, `p`, `m`) grouped; approximate, as noted there.
- `@depth` (1000 ms): the 100 ms diffs of one exchange second merged (last quantity per price wins).
- `@depth<N>[@100ms]`: the top N of the server's book after each diff tick, `lastUpdateId` = the diff's `u`
  (unverified equivalence, research §1.2).
"""

from __future__ import annotations

import json
from decimal import Decimal

from lake_pipeline.sim.replay_book import DepthDiff, ReplayBook

_COMPACT = (",", ":")


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=_COMPACT)


class AggTradeBuilder:
    """Groups consecutive trades of one taker order into aggTrade payloads, emitted when the group closes."""

    def __init__(self) -> None:
        self._group: list[dict] = []
        self._next_id = 1

    def add(self, trade: dict) -> str | None:
        """Feed one `@trade` payload; returns the finished aggTrade payload of the previous group, if it closed."""
        done = None
        if self._group and not self._same_order(self._group[-1], trade):
            done = self.flush()
        self._group.append(trade)
        return done

    @staticmethod
    def _same_order(a: dict, b: dict) -> bool:
        return a["T"] == b["T"] and a["p"] == b["p"] and a["m"] == b["m"]

    def flush(self) -> str | None:
        if not self._group:
            return None
        g, self._group = self._group, []
        first, last = g[0], g[-1]
        places = len(first["q"].partition(".")[2])
        qty = sum((Decimal(t["q"]) for t in g), Decimal(0))
        payload = {"e": "aggTrade", "E": last["E"], "s": first["s"], "a": self._next_id, "p": first["p"],
                   "q": f"{qty:.{places}f}", "f": first["t"], "l": last["t"], "T": first["T"], "m": first["m"],
                   "M": True}
        self._next_id += 1
        return _dumps(payload)


class SecondDiffMerger:
    """Merges 100 ms diffs into 1000 ms ones by exchange second; emits a window when the next one starts."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._window = -1
        self._first: DepthDiff | None = None
        self._last: DepthDiff | None = None
        self._bids: dict[str, str] = {}
        self._asks: dict[str, str] = {}

    def add(self, diff: DepthDiff) -> str | None:
        window = diff.event_ms // 1000
        done = self.flush() if self._first is not None and window != self._window else None
        if self._first is None:
            self._first, self._window = diff, window
        self._last = diff
        self._bids.update((p, q) for p, q, *_ in diff.bids)
        self._asks.update((p, q) for p, q, *_ in diff.asks)
        return done

    def flush(self) -> str | None:
        if self._first is None or self._last is None:
            return None
        payload = {"e": "depthUpdate", "E": self._last.event_ms, "s": self.symbol, "U": self._first.first_id,
                   "u": self._last.last_id,
                   "b": sorted(map(list, self._bids.items()), key=lambda pq: -float(pq[0])),
                   "a": sorted(map(list, self._asks.items()), key=lambda pq: float(pq[0]))}
        self._first = self._last = None
        self._bids, self._asks = {}, {}
        return _dumps(payload)

    @property
    def last_id(self) -> int:
        return self._last.last_id if self._last else 0


def partial_depth(book: ReplayBook, levels: int) -> str:
    """`@depth<N>` payload from the current book (lastUpdateId = the book's id)."""
    return book.snapshot_body(levels)


_TIME_FIELDS = ("E", "T")


def to_microseconds(payload_json: str) -> str:
    """The payload with its time fields in microseconds (`timeUnit=MICROSECOND`)."""
    data = json.loads(payload_json)
    if isinstance(data, dict):
        for k in _TIME_FIELDS:
            if isinstance(data.get(k), int):
                data[k] *= 1000
    return _dumps(data)
