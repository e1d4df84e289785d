"""Regime detector on simulator periods of known intensity, and the multi-session config."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from lake_pipeline.capture.golden import read_golden
from lake_pipeline.capture.regime import HIGH, LOW, NORMAL, SPECIAL, RegimeConfig, RegimeDetector, parse_time_ms
from lake_pipeline.instrument import Instrument
from lake_pipeline.capture.session_config import (
    SessionConfigError,
    load_session_config,
    parse_duration,
    parse_session_config,
)
from lake_pipeline.config import symbol_spec
from lake_pipeline.sim import simulate

WINDOW_MS = 10_000


@pytest.fixture(scope="module")
def sim_events(tmp_path_factory) -> dict[str, np.ndarray]:
    """~3.5 simulated minutes of BTC-USDT (golden feed): events (E, n) and spreads (E, ticks)."""
    root = tmp_path_factory.mktemp("sim")
    summary = simulate(root, Instrument.parse("BTC-USDT").on("2024-08-08"), 0.06, 11, start_hour=3, golden_hours=0.06)
    golden = read_golden(sorted(Path(summary.paths["golden"]).glob("frames-*")), symbol_spec(Instrument.parse("BTC-USDT")))
    depth = golden.depth
    n_levels = (depth["bid_px"].list.len() + depth["ask_px"].list.len()).to_numpy()
    e = np.concatenate([depth["E"].to_numpy(), golden.trades["E"].to_numpy()])
    n = np.concatenate([n_levels, np.ones(golden.trades.height, dtype=np.int64)])
    order = np.argsort(e, kind="stable")
    # bookTicker has no E: place each quote at the exchange time its receive time implies
    shift_ms = int(np.median(golden.trades["E"].to_numpy() - golden.trades["recv_ns"].to_numpy() // 1_000_000))
    bt = golden.book_ticker
    spread = (bt["ask_px"] - bt["bid_px"]).to_numpy()
    return {"E": e[order] - e.min(), "n": n[order], "spread_E": bt["recv_ns"].to_numpy() // 1_000_000 + shift_ms - e.min(),
            "spread": spread}


def _segment(ev: dict, src: tuple[int, int], dst_start: int, speed: float = 1.0, keep_every: int = 1):
    """Events of sim time [src) moved to start at `dst_start`, time-compressed by `speed`, thinned 1 in `keep_every`."""
    lo, hi = src
    m = (ev["E"] >= lo) & (ev["E"] < hi)
    e, n = ev["E"][m], ev["n"][m]
    e, n = e[::keep_every], n[::keep_every]
    ms = (ev["spread_E"] >= lo) & (ev["spread_E"] < hi)
    se, sv = ev["spread_E"][ms][::keep_every], ev["spread"][ms][::keep_every]
    return (dst_start + (e - lo) / speed).astype(np.int64), n, (dst_start + (se - lo) / speed).astype(np.int64), sv


def test_regimes_of_known_intensity(sim_events):
    """NORMAL (as simulated), HIGH (the same flow 4x faster), LOW (1 event in 5), a calendar event: each tagged."""
    base = 1_723_086_000_000  # window-aligned epoch ms
    plan = [  # (source ms, destination start, speed, thinning) -> expected regime of the destination windows
        ((0, 60_000), 0, 1.0, 1, NORMAL),
        ((60_000, 180_000), 60_000, 4.0, 1, HIGH),  # 120 s of flow in 30 s
        ((0, 60_000), 90_000, 1.0, 5, LOW),
        ((120_000, 200_000), 150_000, 1.0, 1, NORMAL),
    ]
    calendar = [{"name": "CPI print", "start": datetime.fromtimestamp((base + 180_000) / 1000, UTC).isoformat(),
                 "end": datetime.fromtimestamp((base + 190_000) / 1000, UTC).isoformat()}]
    detector = RegimeDetector(RegimeConfig.from_dict({"window_s": 10}, calendar))
    expected: dict[int, str] = {}
    for src, dst, speed, thin, regime in plan:
        e, n, se, sv = _segment(sim_events, src, base + dst, speed, thin)
        for t, k in zip(e.tolist(), n.tolist(), strict=True):
            detector.observe_events(t, k)
        for t, s in zip(se.tolist(), sv.tolist(), strict=True):
            detector.observe_spread(t, s)
        span = (src[1] - src[0]) / speed
        for w in range(int(dst // WINDOW_MS), int((dst + span) // WINDOW_MS)):
            expected[w] = regime
    expected[18] = SPECIAL
    got = {(w.start_ms - base) // WINDOW_MS: w.regime for w in detector.windows()}
    assert {w: got[w] for w in expected} == expected
    segments = detector.segments()
    assert [s["regime"] for s in segments] == [NORMAL, HIGH, LOW, NORMAL, SPECIAL, NORMAL]
    assert segments[4]["reason"] == "calendar: CPI print"


def test_absolute_thresholds_and_empty_windows():
    d = RegimeDetector(RegimeConfig(window_s=1, high_rate=100, low_rate=5))
    for t in range(0, 1000, 5):  # 200 events/s in second 0
        d.observe_events(t)
    d.observe_events(3_500, 50)  # second 3: 50/s; seconds 1-2 empty
    assert [w.regime for w in d.windows()] == [HIGH, LOW, LOW, NORMAL]


def test_parse_time_and_calendar_errors():
    assert parse_time_ms("2024-08-09T00:00:00Z") == 1_723_161_600_000
    assert parse_time_ms("2024-08-09T02:00:00+02:00") == 1_723_161_600_000
    with pytest.raises(ValueError, match="end must be after start"):
        RegimeConfig.from_dict({}, [{"name": "x", "start": "2024-08-09T01:00:00Z", "end": "2024-08-09T00:00:00Z"}])
    with pytest.raises(ValueError, match="unknown keys"):
        RegimeConfig.from_dict({"windw_s": 3})


SESSIONS_YAML = """
defaults: {duration: 30m, rotate: 10m}
regime: {window_s: 30, high_factor: 3}
calendar:
  - {name: FOMC, start: "2026-12-16T19:00:00Z", end: "2026-12-16T20:00:00Z"}
sessions:
  - name: btc-us-open
    symbol: BTC-USDT
    regime_intent: high_volume
    schedule: {start: "13:30", end: "16:00", days: [mon, tue, wed, thu, fri]}
    duration: 1h
  - name: eth-night
    symbol: ETH-USDT
    regime_intent: LOW_VOLUME
    schedule: {start: "22:00", end: "02:00"}
  - name: btc-always
    symbol: BTC-USDT
"""


def test_session_config_schedules(tmp_path):
    path = tmp_path / "sessions.yaml"
    path.write_text(SESSIONS_YAML)
    plan = load_session_config(path)
    assert plan.regime.window_s == 30 and plan.regime.high_factor == 3 and plan.regime.calendar[0].name == "FOMC"
    us, night, always = plan.sessions
    assert (us.regime_intent, us.duration_s, us.rotate_s) == (HIGH, 3600, 600)
    assert (night.duration_s, always.streams) == (1800, ("trade", "depth@100ms", "bookTicker"))
    monday_14 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    saturday_14 = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    tuesday_01 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    assert [s.name for s in plan.active(monday_14)] == ["btc-us-open", "btc-always"]
    assert [s.name for s in plan.active(saturday_14)] == ["btc-always"]
    assert [s.name for s in plan.active(tuesday_01)] == ["eth-night", "btc-always"]
    assert plan.by_name("eth-night") is night


@pytest.mark.parametrize(
    ("doc", "message"),
    [({"sessions": []}, "non-empty `sessions`"),
     ({"sessions": [{"name": "a"}]}, r"`name` and `instrument` \(or `symbol`\) are required"),
     ({"sessions": [{"name": "a", "instrument": "binance.BTC-USDT"}]}, "exchange 'binance'"),
     ({"sessions": [{"name": "a", "symbol": "X"}, {"name": "a", "symbol": "Y"}]}, "duplicate session name"),
     ({"sessions": [{"name": "a", "symbol": "X", "regime_intent": "BUSY"}]}, "regime_intent 'BUSY'"),
     ({"sessions": [{"name": "a", "symbol": "X", "duration": "soon"}]}, "invalid duration 'soon'"),
     ({"sessions": [{"name": "a", "symbol": "X", "schedule": {"start": "25:00"}}]}, "schedule")],
)
def test_session_config_errors_name_the_session(doc, message):
    with pytest.raises(SessionConfigError, match=message) as err:
        parse_session_config(doc, "cfg.yaml")
    assert "cfg.yaml" in str(err.value)


@pytest.mark.parametrize(("text", "seconds"), [("1h", 3600), ("30m", 1800), ("45s", 45), ("250ms", 0.25), (90, 90),
                                               ("2d", 172800), ("3600", 3600)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds
