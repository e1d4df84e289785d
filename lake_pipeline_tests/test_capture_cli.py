"""The capture and exchange-server command lines, end to end over loopback."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import pytest

from lake_pipeline.capture.cli import build_config
from lake_pipeline.capture.keys import KEY_ENV, KEY_FILE_ENV
from lake_pipeline.cli import main
from lake_pipeline_tests.conftest import REPO_ROOT, realdata_dir


def _args(**kw) -> argparse.Namespace:
    base = dict(exchange=None, symbol=None, duration=None, data_root=None, ws_url=None, rest_url=None, session_config=None,
                session=None, rotate=None, streams=None, agg_trade=False, key_file=None, plaintext=False, no_ntp=False)
    return argparse.Namespace(**(base | kw))


def test_build_config_from_a_named_session(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "ab" * 32)
    cfg_file = tmp_path / "s.yaml"
    cfg_file.write_text("regime: {window_s: 15}\nsessions:\n"
                        "  - {name: a, symbol: ETH-USDT, duration: 20m, rotate: 5m, regime_intent: HIGH_VOLUME}\n"
                        "  - {name: b, symbol: BTC-USDT, ws_url: 'ws://127.0.0.1:1'}\n"
                        "  - {name: c, instrument: BINANCE_FUTURES.BTC-USDT-PERP}\n")
    cfg = build_config(_args(session_config=cfg_file, session="a", data_root=tmp_path, agg_trade=True, no_ntp=True))
    assert (cfg.symbol, cfg.duration_s, cfg.rotate_s, cfg.regime_intent, cfg.regime.window_s) == \
        ("ETH-USDT", 1200, 300, "HIGH_VOLUME", 15)
    assert cfg.streams[-1] == "aggTrade" and cfg.ntp_servers == () and cfg.key.raw == bytes.fromhex("ab" * 32)
    b = build_config(_args(session_config=cfg_file, session="b", duration="90s", plaintext=True))
    assert (b.ws_url, b.duration_s, b.key) == ("ws://127.0.0.1:1", 90, None)
    assert b.instrument.key == "BINANCE.BTC-USDT"  # a bare symbol: its default venue
    c = build_config(_args(session_config=cfg_file, session="c", plaintext=True))
    assert (c.exchange, c.symbol) == ("BINANCE_FUTURES", "BTC-USDT-PERP")  # the session names its instrument
    over = build_config(_args(session_config=cfg_file, session="c", plaintext=True, exchange="BINANCE_FUTURES",
                              symbol="ETH-USDT-PERP"))
    assert over.instrument.key == "BINANCE_FUTURES.ETH-USDT-PERP"  # the CLI overrides the session
    with pytest.raises(ValueError, match="several sessions"):
        build_config(_args(session_config=cfg_file))
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ValueError, match="no capture key"):
        build_config(_args(symbol="BTC-USDT"))


@pytest.mark.realdata
def test_exchange_server_and_capture_commands(tmp_path, monkeypatch, capsys):
    """`exchange-server --replay` in a subprocess, `capture` against it, `capture-cat` to read the result back."""
    assert main(["capture-keygen", "--out", str(tmp_path / "key")]) == 0
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "key"))
    recording = realdata_dir() / "hftbacktest" / "spot" / "btcusdt_20240808.gz"
    server = subprocess.Popen(
        [sys.executable, "-m", "lake_pipeline.cli", "exchange-server", "--port", "0", "--speed", "20",
         "--replay", str(recording), "--drop-diff-at", "40"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    try:
        ready = server.stdout.readline()
        port = re.search(r"ws://127\.0\.0\.1:(\d+)", ready)[1]
        code = main(["capture", "--symbol", "BTC-USDT", "--duration", "3s", "--data-root", str(tmp_path / "data"),
                     "--ws-url", f"ws://127.0.0.1:{port}", "--rest-url", f"http://127.0.0.1:{port}", "--no-ntp",
                     "--rotate", "1s"])
    finally:
        server.terminate()
        server.wait(10)
    out = capsys.readouterr().out
    assert code == 0 and ": complete," in out
    [session_json] = list((tmp_path / "data").rglob("session.json"))
    doc = json.loads(session_json.read_text())
    assert len(doc["files"]) >= 2 and [g["missing_ids"] > 0 for g in doc["gaps"]] == [True]
    assert [r["reason"] for r in doc["resyncs"]] == ["initial", "gap"]
    files = [str(tmp_path / "data" / f["path"]) for f in doc["files"]]
    assert main(["capture-cat", *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == doc["frames"]["total"]
    assert sum(1 for line in lines if '"stream":"btcusdt@depth@100ms"' in line) == \
        doc["frames"]["per_stream"]["btcusdt@depth@100ms"]


def test_exchange_server_simulate_mode(tmp_path):
    """`exchange-server --simulate`: a simulator session generated, then served (snapshot + stream)."""
    import asyncio

    import aiohttp

    server = subprocess.Popen(
        [sys.executable, "-m", "lake_pipeline.cli", "exchange-server", "--port", "0", "--simulate", "--seed", "3",
         "--sim-hours", "0.01", "--sim-root", str(tmp_path), "--speed", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    try:
        port = re.search(r"ws://127\.0\.0\.1:(\d+)", server.stdout.readline())[1]

        async def client():
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"ws://127.0.0.1:{port}/stream?streams=btcusdt@depth@100ms")
                first = json.loads((await ws.receive(timeout=10)).data)
                async with http.get(f"http://127.0.0.1:{port}/api/v3/depth", params={"symbol": "BTCUSDT"}) as r:
                    snap = await r.json()
                return first, snap

        first, snap = asyncio.run(client())
    finally:
        server.terminate()
        server.wait(10)
    assert first["stream"] == "btcusdt@depth@100ms" and first["data"]["e"] == "depthUpdate"
    assert len(snap["bids"]) == len(snap["asks"]) == 100 and float(snap["bids"][0][0]) < float(snap["asks"][0][0])
    assert list(tmp_path.rglob("session=sim-3/frames-*"))


@pytest.mark.parametrize(("endpoint", "why"), [
    ("deaf_url", r"no frame recorded: could not connect to ws://127\.0\.0\.1:\d+/stream\?streams=btcusdt@trade/"
                 r"btcusdt@depth@100ms/btcusdt@bookTicker in 1\.5 s \(1 failed attempts; last error: no answer "
                 r"before the capture ended\)"),
    ("mute_url", r"no frame recorded: connected 1 time\(s\) to ws://127\.0\.0\.1:\d+/stream\?streams=\S+ but it sent "
                 r"no market frame of btcusdt@trade, btcusdt@depth@100ms, btcusdt@bookTicker in 1\.5 s"),
])
def test_capture_that_records_nothing_fails_with_a_reason(endpoint, why, tmp_path, capsys):
    """Issue 13: an endpoint that never answers (or answers and sends nothing) is exit 3 with the reason, within the
    capture's duration, and a failed session.json; not "complete, 0 frames" and exit 0."""
    import time

    from lake_pipeline_tests.exchange_helpers import SilentEndpoints

    with SilentEndpoints() as silent:
        url = getattr(silent, endpoint)
        t0 = time.monotonic()
        code = main(["capture", "--symbol", "BTC-USDT", "--duration", "1.5s", "--data-root", str(tmp_path),
                     "--ws-url", url, "--rest-url", url.replace("ws://", "http://"), "--no-ntp", "--plaintext"])
        elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 3 and re.search(f"capture failed: {why}", err), err
    assert elapsed < 15  # the duration (plus start-up), not a hung connect
    [session] = list(tmp_path.rglob("session.json"))
    doc = json.loads(session.read_text())
    assert doc["status"] == "failed" and re.fullmatch(why, doc["error"])
