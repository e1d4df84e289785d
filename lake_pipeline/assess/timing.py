"""Time columns: is origin_time there and trustworthy, how late does the capture see events, do times go backwards.

* origin_time availability is counted on raw ROWS (streaming): null, `<= 0` (the documented "missing" encodings),
  exactly on the ms grid, float-quantisation artefacts (within 1 µs of a ms but not on it: cryptofeed's float
  seconds, e.g. `…032999936`), genuine sub-ms values, and equal to received_time (a collector that copied its own
  clock into origin_time would look like that).
* latency and monotonicity are per EVENT (a delta message is one event).
"""

from __future__ import annotations

import polars as pl

from lake_pipeline.assess.inputs import NS, ROW, STREAMING, TableInput, raw_ns

MS = 1_000_000
ARTEFACT_NS = 1_000
HOURS = 24


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def origin_availability(t: TableInput) -> dict:
    """Counts over every row of the table, in one streaming pass."""
    o, r = pl.col("origin_time"), pl.col("received_time")
    sub = o % MS
    dist = pl.min_horizontal(sub, MS - sub)
    stats = (
        t.scan(lambda f: [raw_ns(f, "origin_time"), raw_ns(f, "received_time")])
        .select(
            rows=pl.len(),
            null=o.is_null().sum(),
            non_positive=(o <= 0).sum(),
            exact_ms=((o > 0) & (sub == 0)).sum(),
            float_artefact=((o > 0) & (sub != 0) & (dist <= ARTEFACT_NS)).sum(),
            sub_ms=((o > 0) & (dist > ARTEFACT_NS)).sum(),
            equal_received=((o > 0) & (o == r)).sum(),
        )
        .collect(engine=STREAMING)
        .row(0, named=True)
    )
    stats = {k: int(v) for k, v in stats.items()}
    present = stats["rows"] - stats["null"] - stats["non_positive"]
    return {
        **stats,
        "present": present,
        "present_share": _share(present, stats["rows"]),
        "float_artefact_share": _share(stats["float_artefact"], present),
        "equal_received_share": _share(stats["equal_received"], present),
    }


def _ms(ns: float | int | None) -> float | None:
    return None if ns is None else round(float(ns) / MS, 3)


def latency(events: pl.DataFrame) -> dict:
    """received − origin over events with an origin time, in ms: p1/p50/p99/max/min/mean and the share negative."""
    lat = events.filter(pl.col("origin_time").is_not_null()).select(
        (pl.col("received_time") - pl.col("origin_time")).alias("lat")
    )["lat"]
    if lat.is_empty():
        return {"n": 0}
    q = {f"p{int(p * 100)}": _ms(lat.quantile(p, "nearest")) for p in (0.01, 0.5, 0.99)}
    return {
        "n": lat.len(), **q, "max": _ms(lat.max()), "min": _ms(lat.min()), "mean": _ms(lat.mean()),
        "negative": int((lat < 0).sum()), "negative_share": _share(int((lat < 0).sum()), lat.len()),
    }


def _backwards(values: pl.DataFrame, col: str) -> dict:
    v = values.filter(pl.col(col).is_not_null()).select(ROW, col, pl.col(col).diff().alias("step"))
    bad = v.filter(pl.col("step") < 0)
    out = {"count": bad.height, "checked": v.height}
    if bad.height:
        worst = bad.sort("step").row(0, named=True)
        out["first_row"] = int(bad[ROW][0])
        out["largest_step_back_ms"] = _ms(-worst["step"])
    return out


def monotonicity(events: pl.DataFrame) -> dict:
    """Steps backwards between consecutive events in file order, for received_time and (present) origin_time."""
    return {"received_time": _backwards(events, "received_time"), "origin_time": _backwards(events, "origin_time")}


def per_hour(events: pl.DataFrame, day_start: int) -> list[dict]:
    """Events, rows and seconds-with-data for each UTC hour of the day (received_time)."""
    rel = pl.col("received_time") - day_start
    in_day = events.filter((rel >= 0) & (rel < HOURS * 3600 * NS))
    by_hour = (
        in_day.with_columns((rel // (3600 * NS)).cast(pl.Int32).alias("hour"), (rel // NS).alias("second"))
        .group_by("hour")
        .agg(pl.len().alias("events"), pl.col("rows").sum().cast(pl.Int64).alias("rows"),
             pl.col("second").n_unique().alias("seconds_with_data"))
    )
    found = {r["hour"]: r for r in by_hour.iter_rows(named=True)}
    out = []
    for h in range(HOURS):
        r = found.get(h, {"events": 0, "rows": 0, "seconds_with_data": 0})
        out.append({"hour": h, "events": int(r["events"]), "rows": int(r["rows"]),
                    "seconds_with_data": int(r["seconds_with_data"]),
                    "coverage": round(int(r["seconds_with_data"]) / 3600, 4)})
    return out


def time_range(events: pl.DataFrame) -> dict:
    def ends(col: str) -> tuple[int | None, int | None]:
        s = events[col].drop_nulls()
        return (int(s.min()), int(s.max())) if s.len() else (None, None)

    (r0, r1), (o0, o1) = ends("received_time"), ends("origin_time")
    return {"first_received_time": r0, "last_received_time": r1, "first_origin_time": o0, "last_origin_time": o1}
