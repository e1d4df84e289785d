"""Sanity of capture statistics against what the streams can physically produce (peer_lessons trap 7).

Counts are judged on the exchange clock (`E`), never on receive time: a replay at 50x or a burst after a network
stall compresses receive times, not the exchange's. Rules (research binance.md §1.2, measured on real BTC):
- a diff-depth stream at `@100ms` emits at most 10 messages per exchange second (1 for the 1000 ms stream, 4 for
  USD-M's 250 ms `@depth`) and its `E` spacing is never far below the interval; USD-M `@depth@0ms` has no pace;
- `E` never goes backwards within one stream, `U`/`u` and trade ids only move forward (gaps are flagged elsewhere);
- a capture cannot hold more diff messages than its exchange-time span allows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from lake_pipeline.capture.protocol import SPOT, VenueProtocol, depth_interval_ms


def stream_interval_ms(stream: str, protocol: VenueProtocol = SPOT) -> int | None:
    """The paced interval of a diff-depth stream name on `protocol`'s venue, None for other streams (and `@0ms`)."""
    tail = stream.split("@", 1)[1] if "@" in stream else ""
    kind, _, speed = tail.partition("@")
    if kind != "depth" or (speed or "") not in protocol.diff_depth_speeds:
        return None
    return depth_interval_ms(protocol, speed)


@dataclass
class _StreamClock:
    interval_ms: int | None
    per_second: Counter = field(default_factory=Counter)
    first_ms: int = 0
    last_ms: int = 0
    count: int = 0
    backwards: int = 0
    min_spacing_ms: int | None = None


class PhysicsMonitor:
    """Collects per-stream exchange-time statistics during a capture; `report()` judges them."""

    def __init__(self, protocol: VenueProtocol = SPOT) -> None:
        self._streams: dict[str, _StreamClock] = {}
        self._protocol = protocol

    def observe(self, stream: str, event_ms: int) -> None:
        s = self._streams.get(stream)
        if s is None:
            s = self._streams[stream] = _StreamClock(stream_interval_ms(stream, self._protocol), first_ms=event_ms,
                                                     last_ms=event_ms)
        elif event_ms < s.last_ms:
            s.backwards += 1
        else:
            gap = event_ms - s.last_ms
            if s.interval_ms is not None and (s.min_spacing_ms is None or gap < s.min_spacing_ms):
                s.min_spacing_ms = gap
            s.last_ms = event_ms
        s.count += 1
        if s.interval_ms is not None:
            s.per_second[event_ms // 1000] += 1

    def report(self) -> dict:
        violations: list[str] = []
        streams: dict[str, dict] = {}
        for name, s in sorted(self._streams.items()):
            span_s = max((s.last_ms - s.first_ms) / 1000.0, 0.0)
            row: dict = {"messages": s.count, "exchange_span_s": round(span_s, 3), "E_backwards": s.backwards}
            if s.backwards:
                violations.append(f"{name}: E went backwards {s.backwards} times within the stream")
            if s.interval_ms is not None:
                cap = 1000 // s.interval_ms
                worst = max(s.per_second.values(), default=0)
                allowed_total = (span_s * 1000 / s.interval_ms) + 1
                row |= {"interval_ms": s.interval_ms, "max_per_exchange_second": worst,
                        "mean_per_second": round(s.count / span_s, 3) if span_s else None,
                        "min_E_spacing_ms": s.min_spacing_ms}
                if worst > cap:
                    violations.append(f"{name}: {worst} messages in one exchange second (at most {cap} possible)")
                if s.count > allowed_total:
                    violations.append(f"{name}: {s.count} messages in {span_s:.1f} s of exchange time "
                                      f"(at most {allowed_total:.0f} possible)")
                if s.min_spacing_ms is not None and s.min_spacing_ms < 0.5 * s.interval_ms:
                    violations.append(f"{name}: E spacing of {s.min_spacing_ms} ms for a {s.interval_ms} ms stream")
            streams[name] = row
        return {"ok": not violations, "violations": violations, "streams": streams}
