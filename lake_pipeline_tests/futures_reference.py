"""An independent USD-M book for tests: the official futures rules over a dict of Decimal levels, no numba engine.

It replays the lines a capture stored (diffs, REST snapshots and bookTickers in arrival order) and says, at every
update-aligned checkpoint (a bookTicker whose `u` equals the `u` of an applied diff, whichever arrived first), whether
its best bid/ask (price and quantity) equals the book. The capture's live BookTracker must agree with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class Checkpoints:
    checked: int = 0
    matched: int = 0
    resyncs: int = 0
    mismatches: list[int] = field(default_factory=list)  # bookTicker u


class FuturesReference:
    """Feed `line(text)` in arrival order; read `checkpoints`."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, str] = {}
        self.asks: dict[Decimal, str] = {}
        self.live = False
        self.first = False  # live on a snapshot label, no diff applied yet
        self.last_u = 0
        self.buffer: list[dict] = []
        self.pending: dict[int, dict] = {}  # bookTickers waiting for the diff ending at their u
        self.checkpoints = Checkpoints()

    def line(self, text: str) -> None:
        if text.startswith('{"lastUpdateId"'):
            self._snapshot(json.loads(text))
            return
        if not text.startswith('{"stream"'):
            return
        msg = json.loads(text)
        stream, data = msg["stream"], msg["data"]
        if "@depth" in stream:
            self._diff(data)
        elif stream.endswith("@bookTicker"):
            u = data["u"]
            if self.live and not self.first and u == self.last_u:
                self._check(data)
            elif not self.live or u > self.last_u:
                self.pending[u] = data

    def _snapshot(self, body: dict) -> None:
        if self.live:
            return
        last = body["lastUpdateId"]
        rest = [d for d in self.buffer if d["u"] >= last]
        if rest and not (rest[0]["U"] <= last <= rest[0]["u"] or rest[0]["pu"] == last):
            self.buffer = rest  # older than the buffer: the capture asks again
            return
        self.bids = {Decimal(p): q for p, q in body["bids"] if Decimal(q)}
        self.asks = {Decimal(p): q for p, q in body["asks"] if Decimal(q)}
        self.live, self.first, self.last_u, self.buffer = True, True, last, []
        for d in rest:
            self._diff(d)

    def _diff(self, d: dict) -> None:
        if not self.live:
            self.buffer.append(d)
            return
        if d["u"] < self.last_u or (d["u"] == self.last_u and not self.first):
            return  # stale
        ok = (d["U"] <= self.last_u <= d["u"] or d["pu"] == self.last_u) if self.first else d["pu"] == self.last_u
        if not ok:
            self.live, self.buffer = False, [d]
            self.checkpoints.resyncs += 1
            return
        for side, levels in ((self.bids, d["b"]), (self.asks, d["a"])):
            for p, q in levels:
                if Decimal(q):
                    side[Decimal(p)] = q
                else:
                    side.pop(Decimal(p), None)
        self.first, self.last_u = False, d["u"]
        for u in [u for u in self.pending if u <= d["u"]]:
            ticker = self.pending.pop(u)
            if u == d["u"]:
                self._check(ticker)

    def _check(self, ticker: dict) -> None:
        bid, ask = max(self.bids), min(self.asks)
        got = (bid, Decimal(self.bids[bid]), ask, Decimal(self.asks[ask]))
        want = (Decimal(ticker["b"]), Decimal(ticker["B"]), Decimal(ticker["a"]), Decimal(ticker["A"]))
        self.checkpoints.checked += 1
        if got == want:
            self.checkpoints.matched += 1
        else:
            self.checkpoints.mismatches.append(ticker["u"])
