"""Lake-side faults: what real Crypto Lake files suffer (research cryptolake.md §5), injected at known places.

The true market and the golden feed are never touched; only the lake view of a chunk is changed:

* `dropped-delta` — one delta message is lost. It is chosen at or after 20 % of the first hour among messages
  that delete the level that was the best bid/ask, such that (looking ahead in the same chunk) the opposite side
  then reaches that price before any later delta touches it: a delta-only replay keeps a stranded level that
  crosses the book.
* `crossed-snapshot` — three `book` rows (10 messages apart, from 40 % of the first hour) get a stale level one
  to five ticks through the best ask inserted as their best bid (the other bids shift down a level).
* `time-hole` — every delta message with exchange time in [60 % of the first hour, +30 s) is missing.
* `missing-hour` — the deltas of the run's second hour are missing (needs `hours >= 2`).

`trades` and `book` keep every row except the three corrupted `book` rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lake_pipeline.sim.engine import ASK0_COL as ASK0
from lake_pipeline.sim.engine import ChunkOutput
from lake_pipeline.sim.replay import mismatch_ranges as _ranges

FAULT_KINDS = ("dropped-delta", "time-hole", "crossed-snapshot", "missing-hour")
HOLE_MS = 30_000
HOUR_MS = 3_600_000
CROSSED_ROWS = 3
CROSSED_SPACING = 10
CROSS_LOOKAHEAD_MS = 60_000


class FaultError(ValueError):
    """A fault cannot be placed in the requested run."""


@dataclass
class FaultPlan:
    kinds: tuple[str, ...]
    start_ms: int
    end_ms: int
    records: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise FaultError(f"unknown fault(s) {sorted(unknown)}; choose from {', '.join(FAULT_KINDS)}")
        span = min(self.end_ms - self.start_ms, HOUR_MS)
        self.dropped_at_ms = self.start_ms + span // 5
        self.crossed_at_ms = self.start_ms + 2 * span // 5
        self.hole_ms = (self.start_ms + 3 * span // 5, self.start_ms + 3 * span // 5 + HOLE_MS)
        self.missing_ms = (self.start_ms + HOUR_MS, self.start_ms + 2 * HOUR_MS)
        if "time-hole" in self.kinds and self.hole_ms[1] + 10_000 > self.end_ms:
            raise FaultError(f"time-hole needs a longer run: the 30 s hole at {0.6 * span / 1000:.0f} s would end "
                             "less than 10 s before the end")
        if "missing-hour" in self.kinds and self.end_ms - self.start_ms < 2 * HOUR_MS:
            raise FaultError("missing-hour needs --hours >= 2 (the run's second hour is removed)")
        self._previous_bbo: np.ndarray | None = None

    def lake_view(self, chunk: ChunkOutput, lake_ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(`keep` mask over the chunk's delta messages, the `book` rows as the lake has them)."""
        keep = np.ones(chunk.n_messages, dtype=np.bool_)
        book = chunk.book
        e = chunk.msg_e_ms
        if "time-hole" in self.kinds:
            self._drop_range("time-hole", keep, e, self.hole_ms, chunk, lake_ts_ns)
        if "missing-hour" in self.kinds:
            self._drop_range("missing-hour", keep, e, self.missing_ms, chunk, lake_ts_ns)
        if "dropped-delta" in self.kinds and "dropped-delta" not in self.records:
            self._drop_one(keep, chunk, lake_ts_ns)
        if "crossed-snapshot" in self.kinds and "crossed-snapshot" not in self.records:
            book = self._cross_rows(chunk, lake_ts_ns)
        if chunk.n_messages:
            self._previous_bbo = chunk.book[-1].copy()
        return keep, book

    # -- faults ----------------------------------------------------------------------------------------------
    def _drop_range(self, kind: str, keep: np.ndarray, e: np.ndarray, window: tuple[int, int], chunk: ChunkOutput,
                    lake_ts_ns: np.ndarray) -> None:
        hit = (e >= window[0]) & (e < window[1])
        if not hit.any():
            return
        keep &= ~hit
        idx = np.flatnonzero(hit)
        rec = self.records.setdefault(kind, {
            "kind": kind, "window_exchange_ms": list(window), "messages_removed": 0, "rows_removed": 0,
            "first_sequence_number": int(chunk.msg_last_uid[idx[0]]), "first_ns": int(lake_ts_ns[idx[0]]),
        })
        starts = chunk.msg_row_start
        rec["messages_removed"] += int(len(idx))
        rec["rows_removed"] += int((chunk.msg_row_end[idx] - starts[idx]).sum())
        rec["last_sequence_number"] = int(chunk.msg_last_uid[idx[-1]])
        rec["last_ns"] = int(lake_ts_ns[idx[-1]])

    def _drop_one(self, keep: np.ndarray, chunk: ChunkOutput, lake_ts_ns: np.ndarray) -> None:
        e = chunk.msg_e_ms
        first = int(np.searchsorted(e, self.dropped_at_ms))
        if first >= chunk.n_messages:
            return
        starts = chunk.msg_row_start
        for i in range(max(first, 1 if self._previous_bbo is None else 0), chunk.n_messages):
            if not keep[i]:
                continue
            prev = chunk.book[i - 1] if i > 0 else self._previous_bbo
            lo, hi = starts[i], chunk.msg_row_end[i]
            for is_bid, price in ((False, int(prev[ASK0])), (True, int(prev[0]))):
                deleted = ((chunk.row_is_bid[lo:hi] == is_bid) & (chunk.row_price[lo:hi] == price)
                           & (chunk.row_size[lo:hi] == 0))
                if not deleted.any():
                    continue
                crossing = self._crossing(chunk, keep, i, is_bid, price)
                if crossing is None:
                    continue
                keep[i] = False
                self.records["dropped-delta"] = {
                    "kind": "dropped-delta", "sequence_number": int(chunk.msg_last_uid[i]),
                    "first_update_id": int(chunk.msg_first_uid[i]), "ns": int(lake_ts_ns[i]),
                    "rows_removed": int(hi - lo),
                    "stranded_level": {"side": "bid" if is_bid else "ask", "price_ticks": price,
                                       "size_lots": int(prev[1] if is_bid else prev[ASK0 + 1])},
                    "crossed_from_sequence_number": int(chunk.msg_last_uid[crossing]),
                    "crossed_from_ns": int(lake_ts_ns[crossing]),
                }
                return

    def _crossing(self, chunk: ChunkOutput, keep: np.ndarray, i: int, is_bid: bool, price: int) -> int | None:
        """First later kept message whose truth crosses the stranded level while no kept delta touched it."""
        e = chunk.msg_e_ms
        stop = int(np.searchsorted(e, e[i] + CROSS_LOOKAHEAD_MS))
        later = slice(i + 1, stop)
        crosses = (chunk.book[later, ASK0] <= price if is_bid else chunk.book[later, 0] >= price) & keep[later]
        if not crosses.any():
            return None
        j = i + 1 + int(np.argmax(crosses))
        starts = chunk.msg_row_start
        lo, hi = starts[i + 1], chunk.msg_row_end[j]
        row_kept = np.repeat(keep[i + 1:j + 1], chunk.msg_row_end[i + 1:j + 1] - starts[i + 1:j + 1])
        touched = (chunk.row_is_bid[lo:hi] == is_bid) & (chunk.row_price[lo:hi] == price) & row_kept
        return None if touched.any() else j

    def _cross_rows(self, chunk: ChunkOutput, lake_ts_ns: np.ndarray) -> np.ndarray:
        first = int(np.searchsorted(chunk.msg_e_ms, self.crossed_at_ms))
        rows = first + CROSSED_SPACING * np.arange(CROSSED_ROWS)
        if rows[-1] >= chunk.n_messages:
            return chunk.book
        book = chunk.book.copy()
        rng = np.random.default_rng(int(chunk.msg_last_uid[first]))
        corrupted = []
        for i in rows:
            through = int(rng.integers(1, 6))
            book[i, 2:ASK0] = chunk.book[i, 0:ASK0 - 2]
            book[i, 0] = chunk.book[i, ASK0] + through
            book[i, 1] = chunk.book[i, 1]
            corrupted.append({"sequence_number": int(chunk.msg_last_uid[i]), "ns": int(lake_ts_ns[i]),
                              "bid_0_price_ticks": int(book[i, 0]), "ask_0_price_ticks": int(book[i, ASK0])})
        self.records["crossed-snapshot"] = {"kind": "crossed-snapshot", "rows": corrupted}
        return book


MAX_LISTED = 10_000
"""Longest list of ranges / re-syncs written per fault (counts are always complete)."""
_MISMATCH_CAUSES = ("dropped-delta", "time-hole", "missing-hour")
_REASONS = {1: "gap", 2: "crossed"}


def _effect(kind: str, rec: dict) -> str:
    if kind == "dropped-delta":
        lvl = rec["stranded_level"]
        return (f"book_delta_v2 lacks the message with sequence_number {rec['sequence_number']} "
                f"({rec['rows_removed']} rows, among them the deletion of the best {lvl['side']} at "
                f"{lvl['price_ticks']} ticks). A delta-only replay keeps that level (stranded): its best {lvl['side']} "
                f"is wrong from the next message, and its book is crossed from sequence_number "
                f"{rec['crossed_from_sequence_number']} until it re-syncs from a book row; a replay that compares "
                f"every book row sees drift at the row with sequence_number {rec['sequence_number']}.")
    if kind in ("time-hole", "missing-hour"):
        return (f"no book_delta_v2 messages between {rec['first_ns']} and {rec['last_ns']} ns "
                f"({rec['messages_removed']} messages); book and trades are complete. The next delta message comes "
                "more than the gap threshold after the previous one: a replay must flag a gap there and re-sync from "
                "the book row with that message's sequence_number; until then its book is stale. Levels deeper than "
                "that row stay stale until touched.")
    return ("these book rows are crossed (bid_0_price >= ask_0_price): a stale bid level inserted through the best "
            "ask. They are not valid for seeding or re-sync; deltas and trades are unaffected.")


def fault_report(plan: FaultPlan, log: tuple[np.ndarray, ...]) -> list[dict]:
    """One entry per requested fault: what was done, where, and what the reference replay saw because of it."""
    seq, ns, ordinal, mismatch, reason = log
    causes = sorted((plan.records[k]["ns"] if k == "dropped-delta" else plan.records[k]["first_ns"], k)
                    for k in _MISMATCH_CAUSES if k in plan.records)
    owner = np.full(len(seq), -1)
    for j, (start, _) in enumerate(causes):
        owner[ns >= start] = j
    out = []
    for kind in plan.kinds:
        rec = plan.records.get(kind)
        if rec is None:
            out.append({"kind": kind, "injected": False, "why": "no suitable place in the simulated period"})
            continue
        entry = {"kind": kind, "injected": True, **rec, "expected_effect": _effect(kind, rec)}
        mine = np.zeros(len(seq), dtype=bool)
        for j, (_, k) in enumerate(causes):
            if k == kind:
                mine = owner == j
        mm = mine & mismatch
        ranges = _ranges(seq[mm], ns[mm], ordinal[mm])
        resync = np.flatnonzero(mine & (reason != 0))
        entry["reference_replay"] = {
            "mismatched_messages": int(mm.sum()),
            "mismatch_ranges": ranges[:MAX_LISTED],
            "mismatch_ranges_truncated": len(ranges) > MAX_LISTED,
            "resyncs": [{"sequence_number": int(seq[i]), "ns": int(ns[i]), "reason": _REASONS[int(reason[i])]}
                        for i in resync[:MAX_LISTED]],
        }
        if kind == "dropped-delta":
            last = int(ns[mm][-1]) if mm.any() else rec["crossed_from_ns"]
            entry["time_range_ns"] = [rec["ns"], max(last, rec["crossed_from_ns"])]
            entry["sequence_numbers"] = [rec["sequence_number"]]
        elif kind == "crossed-snapshot":
            entry["time_range_ns"] = [rec["rows"][0]["ns"], rec["rows"][-1]["ns"]]
            entry["sequence_numbers"] = [r["sequence_number"] for r in rec["rows"]]
        else:
            entry["time_range_ns"] = [rec["first_ns"], rec["last_ns"]]
            entry["sequence_numbers"] = {"first": rec["first_sequence_number"], "last": rec["last_sequence_number"],
                                         "messages": rec["messages_removed"]}
            gap = [r for r in entry["reference_replay"]["resyncs"] if r["reason"] == "gap"]
            entry["detected_at"] = gap[0] if gap else None
        out.append(entry)
    return out


def unattributed(plan: FaultPlan, log: tuple[np.ndarray, ...]) -> dict:
    """Reference-replay mismatches / re-syncs that precede every fault (there should be none)."""
    seq, ns, ordinal, mismatch, reason = log
    starts = [plan.records[k]["ns"] if k == "dropped-delta" else plan.records[k]["first_ns"]
              for k in _MISMATCH_CAUSES if k in plan.records]
    before = ns < min(starts) if starts else np.ones(len(seq), dtype=bool)
    hit = before & mismatch
    return {"mismatched_messages": int(hit.sum()), "resyncs": int((before & (reason != 0)).sum()),
            "mismatch_ranges": _ranges(seq[hit], ns[hit], ordinal[hit])[:MAX_LISTED]}
