"""`book` snapshots (cadence, crossed rows) and the checks that need two tables at once.

Cross-table facts the reconstructor relies on:
* a Binance snapshot's sequence_number is the last update id of a depth message, so every snapshot should name a
  `book_delta_v2` message. A snapshot whose number has no delta message, outside any delta time hole, means that
  message is missing from the deltas (a dropped message: a stranded level in replay);
* a snapshot seen BEFORE the delta message it already contains is an ordering inversion between the tables;
* merged by origin_time, how often does received_time go backwards between events of different tables.
"""

from __future__ import annotations

import polars as pl

from lake_pipeline.assess.inputs import ROW
from lake_pipeline.assess.timing import _ms, _share
from lake_pipeline.lake.validate import iso_ns


def _present(price: str, size: str) -> pl.Expr:
    return pl.col(price).is_not_null() & ~pl.col(price).is_nan() & (pl.col(price) > 0) & (pl.col(size) > 0)


def crossed_report(book: pl.DataFrame, limit: int = 10) -> dict:
    """Rows whose best bid >= best ask (crossed: >, locked: ==) and rows missing a side."""
    two_sided = _present("bid_0_price", "bid_0_size") & _present("ask_0_price", "ask_0_size")
    flagged = book.with_columns(
        two_sided.alias("two_sided"),
        (two_sided & (pl.col("bid_0_price") > pl.col("ask_0_price"))).alias("crossed"),
        (two_sided & (pl.col("bid_0_price") == pl.col("ask_0_price"))).alias("locked"),
    )
    crossed = flagged.filter("crossed")
    runs = (
        flagged.select(ROW, "received_time", "crossed", (pl.col("crossed") != pl.col("crossed").shift()).cum_sum()
                       .alias("run"))
        .filter("crossed")
        .group_by("run")
        .agg(pl.len().alias("rows"), (pl.col("received_time").max() - pl.col("received_time").min()).alias("span"))
    )
    n = book.height
    valid = int((flagged["two_sided"] & ~flagged["crossed"] & ~flagged["locked"]).sum())
    return {
        "rows": n,
        "valid_rows": valid,
        "crossed_rows": crossed.height,
        "crossed_share": _share(crossed.height, n),
        "locked_rows": int(flagged["locked"].sum()),
        "one_sided_rows": n - int(flagged["two_sided"].sum()),
        "crossed_runs": runs.height,
        "longest_crossed_run": ({"rows": int(runs["rows"].max()), "span_ms": _ms(runs["span"].max())}
                                if runs.height else None),
        "crossed_examples": [
            {"row": r[ROW], "received_time": iso_ns(r["received_time"]), "sequence_number": r["seq"],
             "bid_0_price": r["bid_0_price"], "ask_0_price": r["ask_0_price"]}
            for r in crossed.head(limit).iter_rows(named=True)
        ],
    }


def _hole_of(times: pl.DataFrame, holes: pl.DataFrame) -> pl.Series:
    """Per row of `times` (column received_time): index of the hole (start, end) it falls strictly inside, else null."""
    if holes.is_empty():
        return pl.Series("hole", [None] * times.height, dtype=pl.UInt32)
    hit = times.select("received_time").with_row_index("_i").sort("received_time").join_asof(
        holes.with_row_index("hole").sort("start"), left_on="received_time", right_on="start", strategy="backward")
    strictly = (pl.col("received_time") > pl.col("start")) & (pl.col("received_time") < pl.col("end"))
    hit = hit.with_columns(pl.when(strictly).then(pl.col("hole")).alias("hole"))
    return hit.sort("_i")["hole"]


def _book_inside_holes(book: pl.DataFrame, holes: pl.DataFrame, limit: int) -> dict:
    """Snapshots that arrived while the deltas were silent: the book kept going, so deltas are missing there."""
    inside = (
        book.filter(pl.col("hole").is_not_null())
        .group_by("hole")
        .agg(pl.len().alias("rows"), pl.col("received_time").min().alias("first"),
             pl.col("received_time").max().alias("last"))
        .join(holes.with_row_index("hole"), on="hole")
        .sort("rows", descending=True)
    )
    return {
        "holes": inside.height,
        "snapshots": int(inside["rows"].sum() or 0),
        "largest": [
            {"hole_start": iso_ns(r["start"]), "hole_end": iso_ns(r["end"]), "snapshots": r["rows"],
             "first_snapshot": iso_ns(r["first"]), "last_snapshot": iso_ns(r["last"]),
             "snapshot_span_s": round((r["last"] - r["first"]) / 1e9, 3)}
            for r in inside.head(limit).sort("start").iter_rows(named=True)
        ],
    }


def snapshot_vs_deltas(book: pl.DataFrame, msgs: pl.DataFrame, delta_holes: pl.DataFrame, limit: int = 10) -> dict:
    """Do snapshot sequence numbers name delta messages; which do not (outside delta holes); order inversions;
    snapshots inside delta holes."""
    first_msg = msgs.group_by("seq").agg(pl.col("received_time").min().alias("msg_received"))
    joined = book.select(ROW, "received_time", "seq").join(first_msg, on="seq", how="left")
    joined = joined.with_columns(_hole_of(joined, delta_holes).alias("hole"))
    unmatched = joined.filter(pl.col("msg_received").is_null())
    outside = unmatched.filter(pl.col("hole").is_null())
    by_seq = msgs.select(pl.col("seq").alias("seq_key"), "seq").sort("seq_key")
    around = (
        outside.sort("seq")
        .join_asof(by_seq.rename({"seq": "prev_seq"}), left_on="seq", right_on="seq_key", strategy="backward")
        .drop("seq_key")
        .join_asof(by_seq.rename({"seq": "next_seq"}), left_on="seq", right_on="seq_key", strategy="forward")
        .sort(ROW)
    )
    matched = joined.filter(pl.col("msg_received").is_not_null())
    before = matched.filter(pl.col("received_time") < pl.col("msg_received"))
    return {
        "snapshots": book.height,
        "matched": matched.height,
        "matched_share": _share(matched.height, book.height),
        "unmatched": unmatched.height,
        "unmatched_in_delta_holes": unmatched.height - outside.height,
        "unmatched_outside_delta_holes": outside.height,
        "unmatched_examples": [
            {"row": r[ROW], "received_time": iso_ns(r["received_time"]), "sequence_number": r["seq"],
             "previous_delta_sequence": r["prev_seq"], "next_delta_sequence": r["next_seq"]}
            for r in around.head(limit).iter_rows(named=True)
        ],
        "snapshot_received_before_its_delta_message": before.height,
        "snapshots_inside_delta_holes": _book_inside_holes(joined, delta_holes, limit),
    }


def origin_order_inversions(events: dict[str, pl.DataFrame]) -> dict:
    """Merge every table's events by origin_time; count adjacent cross-table pairs whose received_time decreases."""
    parts = [e.filter(pl.col("origin_time").is_not_null()).select(
        pl.lit(name).alias("table"), "origin_time", "received_time") for name, e in events.items() if e.height]
    if len(parts) < 2:
        return {"pairs": 0}
    merged = pl.concat(parts).sort("origin_time", maintain_order=True)
    adj = merged.select(
        (pl.col("table") != pl.col("table").shift()).alias("cross"),
        (pl.col("received_time") - pl.col("received_time").shift()).alias("d"),
    ).slice(1).filter("cross")
    inv = adj.filter(pl.col("d") < 0)["d"]
    return {
        "pairs": adj.height,
        "inversions": inv.len(),
        "inversion_share": _share(inv.len(), adj.height),
        "largest_inversion_ms": _ms(-inv.min()) if inv.len() else None,
    }
