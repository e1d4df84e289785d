"""Market-regime tags over time: HIGH_VOLUME, LOW_VOLUME, SPECIAL_EVENT, NORMAL (DESIGN §6).

Windows of `window_s` of exchange time. Per window: the event rate (trades + depth level changes per second) and
the spread volatility (standard deviation of the quoted spread, in ticks). A window overlapping a calendar event
(config: FOMC, CPI, listings…) is SPECIAL_EVENT. Otherwise its rate is compared with a baseline: absolute
thresholds when configured, else the median rate of the session's windows (a capture knows its own normal only
once it has seen enough of it; tags are final at the end of the session). HIGH_VOLUME when the rate is at least
`high_factor` x baseline, or when the spread is unusually volatile (`spread_factor` x the median spread std) while
the rate is above the baseline; LOW_VOLUME at or below `low_factor` x baseline.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

HIGH, LOW, SPECIAL, NORMAL = "HIGH_VOLUME", "LOW_VOLUME", "SPECIAL_EVENT", "NORMAL"
REGIMES = (HIGH, LOW, SPECIAL, NORMAL)


def parse_time_ms(value: str | int | float | datetime) -> int:
    """ISO-8601 (Z or offset) / epoch ms / datetime → epoch ms."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip().replace("Z", "+00:00")
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True)
class CalendarEvent:
    name: str
    start_ms: int
    end_ms: int

    @classmethod
    def from_dict(cls, d: dict) -> CalendarEvent:
        try:
            start, end = parse_time_ms(d["start"]), parse_time_ms(d["end"])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"calendar event {d!r}: needs name, start, end as ISO times ({exc})") from None
        if end <= start:
            raise ValueError(f"calendar event {d.get('name')!r}: end must be after start")
        return cls(str(d.get("name", "event")), start, end)


@dataclass
class RegimeConfig:
    window_s: float = 60.0
    high_factor: float = 2.0
    low_factor: float = 0.5
    spread_factor: float = 3.0
    high_rate: float | None = None  # absolute events/s; overrides the relative rule when set
    low_rate: float | None = None
    calendar: tuple[CalendarEvent, ...] = ()

    @classmethod
    def from_dict(cls, d: dict | None, calendar: list[dict] | None = None) -> RegimeConfig:
        d = dict(d or {})
        unknown = set(d) - {"window_s", "high_factor", "low_factor", "spread_factor", "high_rate", "low_rate"}
        if unknown:
            raise ValueError(f"regime config: unknown keys {sorted(unknown)}")
        events = tuple(CalendarEvent.from_dict(e) for e in (calendar or []))
        return cls(**{k: float(v) for k, v in d.items()}, calendar=events)


@dataclass
class RegimeWindow:
    start_ms: int
    end_ms: int
    regime: str
    event_rate: float
    spread_std_ticks: float | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Bucket:
    events: int = 0
    spreads: list[int] = field(default_factory=list)


class RegimeDetector:
    """Feed it events by exchange time; `windows()` classifies every window seen so far."""

    def __init__(self, config: RegimeConfig | None = None) -> None:
        self.config = config or RegimeConfig()
        self._w_ms = int(self.config.window_s * 1000)
        self._buckets: dict[int, _Bucket] = {}

    def _bucket(self, event_ms: int) -> _Bucket:
        key = event_ms // self._w_ms
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket()
        return b

    def observe_events(self, event_ms: int, n: int = 1) -> None:
        """`n` market events (a trade, or the level changes of one depth diff) at exchange time `event_ms`."""
        self._bucket(event_ms).events += n

    def observe_spread(self, event_ms: int, spread_ticks: int) -> None:
        self._bucket(event_ms).spreads.append(spread_ticks)

    def windows(self) -> list[RegimeWindow]:
        if not self._buckets:
            return []
        cfg = self.config
        keys = range(min(self._buckets), max(self._buckets) + 1)  # empty windows are LOW, not skipped
        buckets = [self._buckets.get(k, _Bucket()) for k in keys]
        rates = [b.events / cfg.window_s for b in buckets]
        stds = [statistics.pstdev(b.spreads) if len(b.spreads) >= 2 else None for b in buckets]
        base_rate = statistics.median(rates)
        known_stds = [s for s in stds if s is not None]
        base_std = statistics.median(known_stds) if known_stds else None
        out = []
        for k, rate, std in zip(keys, rates, stds, strict=True):
            start, end = k * self._w_ms, (k + 1) * self._w_ms
            regime, reason = self._classify(start, end, rate, std, base_rate, base_std)
            out.append(RegimeWindow(start, end, regime, round(rate, 4), None if std is None else round(std, 4), reason))
        return out

    def _classify(self, start: int, end: int, rate: float, std: float | None, base_rate: float,
                  base_std: float | None) -> tuple[str, str]:
        cfg = self.config
        for ev in cfg.calendar:
            if ev.start_ms < end and start < ev.end_ms:
                return SPECIAL, f"calendar: {ev.name}"
        high = cfg.high_rate if cfg.high_rate is not None else cfg.high_factor * base_rate
        low = cfg.low_rate if cfg.low_rate is not None else cfg.low_factor * base_rate
        if rate >= high and rate > 0:
            return HIGH, f"event rate {rate:.2f}/s >= {high:.2f}/s"
        if std is not None and base_std and std >= cfg.spread_factor * base_std and rate > base_rate:
            return HIGH, f"spread std {std:.2f} ticks >= {cfg.spread_factor} x median {base_std:.2f}"
        if rate <= low:
            return LOW, f"event rate {rate:.2f}/s <= {low:.2f}/s"
        return NORMAL, f"event rate {rate:.2f}/s"

    def segments(self) -> list[dict]:
        """Consecutive windows of one regime merged: what session.json lists as regime tags over time."""
        segs: list[dict] = []
        for w in self.windows():
            if segs and segs[-1]["regime"] == w.regime and segs[-1]["end_ms"] == w.start_ms:
                segs[-1]["end_ms"] = w.end_ms
                segs[-1]["windows"] += 1
            else:
                segs.append({"regime": w.regime, "start_ms": w.start_ms, "end_ms": w.end_ms, "windows": 1,
                             "reason": w.reason})
        return segs


def overlapping(segments: list[dict], start_ms: int, end_ms: int) -> list[dict]:
    """Regime segments overlapping [start_ms, end_ms] (a file's exchange-time span)."""
    return [s for s in segments if s["start_ms"] <= end_ms and start_ms < s["end_ms"]]
