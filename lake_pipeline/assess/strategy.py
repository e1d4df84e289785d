"""Which reconstruction strategy the evidence supports (DESIGN §5), with the reasons in plain words.

* `full_event_replay` needs deltas covering enough of the day and at least one valid (two-sided, uncrossed)
  snapshot to seed from. It orders each message by sequence_number and needs no origin_time.
* `snapshot_anchored` needs valid snapshots; used when the deltas are absent or too sparse.
* `origin_time_sort` is the fallback when there is no usable snapshot at all.

The event time is origin_time; a row without one uses its own received_time (row by row, exactly as reconstruct
does). The reasons say how many rows fall back. Data that reconstruct refuses (the value policy, lake/values.py,
checked by the same code in `value_checks`) gets a first reason saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

FULL, ANCHORED, SORT = "full_event_replay", "snapshot_anchored", "origin_time_sort"


@dataclass(frozen=True)
class StrategyThresholds:
    min_delta_coverage: float = 0.1
    """Share of the seconds that have snapshots which must also have delta messages. Low on purpose: the replay
    re-seeds from snapshots across delta holes, so even patchy deltas beat snapshots alone where they exist."""


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def recommend(report: dict, th: StrategyThresholds = StrategyThresholds()) -> tuple[str, list[str]]:
    """(strategy, reasons) from an assessment report's sections."""
    tables = report["tables"]
    reasons: list[str] = []
    checks = report.get("value_checks") or {"ok": True}
    if not checks["ok"]:
        reasons.append(f"WARNING: reconstruct will refuse this partition: {checks['error']}")
    for name, count in (checks.get("repairs") or {}).items():
        if count:
            reasons.append(f"{count:,} input rows repaired by reconstruct ({name.replace('_', ' ')})")
    deltas, book = report.get("book_delta_v2"), report.get("book")
    valid_snapshots = book["crossed"]["valid_rows"] if book else 0
    book_seconds = book["seconds_with_data"] if book else 0

    empty = [n for n, t in tables.items() if t["present"] and not t["rows"]]
    if empty:
        reasons.append(f"{', '.join(empty)}: present but without rows")
    origin = {n: t["origin_time"] for n, t in tables.items() if t["present"] and t["rows"]}
    fallback = {n: o["rows"] - o["present"] for n, o in origin.items() if o["rows"] - o["present"]}
    reasons.append("event time is origin_time (present on " + ", ".join(
        f"{n} {_pct(o['present_share'])}" for n, o in origin.items()) + ")" + (
        "; rows without it use their own received_time, row by row: "
        + ", ".join(f"{n} {k:,} row(s)" for n, k in fallback.items()) if fallback else ""))

    if deltas:
        coverage = deltas["seconds_with_data"] / book_seconds if book_seconds else None
        desc = (f"book_delta_v2 has {deltas['messages']:,} messages ({deltas['rows']:,} rows) with data in "
                f"{deltas['seconds_with_data']:,} s of the day ({_pct(deltas['coverage_of_day'])})")
    if deltas and valid_snapshots and coverage is not None and coverage >= th.min_delta_coverage:
        strategy = FULL
        reasons.append(f"{desc}, {_pct(min(coverage, 1.0))} of the seconds that have snapshots; "
                       f"{valid_snapshots:,} valid snapshots to seed and resynchronise from")
        reasons.append("deltas are replayed message by message in sequence_number order, which needs no origin_time")
        holes = deltas["time_holes"]
        if holes["count"]:
            reasons.append(f"{holes['count']} delta time hole(s) > {holes['threshold_s']:g} s "
                           f"({holes['total_s']:,.1f} s in all): re-seed from the next valid snapshot after each")
        inside = report.get("cross_table", {}).get("snapshot_vs_deltas", {}).get("snapshots_inside_delta_holes")
        if inside and inside["snapshots"]:
            longest = max(inside["largest"], key=lambda h: h["snapshot_span_s"])
            reasons.append(f"{inside['snapshots']:,} snapshots arrived inside {inside['holes']} delta hole(s) (longest: "
                           f"{longest['snapshot_span_s']:,.1f} s of snapshots from {longest['first_snapshot']}): "
                           "deltas are missing there, the book is anchored on those snapshots")
        dropped = report.get("cross_table", {}).get("snapshot_vs_deltas", {}).get("unmatched_outside_delta_holes", 0)
        if dropped:
            reasons.append(f"{dropped} snapshot sequence number(s) have no delta message outside any hole: "
                           "missing delta messages (stranded levels) — drift at the next snapshot must resync")
    elif valid_snapshots:
        strategy = ANCHORED
        if not deltas:
            reasons.append("no book_delta_v2 data for this partition: the book can only come from snapshots")
        elif coverage is None or coverage < th.min_delta_coverage:
            reasons.append(f"{desc}: only {_pct(coverage)} of the seconds that have snapshots "
                           f"(< {_pct(th.min_delta_coverage)}), too sparse for a replay")
        else:
            reasons.append(f"{desc}, but no valid snapshot to seed a replay from")
        reasons.append(f"{valid_snapshots:,} valid snapshots anchor the book; trades consume liquidity between them")
    else:
        strategy = SORT
        if not book:
            reasons.append("no book snapshots for this partition")
        else:
            reasons.append(f"none of the {book['crossed']['rows']:,} snapshots is valid (two-sided and uncrossed)")
        reasons.append("without a valid snapshot no book can be anchored: events are merged in time order only"
                       + (" (rows without origin_time by their received_time)" if fallback else ""))
    for name, t in tables.items():
        lat = t.get("latency_ms", {}) if t["present"] else {}
        if lat.get("n") and lat["negative_share"] > 0.01:
            reasons.append(
                f"{name}: received_time is before origin_time on {_pct(lat['negative_share'])} of events (median "
                f"{lat['p50']:,.1f} ms): the capture clock lags the exchange clock, so received_time only breaks ties")
    if book and book["crossed"]["crossed_rows"]:
        reasons.append(f"{book['crossed']['crossed_rows']:,} crossed snapshot rows are never used as seeds")
    return strategy, reasons
