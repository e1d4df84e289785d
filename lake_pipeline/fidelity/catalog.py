"""Every metric the report can show: tier, family (one Dagster check each), direction and meaning.

Tolerances and the critical flag are NOT here: they live in the versioned `tolerances.yaml`, declared before any
run (research §2.9: no tuning after seeing results). `direction` says which way is good: "max" — the value is a
distance or error and must stay at or below the tolerance; "min" — the value is a rate and must stay at or above it.
`calibrated` metrics get their tolerance from golden-vs-golden variability (`fidelity calibrate`); the others
(paired Tier A accuracy, counts) have declared tolerances, because two halves of one capture are not a paired pair.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricDef:
    name: str
    tier: str
    family: str
    direction: str
    unit: str
    description: str
    calibrated: bool = False


def _m(name, tier, family, direction, unit, description, calibrated=False) -> MetricDef:
    return MetricDef(name, tier, family, direction, unit, description, calibrated)


METRICS: tuple[MetricDef, ...] = (
    # ---- Tier A: paired replay accuracy -------------------------------------------------------------------------
    _m("trade_match_rate", "A", "integrity", "min", "share",
       "Golden trades reproduced (same price, quantity, side) under the reconstruction's convention: fills by "
       "trade id, aggTrades by aggregate id, else taker-order x price runs by (ms, price, side, qty)"),
    _m("trade_id_gaps", "A", "integrity", "max", "count",
       "Trade ids missing from the reconstruction inside its own id range"),
    _m("trade_duplicates", "A", "integrity", "max", "count",
       "Trade rows whose trade id the reconstruction already has (every trade once, never twice)"),
    _m("missing_streams", "A", "integrity", "max", "count",
       "Streams the reconstruction lacks entirely: trades, a two-sided book (a day without trades or a one-sided "
       "book cannot be a faithful BTC day)"),
    _m("recon_sequence_breaks", "A", "integrity", "max", "count",
       "Real breaks: book messages whose update id goes backwards or whose gap/resync flag no snapshot drift "
       "explains; expected events (the seed at the partition edge, snapshot resyncs) are in the details"),
    _m("golden_sequence_gaps", "A", "integrity", "max", "count",
       "Diff-depth gaps in the golden capture itself (U != previous u + 1): the reference's own quality"),
    _m("bbo_update_match_rate", "A", "bbo", "min", "share",
       "Best bid/ask (price and size) equal to the golden bookTicker with the largest u' <= u, per book message"),
    _m("bbo_grid_match_rate", "A", "bbo", "min", "share",
       "Best bid/ask (price and size) equal on a 10 ms grid of exchange time"),
    _m("bbo_grid_err_p99_ticks", "A", "bbo", "max", "ticks",
       "99th percentile of the best-price error on the 10 ms grid (max of bid and ask error)"),
    _m("bbo_grid_rms_ticks", "A", "bbo", "max", "ticks", "RMS best-price error on the 10 ms grid"),
    _m("bbo_longest_mismatch_ms", "A", "bbo", "max", "ms", "Longest run of consecutive mismatching grid points"),
    _m("bbo_lag_ms", "A", "bbo", "max", "ms",
       "|lag| that maximises the grid match rate in a ±500 ms scan (a clock offset shows here)"),
    _m("depth_ladder_match_rate", "A", "depth", "min", "share",
       "Price ladder of levels 1-20 identical (per level, pooled over levels, sides and message-aligned "
       "book states)"),
    _m("depth_rel_l1_error", "A", "depth", "max", "share",
       "Σ|size_recon(p) − size_golden(p)| / Σ size_golden(p) over the golden top-20 prices"),
    _m("depth_spearman_log1p", "A", "depth", "min", "rho",
       "Spearman correlation of log1p sizes at the golden top-20 prices (pooled over levels)"),
    _m("drift_levels_mean", "A", "drift", "max", "levels",
       "Mean number of top-20 price levels where the replayed book disagreed with a snapshot"),
    _m("drift_slope_per_hour", "A", "drift", "max", "levels/h", "Rising trend of drift levels at snapshots (0 when flat or falling; needs >= 30 min)"),
    # ---- Tier B: distributional realism -------------------------------------------------------------------------
    _m("trade_size_ks", "B", "trade_size", "max", "D", "K-S distance of log10 trade size (taker-order x price runs)",
       True),
    _m("trade_size_w1_iqr", "B", "trade_size", "max", "W1/IQR",
       "Wasserstein-1 of log10 trade size divided by the golden IQR", True),
    _m("trade_size_pointmass_tv", "B", "trade_size", "max", "TV",
       "Total variation over round-lot point masses (0.0001 … 1 base units) and the rest", True),
    _m("taker_interval_ks", "B", "inter_event", "max", "D",
       "K-S distance of durations between taker orders (same-ms same-side fills collapsed)", True),
    _m("taker_zero_gap_diff", "B", "inter_event", "max", "share", "|Δ share of zero-ms gaps between taker orders|",
       True),
    _m("hawkes_branching_diff", "B", "inter_event", "max", "n", "|Δ branching ratio| of the Hawkes MLE fits", True),
    _m("hawkes_log_beta_diff", "B", "inter_event", "max", "log", "|Δ log decay rate β| of the Hawkes MLE fits", True),
    _m("hawkes_residual_ks", "B", "inter_event", "max", "D",
       "K-S distance between time-rescaling residuals of reconstruction and golden, both under the golden fit", True),
    _m("spread_tv", "B", "spread", "max", "TV",
       "Total variation of time-weighted spread in ticks over {≤0, 1, 2, 3, 4, 5+}", True),
    _m("spread_p1_diff", "B", "spread", "max", "share", "|Δ time share at a 1-tick spread|", True),
    _m("tob_depth_ks", "B", "tob_depth", "max", "D",
       "K-S distance of time-weighted log1p top-of-book size (worse of bid and ask)", True),
    _m("imbalance_tv", "B", "imbalance", "max", "TV", "Total variation of time-weighted L1 imbalance, 10 bins", True),
    _m("imbalance_auc_diff", "B", "imbalance", "max", "AUC",
       "|Δ AUC| of L1 imbalance predicting the direction of the next mid move", True),
    _m("vol_acf_abs_l2", "B", "volatility", "max", "L2", "L2 distance of ACF(|r|), 1 s mid returns, lags 1-20", True),
    _m("vol_acf_sq_l2", "B", "volatility", "max", "L2", "L2 distance of ACF(r²), 1 s mid returns, lags 1-20", True),
    _m("trade_size_hill_diff", "B", "tails", "max", "alpha", "|Δ Hill tail index| of trade size (top 2 %)", True),
    _m("return_hill_diff", "B", "tails", "max", "alpha", "|Δ Hill tail index| of non-zero |1 s returns|", True),
    _m("return_quantile_ratio_diff", "B", "tails", "max", "log",
       "|Δ log(q99 / q50)| of non-zero |1 s returns|", True),
)

# The reconstruction's own checks (computed without a golden capture or reference): they can FAIL a run on their
# own, but they alone cannot make it PASS — with nothing to compare against, the verdict is NOT_AVAILABLE.
SELF_CHECKS: frozenset[str] = frozenset({"trade_id_gaps", "trade_duplicates", "missing_streams",
                                         "recon_sequence_breaks", "drift_levels_mean", "drift_slope_per_hour"})

BY_NAME: dict[str, MetricDef] = {m.name: m for m in METRICS}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(m.family for m in METRICS))


def get(name: str) -> MetricDef:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown fidelity metric {name!r}; known: {sorted(BY_NAME)}") from None
