"""Parameters of the simulated market, in engine units (int ticks / lots, milliseconds, rates per second).

Physical defaults are written for BTC-USDT on Binance spot (≈ 61,800 USDT, tick 0.01, lot 0.00001; research
fidelity.md §5) and converted per symbol: distances scale with ticks-per-basis-point and sizes with notional, so
the same market shape works for any configured symbol.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import NamedTuple

import numpy as np

from lake_pipeline.instrument import Instrument

REFERENCE_PRICE = 61_800.0
"""BTC-USDT level the physical defaults are written for."""

START_PRICES = {"BTC": 61_800.0, "ETH": 2_600.0, "SOL": 150.0, "BNB": 520.0, "XRP": 0.55}
"""Rough start price per base asset; anything else starts at 100 quote units."""

PERP_PREMIUM = 0.0004
"""USD-M perpetuals trade a little above spot in calm markets (a basis of a few bp, kept near the funding rate)."""


class MarketParams(NamedTuple):
    """All floats (numba reads this as a homogeneous named tuple). Distances in ticks, sizes in lots."""

    tick_stretch_prob: float = 0.05  # a depth tick lasts 101 ms instead of 100 ms (real E spacing)
    # fair price: self-exciting jumps (the only source of large mid moves) plus a pull towards the book
    jump_mu: float = 1.2
    jump_alpha: float = 0.9
    jump_beta: float = 3.0
    jump_log_median: float = math.log(40.0)
    jump_log_sd: float = 1.2
    fair_pull_per_s: float = 0.5
    # taker orders: two-sided Hawkes, a fast (tens of ms) and a slow (seconds) kernel
    taker_mu: float = 0.8
    taker_beta_fast: float = 60.0
    taker_alpha_self: float = 21.0
    taker_alpha_cross: float = 6.0
    taker_beta_slow: float = 0.5
    taker_alpha_slow: float = 0.05
    jump_to_taker: float = 4.0
    sweep_max_levels: float = 200.0
    fill_more_prob: float = 0.45
    # limit orders near the top: distance from the fair anchor (0 = at the touch), heavy-tailed profile
    add_mu: float = 40.0
    add_p_join: float = 0.5
    post_only_prob: float = 0.85
    add_p_small: float = 0.30
    add_log_median: float = math.log(40.0)
    add_log_sd: float = 1.3
    act_beta: float = 20.0
    act_alpha: float = 10.0
    add_act_gain: float = 1.0
    cancel_mu: float = 30.0
    cancel_act_gain: float = 0.8
    cancel_full_prob: float = 0.45
    cancel_p_best: float = 0.2
    refill_rate: float = 3000.0
    refill_same_ms_prob: float = 0.85
    stale_rate: float = 150.0
    # deep book: adds far from the touch, cancels with a per-level hazard (steady depth = add / hazard)
    deep_add_mu: float = 60.0
    deep_min_ticks: float = 20.0
    deep_log_median: float = math.log(1500.0)
    deep_log_sd: float = 1.0
    deep_hazard: float = 0.0125
    deep_full_prob: float = 0.9
    # activity: slow log-normal volatility regime and a diurnal swell (peak ~14:30 UTC)
    logvol_tau_s: float = 600.0
    logvol_sd: float = 0.4
    diurnal_amp: float = 0.3
    intensity_cap: float = 5000.0
    init_levels: float = 15.0


# Size distributions, one row per kind: log-normal body (natural log of lots), a Pareto tail, round-lot point
# masses (value in lots, probability). Columns: log_mean, log_sd, tail_prob, tail_xmin, tail_alpha, then 5 pairs.
SIZE_TAKER, SIZE_ADD, SIZE_DEEP = 0, 1, 2
SIZE_COLUMNS = 5 + 2 * 5

# Physical defaults in base units (BTC) for BTC-USDT.
_SIZES_BASE = {
    SIZE_TAKER: dict(median=0.002, log10_sd=1.0, tail_prob=0.015, tail_xmin=0.15, tail_alpha=2.6,
                     rounds=((0.0001, 0.04), (0.001, 0.02), (0.01, 0.015), (0.1, 0.005), (1.0, 0.001))),
    SIZE_ADD: dict(median=0.06, log10_sd=0.9, tail_prob=0.03, tail_xmin=0.5, tail_alpha=1.8,
                   rounds=((0.001, 0.02), (0.01, 0.03), (0.1, 0.03), (0.5, 0.01), (1.0, 0.01))),
    SIZE_DEEP: dict(median=0.03, log10_sd=1.0, tail_prob=0.02, tail_xmin=1.0, tail_alpha=1.8,
                    rounds=((0.001, 0.02), (0.01, 0.03), (0.1, 0.03), (1.0, 0.01), (2.0, 0.005))),
}


def start_price(instrument: Instrument) -> float:
    """The spot level of the base asset; a perpetual starts a few basis points above it."""
    spot = START_PRICES.get(instrument.symbol.split("-")[0].upper(), 100.0)
    return spot * (1.0 + PERP_PREMIUM) if instrument.is_futures else spot


def size_table(price: float, lot: Decimal) -> np.ndarray:
    """Size distributions in lots for a symbol at `price`: same notional as the BTC defaults."""
    scale = REFERENCE_PRICE / price / float(lot)  # base units of BTC-equivalent notional -> lots
    tab = np.zeros((3, SIZE_COLUMNS), dtype=np.float64)
    for kind, d in _SIZES_BASE.items():
        tab[kind, 0] = math.log(d["median"] * scale)
        tab[kind, 1] = d["log10_sd"] * math.log(10.0)
        tab[kind, 2] = d["tail_prob"]
        tab[kind, 3] = d["tail_xmin"] * scale
        tab[kind, 4] = d["tail_alpha"]
        for r, (value, prob) in enumerate(d["rounds"]):
            tab[kind, 5 + 2 * r] = max(1.0, round(value * scale))
            tab[kind, 6 + 2 * r] = prob
    return tab


def market_params(price: float, tick: Decimal, lot: Decimal) -> MarketParams:
    """Defaults converted to this symbol's ticks and lots (distances scale with ticks per basis point)."""
    base = MarketParams()
    ref_ticks_per_bp = REFERENCE_PRICE * 1e-4 / 0.01
    ticks_per_bp = price * 1e-4 / float(tick)
    k = ticks_per_bp / ref_ticks_per_bp
    return base._replace(
        jump_log_median=base.jump_log_median + math.log(k),
        add_log_median=base.add_log_median + math.log(k),
        deep_log_median=base.deep_log_median + math.log(k),
        deep_min_ticks=max(2.0, base.deep_min_ticks * k),
    )
