"""Shared helpers for exchange-server and capture tests: the real BTC feed (loaded once) and a server runner."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from lake_pipeline.book import OrderBook
from lake_pipeline.capture.golden import iter_frames
from lake_pipeline.capture.keys import CaptureKey, use_key
from lake_pipeline.capture.levels import LevelParser
from lake_pipeline.capture.live import CaptureConfig, CaptureResult, LiveCapture
from lake_pipeline.config import SymbolSpec, symbol_spec
from lake_pipeline.instrument import Instrument
from lake_pipeline.sim.exchange_faults import Faults, ServerTiming
from lake_pipeline.sim.exchange_feed import Feed, load_feed
from lake_pipeline.sim.exchange_server import ExchangeServer, ServerThread
from lake_pipeline_tests.conftest import realdata_dir

STREAMS = "btcusdt@trade/btcusdt@depth@100ms/btcusdt@bookTicker"
DEPTH = "btcusdt@depth@100ms"
SPEC = symbol_spec(Instrument.parse("BTC-USDT"))


@lru_cache(maxsize=1)
def _btc_feed(paths: tuple[Path, ...]) -> Feed:
    return load_feed(list(paths))


@pytest.fixture
def btc_feed() -> Feed:
    """The whole ~650 s real BTCUSDT session as a Feed (parsed once per test process)."""
    spot = realdata_dir() / "hftbacktest" / "spot"
    return _btc_feed((spot / "btcusdt_20240808.gz", spot / "btcusdt_20240809.gz"))


def serve(feed: Feed, speed: float = 0.0, faults: Faults | None = None, timing: ServerTiming | None = None,
          record_sent: bool = True) -> ServerThread:
    """`with serve(feed) as server:` — an ExchangeServer on its own loop and thread."""
    return ServerThread(lambda: ExchangeServer(feed, speed=speed, faults=faults, timing=timing,
                                               record_sent=record_sent))


def run(coro_fn: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Run a client coroutine on a fresh loop in the test thread, with a hard timeout."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro_fn(), timeout)

    return asyncio.run(bounded())


CAPTURE_KEY = CaptureKey(bytes(range(100, 132)), "test key")
NON_STREAM_KEYS = ("<rest snapshot>", "<control>")


def capture_config(server: ExchangeServer, data_root: Path, **overrides: Any) -> CaptureConfig:
    """A loopback capture config: fast reconnects, no NTP, encrypted with the test key."""
    cfg = CaptureConfig(symbol="BTC-USDT", data_root=data_root, duration_s=60.0, ws_url=server.ws_url,
                        rest_url=server.rest_url, key=CAPTURE_KEY, ntp_servers=(), reconnect_base_s=0.05,
                        reconnect_cap_s=0.5, min_snapshot_interval_s=0.05, time_sample_s=0.5)
    for name, value in overrides.items():
        setattr(cfg, name, value)
    return cfg


def stream_frames_captured(capture: LiveCapture) -> int:
    return sum(n for k, n in capture.log.frames.items() if k not in NON_STREAM_KEYS)


def capture_until_served(server: ExchangeServer, data_root: Path, max_s: float = 60.0,
                         **overrides: Any) -> tuple[CaptureResult, LiveCapture]:
    """Run a LiveCapture against `server` until the feed ended and every frame the server sent was captured."""
    capture = LiveCapture(capture_config(server, data_root, **overrides))

    async def main() -> CaptureResult:
        task = asyncio.create_task(capture.run())
        t0 = time.monotonic()
        while time.monotonic() - t0 < max_s and not task.done():
            if server.finished.is_set() and stream_frames_captured(capture) >= server.stats.frames_sent:
                break
            await asyncio.sleep(0.02)
        capture.stop()
        return await task

    return asyncio.run(main()), capture


def captured_lines(result: CaptureResult, data_root: Path) -> list[tuple[int, int | None, str]]:
    """Every line of the capture's files, decrypted with the test key."""
    with use_key(CAPTURE_KEY):
        return [(w, m, f.decode()) for w, m, f in iter_frames([data_root / f["path"] for f in result.files])]


def payloads(frames: list[str], stream: str) -> list[dict]:
    head = f'{{"stream":"{stream}"'
    return [json.loads(f)["data"] for f in frames if f.startswith(head)]


def spot_gaps(diffs: list[dict]) -> list[tuple[int, int]]:
    """Spot: update ids missing between consecutive diffs' [U, u] in arrival order."""
    return _expected_gaps([(d["U"], d["u"]) for d in diffs])


def futures_gaps(diffs: list[dict]) -> list[tuple[int, int]]:
    """USD-M: where a diff's `pu` is beyond the last `u` received, (last u + 1, pu) never arrived."""
    gaps, hi = [], None
    for d in diffs:
        if hi is not None and d["pu"] > hi:
            gaps.append((hi + 1, d["pu"]))
        hi = d["u"] if hi is None else max(hi, d["u"])
    return gaps


def _expected_gaps(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Id ranges missing between consecutive (first, last) ranges in arrival order."""
    gaps, hi = [], ranges[0][1]
    for lo, up in ranges[1:]:
        if lo > hi + 1:
            gaps.append((hi + 1, lo - 1))
        hi = max(hi, up)
    return gaps


BAND_USD = 2_000  # either side of the touch: well inside the engine's re-centring window


def _book_levels(book: OrderBook, lo: int, hi: int) -> tuple:
    out = []
    for side in (True, False):
        px, sz = book.levels(side)
        keep = (px >= lo) & (px <= hi)
        out += [tuple(px[keep].tolist()), tuple(sz[keep].tolist())]
    return tuple(out)


def _server_levels(server: ExchangeServer, lo: int, hi: int, spec: SymbolSpec) -> tuple:
    parse = LevelParser(spec.tick, spec.lot)
    out = []
    for levels in server.book.top(10**6):
        px, sz = parse.arrays(levels)
        keep = (px >= lo) & (px <= hi)
        out += [tuple(px[keep].tolist()), tuple(sz[keep].tolist())]
    return tuple(out)


def assert_same_book(book: OrderBook, server: ExchangeServer, spec: SymbolSpec = SPEC,
                     known: tuple[int, int] | None = None) -> None:
    """Every level within $2,000 of the touch equals the server's full-depth book. (Far levels can be lost by the
    engine's bounded, re-centring window; that is its documented trade-off, not the capture's.) `known`: the deepest
    bid and ask (ticks) of the capture's last snapshot; bids below and asks above them never reached the capture
    unless they changed (a USD-M snapshot has at most 1000 levels a side) and are left out."""
    band = int(BAND_USD / spec.tick)
    lo, hi = book.best_bid()[0] - band, book.best_ask()[0] + band
    bid_lo, ask_hi = (max(lo, known[0]), min(hi, known[1])) if known is not None else (lo, hi)
    mine, theirs = _book_levels(book, lo, hi), _server_levels(server, lo, hi, spec)
    for side, (lo_px, hi_px) in enumerate(((bid_lo, hi), (lo, ask_hi))):
        keep = [i for i, px in enumerate(mine[2 * side]) if lo_px <= px <= hi_px]
        keep_theirs = [i for i, px in enumerate(theirs[2 * side]) if lo_px <= px <= hi_px]
        assert [(mine[2 * side][i], mine[2 * side + 1][i]) for i in keep] == \
            [(theirs[2 * side][i], theirs[2 * side + 1][i]) for i in keep_theirs], "bids" if side == 0 else "asks"
    assert len(mine[0]) + len(mine[2]) > 200


def snapshot_range(lines: list[str], spec: SymbolSpec) -> tuple[int, int] | None:
    """(deepest bid, deepest ask) of the last stored REST snapshot, in ticks."""
    last = next((t for t in reversed(lines) if t.startswith('{"lastUpdateId"')), None)
    if last is None:
        return None
    body = json.loads(last)
    parse = LevelParser(spec.tick, spec.lot)
    return int(parse.arrays(body["bids"][-1:])[0][0]), int(parse.arrays(body["asks"][-1:])[0][0])


def check_capture(server: ExchangeServer, capture: LiveCapture, result, data_root: Path, depth: str = DEPTH,
                  spec: SymbolSpec = SPEC, depth_gaps: Callable[[list[dict]], list] = spot_gaps) -> dict:
    """The shared promises; returns session.json for fault-specific assertions."""
    doc = json.loads(result.session_json[0].read_text())
    assert result.status == "complete" and doc["status"] == "complete"
    lines = captured_lines(result, data_root)
    frames = [f for _, _, f in lines if f.startswith('{"stream"')]
    # 1. nothing lost: the capture holds exactly what the server pushed, in order, and every REST snapshot
    assert frames == server.served_frames()
    assert sum(1 for _, _, f in lines if f.startswith('{"lastUpdateId"')) == doc["frames"]["per_stream"].get(
        "<rest snapshot>", 0) == len(server.stats.snapshots)
    assert all(m is not None for _, m, _ in lines)
    monos = [m for _, m, _ in lines]
    assert monos == sorted(monos)
    # 2. every id that never arrived is flagged, and nothing else
    diffs = payloads(frames, depth)
    assert [(g["from_id"], g["to_id"]) for g in doc["gaps"]] == depth_gaps(diffs)
    trades = payloads(frames, "btcusdt@trade")
    assert [(g["from_id"], g["to_id"]) for g in doc["trade_gaps"]] == _expected_gaps([(t["t"], t["t"]) for t in trades])
    # 3. the book is right after every resync, and at the end equals the server's
    checks = doc["book"]["book_checks"]
    assert checks["mismatched"] == 0 and checks["checked"] > 0
    for r in doc["resyncs"]:
        assert r["completed_ns"] is not None and r["mismatches_after"] == 0 and r["checks_after"] > 0, r
    assert capture.tracker.sync.book_id == server.book.update_id
    assert_same_book(capture.tracker.book, server, spec, snapshot_range([f for _, _, f in lines], spec))
    assert doc["physics"]["ok"], doc["physics"]["violations"]
    return doc


class SilentEndpoints:
    """Two loopback endpoints that give a capture nothing: `deaf_url`, a TCP port that never answers (listening, never
    accepting), and `mute_url`, a WebSocket server that accepts the upgrade and then sends nothing."""

    def __enter__(self) -> SilentEndpoints:
        import socket
        import threading

        from aiohttp import web

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.deaf_url = f"ws://127.0.0.1:{self._sock.getsockname()[1]}"

        async def mute(request: web.Request) -> web.StreamResponse:
            ws = web.WebSocketResponse(autoping=True)
            await ws.prepare(request)
            async for _ in ws:
                pass
            return ws

        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()

        async def start() -> int:
            app = web.Application()
            app.router.add_get("/stream", mute)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        port = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        self.mute_url = f"ws://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._sock.close()
