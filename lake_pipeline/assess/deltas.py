"""book_delta_v2 availability and completeness, over MESSAGES (runs of rows sharing received_time + sequence_number).

Sequence steps are taken between consecutive messages in file order — never between rows, which share the
message's number (peer_lessons.md trap 2). On Binance `sequence_number` is the message's last update id `u`, so a
step is the number of book updates in the next message: positive and irregular; zero or negative is an anomaly.
"""

from __future__ import annotations

import polars as pl

from lake_pipeline.assess.inputs import NS, ROW
from lake_pipeline.assess.timing import _ms, _share
from lake_pipeline.lake.validate import iso_ns

DAY_NS = 86_400 * NS
STEP_EDGES = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096)
"""Histogram of sequence steps: <= 0, then (a, b] for consecutive edges, then > 4096."""


def time_holes(times: pl.Series, day_start: int, threshold_s: float, limit: int = 20) -> dict:
    """Gaps longer than `threshold_s` between consecutive event times (sorted), including the day's start and end.

    Returned holes are the `limit` longest, in time order; `count` and `total_s` cover all of them.
    """
    t = times.drop_nulls().sort()
    edges = pl.Series([day_start], dtype=pl.Int64).append(t.cast(pl.Int64)).append(
        pl.Series([day_start + DAY_NS], dtype=pl.Int64))
    frame = pl.DataFrame({"start": edges[:-1], "end": edges[1:]}).with_columns(
        (pl.col("end") - pl.col("start")).alias("gap"))
    holes = frame.filter(pl.col("gap") > int(threshold_s * NS))
    longest = holes.sort("gap", descending=True).head(limit).sort("start")
    return {
        "threshold_s": threshold_s,
        "count": holes.height,
        "total_s": round(int(holes["gap"].sum() or 0) / NS, 3),
        "longest": [
            {"start": iso_ns(r["start"]), "end": iso_ns(r["end"]), "duration_s": round(r["gap"] / NS, 3),
             "at_day_start": r["start"] == day_start, "at_day_end": r["end"] == day_start + DAY_NS}
            for r in longest.iter_rows(named=True)
        ],
        "_intervals": holes.select("start", "end"),  # for cross-table checks; dropped from the report
    }


def _distribution(s: pl.Series) -> dict:
    if s.is_empty():
        return {"n": 0}
    return {"n": s.len(), "mean": round(float(s.mean()), 3), "p50": s.quantile(0.5, "nearest"),
            "p90": s.quantile(0.9, "nearest"), "p99": s.quantile(0.99, "nearest"), "max": s.max(), "min": s.min()}


def sequence_steps(msgs: pl.DataFrame, limit: int = 10) -> dict:
    """Steps of sequence_number between consecutive messages in file order."""
    steps = msgs.select(ROW, "received_time", "seq", pl.col("seq").diff().alias("step")).slice(1)
    s = steps["step"]
    back = steps.filter(pl.col("step") < 0)
    hist = [{"bucket": "<= 0", "count": int((s <= 0).sum())}]
    for lo, hi in zip(STEP_EDGES, STEP_EDGES[1:]):
        hist.append({"bucket": f"({lo}, {hi}]", "count": int(((s > lo) & (s <= hi)).sum())})
    hist.append({"bucket": f"> {STEP_EDGES[-1]}", "count": int((s > STEP_EDGES[-1]).sum())})
    return {
        "steps": _distribution(s),
        "backwards": back.height,
        "zero": int((s == 0).sum()),
        "backwards_examples": [
            {"row": r[ROW], "received_time": iso_ns(r["received_time"]), "sequence_number": r["seq"],
             "step": r["step"]} for r in back.head(limit).iter_rows(named=True)
        ],
        "histogram": hist,
    }


def delta_report(msgs: pl.DataFrame, rows: int, day_start: int, threshold_s: float) -> dict:
    """Availability, per-second rate, holes, rows per message, sequence steps, message integrity."""
    n = msgs.height
    per_second = msgs.group_by((pl.col("received_time") // NS).alias("s")).agg(pl.len().alias("n"))["n"]
    covered_s = per_second.len()
    holes = time_holes(msgs["received_time"], day_start, threshold_s)
    non_contiguous = msgs.filter(pl.col("last_row") - pl.col(ROW) + 1 != pl.col("rows")).height
    mixed_origin = msgs.filter(pl.col("origin_max") != pl.col("origin_time")).height
    return {
        "messages": n,
        "rows": rows,
        "rows_per_message": _distribution(msgs["rows"].cast(pl.Int64)),
        "zero_size_share": _share(int(msgs["zero_rows"].sum()), rows),
        "messages_per_s": {
            "over_day": round(n / 86_400, 3),
            "over_seconds_with_data": round(n / covered_s, 3) if covered_s else None,
            "max_in_one_second": int(per_second.max()) if covered_s else 0,
        },
        "seconds_with_data": covered_s,
        "coverage_of_day": round(covered_s / 86_400, 6),
        "time_holes": holes,
        "sequence": sequence_steps(msgs),
        "message_integrity": {
            "non_contiguous_messages": non_contiguous,
            "messages_with_differing_origin_times": mixed_origin,
        },
    }


def interval_report(times: pl.Series, day_start: int, threshold_s: float) -> dict:
    """Cadence of an event stream: events/s and the distribution of intervals (ms) in time order."""
    t = times.drop_nulls().sort()
    gaps = t.diff().slice(1)
    out = {"events_per_s_over_day": round(t.len() / 86_400, 3), "seconds_with_data": (t // NS).n_unique()}
    if gaps.len():
        out["interval_ms"] = {"p50": _ms(gaps.quantile(0.5, "nearest")), "p99": _ms(gaps.quantile(0.99, "nearest")),
                              "max": _ms(gaps.max())}
    out["time_holes"] = time_holes(t, day_start, threshold_s)
    return out
