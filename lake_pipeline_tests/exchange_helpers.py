"""Shared helpers for exchange-server and capture tests: the real BTC feed (loaded once) and a server runner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from lake_pipeline.capture.golden import iter_frames
from lake_pipeline.capture.keys import CaptureKey, use_key
from lake_pipeline.capture.live import CaptureConfig, CaptureResult, LiveCapture
from lake_pipeline.sim.exchange_faults import Faults, ServerTiming
from lake_pipeline.sim.exchange_feed import Feed, load_feed
from lake_pipeline.sim.exchange_server import ExchangeServer, ServerThread
from lake_pipeline_tests.conftest import realdata_dir

STREAMS = "btcusdt@trade/btcusdt@depth@100ms/btcusdt@bookTicker"


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
