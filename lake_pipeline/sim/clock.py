"""Time conventions of the two views: float-second lake timestamps, collector latencies, in-order delivery.

* Crypto Lake's times went through cryptofeed's float seconds: `int(ms / 1000.0 * 1e9)` gives the real files'
  `…999936` artefacts (research cryptolake.md §3.0, §9.2). Receive times are float seconds too.
* A collector's latency is log-normal with persistence (an AR(1) in log space: slow periods last), and frames of
  one connection arrive in the order they were sent: receive = running max of (send + latency).
* Binance stamps a trade's `E` 0..a few ms after its `T` (real: 1 ms typical, up to ~200 ms).

Every random draw comes from a numpy Generator owned by the caller and consumed chunk by chunk in a fixed order,
so a run is reproducible byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

NS_PER_MS = 1_000_000


def float_seconds_ns(ms: np.ndarray) -> np.ndarray:
    """Exchange ms -> int64 ns the way the lake stores them: `int(ms / 1000.0 * 1e9)`."""
    return (np.asarray(ms, dtype=np.float64) / 1000.0 * 1e9).astype(np.int64)


def via_float_seconds(ns: np.ndarray) -> np.ndarray:
    """A receive time as cryptofeed keeps it: float seconds (`time.time()`), then `int(ts * 1e9)`."""
    return ((np.asarray(ns, dtype=np.int64) / 1e9) * 1e9).astype(np.int64)


@dataclass
class LatencyModel:
    """Log-normal latency with AR(1) persistence in log space; state carries across chunks."""

    median_s: float
    p95_s: float
    rho: float
    cap_s: float
    rng: np.random.Generator
    _z: float = 0.0

    def sample(self, n: int) -> np.ndarray:
        """`n` consecutive latencies in seconds (>= 0, <= cap)."""
        if n == 0:
            return np.zeros(0)
        sigma = math.log(self.p95_s / self.median_s) / 1.6448536269514722
        eps = self.rng.standard_normal(n) * math.sqrt(1.0 - self.rho * self.rho)
        z, _ = lfilter([1.0], [1.0, -self.rho], eps, zi=[self.rho * self._z])
        self._z = float(z[-1])
        return np.minimum(self.median_s * np.exp(sigma * z), self.cap_s)


@dataclass
class InOrderDelivery:
    """Frames of one connection: receive = max(send + latency, previous receive); carries the last receive."""

    latency: LatencyModel
    last_ns: int = 0

    def receive(self, send_ns: np.ndarray) -> np.ndarray:
        """Receive times (int64 ns, strictly increasing) for frames already sorted by send time (int64 ns).

        r_i = max(send_i + latency_i, r_{i-1} + spacing_i): a frame stuck behind a slow one arrives right after
        it (spacing 5 µs + exponential 10 µs), computed as cummax(arrival - S) + S with S = cumsum(spacing).
        """
        n = len(send_ns)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        arrival = send_ns + (self.latency.sample(n) * 1e9).astype(np.int64)
        spacing = np.cumsum(5_000 + (self.latency.rng.exponential(10_000.0, n)).astype(np.int64))
        recv = np.maximum.accumulate(np.maximum(arrival - spacing, self.last_ns)) + spacing
        self.last_ns = int(recv[-1])
        return recv


def lake_latency(rng: np.random.Generator) -> LatencyModel:
    """Crypto Lake's collector (AWS Tokyo): median ~5 ms, p95 ~80 ms (research cryptolake.md §9.2)."""
    return LatencyModel(median_s=0.005, p95_s=0.08, rho=0.9, cap_s=2.0, rng=rng)


def golden_latency(rng: np.random.Generator) -> LatencyModel:
    """Our golden collector: a different, tighter path (median ~2 ms, p95 ~9 ms)."""
    return LatencyModel(median_s=0.002, p95_s=0.009, rho=0.95, cap_s=0.5, rng=rng)


def trade_event_delay_ms(rng: np.random.Generator, n: int) -> np.ndarray:
    """`E - T` of Binance trades: 1 ms typical, 0/2/3 ms often, a geometric tail capped at 214 ms (real data)."""
    u = rng.random(n)
    tail = 3 + rng.geometric(1 / 15.0, n)
    delay = np.where(u < 0.08, 0, np.where(u < 0.71, 1, np.where(u < 0.835, 2, np.where(u < 0.875, 3, tail))))
    return np.minimum(delay, 214).astype(np.int64)
