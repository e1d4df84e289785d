"""Reference replay of the simulated lake tables: where a delta replay's BBO departs from the truth.

It turns "what a fault does" into exact, checkable facts for `faults.json` (and proves a fault-free run is
exactly replayable). The rules are deliberately simple and are written into `faults.json`:

1. seed the book from the first `book` row (the simulator's start-of-file scheme makes it complete);
2. apply each `book_delta_v2` message (absolute sizes, 0 deletes, deleting an absent level is a no-op);
3. compare the best bid/ask (price and size) with the truth of the same update id: a difference is a mismatch;
4. then, when the message came > `GAP_MS` after the previous one (a time hole) or the book is crossed, re-sync
   the price range of the `book` row with the same sequence number (drop replayed bids at or above its lowest bid
   and asks at or below its highest ask, insert its levels) — if that row is valid (two-sided, uncrossed).

Book rows are otherwise unused, so the crossed-snapshot fault leaves this replay untouched.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lake_pipeline.sim.engine import N_LEVELS, WINDOW

GAP_MS = 5_000
"""A time hole: the next delta message comes more than this after the previous one (normal spacing 100 ms)."""

R_BEST_BID, R_BEST_ASK, R_NLEV_BID, R_NLEV_ASK, R_LAST_MS, R_SEEDED, R_BASE = 0, 1, 2, 3, 4, 5, 6
N_REPLAY_STATE = 8

REASON_NONE, REASON_GAP, REASON_CROSSED = 0, 1, 2


@njit(cache=True)
def _set(side, i, q, st, qty):
    old = qty[side, i]
    if old == q:
        return
    qty[side, i] = q
    if old == 0:
        st[R_NLEV_BID + side] += 1
    elif q == 0:
        st[R_NLEV_BID + side] -= 1
    if side == 0:
        if q > 0 and i > st[R_BEST_BID]:
            st[R_BEST_BID] = i
        elif q == 0 and i == st[R_BEST_BID]:
            j = i - 1
            if st[R_NLEV_BID] == 0:
                j = -1
            else:
                while qty[0, j] == 0:
                    j -= 1
            st[R_BEST_BID] = j
    else:
        if q > 0 and i < st[R_BEST_ASK]:
            st[R_BEST_ASK] = i
        elif q == 0 and i == st[R_BEST_ASK]:
            j = i + 1
            if st[R_NLEV_ASK] == 0:
                j = WINDOW
            else:
                while qty[1, j] == 0:
                    j += 1
            st[R_BEST_ASK] = j


@njit(cache=True)
def _row_valid(row) -> bool:
    return row[0] > 0 and row[2 * N_LEVELS] > 0 and row[0] < row[2 * N_LEVELS]


@njit(cache=True)
def _resync(row, st, qty):
    """Replace the replayed book inside the price range of one top-20 row (deeper levels are kept)."""
    base = st[R_BASE]
    lowest_bid = -1
    highest_ask = -1
    for k in range(N_LEVELS):
        if row[2 * k] > 0:
            lowest_bid = row[2 * k] - base
        if row[2 * N_LEVELS + 2 * k] > 0:
            highest_ask = row[2 * N_LEVELS + 2 * k] - base
    while st[R_BEST_BID] >= lowest_bid:
        _set(0, st[R_BEST_BID], 0, st, qty)
    while st[R_BEST_ASK] <= highest_ask:
        _set(1, st[R_BEST_ASK], 0, st, qty)
    for k in range(N_LEVELS):
        if row[2 * k] > 0:
            _set(0, row[2 * k] - base, row[2 * k + 1], st, qty)
        if row[2 * N_LEVELS + 2 * k] > 0:
            _set(1, row[2 * N_LEVELS + 2 * k] - base, row[2 * N_LEVELS + 2 * k + 1], st, qty)


@njit(cache=True)
def replay_chunk(st, qty, e_ms, keep, row_end, row_is_bid, row_price, row_size, lake_book, truth_book,
                 mismatch, reason):
    """Replay one chunk of messages; `mismatch[i]` / `reason[i]` are set for kept messages."""
    base = st[R_BASE]
    start = 0
    for i in range(e_ms.shape[0]):
        end = row_end[i]
        if st[R_SEEDED] == 0:
            if _row_valid(lake_book[i]):
                _resync(lake_book[i], st, qty)
                st[R_SEEDED] = 1
                st[R_LAST_MS] = e_ms[i]
            start = end
            continue
        if not keep[i]:
            start = end
            continue
        for r in range(start, end):
            _set(0 if row_is_bid[r] else 1, row_price[r] - base, row_size[r], st, qty)
        start = end
        bb = st[R_BEST_BID]
        ba = st[R_BEST_ASK]
        bpx = bb + base if bb >= 0 else 0
        bq = qty[0, bb] if bb >= 0 else 0
        apx = ba + base if ba < WINDOW else 0
        aq = qty[1, ba] if ba < WINDOW else 0
        t = truth_book[i]
        mismatch[i] = bpx != t[0] or bq != t[1] or apx != t[2 * N_LEVELS] or aq != t[2 * N_LEVELS + 1]
        why = REASON_NONE
        if e_ms[i] - st[R_LAST_MS] > GAP_MS:
            why = REASON_GAP
        elif bb >= 0 and ba < WINDOW and bb >= ba:
            why = REASON_CROSSED
        if why != REASON_NONE and _row_valid(lake_book[i]):
            _resync(lake_book[i], st, qty)
            reason[i] = why
        st[R_LAST_MS] = e_ms[i]


class ReferenceReplay:
    """Holds the replayed book across chunks (same price window as the market)."""

    def __init__(self, base: int) -> None:
        self.st = np.zeros(N_REPLAY_STATE, dtype=np.int64)
        self.st[R_BEST_BID] = -1
        self.st[R_BEST_ASK] = WINDOW
        self.st[R_BASE] = base
        self.qty = np.zeros((2, WINDOW), dtype=np.int64)

    def run(self, e_ms: np.ndarray, keep: np.ndarray, row_end: np.ndarray, row_is_bid: np.ndarray,
            row_price: np.ndarray, row_size: np.ndarray, lake_book: np.ndarray,
            truth_book: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mismatch flag, re-sync reason) per message of the chunk (False / 0 where not kept)."""
        n = len(e_ms)
        mismatch = np.zeros(n, dtype=np.bool_)
        reason = np.zeros(n, dtype=np.int8)
        replay_chunk(self.st, self.qty, e_ms, keep, row_end, row_is_bid, row_price, row_size, lake_book,
                     truth_book, mismatch, reason)
        return mismatch, reason


class ReplayLog:
    """Messages where the reference replay mismatched or re-synced, with their lake ordinal (kept messages)."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []
        self.kept_messages = 0

    def add(self, seq: np.ndarray, ns: np.ndarray, keep: np.ndarray, mismatch: np.ndarray, reason: np.ndarray) -> None:
        ordinal = self.kept_messages + np.cumsum(keep) - 1
        self.kept_messages += int(keep.sum())
        hit = keep & (mismatch | (reason != REASON_NONE))
        self._parts.append((seq[hit], ns[hit], ordinal[hit], mismatch[hit], reason[hit]))

    def arrays(self) -> tuple[np.ndarray, ...]:
        if not self._parts:
            return tuple(np.zeros(0, dtype=t) for t in (np.int64, np.int64, np.int64, np.bool_, np.int8))
        return tuple(np.concatenate(col) for col in zip(*self._parts, strict=True))


def mismatch_ranges(seq: np.ndarray, ns: np.ndarray, ordinal: np.ndarray) -> list[list[int]]:
    """Runs of consecutive mismatching lake messages: [first_seq, last_seq, first_ns, last_ns, messages]."""
    if len(seq) == 0:
        return []
    breaks = np.flatnonzero(np.diff(ordinal) != 1) + 1
    lo = np.concatenate(([0], breaks))
    hi = np.concatenate((breaks, [len(seq)])) - 1
    return [[int(seq[a]), int(seq[b]), int(ns[a]), int(ns[b]), int(b - a + 1)] for a, b in zip(lo, hi, strict=True)]
