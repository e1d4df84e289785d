"""Realistic defects, injected on purpose into a correct reconstruction or into its lake inputs, to measure the
fidelity report's power (`lake-pipeline fidelity power`, `power.py`).

Two kinds:
* output defects rewrite the published reconstruction (unified events and top-20 book states) the way a buggy
  reconstructor would get it wrong: clocks, best prices and sizes, frozen books, lost / doubled / mis-sided
  trades, truncated or mis-sized depth;
* input defects corrupt the Crypto Lake tables before replay (lost delta messages, thinned snapshots, feed
  outages, corrupted sizes); the correct reconstructor then replays the bad data.

Every defect says how severe it is (severe -> the report must FAIL, mild -> at least WARN) and which metric
families ought to notice it. Magnitudes and the rows hit are drawn from a seeded generator, so a different seed
gives a different, equally realistic defect of the same kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import polars as pl

from lake_pipeline.schemas import N_LEVELS

MS = 1_000_000
SEVERE, MILD = "severe", "mild"
OUTPUT, INPUT = "output", "input"
BOOK_PRICES = [f"{s}_{k}_price" for s in ("bid", "ask") for k in range(N_LEVELS)]
BOOK_SIZES = [f"{s}_{k}_size" for s in ("bid", "ask") for k in range(N_LEVELS)]
BEST = ["best_bid_price", "best_bid_quantity", "best_ask_price", "best_ask_quantity"]


@dataclass(frozen=True)
class Context:
    """What a defect needs besides the data: a seeded generator and the symbol's units."""

    rng: np.random.Generator
    tick: Decimal
    lot: Decimal


@dataclass(frozen=True)
class Recon:
    """A published reconstruction: unified events and top-20 book states (decimal columns as written)."""

    events: pl.DataFrame
    states: pl.DataFrame


@dataclass(frozen=True)
class Defect:
    name: str
    stage: str  # OUTPUT (rewrites the reconstruction) or INPUT (rewrites the lake tables before replay)
    severity: str
    families: tuple[str, ...]  # metric families expected to flag it (any one suffices)
    description: str
    apply: Callable  # OUTPUT: (Recon, Context) -> Recon; INPUT: (dict[str, pl.DataFrame], Context) -> dict
    quick: bool = False  # part of the reduced table the default test suite runs

    @property
    def expected(self) -> str:
        return "FAIL" if self.severity == SEVERE else ">= WARN"


# ---------------------------------------------------------------------------------------------------------------
# helpers on decimal columns (exact: scaled values are rounded to the symbol's grid, never off-grid)
# ---------------------------------------------------------------------------------------------------------------


def scaled(col: str, factor: float, unit: Decimal, *, when: pl.Expr | None = None) -> pl.Expr:
    """`col` × factor rounded to a positive multiple of `unit` (nulls stay null); only where `when` holds."""
    k = (pl.col(col).cast(pl.Float64) * factor / float(unit)).round().clip(lower_bound=1).cast(pl.Int64)
    new = (k.cast(pl.Decimal(38, 0)) * pl.lit(unit, pl.Decimal(38, 18))).cast(pl.Decimal(38, 18))
    out = pl.when(pl.col(col).is_null()).then(None).otherwise(new)
    if when is not None:
        out = pl.when(when).then(out).otherwise(pl.col(col))
    return out.alias(col)


def shifted(col: str, ticks: int, tick: Decimal, *, when: pl.Expr) -> pl.Expr:
    """`col` moved by `ticks` ticks where `when` holds."""
    delta = pl.lit(tick * ticks, pl.Decimal(38, 18))
    return pl.when(when).then((pl.col(col) + delta).cast(pl.Decimal(38, 18))).otherwise(pl.col(col)).alias(col)


def chosen(n: int, share: float, rng: np.random.Generator) -> pl.Series:
    return pl.Series(rng.random(n) < share)


def _is_trade() -> pl.Expr:
    return pl.col("event_type").cast(pl.String) == "TRADE"


# ---------------------------------------------------------------------------------------------------------------
# output defects
# ---------------------------------------------------------------------------------------------------------------


def time_shift(ms: int) -> Callable[[Recon, Context], Recon]:
    def apply(r: Recon, ctx: Context) -> Recon:
        d = pl.duration(milliseconds=ms)
        return Recon(r.events.with_columns(pl.col("event_time") + d),
                     r.states.with_columns(pl.col("event_time") + d))
    return apply


def best_price_off(share: float) -> Callable[[Recon, Context], Recon]:
    """One tick off (bid down or ask up) on `share` of the book events."""
    def apply(r: Recon, ctx: Context) -> Recon:
        e = r.events
        hit = chosen(e.height, share, ctx.rng) & ~e.select(_is_trade()).to_series()
        bid = pl.Series(ctx.rng.random(e.height) < 0.5)
        e = e.with_columns(shifted("best_bid_price", -1, ctx.tick, when=pl.lit(hit & bid)),
                           shifted("best_ask_price", 1, ctx.tick, when=pl.lit(hit & ~bid)))
        return Recon(e, r.states)
    return apply


def best_size_scaled(factor: float) -> Callable[[Recon, Context], Recon]:
    """Best-level sizes × factor everywhere (>1: liquidity never consumed; <1: consumed twice)."""
    def apply(r: Recon, ctx: Context) -> Recon:
        e = r.events.with_columns(scaled("best_bid_quantity", factor, ctx.lot),
                                  scaled("best_ask_quantity", factor, ctx.lot))
        s = r.states.with_columns(scaled("bid_0_size", factor, ctx.lot), scaled("ask_0_size", factor, ctx.lot))
        return Recon(e, s)
    return apply


def frozen(every_s: float, for_s: float) -> Callable[[Recon, Context], Recon]:
    """The book stops updating for `for_s` seconds every `every_s` seconds (random phase): states carry forward."""
    def freeze(df: pl.DataFrame, cols: list[str], t0: int, phase: float) -> pl.DataFrame:
        t = (df["event_time"].dt.epoch("ns").to_numpy() - t0) / 1e9 + phase
        inside = pl.Series((t % every_s) < for_s) & pl.Series(t > every_s)
        return df.with_columns([pl.when(inside).then(None).otherwise(pl.col(c)).forward_fill().alias(c)
                                for c in cols])

    def apply(r: Recon, ctx: Context) -> Recon:
        t0 = int(r.events["event_time"].dt.epoch("ns").min())
        phase = float(ctx.rng.uniform(0, every_s))
        return Recon(freeze(r.events, BEST, t0, phase), freeze(r.states, BOOK_PRICES + BOOK_SIZES, t0, phase))
    return apply


def trades_missing(share: float) -> Callable[[Recon, Context], Recon]:
    def apply(r: Recon, ctx: Context) -> Recon:
        drop = chosen(r.events.height, share, ctx.rng) & r.events.select(_is_trade()).to_series()
        return Recon(r.events.filter(~drop), r.states)
    return apply


def trades_duplicated(r: Recon, ctx: Context) -> Recon:
    e = r.events.with_row_index("_i")
    twice = pl.concat([e, e.filter(_is_trade())]).sort("event_time", "_i", maintain_order=True).drop("_i")
    return Recon(twice, r.states)


def side_flipped(share: float) -> Callable[[Recon, Context], Recon]:
    def apply(r: Recon, ctx: Context) -> Recon:
        e = r.events
        hit = chosen(e.height, share, ctx.rng) & e.select(_is_trade()).to_series()
        side = pl.col("side").cast(pl.String)
        flipped = pl.when(side == "buy").then(pl.lit("sell")).otherwise(pl.lit("buy"))
        return Recon(e.with_columns(pl.when(pl.lit(hit)).then(flipped).otherwise(side).alias("side")), r.states)
    return apply


def trade_size_scaled(factor: float) -> Callable[[Recon, Context], Recon]:
    def apply(r: Recon, ctx: Context) -> Recon:
        return Recon(r.events.with_columns(scaled("quantity", factor, ctx.lot, when=_is_trade())), r.states)
    return apply


def truncated(levels: int) -> Callable[[Recon, Context], Recon]:
    def apply(r: Recon, ctx: Context) -> Recon:
        gone = [f"{s}_{k}_{f}" for s in ("bid", "ask") for k in range(levels, N_LEVELS) for f in ("price", "size")]
        return Recon(r.events, r.states.with_columns([pl.lit(None, r.states.schema[c]).alias(c) for c in gone]))
    return apply


def deeper_sizes_scaled(factor: float) -> Callable[[Recon, Context], Recon]:
    def apply(r: Recon, ctx: Context) -> Recon:
        cols = [f"{s}_{k}_size" for s in ("bid", "ask") for k in range(1, N_LEVELS)]
        return Recon(r.events, r.states.with_columns([scaled(c, factor, ctx.lot) for c in cols]))
    return apply


# ---------------------------------------------------------------------------------------------------------------
# input defects (lake tables: float prices/sizes, int64 ns times; one delta message = rows sharing a sequence number)
# ---------------------------------------------------------------------------------------------------------------


def _thin_snapshots(book: pl.DataFrame, keep_every: int) -> pl.DataFrame:
    return book.with_row_index("_i").filter(pl.col("_i") % keep_every == 0).drop("_i")


def deltas_dropped(share: float, keep_snapshot_every: int) -> Callable[[dict, Context], dict]:
    def apply(t: dict[str, pl.DataFrame], ctx: Context) -> dict[str, pl.DataFrame]:
        d = t["book_delta_v2"]
        msgs = d["sequence_number"].unique().sort()
        lost = msgs.filter(pl.Series(ctx.rng.random(msgs.len()) < share))
        return {**t, "book_delta_v2": d.filter(~pl.col("sequence_number").is_in(lost.implode())),
                "book": _thin_snapshots(t["book"], keep_snapshot_every)}
    return apply


def outage(every_s: float, for_s: float) -> Callable[[dict, Context], dict]:
    """The lake recorder lost every table for `for_s` seconds every `every_s` seconds."""
    def apply(t: dict[str, pl.DataFrame], ctx: Context) -> dict[str, pl.DataFrame]:
        t0 = min(int(df["timestamp"].min()) for df in t.values() if df.height)
        phase = float(ctx.rng.uniform(0, every_s))

        def keep(df: pl.DataFrame) -> pl.DataFrame:
            s = (pl.col("timestamp") - t0) / 1e9 + phase
            return df.filter(((s % every_s) >= for_s) | (s < every_s))
        return {k: keep(v) for k, v in t.items()}
    return apply


def delta_sizes_corrupted(share: float, factor: float, keep_snapshot_every: int) -> Callable[[dict, Context], dict]:
    def apply(t: dict[str, pl.DataFrame], ctx: Context) -> dict[str, pl.DataFrame]:
        d = t["book_delta_v2"]
        hit = pl.Series(ctx.rng.random(d.height) < share) & (d["size"] > 0)
        lot = float(ctx.lot)
        new = ((pl.col("size") * factor / lot).round().clip(lower_bound=1) * lot)
        return {**t, "book_delta_v2": d.with_columns(pl.when(pl.lit(hit)).then(new).otherwise(pl.col("size"))
                                                     .alias("size")),
                "book": _thin_snapshots(t["book"], keep_snapshot_every)}
    return apply


CATALOG: tuple[Defect, ...] = (
    Defect("time_shift_+100ms", OUTPUT, SEVERE, ("bbo",), "every event time 100 ms late", time_shift(100), True),
    Defect("time_shift_-100ms", OUTPUT, SEVERE, ("bbo",), "every event time 100 ms early", time_shift(-100)),
    Defect("best_price_tick_off_3pct", OUTPUT, SEVERE, ("bbo",),
           "best bid or ask one tick off on 3% of book events", best_price_off(0.03), True),
    Defect("best_size_x1.25_never_consumed", OUTPUT, SEVERE, ("bbo", "depth"),
           "best-level sizes x1.25 (traded liquidity never consumed)", best_size_scaled(1.25), True),
    Defect("best_size_x0.8_consumed_twice", OUTPUT, SEVERE, ("bbo", "depth"),
           "best-level sizes x0.8 (traded liquidity consumed twice)", best_size_scaled(0.8)),
    Defect("book_frozen_3s_every_20s", OUTPUT, SEVERE, ("bbo",),
           "the book stops updating for 3 s every 20 s", frozen(20.0, 3.0), True),
    Defect("trades_missing_3pct", OUTPUT, SEVERE, ("integrity",), "3% of trades lost", trades_missing(0.03), True),
    Defect("trades_duplicated", OUTPUT, SEVERE, ("integrity",), "every trade appears twice", trades_duplicated,
           True),
    Defect("taker_side_flipped_5pct", OUTPUT, SEVERE, ("integrity",), "taker side flipped on 5% of trades",
           side_flipped(0.05), True),
    Defect("trade_size_x1.1", OUTPUT, SEVERE, ("integrity", "trade_size"), "trade sizes x1.1",
           trade_size_scaled(1.1)),
    Defect("book_truncated_5_levels", OUTPUT, SEVERE, ("depth",), "book states hold only 5 levels per side",
           truncated(5), True),
    Defect("deeper_sizes_x1.3", OUTPUT, SEVERE, ("depth",), "sizes of levels 2-20 x1.3", deeper_sizes_scaled(1.3),
           True),
    Defect("lake_deltas_dropped_2pct_snapshots_1in50", INPUT, SEVERE, ("bbo", "depth", "drift"),
           "lake: 2% of delta messages lost, only 1 in 50 snapshots kept", deltas_dropped(0.02, 50), True),
    Defect("lake_outage_10s_every_60s", INPUT, SEVERE, ("integrity", "bbo"),
           "lake: every table lost for 10 s every 60 s", outage(60.0, 10.0)),
    Defect("lake_delta_sizes_x0.5_2pct", INPUT, SEVERE, ("bbo", "depth", "drift"),
           "lake: 2% of delta sizes halved, only 1 in 50 snapshots kept", delta_sizes_corrupted(0.02, 0.5, 50)),
    Defect("best_price_tick_off_0.6pct", OUTPUT, MILD, ("bbo",),
           "best bid or ask one tick off on 0.6% of book events", best_price_off(0.006)),
)


def get(names: list[str] | None = None, *, quick: bool = False) -> list[Defect]:
    """Defects by name (all, or the reduced set with `quick`); an unknown name is a ValueError listing the known."""
    if names:
        by = {d.name: d for d in CATALOG}
        unknown = [n for n in names if n not in by]
        if unknown:
            raise ValueError(f"unknown defect(s) {unknown}; known: {sorted(by)}")
        return [by[n] for n in names]
    return [d for d in CATALOG if d.quick or not quick]
