"""Distances, the time-block bootstrap and the stylised-fact statistics against independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from lake_pipeline.fidelity import stats


def _sample(x: np.ndarray, slots: np.ndarray | None = None) -> stats.Sample:
    return stats.Sample(np.asarray(x, dtype=float), np.zeros(len(x), np.int64) if slots is None else slots)


def _ident(n: int = 1) -> stats.Resample:
    return stats.Resample.identity(n)


def test_pooled_ecdf_matches_scipy_ks_and_wasserstein_with_ties():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 40, 3000).astype(float)  # heavy ties, like ticks / milliseconds
    y = rng.integers(3, 45, 2500).astype(float)
    e = stats.PooledECDF(_sample(x), _sample(y), 1, 1)
    assert e.ks(_ident(), _ident()) == pytest.approx(sps.ks_2samp(x, y).statistic, abs=1e-12)
    assert e.w1(_ident(), _ident()) == pytest.approx(sps.wasserstein_distance(x, y), abs=1e-9)


def test_pooled_ecdf_coarsening_bounds_the_ks_error():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=40_000), rng.normal(0.05, 1.0, 30_000)  # 70k distinct values
    exact = sps.ks_2samp(x, y).statistic
    coarse = stats.PooledECDF(_sample(x), _sample(y), 1, 1, max_groups=500)
    assert not coarse.exact and coarse.grid.size <= 500
    d = coarse.ks(_ident(), _ident())
    assert exact - 1.0 / 500 <= d <= exact + 1e-12
    assert coarse.w1(_ident(), _ident()) == pytest.approx(sps.wasserstein_distance(x, y), rel=0.05)
    same = stats.PooledECDF(_sample(x), _sample(x.copy()), 1, 1, max_groups=500)
    assert same.ks(_ident(), _ident()) == 0.0


def test_resample_counts_act_as_multiplicities():
    """Drawing slot 0 twice and slot 1 never equals duplicating slot 0's events."""
    x = np.array([1.0, 2.0, 3.0, 10.0])
    slots = np.array([0, 0, 1, 1])
    y = np.array([1.0, 2.0, 2.5])
    e = stats.PooledECDF(_sample(x, slots), _sample(y), 2, 1)
    r = stats.Resample.from_idx(np.array([0, 0]), 2)
    expected = sps.ks_2samp([1.0, 2.0, 1.0, 2.0], y).statistic
    assert e.ks(r, _ident()) == pytest.approx(expected)


def test_total_variation_known_value_and_identity():
    assert stats.total_variation(np.array([98, 2, 0]), np.array([90, 5, 5])) == pytest.approx(0.08)
    assert stats.total_variation(np.array([3, 1]), np.array([6, 2])) == 0.0


def test_slot_histogram_equals_plain_histogram_of_the_resampled_events():
    rng = np.random.default_rng(2)
    v = rng.normal(size=1000)
    s = rng.integers(0, 17, 1000)
    edges = np.linspace(-4, 4, 9)
    h = stats.SlotHistogram.binned(np.clip(v, -3.99, 3.99), s, 17, edges)
    np.testing.assert_array_equal(h(_ident(17)), np.histogram(np.clip(v, -3.99, 3.99), edges)[0])
    r = stats.Resample.from_idx(np.array([4, 4, 9]), 17)
    resampled = np.concatenate([v[s == 4], v[s == 4], v[s == 9]])
    np.testing.assert_array_equal(h(r), np.histogram(np.clip(resampled, -3.99, 3.99), edges)[0])


def test_stationary_indices_are_runs_of_consecutive_slots():
    rng = np.random.default_rng(3)
    idx = stats.stationary_indices(1000, 50.0, rng)
    assert idx.size == 1000 and idx.min() >= 0 and idx.max() < 1000
    steps = np.diff(idx)
    continuing = (steps == 1) | (steps == -999)
    # geometric block lengths of mean 50 -> about 1 restart every 50 slots
    assert 5 <= (~continuing).sum() <= 45


def test_paired_bootstrap_of_identical_sides_is_exactly_zero():
    rng = np.random.default_rng(4)
    x = rng.lognormal(size=5000)
    slots = rng.integers(0, 300, 5000)
    e = stats.PooledECDF(_sample(x, slots), _sample(x, slots), 300, 300)
    res = stats.block_bootstrap(e.ks, 300, 300, paired=True, reps=50, block_slots=20, level=0.9, seed=1)
    assert (res.value, res.ci_low, res.ci_high) == (0.0, 0.0, 0.0)


def test_block_bootstrap_interval_is_wider_than_iid_for_dependent_data():
    """AR(1) with phi=0.95 (research §3.3): a block bootstrap of the mean must reflect the long memory."""
    rng = np.random.default_rng(5)
    n = 4000
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = 0.95 * x[i - 1] + e[i]
    slots = np.arange(n)

    def mean(a: stats.Resample, _b: stats.Resample) -> float:
        return float(a.counts @ x / a.counts.sum())

    block = stats.block_bootstrap(mean, n, n, paired=True, reps=300, block_slots=100, level=0.9, seed=2)
    iid = stats.block_bootstrap(mean, n, n, paired=True, reps=300, block_slots=1, level=0.9, seed=2)
    assert (block.ci_high - block.ci_low) > 3 * (iid.ci_high - iid.ci_low)
    assert slots.size == n


def test_hill_alpha_recovers_pareto_index():
    rng = np.random.default_rng(6)
    x = rng.pareto(2.5, 200_000) + 1.0
    assert stats.hill_alpha(x, tail_fraction=0.02) == pytest.approx(2.5, rel=0.05)
    assert np.isnan(stats.hill_alpha(np.ones(5)))
    # resampled: doubling every slot leaves α unchanged; the truncated scan agrees with a full sort
    slots = rng.integers(0, 100, x.size)
    h = stats.SlotHill(x, slots, 100, 0.02)
    assert h(stats.Resample(np.arange(100), np.full(100, 2.0))) == pytest.approx(h(_ident(100)))
    r = stats.Resample.from_idx(rng.integers(0, 100, 100), 100)
    xs = np.repeat(x, r.counts[slots].astype(int))
    assert h(r) == pytest.approx(stats.hill_alpha(xs, 0.02), rel=1e-9)


def test_weighted_auc_matches_rank_formula():
    rng = np.random.default_rng(7)
    s = rng.normal(size=2000)
    y = (s + rng.normal(size=2000)) > 0
    ours = stats.weighted_auc(np.round(s, 1), y, np.ones(2000))  # rounding creates ties
    u = sps.mannwhitneyu(np.round(s, 1)[y], np.round(s, 1)[~y]).statistic
    assert ours == pytest.approx(u / (y.sum() * (~y).sum()))
    assert np.isnan(stats.weighted_auc(s, np.ones(2000, bool), np.ones(2000)))
    w = rng.integers(0, 3, 2000).astype(float)
    rep = np.repeat(np.arange(2000), w.astype(int))
    u = sps.mannwhitneyu(np.round(s, 1)[rep][y[rep]], np.round(s, 1)[rep][~y[rep]]).statistic
    assert stats.weighted_auc(np.round(s, 1), y, w) == pytest.approx(u / (y[rep].sum() * (~y[rep]).sum()))


def test_acf_and_moments_against_numpy_scipy():
    rng = np.random.default_rng(8)
    x = rng.normal(size=5000).cumsum()
    d = x - x.mean()
    assert stats.acf(x, 3)[1] == pytest.approx(float(d[:-2] @ d[2:]) / float(d @ d))
    m = stats.moments(x)
    assert m["skew"] == pytest.approx(sps.skew(x)) and m["kurtosis"] == pytest.approx(sps.kurtosis(x))


def test_slot_quantile_slot_correlation_longest_run():
    v = np.array([0.0, 0, 0, 1, 5, 0, 0, 2])
    q = stats.SlotQuantile(stats.Sample(v, np.arange(8)), 8)
    assert q(_ident(8), 0.5) == 0.0 and q(_ident(8), 0.99) == 5.0
    assert stats.longest_run(np.array([0, 1, 1, 0, 1, 1, 1, 0], bool)) == 3
    assert stats.longest_run(np.zeros(4, bool)) == 0
    rng = np.random.default_rng(9)
    x = rng.normal(size=500)
    y = x + rng.normal(size=500)
    sl = rng.integers(0, 50, 500)
    c = stats.SlotCorrelation(x, y, sl, 50)
    assert c(_ident(50)) == pytest.approx(np.corrcoef(x, y)[0, 1])
    r = stats.Resample.from_idx(np.array([3, 3, 7]), 50)
    keep = np.concatenate([np.flatnonzero(sl == 3), np.flatnonzero(sl == 3), np.flatnonzero(sl == 7)])
    assert c(r) == pytest.approx(np.corrcoef(x[keep], y[keep])[0, 1])
