"""Streams the recordings do not contain, derived from the ones they do (research binance.md §4–§5).

- `@aggTrade`: consecutive trades of one taker order (same `T`, `p`, `m`) grouped; approximate, as noted there.
  USD-M aggTrades have no `M` field.
- slower diff streams (spot `@depth` 1000 ms from the recorded 100 ms; USD-M `@depth` 250 ms, `@500ms`, `@100ms`
  from the recorded `@0ms`): the recorded diffs of one exchange-time window merged (last quantity per price wins;
  `U` of the first, `u`, `E`, `T` of the last, USD-M `pu` of the first, so the `pu` chain of the merged stream holds).
- `@depth<N>[@speed]`: the top N of the server's book at each window's end; spot `{"lastUpdateId":…}` (unverified
  equivalence, research §1.2), USD-M a `depthUpdate` with `E`, `T`, `U`, `u`, `pu` of the window (research §1.2).
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

    def __init__(self, futures: bool = False) -> None:
        self._group: list[dict] = []
        self._next_id = 1
        self._futures = futures

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
                   "q": f"{qty:.{places}f}", "f": first["t"], "l": last["t"], "T": first["T"], "m": first["m"]}
        if not self._futures:
            payload["M"] = True
        self._next_id += 1
        return _dumps(payload)


class WindowDiffMerger:
    """Merges recorded diffs into the diffs of a slower stream by exchange-time window (`window_ms`); `add` returns
    the merged diff of a window once the next window starts."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = max(1, window_ms)
        self._window = -1
        self._first: DepthDiff | None = None
        self._last: DepthDiff | None = None
        self._bids: dict[str, str] = {}
        self._asks: dict[str, str] = {}

    def add(self, diff: DepthDiff) -> DepthDiff | None:
        window = diff.event_ms // self.window_ms
        done = self.flush() if self._first is not None and window != self._window else None
        if self._first is None:
            self._first, self._window = diff, window
        self._last = diff
        self._bids.update((p, q) for p, q, *_ in diff.bids)
        self._asks.update((p, q) for p, q, *_ in diff.asks)
        return done

    def flush(self) -> DepthDiff | None:
        if self._first is None or self._last is None:
            return None
        first, last = self._first, self._last
        merged = DepthDiff(first.first_id, last.last_id, last.event_ms,
                           sorted(map(list, self._bids.items()), key=lambda pq: -float(pq[0])),
                           sorted(map(list, self._asks.items()), key=lambda pq: float(pq[0])),
                           first.prev_id, last.transact_ms)
        self._first = self._last = None
        self._bids, self._asks = {}, {}
        return merged


def diff_payload(diff: DepthDiff, symbol: str) -> str:
    """A `depthUpdate` payload: spot `e,E,s,U,u,b,a`; USD-M (a diff with `pu`) `e,E,T,s,U,u,pu,b,a`."""
    if diff.prev_id is None:
        payload = {"e": "depthUpdate", "E": diff.event_ms, "s": symbol, "U": diff.first_id, "u": diff.last_id}
    else:
        payload = {"e": "depthUpdate", "E": diff.event_ms, "T": diff.transact_ms, "s": symbol, "U": diff.first_id,
                   "u": diff.last_id, "pu": diff.prev_id}
    return _dumps(payload | {"b": [list(lv[:2]) for lv in diff.bids], "a": [list(lv[:2]) for lv in diff.asks]})


def partial_depth(book: ReplayBook, levels: int, window: DepthDiff | None = None, symbol: str = "") -> str:
    """`@depth<N>` payload from the current book: spot `{"lastUpdateId":…}` (the book's id); USD-M (`window` has a
    `pu`) a `depthUpdate` of the top N carrying the window's ids and times."""
    if window is None or window.prev_id is None:
        return book.snapshot_body(levels)
    bids, asks = book.top(levels)
    return diff_payload(DepthDiff(window.first_id, window.last_id, window.event_ms, bids, asks, window.prev_id,
                                  window.transact_ms), symbol)


_TIME_FIELDS = ("E", "T")


def to_microseconds(payload_json: str) -> str:
    """The payload with its time fields in microseconds (`timeUnit=MICROSECOND`)."""
    data = json.loads(payload_json)
    if isinstance(data, dict):
        for k in _TIME_FIELDS:
            if isinstance(data.get(k), int):
                data[k] *= 1000
    return _dumps(data)
