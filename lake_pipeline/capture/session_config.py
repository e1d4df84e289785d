"""Multi-session capture config (YAML): named sessions with a regime intent, a daily schedule window, a duration.

```yaml
defaults: {duration: 1h, rotate: 1h, streams: [trade, depth@100ms, bookTicker]}
regime: {window_s: 60, high_factor: 2.0, low_factor: 0.5}
calendar:
  - {name: US CPI, start: "2026-12-10T13:30:00Z", end: "2026-12-10T14:30:00Z"}
sessions:
  - name: btc-us-open
    instrument: BINANCE.BTC-USDT      # VENUE.SYMBOL; or `symbol: BTC-USDT` (+ optional `exchange:`), default venue
    regime_intent: HIGH_VOLUME        # what the session is meant to sample; the detector says what it got
    schedule: {start: "13:00", end: "17:00", days: [mon, tue, wed, thu, fri]}   # UTC; omitted = always
    duration: 1h                      # one bounded capture run; the sensor relaunches within the window
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path

import yaml

from lake_pipeline.capture.regime import REGIMES, RegimeConfig
from lake_pipeline.instrument import Instrument

DEFAULT_STREAMS = ("trade", "depth@100ms", "bookTicker")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class SessionConfigError(ValueError):
    """Invalid session config; the message names the file and the session."""


def parse_duration(value: str | int | float) -> float:
    """`"1h"`, `"30m"`, `"45s"`, `"250ms"`, `3600` → seconds."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION_RE.match(str(value))
    if not m:
        raise ValueError(f"invalid duration {value!r} (expected e.g. 3600, 90s, 30m, 1h)")
    return float(m[1]) * _UNITS[m[2]]


@dataclass(frozen=True)
class Schedule:
    start: time = time(0, 0)
    end: time = time(0, 0)  # end <= start wraps past midnight; start == end means all day
    days: tuple[int, ...] = tuple(range(7))

    def active(self, when: datetime) -> bool:
        when = when.astimezone(UTC)
        t = when.time()
        if self.start == self.end:
            in_window, day = True, when.weekday()
        elif self.start < self.end:
            in_window, day = self.start <= t < self.end, when.weekday()
        else:  # wraps midnight: the part after midnight belongs to the previous day's window
            in_window = t >= self.start or t < self.end
            day = when.weekday() if t >= self.start else (when.weekday() - 1) % 7
        return in_window and day in self.days

    @classmethod
    def from_dict(cls, d: dict | None, where: str) -> Schedule:
        if not d:
            return cls()
        try:
            start = time.fromisoformat(str(d.get("start", "00:00")))
            end = time.fromisoformat(str(d.get("end", "00:00")))
            days = tuple(_DAYS.index(str(x).lower()[:3]) for x in d.get("days", _DAYS))
        except ValueError as exc:
            raise SessionConfigError(f"{where}: schedule {d!r}: {exc}") from None
        return cls(start, end, days)


@dataclass(frozen=True)
class CaptureSession:
    name: str
    instrument: Instrument
    regime_intent: str = "NORMAL"
    schedule: Schedule = field(default_factory=Schedule)
    duration_s: float = 3600.0
    rotate_s: float = 3600.0
    streams: tuple[str, ...] = DEFAULT_STREAMS
    ws_url: str | None = None
    rest_url: str | None = None

    @property
    def symbol(self) -> str:
        return self.instrument.symbol


@dataclass(frozen=True)
class SessionPlan:
    sessions: tuple[CaptureSession, ...]
    regime: RegimeConfig
    source: str = ""

    def active(self, when: datetime) -> list[CaptureSession]:
        return [s for s in self.sessions if s.schedule.active(when)]

    def by_name(self, name: str) -> CaptureSession:
        for s in self.sessions:
            if s.name == name:
                return s
        raise SessionConfigError(f"{self.source}: no session named {name!r} "
                                 f"(have {[s.name for s in self.sessions]})")


def parse_session_config(doc: dict, source: str = "<config>") -> SessionPlan:
    if not isinstance(doc, dict) or not isinstance(doc.get("sessions"), list) or not doc["sessions"]:
        raise SessionConfigError(f"{source}: expected a mapping with a non-empty `sessions` list")
    defaults = dict(doc.get("defaults") or {})
    try:
        regime = RegimeConfig.from_dict(doc.get("regime"), doc.get("calendar"))
    except ValueError as exc:
        raise SessionConfigError(f"{source}: {exc}") from None
    sessions: list[CaptureSession] = []
    names: set[str] = set()
    for i, raw in enumerate(doc["sessions"]):
        entry = {**defaults, **(raw or {})}
        where = f"{source}: session {entry.get('name', f'#{i}')!r}"
        name = entry.get("name")
        if not name or not (entry.get("instrument") or entry.get("symbol")):
            raise SessionConfigError(f"{where}: `name` and `instrument` (or `symbol`) are required")
        try:
            instrument = Instrument.parse(str(entry.get("instrument") or entry["symbol"]),
                                          entry.get("exchange") or None)
        except ValueError as exc:
            raise SessionConfigError(f"{where}: {exc}") from None
        if name in names:
            raise SessionConfigError(f"{where}: duplicate session name")
        names.add(name)
        intent = str(entry.get("regime_intent", "NORMAL")).upper()
        if intent not in REGIMES:
            raise SessionConfigError(f"{where}: regime_intent {intent!r} not one of {REGIMES}")
        try:
            duration = parse_duration(entry.get("duration", 3600))
            rotate = parse_duration(entry.get("rotate", 3600))
        except ValueError as exc:
            raise SessionConfigError(f"{where}: {exc}") from None
        if duration <= 0 or rotate <= 0:
            raise SessionConfigError(f"{where}: duration and rotate must be positive")
        sessions.append(CaptureSession(
            name=str(name), instrument=instrument, regime_intent=intent,
            schedule=Schedule.from_dict(entry.get("schedule"), where), duration_s=duration, rotate_s=rotate,
            streams=tuple(entry.get("streams", DEFAULT_STREAMS)), ws_url=entry.get("ws_url"),
            rest_url=entry.get("rest_url")))
    return SessionPlan(tuple(sessions), regime, source)


def load_session_config(path: Path) -> SessionPlan:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"capture session config not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SessionConfigError(f"{path}: invalid YAML: {exc}") from None
    return parse_session_config(doc, str(path))
