"""Binance protocol facts (capture/protocol.py): the documented spot and USD-M values, and no capture -> sim import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lake_pipeline.capture.protocol import (
    FUTURES,
    SPOT,
    is_depth_stream,
    stream_kind,
    venue_protocol,
    wire_symbol,
)


def test_paths_and_endpoints() -> None:
    assert (SPOT.depth_path, SPOT.time_path, SPOT.exchange_info_path) == (
        "/api/v3/depth", "/api/v3/time", "/api/v3/exchangeInfo")
    assert (FUTURES.depth_path, FUTURES.time_path, FUTURES.exchange_info_path) == (
        "/fapi/v1/depth", "/fapi/v1/time", "/fapi/v1/exchangeInfo")
    assert FUTURES.ws_base == "wss://fstream.binance.com" and FUTURES.rest_base == "https://fapi.binance.com"
    assert venue_protocol("BINANCE_FUTURES") is FUTURES and venue_protocol("BINANCE") is SPOT
    with pytest.raises(ValueError, match="no Binance wire protocol for venue 'COINBASE'"):
        venue_protocol("COINBASE")


@pytest.mark.parametrize(("requested", "limit", "weight"),
                         [(5, 5, 2), (50, 50, 2), (99, 50, 2), (100, 100, 5), (500, 500, 10), (1000, 1000, 20),
                          (5000, 1000, 20), (1, 5, 2)])
def test_futures_depth_limits_and_weights(requested: int, limit: int, weight: int) -> None:
    assert FUTURES.depth_limit(requested) == limit
    assert FUTURES.depth_weight(limit) == weight


def test_spot_depth_limit_clamps() -> None:
    assert (SPOT.depth_limit(9000), SPOT.depth_limit(0), SPOT.depth_limit(777)) == (5000, 1, 777)
    assert (SPOT.weight_limit_1m, FUTURES.weight_limit_1m) == (6000, 2400)


def test_stream_names() -> None:
    assert FUTURES.stream("BTC-USDT-PERP", "depth@0ms") == "btcusdt@depth@0ms"
    assert SPOT.stream("BTC-USDT", "bookTicker") == "btcusdt@bookTicker"
    assert wire_symbol("BTC-USDT-PERP") == wire_symbol("btcusdt") == "BTCUSDT"
    assert FUTURES.diff_depth_streams() == ("depth", "depth@500ms", "depth@100ms", "depth@0ms")
    assert "depth@1000ms" in SPOT.diff_depth_streams() and "depth@0ms" not in SPOT.diff_depth_streams()
    assert "depth20@100ms" in SPOT.partial_depth_streams()
    kinds = {s: stream_kind(s) for s in ("trade", "aggTrade", "bookTicker", "depth@0ms", "depth@100ms", "depth",
                                          "depth20@100ms", "depth@250ms", "kline_1m")}
    assert kinds == {"trade": "trades", "aggTrade": "agg_trades", "bookTicker": "book_ticker", "depth@0ms": "depth",
                     "depth@100ms": "depth", "depth": "depth", "depth20@100ms": None, "depth@250ms": None,
                     "kline_1m": None}
    assert is_depth_stream("depth20@100ms") and is_depth_stream("depth@250ms") and not is_depth_stream("trade")


def test_capture_never_imports_the_simulator() -> None:
    """The capture/sim cycle (issue 13): protocol facts live in capture/protocol.py, sim imports them."""
    capture = Path(__file__).parents[1] / "lake_pipeline" / "capture"
    offenders = []
    for path in sorted(capture.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("lake_pipeline.sim")]
    assert offenders == []
