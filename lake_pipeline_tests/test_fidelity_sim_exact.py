"""Fidelity on a fault-free simulated partition: the reconstruction is exact (the simulator's lake rows are the true
top-20, bbo_update_match_rate = 1), so the paired report must say so.

The lake `trades` are aggregates (one row per taker order and price, like Crypto Lake's Binance aggTrades) while the
golden capture records `@trade` fills, and book states are sampled on a 100 ms grid of float-second lake times —
both once made an exact reconstruction FAIL (trade match 0, depth ladder 0.90)."""

from __future__ import annotations

import pytest

from lake_pipeline.fidelity.runner import run_fidelity
from lake_pipeline.instrument import FUTURES
from lake_pipeline.fidelity.scoring import FAIL
from lake_pipeline.fidelity.trade_conventions import AGGREGATED_FILLS_BY_KEY
from lake_pipeline.instrument import FUTURES, Partition
from lake_pipeline.reconstruct.run import reconstruct_partition
from lake_pipeline.sim.simulate import simulate
from lake_pipeline_tests.sim_support import DATE, EXCHANGE, SYMBOL


@pytest.fixture(scope="module", params=[(EXCHANGE, SYMBOL), (FUTURES, "BTC-USDT-PERP")], ids=["spot", "usdm"])
def report(request, tmp_path_factory):
    """A simulated spot partition, and a USD-M one (its golden feed in USD-M frames: pu chain, T, X=MARKET)."""
    exchange, symbol = request.param
    root = tmp_path_factory.mktemp("fid_sim")
    part = Partition(exchange, symbol, DATE)
    simulate(root, part, hours=0.015, seed=11)
    reconstruct_partition(root, part)
    rep = run_fidelity(root, part)
    m = {m.name: m for m in rep.metrics}
    assert rep.to_json()["comparison"]["tier_a_available"] and m["golden_sequence_gaps"].value == 0
    return m, rep


def test_aggregate_lake_trades_match_the_golden_fills_aggregated(report):
    m, _ = report
    t = m["trade_match_rate"]
    assert t.details["convention"] == AGGREGATED_FILLS_BY_KEY
    assert t.details["convention_match_rates"]["fills_by_id"] < 0.01  # aggregate ids are not fill ids
    assert t.value >= 0.999 and t.details["missing_in_recon"] == 0
    assert t.details["golden_rows_compared"] < t.details["golden_trades"]  # several fills per aggregate
    for name in ("trade_size_ks", "trade_size_w1_iqr", "trade_size_pointmass_tv"):
        assert m[name].value == 0.0, name  # like with like: the same runs on both sides


def test_exact_reconstruction_has_an_exact_depth_ladder(report):
    m, _ = report
    assert m["bbo_update_match_rate"].value == 1.0
    assert m["depth_ladder_match_rate"].value == 1.0
    assert m["depth_rel_l1_error"].value == 0.0
    d = m["depth_ladder_match_rate"].details
    assert 0 < d["between_trade_and_message_rows"] < 0.25 * d["book_states"]  # reported, not gated


def test_fault_free_exact_reconstruction_does_not_fail(report):
    m, rep = report
    assert rep.to_json()["status"] != FAIL, [(n, r.status) for n, r in m.items() if r.status == FAIL]
