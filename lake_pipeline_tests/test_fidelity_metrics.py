"""Every metric on inputs with known answers: identical inputs, known shifts, and broken reconstructions that
must FAIL on the right metrics and not on the others."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from lake_pipeline.fidelity import catalog, tier_a, tier_b, tolerances
from lake_pipeline.fidelity.compare import Comparison
from lake_pipeline.fidelity.runner import compare_views
from lake_pipeline.fidelity.scoring import FAIL, NA, PASS, WARN, overall, score_of, status_of
from lake_pipeline.fidelity.trade_conventions import AGGREGATES_BY_ID, FILLS_BY_ID, taker_price_runs
from lake_pipeline_tests import fidelity_fixtures as fxt


@pytest.fixture(scope="module")
def tol() -> tolerances.Tolerances:
    t = copy.deepcopy(tolerances.load())
    t.bootstrap = {**t.bootstrap, "reps": 60}  # enough for the interval shape; keeps the suite fast
    return t


@pytest.fixture(scope="module")
def market() -> fxt.Market:
    return fxt.synthetic_market(300, seed=11)


@pytest.fixture(scope="module")
def golden(market):
    return fxt.market_view(market, "golden")


def _by_name(results):
    return {r.name: r for r in results}


def _run(golden, recon, tol, paired=True):
    results, _, _ = compare_views(recon, golden, tol) if paired else compare_views(recon, golden, tol,
                                                                                   golden_is_capture=False)
    return _by_name(results)


# ---------------------------------------------------------------------------------------------------------------


def test_status_and_score_rules():
    assert status_of("max", 0.1, 0.05, 0.2, 0.3) == PASS
    assert status_of("max", 0.1, 0.05, 0.4, 0.3) == WARN
    assert status_of("max", 0.35, 0.3, 0.4, 0.3) == FAIL
    assert status_of("min", 0.9995, 0.9991, 0.9999, 0.999) == PASS
    assert status_of("min", 0.9995, 0.998, 0.9999, 0.999) == WARN
    assert score_of("max", 0.0, 0.1) == 1.0 and score_of("max", 0.1, 0.1) == 0.5 and score_of("max", 0.3, 0.1) == 0.0
    assert score_of("min", 0.9995, 0.999) == pytest.approx(0.75)
    assert score_of("max", 0, 0) == 1.0 and score_of("max", 1, 0) == 0.0


def test_overall_is_worst_critical_and_missing_critical_never_passes(golden, tol):
    from lake_pipeline.fidelity.scoring import judge

    d = catalog.get("spread_tv")
    ok = judge(d, 0.0, 0.0, 0.0, 0.01, True)
    bad_noncritical = judge(catalog.get("trade_size_w1_iqr"), 5.0, 5.0, 5.0, 0.01, False)
    v = overall([ok, bad_noncritical])
    # the headline is the lowest CRITICAL score; a non-critical metric beyond its tolerance is named in a WARN
    assert v.status == WARN and v.score == 1.0 and "trade_size_w1_iqr" in v.reason
    assert overall([ok]).status == PASS and overall([ok]).score == 1.0
    broken = judge(catalog.get("tob_depth_ks"), 0.5, 0.4, 0.6, 0.1, True)
    v = overall([ok, broken])
    assert v.status == FAIL and v.score == 0.0 and v.deciding == ("tob_depth_ks",)  # 1 - 0.5/0.2 clipped
    assert "tob_depth_ks = 0.5 (tolerance <= 0.1, score 0.000)" in v.reason
    near = judge(catalog.get("tob_depth_ks"), 0.15, 0.12, 0.18, 0.1, True)  # beyond, score 0.25
    assert overall([ok, near]).score == pytest.approx(0.25) and overall([ok, near]).status == FAIL
    crossing = judge(catalog.get("tob_depth_ks"), 0.08, 0.05, 0.11, 0.1, True)  # within, interval crosses
    v = overall([ok, crossing])
    assert v.status == WARN and v.score == pytest.approx(0.6) and v.deciding == ("tob_depth_ks",)
    missing = judge(catalog.get("bbo_update_match_rate"), None, None, None, 0.999, True)
    v = overall([ok, missing])
    assert v.status == WARN and "bbo_update_match_rate" in v.reason
    assert overall([missing]).status == "NOT_AVAILABLE"


def test_identical_inputs_give_zero_distance_and_pass_everywhere(golden, tol):
    tol = copy.deepcopy(tol)
    tol.settings["drift_trend_min_minutes"] = 1  # this market is 5 min long
    recon = replace(golden, label="recon")
    res = _run(golden, recon, tol)
    assert set(res) == {m.name for m in catalog.METRICS}
    for r in res.values():
        assert r.status == PASS, (r.name, r.value, r.ci_high, r.tolerance, r.reason)
        if r.name.startswith("hawkes_") and r.name != "hawkes_residual_ks":
            assert r.value == 0.0  # interval is asymptotic, not bootstrap
        elif r.direction == "max":
            assert (r.value, r.ci_low, r.ci_high) in ((0.0, 0.0, 0.0), (0.0, None, None)), r.name
        else:
            assert r.value == 1.0, r.name
    assert overall(list(res.values())).status == PASS


def _run_sizes(trades: pl.DataFrame) -> np.ndarray:
    """Independent reference: sizes of consecutive same-(ms, price, side) runs, in plain Python."""
    sizes: list[int] = []
    last = None
    for t, p, b, q in trades.select("time_ns", "price", "is_buy", "qty").iter_rows():
        key = ((t + 500_000) // 1_000_000, p, b)
        if key == last:
            sizes[-1] += q
        else:
            sizes.append(q)
        last = key
    return np.asarray(sizes, dtype=np.float64)


def test_trade_size_ks_equals_scipy_on_a_known_size_shift(golden, tol):
    """Trade sizes ×10 → the metric is exactly scipy's two-sample D of log10 taker-order×price run sizes, and
    FAILs."""
    recon = replace(golden, label="recon", trades=golden.trades.with_columns(pl.col("qty") * 10))
    cmp = Comparison.build(golden, recon, tol, paired=True)
    res = _by_name(tier_b.trade_size(cmp, {}))
    g_sizes, r_sizes = _run_sizes(golden.trades), _run_sizes(recon.trades)
    assert g_sizes.size < golden.trades.height  # the fixture has fills of one order at one price to merge
    expected = sps.ks_2samp(np.log10(g_sizes), np.log10(r_sizes)).statistic
    assert res["trade_size_ks"].value == pytest.approx(expected, abs=1e-12)
    assert res["trade_size_ks"].status == FAIL
    # W1 of a pure location shift by exactly 1 decade, divided by the golden IQR
    iqr = np.subtract(*np.percentile(np.log10(g_sizes * float(golden.lot)), [75, 25]))
    assert res["trade_size_w1_iqr"].value == pytest.approx(1.0 / iqr, rel=1e-9)


def test_spread_tv_equals_independent_category_count_on_a_known_widening(golden, tol):
    """Ask +1 tick everywhere: the time-weighted spread TV equals ½Σ|Δ shares| computed here from the grid."""
    recon = replace(golden, label="recon", bbo=golden.bbo.with_columns(pl.col("ask_px") + 1))
    cmp = Comparison.build(golden, recon, tol, paired=True)
    res = _by_name(tier_b.book_shape(cmp, {}))
    from lake_pipeline.fidelity.features import grid_bbo

    def shares(v):
        s = grid_bbo(v, 100)
        c = np.clip(s.ask_px - s.bid_px, 0, 5)
        return np.bincount(c, minlength=6) / c.size

    expected = 0.5 * np.abs(shares(golden) - shares(recon)).sum()
    assert expected > 0.9
    assert res["spread_tv"].value == pytest.approx(expected, abs=1e-12)
    assert res["spread_tv"].status == FAIL
    assert res["imbalance_tv"].value == 0.0  # sizes untouched


def test_lag_scan_finds_a_known_200ms_clock_offset(golden, tol):
    recon = replace(golden, label="recon", bbo=golden.bbo.with_columns(pl.col("time_ns") + 200_000_000))
    cmp = Comparison.build(golden, recon, tol, paired=True)
    res = _by_name(tier_a.bbo_grid(cmp, plots := {}))
    assert res["bbo_lag_ms"].value == 200.0 and res["bbo_lag_ms"].status == FAIL
    assert res["bbo_grid_match_rate"].status == FAIL
    best = int(np.argmax(plots["lag_scan"]["match_rate"]))
    assert plots["lag_scan"]["lag_ms"][best] == 200 and plots["lag_scan"]["match_rate"][best] > 0.99
    # update-id alignment is blind to clocks: still a perfect match
    assert _by_name(tier_a.bbo_update_aligned(cmp))["bbo_update_match_rate"].value == 1.0


def test_update_alignment_uses_the_largest_quote_id_at_or_below_each_message(golden, tol):
    """The fixture's quotes include intra-batch ones (u' = u − 1, different BBO) that must be superseded."""
    assert golden.quotes.height > golden.bbo.height
    cmp = Comparison.build(golden, replace(golden, label="recon"), tol, paired=True)
    assert _by_name(tier_a.bbo_update_aligned(cmp))["bbo_update_match_rate"].value == 1.0
    # dropping the exact quotes leaves the intra-batch ones as the latest u' <= u: matches must fall
    thinned = golden.quotes.filter(~pl.col("update_id").is_in(golden.bbo["update_id"].to_list()[::2]))
    cmp2 = Comparison.build(replace(golden, quotes=thinned), replace(golden, label="recon"), tol, paired=True)
    assert _by_name(tier_a.bbo_update_aligned(cmp2))["bbo_update_match_rate"].value < 0.9


BROKEN = {
    "shifted prices": (lambda m: fxt.shift_prices(m, 1),
                       {"bbo_update_match_rate", "bbo_grid_match_rate", "depth_ladder_match_rate",
                        "depth_rel_l1_error", "bbo_grid_err_p99_ticks"}),
    "dropped deltas": (lambda m: fxt.drop_messages(m, every=40, stale_for=5),
                       {"bbo_update_match_rate", "bbo_grid_match_rate", "depth_rel_l1_error",
                        "depth_ladder_match_rate"}),
    "wrong sizes": (lambda m: fxt.scale_sizes(m, 1.5),
                    {"bbo_update_match_rate", "bbo_grid_match_rate", "depth_rel_l1_error"}),
}
UNAFFECTED = {"trade_match_rate", "trade_id_gaps", "recon_sequence_breaks", "trade_size_ks", "trade_size_w1_iqr",
              "taker_interval_ks", "taker_zero_gap_diff", "hawkes_branching_diff", "hawkes_residual_ks",
              "drift_levels_mean"}


@pytest.mark.parametrize("defect", list(BROKEN))
def test_broken_reconstruction_fails_on_the_right_metrics_only(market, golden, tol, defect):
    make, must_fail = BROKEN[defect]
    recon = replace(fxt.market_view(make(market), "recon"), trades=golden.trades)
    res = _run(golden, recon, tol)
    failed = {n for n, r in res.items() if r.status == FAIL}
    assert must_fail <= failed, (defect, must_fail - failed)
    for n in UNAFFECTED:
        assert res[n].status == PASS, (defect, n, res[n].value, res[n].ci_high, res[n].tolerance)
    assert overall(list(res.values())).status == FAIL
    if defect == "shifted prices":
        assert res["spread_tv"].status == PASS  # a common shift keeps every spread
    if defect == "wrong sizes":
        assert res["depth_ladder_match_rate"].status == PASS  # prices are right
        assert res["depth_spearman_log1p"].value == pytest.approx(1.0)  # rank-blind to scaling: L1 catches it


def test_dropped_deltas_match_rate_equals_the_share_of_stale_messages(market, golden, tol):
    recon = fxt.market_view(fxt.drop_messages(market, every=40, stale_for=5), "recon")
    cmp = Comparison.build(golden, recon, tol, paired=True)
    r = _by_name(tier_a.bbo_update_aligned(cmp))["bbo_update_match_rate"]
    stale = (recon.bbo["bid_sz"] != golden.bbo["bid_sz"]) | (recon.bbo["ask_sz"] != golden.bbo["ask_sz"]) | (
        recon.bbo["bid_px"] != golden.bbo["bid_px"]) | (recon.bbo["ask_px"] != golden.bbo["ask_px"])
    assert r.value == pytest.approx(1 - stale.mean())
    assert r.ci_low < r.value < r.ci_high or r.ci_low == r.ci_high


def test_integrity_counts_missing_trades_and_sequence_breaks(golden, tol):
    trades = golden.trades.filter(pl.col("trade_id") % 100 != 7)
    msgs = golden.messages.with_columns(
        gap=pl.int_range(pl.len()) == 10,
        last_id=pl.when(pl.int_range(pl.len()) == 20).then(pl.col("last_id") - 100).otherwise(pl.col("last_id")))
    recon = replace(golden, label="recon", trades=trades, messages=msgs)
    res = _run(golden, recon, tol)
    missing = golden.trades.height - trades.height
    assert res["trade_id_gaps"].value == missing and res["trade_id_gaps"].status == FAIL
    assert res["trade_match_rate"].value == pytest.approx(trades.height / golden.trades.height)
    assert res["trade_match_rate"].details["missing_in_recon"] == missing
    assert res["recon_sequence_breaks"].value == 2  # one backwards id + one flagged gap


def test_drift_mean_and_trend(golden, tol):
    t = golden.drift["time_ns"].to_numpy()
    hours = (t - t[0]) / 3.6e12
    levels = np.round(hours * 120).astype(np.int32)  # +120 levels per hour, known slope
    recon = replace(golden, label="recon", drift=golden.drift.with_columns(drift_levels=pl.Series(levels)))
    assert _by_name(tier_a.drift(Comparison.build(recon, recon, tol, paired=True), {}))[
        "drift_slope_per_hour"].status == NA  # 5 min of snapshots: no trend is measured
    tol = copy.deepcopy(tol)
    tol.settings["drift_trend_min_minutes"] = 1
    res = _by_name(tier_a.drift(Comparison.build(recon, recon, tol, paired=True), {}))
    assert res["drift_levels_mean"].value == pytest.approx(levels.mean())
    assert res["drift_slope_per_hour"].value == pytest.approx(120, rel=0.05)
    assert res["drift_slope_per_hour"].status == FAIL
    falling = replace(recon, drift=golden.drift.with_columns(drift_levels=pl.Series(levels[::-1].copy())))
    res = _by_name(tier_a.drift(Comparison.build(falling, falling, tol, paired=True), {}))
    assert res["drift_slope_per_hour"].value == 0.0  # fading drift (resyncs after seeding) is not accumulating


def test_no_golden_and_no_reference_is_not_available_never_pass(golden, tol):
    res, _, info = compare_views(replace(golden, label="recon"), None, tol)
    rows = _by_name(res)
    assert rows["bbo_update_match_rate"].status == NA and "no golden session" in rows["bbo_update_match_rate"].reason
    assert rows["trade_size_ks"].status == NA
    assert rows["trade_id_gaps"].status == PASS  # the reconstruction's own checks still run
    assert not info["tier_a_available"]
    assert overall(res).status == "NOT_AVAILABLE"


def test_unpaired_reference_from_another_period_gives_tier_b_only(golden, tol):
    other = fxt.market_view(fxt.synthetic_market(300, seed=12, t0=fxt.T0 + 86_400 * 10**9), "reference")
    res, _, info = compare_views(replace(golden, label="recon"), other, tol, golden_is_capture=False)
    rows = _by_name(res)
    assert rows["bbo_update_match_rate"].status == NA and not info["tier_a_available"]
    assert info["tier_b_paired"] is False
    # same generator, different seed: realistic sampling noise, within the real-data tolerances
    assert rows["spread_tv"].status in (PASS, WARN) and rows["trade_size_ks"].status in (PASS, WARN)
    assert rows["trade_size_ks"].value > 0


def test_trade_match_uses_the_aggregate_ids_of_a_recorded_agg_trade_stream(golden, tol):
    """Lake-style aggregate trades vs a golden capture with @aggTrade: matched by aggregate id; fills → by fill id;
    a wrong aggregate size is a miss under every convention."""
    runs = taker_price_runs(golden.trades)
    aggs = runs.with_columns(trade_id=pl.int_range(pl.len(), dtype=pl.Int64) + 500_000)
    g = replace(golden, agg_trades=aggs)

    def match(recon_trades):
        cmp = Comparison.build(g, replace(golden, label="recon", trades=recon_trades), tol, paired=True)
        return _by_name(tier_a.paired_integrity(cmp))["trade_match_rate"]

    exact = match(aggs)
    assert exact.details["convention"] == AGGREGATES_BY_ID and exact.value == 1.0
    assert exact.details["golden_rows_compared"] == aggs.height < golden.trades.height
    assert match(golden.trades).details["convention"] == FILLS_BY_ID
    bad_rows = np.arange(aggs.height) % 10 == 0
    broken = match(aggs.with_columns(qty=pl.when(pl.Series(bad_rows)).then(pl.col("qty") + 1).otherwise("qty")))
    assert broken.value == pytest.approx(1 - bad_rows.mean()) and broken.status == FAIL
    assert broken.details["different_in_recon"] == bad_rows.sum()
