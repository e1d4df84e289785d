"""Trade conventions: fills (`@trade`, one row per fill) vs aggregates (`@aggTrade` / Crypto Lake `trades`, one row
per taker order and price; research cryptolake.md §3.0–§3.1, binance.md §4).

The reconstruction's trades come from the lake `trades` table, which for real Crypto Lake data holds Binance
aggTrades (id = aggregate id `a`) while a golden capture records `@trade` fills (id `t`, several fills per
aggregate) and only optionally `@aggTrade`. Comparing fills with aggregates row by row measures the convention, not
the reconstruction, so both sides must be brought to ONE convention first:

* `fills_by_id`: both sides are fills → match by trade id (price, qty, side must agree);
* `aggregates_by_id`: the golden capture has `@aggTrade` → match the reconstruction by aggregate id;
* `aggregated_fills_by_key`: both sides collapsed into taker-order×price runs (consecutive rows with the same
  millisecond, price and taker side — how Binance forms an aggTrade) → match by (ms, price, side, qty).

`taker_price_runs` is idempotent on aggregates (it only merges two orders of the same ms, price and side that follow
each other — on both sides alike), so it is also the like-with-like normalisation for trade-size distributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from lake_pipeline.fidelity.frames import TRADES_SCHEMA, conform
from lake_pipeline.fidelity.hawkes import MS

FILLS_BY_ID = "fills_by_id"
AGGREGATES_BY_ID = "aggregates_by_id"
AGGREGATED_FILLS_BY_KEY = "aggregated_fills_by_key"
KEY = ["time_ns", "price", "is_buy", "qty"]


def ms_round(time_ns: pl.Expr) -> pl.Expr:
    """Nearest millisecond: exchange trade times are ms; lake times carry float-seconds noise (e.g. …141999872)."""
    return (time_ns + MS // 2) // MS * MS


def taker_price_runs(trades: pl.DataFrame) -> pl.DataFrame:
    """Consecutive trades (time, id order) with the same ms, price and taker side → one row: qty summed, time the
    ms, trade_id the run's first id."""
    if trades.height == 0:
        return trades
    t = trades.sort("time_ns", "trade_id", maintain_order=True).with_columns(ms_round(pl.col("time_ns")))
    key = [pl.col(c) for c in ("time_ns", "price", "is_buy")]
    new = pl.any_horizontal([(c != c.shift(1)).fill_null(True) for c in key])
    runs = t.with_columns(run=new.cum_sum()).group_by("run", maintain_order=True).agg(
        pl.col("time_ns").first(), pl.col("trade_id").first(), pl.col("price").first(), pl.col("qty").sum(),
        pl.col("is_buy").first())
    return conform(runs, TRADES_SCHEMA, "taker-order x price runs")


@dataclass(frozen=True)
class TradeMatch:
    """One convention's golden-side match: per golden row, whether the reconstruction has it (`hit`)."""

    convention: str
    golden: pl.DataFrame
    hit: np.ndarray
    present: np.ndarray
    joined: pl.DataFrame

    @property
    def rate(self) -> float:
        return float(self.hit.mean()) if self.hit.size else 0.0


def match_by_id(convention: str, golden: pl.DataFrame, recon: pl.DataFrame) -> TradeMatch:
    """Golden rows whose id the reconstruction has with the same price, qty and taker side (a repeated id counts
    once on each side: duplicates are their own integrity metric, and the join must stay one row per golden row)."""
    golden = golden.unique("trade_id", keep="first", maintain_order=True)
    recon = recon.unique("trade_id", keep="first", maintain_order=True)
    joined = golden.join(recon.select("trade_id", "price", "qty", "is_buy", pl.col("time_ns").alias("time_r")),
                         on="trade_id", how="left", suffix="_r")
    present = joined["price_r"].is_not_null().to_numpy()
    same = (joined["price"] == joined["price_r"]) & (joined["qty"] == joined["qty_r"]) & (
        joined["is_buy"] == joined["is_buy_r"])
    return TradeMatch(convention, golden, same.fill_null(False).to_numpy(), present, joined)


def match_by_key(golden: pl.DataFrame, recon: pl.DataFrame) -> TradeMatch:
    """Taker-order×price runs on both sides, matched one-to-one by (ms, price, side, qty) (k-th equal key ↔ k-th)."""
    g, r = taker_price_runs(golden), taker_price_runs(recon)

    def numbered(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(nth=pl.int_range(pl.len()).over(KEY))

    joined = numbered(g).join(numbered(r).select(*KEY, "nth", pl.col("time_ns").alias("time_r")),
                              on=[*KEY, "nth"], how="left")
    hit = joined["time_r"].is_not_null().to_numpy()
    return TradeMatch(AGGREGATED_FILLS_BY_KEY, g, hit, hit, joined)


def match_trades(golden: pl.DataFrame, golden_aggs: pl.DataFrame | None, recon: pl.DataFrame) -> tuple[
        TradeMatch, dict[str, float]]:
    """The convention the reconstruction's trades follow, and every candidate's match rate (for the report).

    The reconstruction does not say whether its ids are fill or aggregate ids, so each applicable convention is
    tried and the one the data agrees with is used (ties → the strictest, fills by id). A reconstruction that is
    wrong matches under none of them; the other candidates' rates are reported alongside.
    """
    candidates = [match_by_id(FILLS_BY_ID, golden, recon)]
    if golden_aggs is not None and golden_aggs.height:
        candidates.append(match_by_id(AGGREGATES_BY_ID, golden_aggs, recon))
    candidates.append(match_by_key(golden, recon))
    rates = {c.convention: round(c.rate, 6) for c in candidates}
    best = max(candidates, key=lambda c: c.rate)  # max keeps the first of equals
    return best, rates
