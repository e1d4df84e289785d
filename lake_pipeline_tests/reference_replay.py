"""An independent, deliberately plain Python replay (dict books, one global sort) for testing the kernel.

It implements DESIGN §5 and the ordering/tie rules documented in `lake_pipeline.reconstruct.kernel` from scratch:
no numba, no shared helpers beyond the schema constants. Slow (µs per event) and only for small inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lake_pipeline.schemas import FLAG_CROSSED, FLAG_GAP, FLAG_TRADE_CONSUMED, FLAG_UNINITIALISED, N_LEVELS

NULL = None
GRID_NS = 100_000_000


@dataclass
class Trade:
    time: int
    recv: int
    trade_id: int
    is_buy: bool
    price: int
    qty: int


@dataclass
class Delta:
    time: int
    recv: int
    seq: int | None
    is_bid: bool
    price: int
    size: int


@dataclass
class Snapshot:
    time: int
    recv: int
    seq: int | None
    bids: list[tuple[int, int]]  # best first, present levels only
    asks: list[tuple[int, int]]


@dataclass
class Row:
    time: int
    type: str
    seq: int | None
    trade_id: int | None
    side: str | None
    price: int | None
    qty: int | None
    bbo: tuple[int | None, int | None, int | None, int | None]
    flags: int
    drift: int | None


@dataclass
class Result:
    rows: list[Row] = field(default_factory=list)
    states: list[tuple[int, list[tuple[int, int]], list[tuple[int, int]]]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _seq_key(seq):
    return float("inf") if seq is None else seq


class ReferenceReplay:
    def __init__(self, strategy: str, day_start: int, day_end: int, hole_ns: int = 5_000_000_000,
                 reseed_ns: int = 2_000_000_000) -> None:
        self.strategy = strategy
        self.day_start, self.day_end = day_start, day_end
        self.hole_ns, self.reseed_ns = hole_ns, reseed_ns
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.init = False
        self.last_seq = None
        self.last_msg_time = None
        self.last_snap_time = None
        self.crossed_since = None
        self.gap_pending = False
        self.reseed_pending = False
        self.prov: dict[tuple[bool, int], int] = {}  # level -> its size before the first trade reduced it
        self.history: list[tuple[int | None, bool, int, int]] = []
        self.next_grid = day_start
        self.out = Result()
        self.c: dict[str, int] = {}

    # ---- book ----
    def _side(self, is_bid):
        return self.bids if is_bid else self.asks

    def _set(self, is_bid, price, size):
        side = self._side(is_bid)
        if size > 0:
            side[price] = size
        else:
            side.pop(price, None)

    def _best(self, is_bid):
        side = self._side(is_bid)
        if not side:
            return None, None
        p = max(side) if is_bid else min(side)
        return p, side[p]

    def _crossed(self):
        return bool(self.bids) and bool(self.asks) and max(self.bids) >= min(self.asks)

    def _levels(self, is_bid, limit=None):
        side = self._side(is_bid)
        prices = sorted(side, reverse=is_bid)
        if limit is not None:
            prices = [p for p in prices if (p >= limit if is_bid else p <= limit)]
        return [(p, side[p]) for p in prices]

    def _count(self, name, k=1):
        self.c[name] = self.c.get(name, 0) + k

    # ---- output ----
    def _flags(self, gap):
        f = 0
        if not self.init:
            f |= FLAG_UNINITIALISED
        if self._crossed():
            f |= FLAG_CROSSED
        if gap:
            f |= FLAG_GAP
        if self.prov:
            f |= FLAG_TRADE_CONSUMED
        return f

    def _bbo(self):
        bp, bq = self._best(True)
        ap, aq = self._best(False)
        return bp, bq, ap, aq

    def _state(self, t):
        self.out.states.append((t, self._levels(True)[:N_LEVELS], self._levels(False)[:N_LEVELS]))

    def _grid(self, until):
        end = min(until, self.day_end)
        while self.next_grid < end:
            if self.init:
                self._state(self.next_grid)
            self.next_grid += GRID_NS

    def _track_cross(self, t):
        if self._crossed():
            if self.crossed_since is None:
                self.crossed_since = t
                if self.init and self.strategy == "full_event_replay":
                    self._count("gaps_crossed")
                    self.gap_pending = True
                    return True
            return False
        self.crossed_since = None
        return False

    # ---- events ----
    def trade(self, e: Trade):
        if self.init and self.strategy != "origin_time_sort":
            is_bid = not e.is_buy
            cur = self._side(is_bid).get(e.price, 0)
            if cur > 0:
                self._set(is_bid, e.price, max(cur - e.qty, 0))
                self.prov.setdefault((is_bid, e.price), cur)
                self._track_cross(e.time)  # a consumed level can only uncross the book
        self.out.rows.append(Row(e.time, "TRADE", None, e.trade_id, "buy" if e.is_buy else "sell", e.price, e.qty,
                                 self._bbo(), self._flags(False), None))

    def message(self, rows: list[Delta]):
        t, seq = rows[0].time, rows[0].seq
        gap = False
        if self.strategy == "full_event_replay":
            if self.init:
                if self.last_msg_time is not None and t - self.last_msg_time > self.hole_ns:
                    self._count("gaps_time_hole")
                    self.reseed_pending = True
                    gap = True
                if seq is not None and self.last_seq is not None and seq < self.last_seq:
                    self._count("gaps_sequence_backwards")
                    self.reseed_pending = True
                    gap = True
                for r in rows:
                    self._set(r.is_bid, r.price, r.size)
                    self.prov.pop((r.is_bid, r.price), None)
                    self.history.append((seq, r.is_bid, r.price, r.size))
                for (is_bid, p), before in self.prov.items():  # not reported by the message: not changed yet
                    self._set(is_bid, p, before)
                self.prov = {}
                if seq is not None:
                    self.last_seq = seq
                if self._track_cross(t):
                    gap = True
                if gap:
                    self.gap_pending = True
            self.last_msg_time = t
        bbo, flags = self._bbo(), self._flags(gap)
        for r in rows:
            self.out.rows.append(Row(t, "BOOK_DELTA", seq, None, "bid" if r.is_bid else "ask", r.price, r.size, bbo,
                                     flags, None))

    @staticmethod
    def _valid(s: Snapshot):
        if not s.bids or not s.asks or s.bids[0][0] >= s.asks[0][0]:
            return False
        bp = [p for p, _ in s.bids]
        ap = [p for p, _ in s.asks]
        return bp == sorted(set(bp), reverse=True) and ap == sorted(set(ap))

    @staticmethod
    def _limits(s: Snapshot):
        lb = s.bids[-1][0] if len(s.bids) == N_LEVELS else None
        la = s.asks[-1][0] if len(s.asks) == N_LEVELS else None
        return lb, la

    def _diff(self, a, b):
        da, db = dict(a), dict(b)
        return sum(1 for p in set(da) | set(db) if da.get(p) != db.get(p))

    def _drift(self, s: Snapshot):
        lb, la = self._limits(s)
        return self._diff(self._levels(True, lb), s.bids) + self._diff(self._levels(False, la), s.asks)

    def _load(self, s: Snapshot):
        self.bids = dict(s.bids)
        self.asks = dict(s.asks)
        self.prov = {}

    def _resync(self, s: Snapshot):
        lb, la = self._limits(s)
        before = (self._levels(True, lb), self._levels(False, la))
        for is_bid, limit, levels in ((True, lb, s.bids), (False, la, s.asks)):
            side = self._side(is_bid)
            for p in [p for p, _ in self._levels(is_bid, limit)]:
                del side[p]
            side.update(dict(levels))
            self.prov = {(b, p): v for (b, p), v in self.prov.items()
                         if b != is_bid or (limit is not None and (p < limit if is_bid else p > limit))}
        if s.seq is not None and self.last_seq is not None and s.seq < self.last_seq:
            newer = []
            for h in reversed(self.history):
                if h[0] is None or h[0] <= s.seq:
                    break
                newer.append(h)
            else:
                self._count("history_too_short")
                newer = None
            if newer:
                for _, is_bid, p, size in reversed(newer):
                    self._set(is_bid, p, size)
                    self.prov.pop((is_bid, p), None)
                return self._diff(before[0], self._levels(True, lb)) + self._diff(before[1], self._levels(False, la))
        return self._diff(before[0], s.bids) + self._diff(before[1], s.asks)

    def snapshot(self, s: Snapshot):
        t = s.time
        gap = False
        drift = None
        valid = self._valid(s)
        if self.strategy != "full_event_replay" and self.last_snap_time is not None and self.init \
                and t - self.last_snap_time > self.hole_ns:
            self._count("gaps_time_hole")
            gap = True
        self.last_snap_time = t
        if self.strategy == "full_event_replay":
            if not self.init:
                if valid:
                    self._load(s)
                    self.init = True
                    self.crossed_since = None
            elif not valid:
                self._count("gaps_invalid_snapshot")
                self.gap_pending = True
                gap = True
            else:
                if (self.crossed_since is not None and t - self.crossed_since > self.reseed_ns) or self.reseed_pending:
                    drift = self._drift(s)
                    self._load(s)
                    self._count("reseeds")
                    self.reseed_pending = False
                    gap = True
                else:
                    drift = self._resync(s)
                if drift > 0:
                    self._count("gaps_drift")
                    gap = True
                if self.gap_pending:
                    self._count("recoveries")
                    self.gap_pending = False
                    gap = True
        elif self.strategy == "snapshot_anchored":
            if valid:
                if self.init:
                    drift = self._drift(s)
                self._load(s)
                self.init = True
            elif self.init:
                self._count("gaps_invalid_snapshot")
                gap = True
        else:
            if s.bids or s.asks:
                if self.init:
                    drift = self._drift(s)
                self._load(s)
                self.init = True
        if self._track_cross(t):
            gap = True
        self.out.rows.append(Row(t, "BOOK_SNAPSHOT", s.seq, None, None, None, None, self._bbo(), self._flags(gap),
                                 drift))
        if self.init:
            self._state(t)

    def run(self, trades: list[Trade], deltas: list[Delta], snaps: list[Snapshot]) -> Result:
        # the value policy (lake/values.py): a delta row equal to the row before it in the file is dropped
        deltas = [d for i, d in enumerate(deltas) if i == 0 or d != deltas[i - 1]]
        keyed = [((e.time, 0, 0, 0, i), e) for i, e in enumerate(trades)]
        keyed += [((e.time, 1, _seq_key(e.seq), 0, i), e) for i, e in enumerate(deltas)]
        keyed += [((e.time, 1, _seq_key(e.seq), 1, i), e) for i, e in enumerate(snaps)]
        keyed.sort(key=lambda x: x[0])
        events = [e for _, e in keyed]
        i = 0
        last_t = None
        while i < len(events):
            e = events[i]
            self._grid(e.time)
            last_t = e.time
            if isinstance(e, Trade):
                self.trade(e)
                i += 1
            elif isinstance(e, Delta):
                j = i + 1
                while j < len(events) and isinstance(events[j], Delta) and events[j].time == e.time \
                        and events[j].seq == e.seq and events[j].recv == e.recv:
                    j += 1
                self.message(events[i:j])
                i = j
            else:
                self.snapshot(e)
                i += 1
        if last_t is not None:
            self._grid(last_t + 1)
        self.out.counts = dict(self.c)
        return self.out
