"""The hftbacktest export, replayed in hftbacktest's own backtester.

Its local best bid/ask after each of our delta messages must equal our unified stream's (>= 99 %), on a simulated
quarter hour and on the real BTC spot recording (two days across midnight); a deliberately broken export must
fail the same check; a small market-making loop must run over the export.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from lake_pipeline.cli import main
from lake_pipeline_tests.conftest import realdata_dir
from lake_pipeline_tests.handoff_support import DAY, INSTRUMENT, hftbacktest_installed, real_root, simulated_root
from lake_pipeline_tests.hbt_replay import asset, compare, replay_local_bbo

TICK, LOT = 0.01, 1e-8


@pytest.fixture(autouse=True)
def _needs_hftbacktest() -> None:
    hftbacktest_installed()


def _summary(root: Path, out: Path, dates: list[str]):
    from lake_pipeline.handoff import export_hftbacktest

    return export_hftbacktest(root, INSTRUMENT, dates, out)


def test_export_file_is_hftbacktest_event_data(sim_quarter_hour: Path, tmp_path: Path, capsys) -> None:
    from hftbacktest.data import validate_event_order
    from hftbacktest.types import (BUY_EVENT, DEPTH_CLEAR_EVENT, DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT, EXCH_EVENT,
                                   LOCAL_EVENT, SELL_EVENT, TRADE_EVENT, event_dtype)

    out = tmp_path / "btcusdt.npz"
    assert main(["export", "--format", "hftbacktest", "--data-root", str(sim_quarter_hour), "--symbol", "BTC-USDT",
                 "--date", DAY, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    data = np.load(out)["data"]
    assert data.dtype == event_dtype and len(data) == summary["rows"]
    validate_event_order(data)
    kind = data["ev"] & 0xFF
    exch_only = (data["ev"] & (EXCH_EVENT | LOCAL_EVENT)) == EXCH_EVENT
    # every unified trade and applied delta row is there once on each side (split rows appear twice, one per side)
    from lake_pipeline.handoff import events

    ev = events(sim_quarter_hour, INSTRUMENT, "2024-08-08", "2024-08-09", columns=["event_type", "book_flags"]).collect()
    local_side = (data["ev"] & LOCAL_EVENT) != 0
    assert int(((kind == TRADE_EVENT) & local_side).sum()) == int((ev["event_type"] == "TRADE").sum())
    applied = ((ev["event_type"] == "BOOK_DELTA") & ((ev["book_flags"] & 1) == 0)).sum()
    assert int(((kind == DEPTH_EVENT) & local_side).sum()) == int(applied)
    assert summary["split_rows"] == int(exch_only.sum())
    # trades carry the taker side; depth rows a side; the seeding snapshot is a side-less clear + its levels
    trades = data[(kind == TRADE_EVENT) & local_side]
    assert set(np.unique(trades["ev"] & (BUY_EVENT | SELL_EVENT)).tolist()) == {BUY_EVENT, SELL_EVENT}
    first_clear = np.flatnonzero(kind == DEPTH_CLEAR_EVENT)[0]
    assert data["ev"][first_clear] & (BUY_EVENT | SELL_EVENT) == 0
    snapshot = np.load(tmp_path / "btcusdt_snapshot.npz")["data"]
    levels = data[first_clear + 1:first_clear + 1 + len(snapshot)]
    assert ((levels["ev"] & 0xFF) == DEPTH_SNAPSHOT_EVENT).all() and len(snapshot) >= 30
    assert (data["ev"][first_clear + 1 + len(snapshot)] & 0xFF) != DEPTH_SNAPSHOT_EVENT
    assert (levels["exch_ts"] == data["exch_ts"][first_clear]).all()
    # times: exch_ts = event_time, local_ts = received_time (no negative latency in the simulator: no shift)
    assert summary["local_ts_offset_ns"] == 0 and (data["local_ts"] >= data["exch_ts"]).all()
    assert (snapshot["px"] == levels["px"]).all() and (snapshot["qty"] == levels["qty"]).all()
    assert ((snapshot["ev"] & (EXCH_EVENT | LOCAL_EVENT)) == (EXCH_EVENT | LOCAL_EVENT)).all()


def test_replay_in_hftbacktest_matches_our_book(sim_quarter_hour: Path, tmp_path: Path) -> None:
    s = _summary(sim_quarter_hour, tmp_path / "x.npz", [DAY])
    hbt = replay_local_bbo(tmp_path / "x.npz", tmp_path / "x_snapshot.npz", TICK, LOT)
    m = compare(sim_quarter_hour, INSTRUMENT, DAY, "2024-08-09", hbt, s.local_ts_offset_ns)
    print(f"\nsimulated 0.25 h: hftbacktest local BBO == ours at {m.matched}/{m.messages} delta messages "
          f"({m.rate:.4%}); export {s.rows} rows in {s.seconds} s")
    assert m.messages > 8000
    assert m.rate >= 0.99, m.mismatches.head(20)


def test_a_broken_export_fails_the_same_check(sim_quarter_hour: Path, tmp_path: Path) -> None:
    """One tick off on 3 % of the depth rows (as a float-price bug would do) must show in the comparison."""
    from hftbacktest.types import DEPTH_EVENT

    s = _summary(sim_quarter_hour, tmp_path / "x.npz", [DAY])
    data = np.load(tmp_path / "x.npz")["data"]
    depth = np.flatnonzero((data["ev"] & 0xFF) == DEPTH_EVENT)
    hit = np.random.default_rng(1).choice(depth, len(depth) * 3 // 100, replace=False)
    data["px"][hit] += TICK
    np.savez(tmp_path / "broken.npz", data=data)
    hbt = replay_local_bbo(tmp_path / "broken.npz", tmp_path / "x_snapshot.npz", TICK, LOT)
    m = compare(sim_quarter_hour, INSTRUMENT, DAY, "2024-08-09", hbt, s.local_ts_offset_ns)
    assert m.rate < 0.99


@njit
def _market_make(hbt, half_spread_ticks: int, qty: float, steps: int, out):
    """Quote one bid and one ask around the mid every 100 ms (cancel, re-submit GTX limits), count what happens."""
    order_id = 1
    quotes = 0
    for _ in range(steps):
        if hbt.elapse(100_000_000) != 0:
            break
        hbt.clear_inactive_orders(0)
        depth = hbt.depth(0)
        if depth.best_bid_tick <= 0 or depth.best_ask_tick <= depth.best_bid_tick:
            continue
        orders = hbt.orders(0)
        values = orders.values()
        while values.has_next():
            o = values.get()
            if o.cancellable:
                hbt.cancel(0, o.order_id, False)
        mid = (depth.best_bid_tick + depth.best_ask_tick) / 2.0
        bid = np.floor(mid - half_spread_ticks) * depth.tick_size
        ask = np.ceil(mid + half_spread_ticks) * depth.tick_size
        hbt.submit_buy_order(0, order_id, bid, qty, 1, 0, False)  # GTX (post-only), LIMIT
        hbt.submit_sell_order(0, order_id + 1, ask, qty, 1, 0, False)
        order_id += 2
        quotes += 1
    sv = hbt.state_values(0)
    out[0] = quotes
    out[1] = sv.num_trades
    out[2] = hbt.position(0)
    out[3] = sv.balance
    out[4] = hbt.current_timestamp


def test_market_making_loop_runs_over_the_export(sim_quarter_hour: Path, tmp_path: Path) -> None:
    from hftbacktest import HashMapMarketDepthBacktest

    _summary(sim_quarter_hour, tmp_path / "x.npz", [DAY])
    hbt = HashMapMarketDepthBacktest([asset(tmp_path / "x.npz", tmp_path / "x_snapshot.npz", TICK, 0.00001)])
    out = np.zeros(5)
    _market_make(hbt, 1, 0.001, 9_000, out)  # 15 minutes of 100 ms steps
    hbt.close()
    quotes, fills, position, balance, now = out
    print(f"\nmarket making over the export: {int(quotes)} quote refreshes, {int(fills)} fills, position "
          f"{position:+.5f} BTC, balance {balance:+.2f} USDT")
    assert quotes > 8_000
    assert fills > 10
    assert balance != 0.0 and abs(position) < 1.0
    assert now >= 1723075200 * 10**9 + 14 * 60 * 10**9


@pytest.mark.slow
def test_replay_matches_with_faults_outside_their_windows(tmp_path: Path) -> None:
    """Faulted data (a dropped delta, a crossed snapshot, a 30 s hole): every snapshot that repaired our book is a
    whole-book clear in the export, which drops the deeper levels our replay keeps; mismatches stay near faults."""
    root = simulated_root(tmp_path / "data", faults=("dropped-delta", "time-hole", "crossed-snapshot"))
    s = _summary(root, tmp_path / "x.npz", [DAY])
    hbt = replay_local_bbo(tmp_path / "x.npz", tmp_path / "x_snapshot.npz", TICK, LOT)
    m = compare(root, INSTRUMENT, DAY, "2024-08-09", hbt, s.local_ts_offset_ns)
    print(f"\nsimulated 0.25 h with faults: {m.matched}/{m.messages} ({m.rate:.4%})")
    assert m.rate >= 0.98
    seconds = (m.mismatches["event_time"].dt.epoch("ns") - 1723075200 * 10**9) / 1e9
    # within 2 minutes of the dropped delta (180 s), the crossed snapshots (360 s) and the start of the hole (540 s)
    near = ((seconds >= 180) & (seconds < 300)) | ((seconds >= 360) & (seconds < 480)) | \
        ((seconds >= 540) & (seconds < 660))
    assert near.all(), seconds.filter(~near)


@pytest.fixture(scope="module")
def real_two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_root(tmp_path_factory.mktemp("handoff_real"), realdata_dir())


@pytest.mark.realdata
def test_real_recording_across_midnight_matches_in_hftbacktest(real_two_days: Path, tmp_path: Path) -> None:
    from lake_pipeline.handoff import events

    s = _summary(real_two_days, tmp_path / "x.npz", ["2024-08-08", "2024-08-09"])
    hbt = replay_local_bbo(tmp_path / "x.npz", tmp_path / "x_snapshot.npz", TICK, LOT)
    m = compare(real_two_days, INSTRUMENT, "2024-08-08", "2024-08-10", hbt, s.local_ts_offset_ns)
    print(f"\nreal BTC spot (2 days, {m.messages} delta messages): hftbacktest == ours at {m.matched} "
          f"({m.rate:.4%}); local_ts shifted by {s.local_ts_offset_ns} ns; export {s.rows} rows, {s.events}")
    assert m.messages > 6000
    assert m.rate >= 0.99, m.mismatches.head(20)
    # each day's book is seeded by its own first snapshot: two seeding rows, and the export clears at both
    seeded = events(real_two_days, INSTRUMENT, "2024-08-08", "2024-08-10", columns=["date", "seeded"]).collect()
    assert seeded.filter("seeded")["date"].cast(str).to_list() == ["2024-08-08", "2024-08-09"]


def test_dagster_asset_writes_the_partitions_export(sim_quarter_hour: Path, tmp_path: Path) -> None:
    import shutil

    import dagster as dg

    from lake_pipeline.defs.handoff import EXPORT_ZONE, hftbacktest_export
    from lake_pipeline.instrument import Partition
    from lake_pipeline.partitions import partition_key
    from lake_pipeline.resources import DataRoot
    from lake_pipeline_tests.handoff_support import copy_partition

    root = copy_partition(sim_quarter_hour, tmp_path / "data")
    with dg.instance_for_test() as instance:
        res = dg.materialize([hftbacktest_export], partition_key=partition_key(Partition("BINANCE", "BTC-USDT", DAY)), instance=instance,
                             resources={"data_root": DataRoot(path=str(root))})
    assert res.success
    out = Partition("BINANCE", "BTC-USDT", DAY).dir(root, EXPORT_ZONE)
    meta = res.asset_materializations_for_node("hftbacktest_export")[0].metadata
    data = np.load(out / "events.npz")["data"]
    assert meta["dagster/row_count"].value == len(data) > 250_000
    assert meta["path"].value == str(out / "events.npz")
    assert (out / "events_snapshot.npz").exists()
    shutil.rmtree(Partition("BINANCE", "BTC-USDT", DAY).dir(root, "unified"))  # unpublished now: the run fails
    with dg.instance_for_test() as instance:
        res = dg.materialize([hftbacktest_export], partition_key=partition_key(Partition("BINANCE", "BTC-USDT", DAY)), instance=instance,
                             resources={"data_root": DataRoot(path=str(root))}, raise_on_error=False)
    assert not res.success
    assert "is not readable: no unified events" in str(res.get_step_failure_events()[0].event_specific_data.error)


@pytest.mark.realdata
def test_real_usdm_recording_matches_in_hftbacktest(tmp_path: Path) -> None:
    """USD-M futures (BINANCE_FUTURES.BTC-USDT-PERP, tick 0.1, lot 0.001): the venue's own tick/lot go through."""
    from lake_pipeline.handoff import export_hftbacktest
    from lake_pipeline.instrument import Instrument
    from lake_pipeline.lake.from_capture import lake_from_capture
    from lake_pipeline.reconstruct.run import reconstruct_partition

    inst = Instrument("BINANCE_FUTURES", "BTC-USDT-PERP")
    root = tmp_path / "data"
    lake_from_capture([realdata_dir() / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"], root, inst)
    days = ["2024-08-08", "2024-08-09"]
    for day in days:
        reconstruct_partition(root, inst.on(day))
    s = export_hftbacktest(root, inst, days, tmp_path / "x.npz")
    assert (s.tick, s.lot) == ("0.1", "0.001")
    hbt = replay_local_bbo(tmp_path / "x.npz", tmp_path / "x_snapshot.npz", 0.1, 0.001)
    m = compare(root, inst.key, days[0], "2024-08-10", hbt, s.local_ts_offset_ns)
    print(f"\nreal BTC USD-M ({m.messages} delta messages): hftbacktest == ours at {m.matched} ({m.rate:.4%})")
    assert m.messages > 6000 and m.rate >= 0.99, m.mismatches.head(20)
