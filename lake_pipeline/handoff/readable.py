"""Which reconstructed partitions a user may read: published (`_SUCCESS`), complete and not stale.

A reader of the unified stream must never see a half-written or outdated partition. A partition is readable when
`unified/…/_SUCCESS` and `book_states/…/_SUCCESS` exist and the unified marker is newer than every file of the lake
tables it was replayed from; anything else is refused with an `UnpublishedPartition` error naming the partition and
what to run. Tick and lot come from the partition's own Parquet metadata (what the writer scaled decimals with).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date as Date
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from lake_pipeline.instrument import Instrument, Partition

LAKE_TABLES = ("trades", "book", "book_delta_v2")  # schemas.LAKE_TABLES (not imported: it pulls in pyarrow)
SUCCESS, SUMMARY = "_SUCCESS", "_summary.json"  # reconstruct.wal's markers (not imported: it pulls in numpy)

UNIFIED, BOOK_STATES = "unified", "book_states"
WORK_ZONE = "_work/reconstruct"  # reconstruct.run.work_dir: the WAL of a running or interrupted reconstruction
METADATA_PREFIX = "lake_pipeline."


class UnpublishedPartition(ValueError):
    """A partition that is absent, not yet published, or older than its inputs (the message says which and why)."""


@dataclass(frozen=True)
class PublishedPartition:
    """One readable partition: its parts, its tick/lot and the replay strategy that produced it."""

    partition: Partition
    unified_parts: tuple[Path, ...]
    book_states_parts: tuple[Path, ...]
    tick: Decimal
    lot: Decimal
    strategy: str

    @property
    def instrument(self) -> Instrument:
        return self.partition.instrument


def _parts(directory: Path) -> tuple[Path, ...]:
    return tuple(sorted(directory.glob("part-*.parquet")))


def _newest_input(root: Path, partition: Partition) -> tuple[float, Path] | None:
    newest: tuple[float, Path] | None = None
    for table in LAKE_TABLES:
        directory = partition.dir(root, f"lake/ready/{table}")
        if not directory.is_dir():
            continue
        for f in directory.iterdir():
            if f.is_file() and not f.name.startswith("."):
                mtime = f.stat().st_mtime
                if newest is None or mtime > newest[0]:
                    newest = (mtime, f)
    return newest


def _refuse(partition: Partition, why: str) -> UnpublishedPartition:
    return UnpublishedPartition(
        f"partition {partition.key} is not readable: {why}; run `lake-pipeline reconstruct --exchange "
        f"{partition.exchange} --symbol {partition.symbol} --date {partition.date}` (or materialize unified_events)")


def _spec(unified_dir: Path, first_part: Path) -> tuple[Decimal, Decimal, str]:
    """Tick, lot and strategy the writer recorded (file metadata; `_summary.json` for the strategy as fallback)."""
    import pyarrow.parquet as pq

    meta = {k.decode(): v.decode() for k, v in (pq.read_schema(first_part).metadata or {}).items()}
    try:
        tick, lot = Decimal(meta[f"{METADATA_PREFIX}tick"]), Decimal(meta[f"{METADATA_PREFIX}lot"])
    except KeyError as exc:
        raise UnpublishedPartition(f"{first_part}: no {exc.args[0]} in the Parquet metadata (not written by "
                                   "lake-pipeline reconstruct)") from None
    strategy = meta.get(f"{METADATA_PREFIX}strategy")
    if strategy is None and (unified_dir / SUMMARY).exists():
        strategy = json.loads((unified_dir / SUMMARY).read_text())["strategy"]["name"]
    return tick, lot, strategy or "full_event_replay"


def published(data_root: str | Path, partition: Partition) -> PublishedPartition:
    """The partition if it is readable, else `UnpublishedPartition` saying why (absent, unpublished, stale)."""
    root = Path(data_root)
    unified, states = partition.dir(root, UNIFIED), partition.dir(root, BOOK_STATES)
    wal = partition.dir(root, WORK_ZONE)
    marker = unified / SUCCESS
    if not marker.exists():
        if wal.exists():
            raise _refuse(partition, f"its reconstruction is running or was interrupted (write-ahead log {wal}, "
                                     f"no {marker})")
        if unified.exists():
            raise _refuse(partition, f"{unified} has no {SUCCESS} marker (not published)")
        raise _refuse(partition, f"no unified events at {unified}")
    if not (states / SUCCESS).exists():
        raise _refuse(partition, f"{states} has no {SUCCESS} marker (book states not published)")
    newest = _newest_input(root, partition)
    if newest is not None and newest[0] > marker.stat().st_mtime:
        raise _refuse(partition, f"stale: input {newest[1]} is newer than the unified events ({marker})")
    unified_parts = _parts(unified)
    if not unified_parts:
        raise _refuse(partition, f"{unified} holds no part-*.parquet")
    tick, lot, strategy = _spec(unified, unified_parts[0])
    return PublishedPartition(partition, unified_parts, _parts(states), tick, lot, strategy)


# ---- time ranges --------------------------------------------------------------------------------------------------

TimeLike = str | Date | datetime


def to_utc(value: TimeLike) -> datetime:
    """An instant in UTC: ISO text (`2024-08-08`, `2024-08-08T12:00`, with or without offset), a date (its
    midnight UTC) or a datetime (naive = UTC)."""
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"time {value!r}: expected ISO date or datetime, e.g. 2024-08-08 or "
                             "2024-08-08T12:00:00Z") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, Date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    raise TypeError(f"time {value!r}: expected str, date or datetime")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_ns(value: TimeLike) -> int:
    """Nanoseconds since the epoch (microsecond precision, as datetime has)."""
    return (to_utc(value) - _EPOCH) // timedelta(microseconds=1) * 1000


def dates_between(start: TimeLike, end: TimeLike) -> list[str]:
    """UTC dates whose partitions hold [start, end) (end exclusive)."""
    s, e = to_utc(start), to_utc(end)
    if e <= s:
        raise ValueError(f"empty time range: end {e.isoformat()} is not after start {s.isoformat()}")
    last = (e - timedelta(microseconds=1)).date()
    day, out = s.date(), []
    while day <= last:
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def as_instruments(instruments: str | Instrument | list[str | Instrument]) -> list[Instrument]:
    """`"BINANCE.BTC-USDT"`, an Instrument, or a list of either (a bare symbol takes its default venue)."""
    items = [instruments] if isinstance(instruments, (str, Instrument)) else list(instruments)
    if not items:
        raise ValueError("no instrument given")
    return [i if isinstance(i, Instrument) else Instrument.parse(i) for i in items]


def published_range(data_root: str | Path, instruments, start: TimeLike, end: TimeLike) -> list[PublishedPartition]:
    """Every partition of `instruments` x the dates of [start, end), all readable, instrument-major then by date.

    One unreadable partition refuses the whole range (a backtest over a silently missing day is wrong)."""
    return [published(data_root, inst.on(day)) for inst in as_instruments(instruments)
            for day in dates_between(start, end)]


def date_range(text: str) -> list[str]:
    """`2024-08-08` or an inclusive range `2024-08-08..2024-08-10` -> the dates (CLI form)."""
    first, dots, last = text.partition("..")
    try:
        a = Date.fromisoformat(first.strip())
        b = Date.fromisoformat(last.strip()) if dots else a
    except ValueError:
        raise ValueError(f"--date {text!r}: expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from None
    if b < a:
        raise ValueError(f"--date {text!r}: the range ends before it starts")
    return [(a + timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


