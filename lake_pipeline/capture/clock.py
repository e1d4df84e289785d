"""Clock offset and latency: how far the capture host's clock is from the exchange's, and how late frames arrive.

Offset samples (research binance.md §6): `GET /api/v3/time` every minute, NTP-style
`offset = serverTime - (t_send + t_recv) / 2` with error <= RTT/2, and NTP (ntplib) hourly; an NTP failure (no
network, blocked UDP) is recorded and tolerated. Latency is `recv_wall - E` per stream, and the same corrected by
the offset estimate (`recv_wall + offset - E`): a negative raw value is clock error, not speed.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
from loguru import logger


@dataclass
class ClockSample:
    source: str  # "binance_time" or "ntp:<server>"
    wall_ns: int  # local wall time of the sample (mid-point)
    offset_ns: int | None  # reference clock minus local clock
    rtt_ns: int | None
    error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def binance_time_sample(t_send_ns: int, server_time_ms: int, t_recv_ns: int) -> ClockSample:
    mid = (t_send_ns + t_recv_ns) // 2
    return ClockSample("binance_time", mid, server_time_ms * 1_000_000 - mid, t_recv_ns - t_send_ns)


def ntp_sample(server: str, timeout_s: float = 2.0) -> ClockSample:
    """One NTP query (blocking; run it in a thread). Failures come back as a sample with `error` set."""
    import time

    import ntplib

    now = time.time_ns()
    try:
        resp = ntplib.NTPClient().request(server, version=3, timeout=timeout_s)
    except (ntplib.NTPException, OSError) as exc:
        return ClockSample(f"ntp:{server}", now, None, None, f"{type(exc).__name__}: {exc}")
    return ClockSample(f"ntp:{server}", now, int(resp.offset * 1e9), int(resp.delay * 1e9))


class ClockTracker:
    """Keeps every offset sample; the estimate is the offset of the lowest-RTT recent Binance sample."""

    def __init__(self) -> None:
        self.samples: list[ClockSample] = []

    def add(self, sample: ClockSample) -> None:
        self.samples.append(sample)
        if sample.error:
            logger.warning("clock sample from {} failed: {}", sample.source, sample.error)

    def offset_ns(self, recent: int = 10) -> int | None:
        good = [s for s in self.samples if s.source == "binance_time" and s.offset_ns is not None][-recent:]
        if not good:
            return None
        return min(good, key=lambda s: s.rtt_ns or 0).offset_ns

    def to_dict(self) -> dict:
        est = self.offset_ns()
        return {"offset_estimate_ns": est, "samples": [s.to_dict() for s in self.samples]}


class LatencyStats:
    """Per-stream reservoir (uniform sample of at most `capacity`) of `recv_wall_ns - E_ns`."""

    def __init__(self, capacity: int = 100_000, seed: int = 0) -> None:
        self.capacity = capacity
        self._rng = random.Random(seed)
        self._values: dict[str, list[int]] = {}
        self._seen: dict[str, int] = {}

    def add(self, stream: str, recv_wall_ns: int, event_ms: int) -> None:
        value = recv_wall_ns - event_ms * 1_000_000
        seen = self._seen.get(stream, 0) + 1
        self._seen[stream] = seen
        values = self._values.setdefault(stream, [])
        if len(values) < self.capacity:
            values.append(value)
        else:
            j = self._rng.randrange(seen)
            if j < self.capacity:
                values[j] = value

    def summary(self, offset_ns: int | None) -> dict:
        out: dict[str, dict] = {}
        for stream, values in self._values.items():
            arr = np.asarray(values, dtype=np.int64) / 1e6
            row = {"n": self._seen[stream], "sampled": len(values),
                   "raw_p50_ms": float(np.percentile(arr, 50)), "raw_p99_ms": float(np.percentile(arr, 99)),
                   "raw_min_ms": float(arr.min()), "raw_max_ms": float(arr.max())}
            if offset_ns is not None:
                corr = arr + offset_ns / 1e6
                row |= {"corrected_p50_ms": float(np.percentile(corr, 50)),
                        "corrected_p99_ms": float(np.percentile(corr, 99)), "corrected_min_ms": float(corr.min())}
                row["clock_fault"] = bool(row["corrected_p50_ms"] < 0)  # sustained negative latency
            out[stream] = row
        return out
