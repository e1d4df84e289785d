"""The exact O(n) exponential-kernel Hawkes MLE: gradient, parameter recovery, residuals, taker-order collapse."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from lake_pipeline.fidelity import hawkes

TRUE = {"mu": 20.0, "n": 0.7, "beta": 50.0}


def test_analytic_gradient_matches_finite_differences():
    t = hawkes.simulate(10.0, 0.5, 30.0, 300.0, seed=2)
    p = np.array([12.0, 0.45, 25.0])
    _, g = hawkes.loglik_and_grad(t, 300.0, *p)
    for k in range(3):
        h = 1e-6 * p[k]
        up, dn = p.copy(), p.copy()
        up[k] += h
        dn[k] -= h
        fd = (hawkes.loglik_and_grad(t, 300.0, *up)[0] - hawkes.loglik_and_grad(t, 300.0, *dn)[0]) / (2 * h)
        assert g[k] == pytest.approx(fd, rel=1e-4)


def test_branching_simulation_has_the_stationary_rate():
    t = hawkes.simulate(**TRUE, horizon_s=2000.0, seed=3)
    rate = TRUE["mu"] / (1 - TRUE["n"])
    assert t.size / 2000.0 == pytest.approx(rate, rel=0.05)
    assert np.all(np.diff(t) >= 0) and t[0] >= 0 and t[-1] <= 2000.0


def test_fit_recovers_parameters_at_100k_events():
    t = hawkes.simulate(**TRUE, horizon_s=1500.0, seed=1)
    assert 90_000 < t.size < 110_000
    f = hawkes.fit(t, 1500.0)
    assert f.converged
    assert f.mu == pytest.approx(TRUE["mu"], rel=0.05)
    assert f.n == pytest.approx(TRUE["n"], rel=0.03)
    assert f.beta == pytest.approx(TRUE["beta"], rel=0.05)
    # the reported standard errors are of the right size: the truth lies within 4 se
    assert abs(f.n - TRUE["n"]) < 4 * f.se_n
    assert abs(np.log(f.beta / TRUE["beta"])) < 4 * f.se_log_beta


def test_fit_recovers_parameters_within_2_percent_at_1m_events():
    """~1 M events (exact branching simulation); the fit takes ~2 s here, so it stays in the default suite."""
    t = hawkes.simulate(**TRUE, horizon_s=15_000.0, seed=1)
    assert t.size > 950_000
    f = hawkes.fit(t, 15_000.0)
    assert f.mu == pytest.approx(TRUE["mu"], rel=0.02)
    assert f.n == pytest.approx(TRUE["n"], rel=0.02)
    assert f.beta == pytest.approx(TRUE["beta"], rel=0.02)


def test_time_rescaling_residuals_are_exp1_under_the_true_model_and_not_under_poisson():
    t = hawkes.simulate(**TRUE, horizon_s=500.0, seed=4)
    res = hawkes.residuals(t, **TRUE)
    assert sps.kstest(res, "expon").statistic < 0.01
    poisson = hawkes.residuals(t, t.size / 500.0, 1e-9, 50.0)
    assert sps.kstest(poisson, "expon").statistic > 0.1


def test_fit_rejects_too_few_events_and_short_horizon():
    with pytest.raises(ValueError, match="at least 10 events"):
        hawkes.fit(np.arange(5.0))
    with pytest.raises(ValueError, match="horizon"):
        hawkes.fit(np.arange(20.0), horizon_s=3.0)


def test_taker_orders_collapse_same_ms_same_side_fills_only():
    ms = 1_000_000
    trades = pl.DataFrame({
        "time_ns": [0, 100, 200, 300, ms, ms, 2 * ms],
        "is_buy": [True, True, False, False, False, True, True],
        "qty": [1, 2, 3, 4, 5, 6, 7],
    })
    orders = hawkes.taker_orders(trades)
    assert orders["fills"].to_list() == [2, 2, 1, 1, 1]
    assert orders["qty"].to_list() == [3, 7, 5, 6, 7]
    assert orders["time_ns"].to_list() == [0, 0, ms, ms, 2 * ms]


def test_jitter_is_deterministic_and_stays_inside_the_millisecond():
    t = np.array([5, 5, 7], dtype=np.int64) * 1_000_000
    a = hawkes.jittered_times(t, 0, seed=3)
    assert np.array_equal(a, hawkes.jittered_times(t, 0, seed=3))
    assert np.all((a >= 0.005) & (a < 0.008)) and np.all(np.diff(a) >= 0)
