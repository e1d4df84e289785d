"""Shared helpers for exchange-server and capture tests: the real BTC feed (loaded once) and a server runner."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

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
