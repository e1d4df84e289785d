"""Binance REST client for the capture: depth snapshots and server time, within the request-weight budget.

It reads `X-MBX-USED-WEIGHT-1M` from every reply, waits for the next minute rather than run over the budget,
honours `Retry-After` on 429 (and on 418, which means the IP is banned: that should never happen and is logged as
an error), and spaces snapshot requests so a resync loop cannot become a rate-limit storm (research §3 item 10).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from loguru import logger

from lake_pipeline.capture.protocol import SPOT, TIME_WEIGHT, WEIGHT_HEADER, VenueProtocol


class RestError(RuntimeError):
    """A REST reply the capture cannot use (status and Binance error body in the message)."""

    def __init__(self, msg: str, status: int = 0, retry_after: float = 0.0) -> None:
        super().__init__(msg)
        self.status = status
        self.retry_after = retry_after


@dataclass
class RestStats:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    max_used_weight: int = 0
    waits: list[dict] = field(default_factory=list)  # {"wall_ns", "seconds", "reason"}

    def to_dict(self) -> dict:
        return {"requests": self.requests, "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "max_used_weight": self.max_used_weight, "waits": self.waits}


@dataclass
class Reply:
    text: str
    recv_wall_ns: int
    recv_mono_ns: int
    send_wall_ns: int


class RestClient:
    """`GET`s against one base URL with Binance's weight accounting; one instance per capture."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, weight_limit: int = 6000,
                 min_snapshot_interval_s: float = 1.0, timeout_s: float = 10.0,
                 protocol: VenueProtocol = SPOT) -> None:
        self._http = session
        self.protocol = protocol
        self.base = base_url.rstrip("/")
        self.weight_limit = weight_limit
        self.min_snapshot_interval_s = min_snapshot_interval_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._used = 0
        self._used_window = -1
        self._blocked_until = 0.0  # monotonic
        self._last_snapshot = -1e18
        self.stats = RestStats()
        self._lock = asyncio.Lock()

    async def _wait(self, seconds: float, reason: str) -> None:
        if seconds <= 0:
            return
        self.stats.waits.append({"wall_ns": time.time_ns(), "seconds": round(seconds, 3), "reason": reason})
        logger.info("REST: waiting {:.2f} s ({})", seconds, reason)
        await asyncio.sleep(seconds)

    async def _before(self, weight: int) -> None:
        now = time.monotonic()
        if now < self._blocked_until:
            await self._wait(self._blocked_until - now, "Retry-After")
        window = int(time.time() // 60)
        if window == self._used_window and self._used + weight > self.weight_limit * 0.9:
            await self._wait(60 - time.time() % 60 + 0.05, f"used weight {self._used} near the budget")

    async def get(self, path: str, params: dict[str, str], weight: int) -> Reply:
        """One request at a time: a request sent while another's 429 is on its way would count as ignoring it."""
        async with self._lock:
            return await self._get(path, params, weight)

    async def _get(self, path: str, params: dict[str, str], weight: int) -> Reply:
        await self._before(weight)
        send = time.time_ns()
        self.stats.requests += 1
        async with self._http.get(self.base + path, params=params, timeout=self._timeout) as resp:
            text = await resp.text()
            wall, mono = time.time_ns(), time.monotonic_ns()
            self.stats.statuses[resp.status] += 1
            used = resp.headers.get(WEIGHT_HEADER)
            if used is not None and used.isdigit():
                self._used, self._used_window = int(used), int(time.time() // 60)
                self.stats.max_used_weight = max(self.stats.max_used_weight, self._used)
            if resp.status in (429, 418):
                retry = float(resp.headers.get("Retry-After", "60"))
                self._blocked_until = time.monotonic() + retry
                (logger.error if resp.status == 418 else logger.warning)(
                    "REST {} {}: HTTP {} Retry-After {} s: {}", path, params.get("symbol", ""), resp.status, retry,
                    text[:200])
                raise RestError(f"{path}: HTTP {resp.status} (Retry-After {retry} s): {text[:200]}", resp.status, retry)
            if resp.status != 200:
                raise RestError(f"{path}: HTTP {resp.status}: {text[:200]}", resp.status)
        return Reply(text, wall, mono, send)

    async def depth(self, symbol: str, limit: int = 5000) -> Reply:
        """A depth snapshot, spaced at least `min_snapshot_interval_s` from the previous one."""
        since = time.monotonic() - self._last_snapshot
        await self._wait(self.min_snapshot_interval_s - since, "snapshot spacing")
        self._last_snapshot = time.monotonic()
        limit = self.protocol.depth_limit(limit)
        return await self.get(self.protocol.depth_path, {"symbol": symbol, "limit": str(limit)},
                              self.protocol.depth_weight(limit))

    async def server_time(self) -> tuple[int, int, int]:
        """(t_send_wall_ns, serverTime_ms, t_recv_wall_ns)."""
        reply = await self.get(self.protocol.time_path, {}, TIME_WEIGHT)
        return reply.send_wall_ns, int(json.loads(reply.text)["serverTime"]), reply.recv_wall_ns
