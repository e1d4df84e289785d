"""The public reader: the unified stream and the top-20 grid of published partitions as polars LazyFrames.

Users should not write their own Parquet readers: these functions pick the partitions of a time range across days
and venues, refuse unpublished or stale ones (`readable.py`), add what each partition knows (exchange, symbol,
date, its tick and lot) and convert prices and sizes on request:

- `prices="decimal"` (default): decimal128(38,18) as written, exact;
- `prices="float"`: Float64 (what most research code wants; not exact);
- `prices="ticks"`: Int64 ticks (prices) and lots (sizes) of the row's own partition, exact.

Every reconstructed day starts with an unseeded book (`book_flags` bit 0) until its first valid snapshot; the
`seeded` column is True on the first row of each partition whose book is initialised, so a reader sees where a
day's book was (re)built rather than a silent jump at midnight.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

import polars as pl

from lake_pipeline.handoff.readable import (
    PublishedPartition,
    TimeLike,
    UnpublishedPartition,
    as_instruments,
    published,
    published_range,
    to_utc,
)
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS, EVENT_DELTA, EVENT_SNAPSHOT, FLAG_UNINITIALISED, N_LEVELS

Prices = Literal["decimal", "float", "ticks"]
PRICE_MODES = ("decimal", "float", "ticks")
DECIMAL = pl.Decimal(38, 18)
EVENT_PRICE_COLUMNS = ("price", "best_bid_price", "best_ask_price")
EVENT_SIZE_COLUMNS = ("quantity", "best_bid_quantity", "best_ask_quantity")
STATE_PRICE_COLUMNS = tuple(c for c in BOOK_LEVEL_COLUMNS if c.endswith("_price"))
STATE_SIZE_COLUMNS = tuple(c for c in BOOK_LEVEL_COLUMNS if c.endswith("_size"))
PARTITION_COLUMNS = ("date", "tick", "lot")


def unit_decimals(unit: Decimal) -> int:
    """Decimal places of a tick or lot (0.01 -> 2, 0.5 -> 1, 5 -> 0)."""
    return max(0, -unit.normalize().as_tuple().exponent)


def as_units(column: str, unit: Decimal) -> pl.Expr:
    """decimal128(38,18) -> Int64 in units of 10^-d (d = the decimals of the tick or lot: exact for values on the
    grid). Dividing that by 10^d in numpy gives the correctly rounded float ~4x faster than polars' decimal cast;
    polars' own division by a literal multiplies by the reciprocal and is off by an ulp, so it is not used."""
    d = unit_decimals(unit)
    return (pl.col(column).to_physical() // 10 ** (DECIMAL.scale - d)).cast(pl.Int64).alias(column)


def _convert(lf: pl.LazyFrame, p: PublishedPartition, price_cols, size_cols, prices: Prices) -> pl.LazyFrame:
    if prices == "decimal":
        return lf
    if prices == "float":
        return lf.with_columns([pl.col(c).cast(pl.Float64) for c in (*price_cols, *size_cols)])
    tick, lot = pl.lit(p.tick, DECIMAL), pl.lit(p.lot, DECIMAL)  # values are on the grid: the division is exact
    return lf.with_columns([(pl.col(c) / tick).cast(pl.Int64) for c in price_cols]
                           + [(pl.col(c) / lot).cast(pl.Int64) for c in size_cols])


def _partition_columns(p: PublishedPartition) -> list[pl.Expr]:
    return [pl.lit(p.partition.date).str.to_date().alias("date"),
            pl.lit(p.tick, DECIMAL).alias("tick"), pl.lit(p.lot, DECIMAL).alias("lot")]


def _check_prices(prices: str) -> None:
    if prices not in PRICE_MODES:
        raise ValueError(f"prices={prices!r}: expected one of {', '.join(PRICE_MODES)}")


def _window(lf: pl.LazyFrame, start: TimeLike, end: TimeLike) -> pl.LazyFrame:
    s, e = to_utc(start), to_utc(end)
    return lf.filter((pl.col("event_time") >= s) & (pl.col("event_time") < e))


def _finish(frames: list[pl.LazyFrame], parts: list[PublishedPartition], columns: list[str] | None) -> pl.LazyFrame:
    lf = pl.concat(frames, how="vertical")
    if len({p.instrument for p in parts}) > 1:  # venues interleave by event time; within one, order is kept
        lf = lf.sort("event_time", maintain_order=True)
    if columns is not None:
        available = lf.collect_schema().names()
        unknown = [c for c in columns if c not in available]
        if unknown:
            raise ValueError(f"unknown column(s) {unknown}; available: {available}")
        lf = lf.select(columns)
    return lf


def seed_time(p: PublishedPartition):
    """Event time of the partition's first row with an initialised book (None: never seeded)."""
    first = (pl.scan_parquet(list(p.unified_parts)).filter((pl.col("book_flags") & FLAG_UNINITIALISED) == 0)
             .select("event_time").head(1).collect())
    return first.item() if len(first) else None


def events_of(p: PublishedPartition, prices: Prices = "decimal") -> pl.LazyFrame:
    """One partition's unified events with `seeded`, `date`, `tick`, `lot` (no time window).

    `seeded` marks the day's seeding snapshot: the first snapshot row whose book is initialised."""
    seeded = ((pl.col("event_time") == seed_time(p)) & (pl.col("event_type") == EVENT_SNAPSHOT)
              & ((pl.col("book_flags") & FLAG_UNINITIALISED) == 0))
    lf = pl.scan_parquet(list(p.unified_parts)).with_columns(seeded.fill_null(False).alias("seeded"),
                                                             *_partition_columns(p))
    return _convert(lf, p, EVENT_PRICE_COLUMNS, EVENT_SIZE_COLUMNS, prices)


def book_states_of(p: PublishedPartition, prices: Prices = "decimal") -> pl.LazyFrame:
    """One partition's top-20 grid with `exchange`, `symbol`, `date`, `tick`, `lot` (no time window)."""
    lf = pl.scan_parquet(list(p.book_states_parts)).with_columns(
        pl.lit(p.partition.exchange).alias("exchange"), pl.lit(p.partition.symbol).alias("symbol"),
        *_partition_columns(p))
    return _convert(lf, p, STATE_PRICE_COLUMNS, STATE_SIZE_COLUMNS, prices)


def events(data_root: str | Path, instruments, start: TimeLike, end: TimeLike, columns: list[str] | None = None,
           prices: Prices = "decimal") -> pl.LazyFrame:
    """Unified events of `instruments` with event_time in [start, end), across days and venues.

    `instruments`: `"BINANCE.BTC-USDT"`, an `Instrument`, or a list; times: ISO text, date or datetime (UTC).
    Raises `UnpublishedPartition` naming the first partition of the range that is absent, unpublished or stale.
    """
    _check_prices(prices)
    parts = published_range(data_root, instruments, start, end)
    return _finish([_window(events_of(p, prices), start, end) for p in parts], parts, columns)


def book_states(data_root: str | Path, instruments, start: TimeLike, end: TimeLike,
                columns: list[str] | None = None, prices: Prices = "decimal") -> pl.LazyFrame:
    """The top-20 book grid (every 100 ms of event time, plus at every snapshot) in [start, end)."""
    _check_prices(prices)
    parts = published_range(data_root, instruments, start, end)
    return _finish([_window(book_states_of(p, prices), start, end) for p in parts], parts, columns)


# ---- the book at an instant ---------------------------------------------------------------------------------------


def _levels_frame(row: dict, prices: Prices) -> pl.DataFrame:
    """A book-state row (ticks/lots) -> one row per present level: side, level, price, size."""
    out = []
    for side in ("bid", "ask"):
        for k in range(N_LEVELS):
            px = row[f"{side}_{k}_price"]
            if px is None:
                break
            out.append((side, k, px, row[f"{side}_{k}_size"]))
    return pl.DataFrame(out, schema={"side": pl.String, "level": pl.Int32, "price": pl.Int64, "size": pl.Int64},
                        orient="row")


def _apply_deltas(base: pl.DataFrame, deltas: pl.DataFrame) -> pl.DataFrame:
    """Apply absolute delta rows (side bid/ask, price, quantity; 0 deletes) to a top-20 ladder in ticks/lots.

    Levels beyond the base's 20th price are unknown (the grid keeps 20), so a side that had 20 levels is cut at its
    20th price: the result may hold fewer than 20 levels, never a wrong one."""
    last = (deltas.rename({"quantity": "size"}).select("side", "price", "size")
            .unique(subset=["side", "price"], keep="last", maintain_order=True))
    merged = pl.concat([base.select("side", "price", "size").join(last, on=["side", "price"], how="anti"), last])
    bound = base.group_by("side").agg(pl.len().alias("n"), pl.col("price").min().alias("lo"),
                                      pl.col("price").max().alias("hi"))
    merged = merged.join(bound, on="side", how="left").filter(
        (pl.col("size") > 0)
        & ((pl.col("n") < N_LEVELS) | pl.col("n").is_null()
           | pl.when(pl.col("side") == "bid").then(pl.col("price") >= pl.col("lo"))
           .otherwise(pl.col("price") <= pl.col("hi"))))
    bids = merged.filter(pl.col("side") == "bid").sort("price", descending=True).head(N_LEVELS)
    asks = merged.filter(pl.col("side") == "ask").sort("price").head(N_LEVELS)
    return pl.concat([bids.with_row_index("level"), asks.with_row_index("level")]).select(
        "side", pl.col("level").cast(pl.Int32), "price", "size")


def _to_prices(levels: pl.DataFrame, p: PublishedPartition, prices: Prices) -> pl.DataFrame:
    if prices == "ticks":
        return levels
    px = pl.col("price").cast(DECIMAL) * pl.lit(p.tick, DECIMAL)
    sz = pl.col("size").cast(DECIMAL) * pl.lit(p.lot, DECIMAL)
    if prices == "float":
        px, sz = px.cast(pl.Float64), sz.cast(pl.Float64)
    return levels.with_columns(px.alias("price"), sz.alias("size"))


def book_at(data_root: str | Path, instrument, timestamp: TimeLike, prices: Prices = "decimal") -> pl.DataFrame:
    """The top-20 book of `instrument` just after every event with event_time <= `timestamp`.

    Columns: side (`bid`/`ask`), level (0 = best), price, size. Built from the last book-state row at or before the
    instant plus the delta rows after it, so it is exact at any nanosecond, not only on the 100 ms grid (trades'
    provisional consumption is not applied: deltas report the level sizes).
    """
    _check_prices(prices)
    (inst,) = as_instruments(instrument)
    t = to_utc(timestamp)
    p = published(data_root, inst.on(t.date().isoformat()))
    states = (book_states_of(p, "ticks").filter(pl.col("event_time") <= t)
              .select("event_time", *BOOK_LEVEL_COLUMNS).last().collect())
    if states.is_empty():
        raise UnpublishedPartition(f"partition {p.partition.key}: the book is not seeded yet at {t.isoformat()} "
                                   "(the day's first valid snapshot comes later)")
    base_time = states["event_time"][0]
    ev = (_convert(pl.scan_parquet(list(p.unified_parts)), p, ("price",), ("quantity",), "ticks")
          .filter(pl.col("event_time") >= base_time, pl.col("event_time") <= t)
          .select("event_time", "event_type", "side", "price", "quantity", "book_flags").collect())
    # the base row describes the book after every event <= its time, unless it is a snapshot's own row: then events
    # at the same time that follow that snapshot in the stream are not in it yet
    grid_rows = book_states_of(p, "ticks").filter(pl.col("event_time") == base_time).select(pl.len()).collect().item()
    at_base = ev.filter(pl.col("event_time") == base_time).with_row_index("i")
    snaps_at_base = at_base.filter(pl.col("event_type") == EVENT_SNAPSHOT,
                                   (pl.col("book_flags") & FLAG_UNINITIALISED) == 0)
    if len(snaps_at_base) >= grid_rows and len(snaps_at_base):
        after = len(at_base) - (int(snaps_at_base["i"][-1]) + 1)
        later = pl.concat([at_base.tail(after).drop("i"), ev.filter(pl.col("event_time") > base_time)])
    else:
        later = ev.filter(pl.col("event_time") > base_time)
    deltas = later.filter(pl.col("event_type") == EVENT_DELTA,
                          (pl.col("book_flags") & FLAG_UNINITIALISED) == 0).select("side", "price", "quantity")
    levels = _apply_deltas(_levels_frame(states.row(0, named=True), prices), deltas.with_columns(
        pl.col("side").cast(pl.String)))
    return _to_prices(levels, p, prices)
