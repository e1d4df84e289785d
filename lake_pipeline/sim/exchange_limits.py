"""Binance's rate limits as the exchange server enforces them (research binance.md §1.4–§1.5; the numbers per venue
are in `lake_pipeline.capture.protocol`).

REST: request weight per fixed one-minute window (6000 on spot, 2400 on USD-M), `X-MBX-USED-WEIGHT-1M` on every
reply, HTTP 429
+ `Retry-After` over the budget, HTTP 418 (IP ban) for a client that keeps requesting while told to back off.
WebSocket: at most 5 (USD-M: 10) incoming messages per second per connection (pings, pongs and JSON all count),
else close 1008.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field


@dataclass
class Verdict:
    """What the REST layer answers: `status` 200/429/418, the used weight for the header, `retry_after` seconds."""

    status: int
    used_weight: int
    retry_after: int = 0


@dataclass
class WeightBudget:
    """Fixed-window request-weight accounting with Binance's 429 → 418 escalation.

    `ban_after_ignored`: requests made while a 429's Retry-After is still running before the IP is banned (418).
    Times are seconds on any monotonic clock the caller passes in.
    """

    limit: int = 6000
    window_s: float = 60.0
    ban_after_ignored: int = 2
    ban_s: float = 120.0
    _window: int = -1
    _used: int = 0
    _retry_until: float = 0.0
    _ignored: int = 0
    _banned_until: float = 0.0
    statuses: collections.Counter = field(default_factory=collections.Counter)

    def charge(self, weight: int, now: float, force_429_for: float = 0.0) -> Verdict:
        """Account one request of `weight` at `now`; `force_429_for` > 0 answers 429 regardless (fault injection)."""
        verdict = self._charge(weight, now, force_429_for)
        self.statuses[verdict.status] += 1
        return verdict

    def _charge(self, weight: int, now: float, force_429_for: float) -> Verdict:
        window = int(now // self.window_s)
        if window != self._window:
            self._window, self._used = window, 0
        if now < self._banned_until:
            return Verdict(418, self._used, math.ceil(self._banned_until - now))
        if now < self._retry_until:
            self._ignored += 1
            if self._ignored >= self.ban_after_ignored:
                self._banned_until = now + self.ban_s
                return Verdict(418, self._used, math.ceil(self.ban_s))
            return Verdict(429, self._used, max(1, math.ceil(self._retry_until - now)))
        self._ignored = 0
        if force_429_for > 0:
            self._retry_until = now + force_429_for
            return Verdict(429, self._used, max(1, math.ceil(force_429_for)))
        if self._used + weight > self.limit:
            self._retry_until = (window + 1) * self.window_s
            return Verdict(429, self._used, max(1, math.ceil(self._retry_until - now)))
        self._used += weight
        return Verdict(200, self._used)


def too_many_requests_body(limit: int) -> dict:
    return {"code": -1003, "msg": f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
                                  "Please use WebSocket Streams for live updates to avoid polling the API."}


def banned_body(until_ms: int) -> dict:
    return {"code": -1003, "msg": f"Way too much request weight used; IP banned until {until_ms}. "
                                  "Please use WebSocket Streams for live updates to avoid bans."}


@dataclass
class MessageRate:
    """Sliding one-second count of a connection's incoming messages; `hit()` is False once over `per_second`."""

    per_second: int = 5
    _times: collections.deque = field(default_factory=collections.deque)

    def hit(self, now: float) -> bool:
        self._times.append(now)
        while self._times and self._times[0] <= now - 1.0:
            self._times.popleft()
        return len(self._times) <= self.per_second
