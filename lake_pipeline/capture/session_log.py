"""What happened during a capture session, and its `session.json` (DESIGN §2, §6).

The capture appends connection, reconnect and gap events here as they happen; `write()` publishes session.json
atomically into every date partition the session wrote files to (a session crossing UTC midnight writes into two
`dt=` directories; each gets the whole session's metadata and its own file list).
"""

from __future__ import annotations

import importlib.metadata
import platform
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lake_pipeline.atomic import write_json_atomic

FORMAT_VERSION = 1
MAX_EVENTS = 1000  # per list; counts are always complete


@dataclass
class ConnectionRecord:
    id: int
    url: str
    opened_ns: int
    closed_ns: int | None = None
    frames: int = 0
    pings: int = 0
    close_code: int | None = None
    reason: str = ""


@dataclass
class SessionLog:
    session_id: str
    exchange: str
    symbol: str
    streams: list[str]
    started_ns: int = field(default_factory=time.time_ns)
    connections: list[ConnectionRecord] = field(default_factory=list)
    connect_failures: list[dict] = field(default_factory=list)
    reconnects: list[dict] = field(default_factory=list)
    trade_gaps: list[dict] = field(default_factory=list)
    frame_errors: list[dict] = field(default_factory=list)
    frames: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def add_connect_failure(self, url: str, error: str, delay_s: float) -> None:
        if len(self.connect_failures) < MAX_EVENTS:
            self.connect_failures.append({"wall_ns": time.time_ns(), "url": url, "error": error,
                                          "retry_in_s": round(delay_s, 3)})

    def add_reconnect(self, reason: str, delay_s: float) -> None:
        if len(self.reconnects) < MAX_EVENTS:
            self.reconnects.append({"wall_ns": time.time_ns(), "reason": reason, "delay_s": round(delay_s, 3)})


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "session_format": str(FORMAT_VERSION)}
    for dist in ("lake_pipeline", "aiohttp", "cryptography", "numpy", "numba", "polars"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def session_document(log: SessionLog, ended_ns: int, status: str, error: str, extra: dict) -> dict:
    """The session.json body shared by every partition the session touched (files are added per partition)."""
    duration = (ended_ns - log.started_ns) / 1e9
    return {
        "format": FORMAT_VERSION,
        "session_id": log.session_id,
        "exchange": log.exchange,
        "symbol": log.symbol,
        "streams": log.streams,
        "start_ns": log.started_ns,
        "end_ns": ended_ns,
        "start_utc": _iso(log.started_ns),
        "end_utc": _iso(ended_ns),
        "duration_s": round(duration, 3),
        "status": status,
        "error": error,
        "frames": {"total": sum(log.frames.values()), "per_stream": dict(sorted(log.frames.items()))},
        "connections": [asdict(c) for c in log.connections[:MAX_EVENTS]],
        "connection_count": len(log.connections),
        "reconnects": log.reconnects,
        "reconnect_count": max(0, len(log.connections) - 1),
        "connect_failures": log.connect_failures,
        "trade_gaps": log.trade_gaps[:MAX_EVENTS],
        "trade_gap_count": len(log.trade_gaps),
        "frame_errors": log.frame_errors,
        "notes": log.notes,
        "versions": versions(),
        **extra,
    }


def write_session_json(directories: dict[str, Path], document: dict, files_by_dir: dict[str, list[dict]]) -> list[Path]:
    """Write session.json into each partition directory (keyed by date) with that partition's files."""
    written = []
    for date, directory in sorted(directories.items()):
        doc = dict(document, date=date, files=files_by_dir.get(date, []),
                   session_files={d: len(f) for d, f in files_by_dir.items()})
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "session.json"
        write_json_atomic(path, doc)
        written.append(path)
    return written
