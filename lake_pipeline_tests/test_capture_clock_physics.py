"""Clock offset and latency arithmetic, NTP failure tolerance, stream-physics checks, and level parsing."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from lake_pipeline.capture.clock import ClockTracker, LatencyStats, binance_time_sample, ntp_sample
from lake_pipeline.capture.levels import LevelParser
from lake_pipeline.capture.live import binance_symbol, ticker_update_id
from lake_pipeline.capture.physics import PhysicsMonitor, stream_interval_ms
from lake_pipeline.capture.protocol import FUTURES, SPOT


def test_binance_time_offset_is_ntp_style():
    # local send 1000 ms, server says 2500 ms, local receive 1100 ms: offset = 2500 - 1050 ms, rtt 100 ms
    s = binance_time_sample(1_000_000_000, 2_500, 1_100_000_000)
    assert (s.offset_ns, s.rtt_ns, s.wall_ns) == (1_450_000_000, 100_000_000, 1_050_000_000)
    tracker = ClockTracker()
    tracker.add(s)
    tracker.add(binance_time_sample(2_000_000_000, 3_452, 2_004_000_000))  # rtt 4 ms: the better estimate
    assert tracker.offset_ns() == 3_452_000_000 - 2_002_000_000


def test_ntp_failure_is_recorded_not_raised():
    sample = ntp_sample("127.0.0.1", timeout_s=0.2)  # nothing serves NTP on loopback
    assert sample.offset_ns is None and sample.error and sample.source == "ntp:127.0.0.1"
    tracker = ClockTracker()
    tracker.add(sample)
    assert tracker.offset_ns() is None and tracker.to_dict()["samples"][0]["error"]


def test_latency_corrected_by_offset_and_flags_clock_faults():
    stats = LatencyStats(capacity=1000)
    for i in range(200):  # local clock 1.272 s behind the exchange; true latency 5 ms
        stats.add("btcusdt@trade", 10_000_000_000 + i * 1_000_000 - 1_272_000_000 + 5_000_000, 10_000 + i)
    raw = stats.summary(None)["btcusdt@trade"]
    assert raw["raw_p50_ms"] == pytest.approx(-1267.0) and "corrected_p50_ms" not in raw
    fixed = stats.summary(1_272_000_000)["btcusdt@trade"]
    assert fixed["corrected_p50_ms"] == pytest.approx(5.0) and fixed["clock_fault"] is False
    assert stats.summary(0)["btcusdt@trade"]["clock_fault"] is True  # negative latency = clock error


def test_latency_reservoir_is_bounded():
    stats = LatencyStats(capacity=100)
    for i in range(10_000):
        stats.add("s", i * 1_000_000, 0)
    row = stats.summary(None)["s"]
    assert (row["n"], row["sampled"]) == (10_000, 100) and 1000 < row["raw_p50_ms"] < 9000


def test_physics_flags_impossible_depth_rates_and_time_travel():
    good = PhysicsMonitor()
    for i in range(600):  # 60 s at 100 ms with a skipped tick now and then
        if i % 7:
            good.observe("btcusdt@depth@100ms", 1_000_000 + i * 100)
    assert good.report()["ok"]
    bad = PhysicsMonitor()
    for i in range(11):  # eleven messages inside one exchange second
        bad.observe("btcusdt@depth@100ms", 2_000_000 + i * 90)
    bad.observe("btcusdt@trade", 5_000)
    bad.observe("btcusdt@trade", 4_000)
    report = bad.report()
    assert not report["ok"]
    assert any("11 messages in one exchange second" in v for v in report["violations"])
    assert any("btcusdt@trade: E went backwards" in v for v in report["violations"])
    slow = PhysicsMonitor()
    slow.observe("btcusdt@depth", 0)
    slow.observe("btcusdt@depth", 300)
    assert any("E spacing of 300 ms" in v for v in slow.report()["violations"])


def test_level_parsing_is_exact_and_rejects_off_grid():
    parse = LevelParser(Decimal("0.01"), Decimal("0.00000001"))
    levels = [["61837.63000000", "3.78826000"], ["61837.62", "0"], ["0.01000000", "9223372036.85477580"]]
    px, sz = parse.arrays(levels)
    assert px.tolist() == [6183763, 6183762, 1] and sz.tolist() == [378826000, 0, 922337203685477580]
    assert parse.arrays([])[0].tolist() == []
    with pytest.raises(ValueError, match="price \\(tick 0.01\\) '61837.635' is off the grid"):
        parse.arrays([["1.00", "1"], ["61837.635", "1"], ["2.00", "1"]])
    assert LevelParser(Decimal("10"), Decimal("1")).arrays([["120.000", "3"]])[0].tolist() == [12]
    assert isinstance(px, np.ndarray) and px.dtype == np.int64


def test_symbol_and_ticker_helpers():
    assert binance_symbol("BTC-USDT", SPOT) == "BTCUSDT" == binance_symbol("BTC-USDT-PERP", FUTURES)
    with pytest.raises(ValueError, match="trades on USD-M futures"):
        binance_symbol("BTC-USDT-PERP", SPOT)
    frame = '{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}}'
    assert ticker_update_id(frame) == 50093239212


def test_futures_depth_pace_is_the_venues():
    """USD-M `@depth` is 250 ms (spot: 1000 ms); `@depth@0ms` has no pace, so no per-second cap applies to it."""
    assert [stream_interval_ms(f"btcusdt@{s}", FUTURES) for s in ("depth", "depth@500ms", "depth@100ms", "depth@0ms",
                                                                  "trade")] == [250, 500, 100, None, None]
    assert stream_interval_ms("btcusdt@depth", SPOT) == 1000 and stream_interval_ms("btcusdt@depth@0ms", SPOT) is None
    fast = PhysicsMonitor(FUTURES)
    for ms in range(0, 1000, 20):  # 50 real-time diffs in one second: fine at @0ms
        fast.observe("btcusdt@depth@0ms", 1_000_000 + ms)
    for ms in range(0, 1000, 100):  # 10 in one second: too many for the 250 ms @depth
        fast.observe("btcusdt@depth", 1_000_000 + ms)
    report = fast.report()
    assert report["violations"] == ["btcusdt@depth: 10 messages in one exchange second (at most 4 possible)",
                                    "btcusdt@depth: 10 messages in 0.9 s of exchange time (at most 5 possible)",
                                    "btcusdt@depth: E spacing of 100 ms for a 250 ms stream"]
