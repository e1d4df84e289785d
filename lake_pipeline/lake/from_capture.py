"""Real golden capture -> Crypto-Lake-format trades / book / book_delta_v2 in the ready zone, spot or USD-M.

Gives every later stage a real-data end-to-end case. Derivation (issue 2 §7, research cryptolake.md §3; Crypto
Lake's data is cryptofeed's output, on `BINANCE` spot and `BINANCE_FUTURES` USD-M alike):
- book_delta_v2: one row per level of every depth diff (spot `@depth@100ms`, USD-M `@depth`/`@depth@100ms`/
  `@depth@0ms`), the diff's bids then asks in wire order; `sequence_number` = the diff's `u`; `timestamp` =
  `int(E / 1000.0 * 1e9)` (cryptofeed stamps depth with the event time E, quantised through float seconds; the
  USD-M transaction time `T` has no lake column); `receipt_timestamp` = the line's receive ns; float64 values.
- book: the book rebuilt by the venue's sync rule (capture.sync: spot's U/u, USD-M's pu chain) on the numba
  engine, one row after each applied diff, top 20 per side (absent levels 0.0), `sequence_number` = `u`.
- trades: every `@trade` fill (side = taker side: `sell` when the buyer is the maker), `id` = `t`, time from `T`.
  USD-M trades that are not MARKET fills (INSURANCE_FUND, ADL) are left out, as USD-M's aggTrade leaves them
  out, and counted in the report and the manifests.
Partitions follow the UTC date of the exchange time; a date touched gets all three tables (0 rows is written,
not omitted). Everything streams block by block; all partitions are published atomically at the end (a failure
leaves the ready zone as it was), each with a `_manifest.json` naming the capture files (name, sha256, size).

Input checks (all errors name the file; nothing is published): an empty, foreign (no Binance frames) or
truncated capture; a depth stream that is not a diff this converter understands (`@depth20@100ms`); a capture
of the other venue (USD-M diffs carry `pu`, spot diffs do not); an exchange time farther than
`MAX_CLOCK_SKEW_S` from the frame's own receive time (a trade with `T=1000` would otherwise publish
`dt=1970-01-01`); a value the shared policy refuses (lake/values.py: prices > 0, sizes >= 0, unique trade ids);
a date already converted from a different capture (unless `replace`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from loguru import logger

from lake_pipeline import __version__
from lake_pipeline.atomic import clean_stale_temps
from lake_pipeline.capture.golden import OTHER_STREAM, SNAPSHOT_STREAM, CaptureFormatError, GoldenFrames, iter_golden
from lake_pipeline.capture.protocol import is_depth_stream, stream_kind, venue_protocol, wire_symbol
from lake_pipeline.capture.replay import DiffMeta, book_events, feed
from lake_pipeline.capture.sync import BookSync, DepthDiff, rule_for
from lake_pipeline.capture.units import units_to_float
from lake_pipeline.config import SymbolSpec, symbol_spec
from lake_pipeline.instrument import Instrument
from lake_pipeline.lake.capture_manifest import SOURCE, CaptureFile, check_no_mix, fingerprint
from lake_pipeline.lake.partition_writer import LakePartitionWriter, utc_date_of_ns
from lake_pipeline.lake.values import Violation, check_prices, check_sizes, find_duplicate_trade_id
from lake_pipeline.schemas import LAKE_STORED, LAKE_TABLES, N_LEVELS

_KINDS = ("trades", "depth", "snapshots")
MAX_CLOCK_SKEW_S = 300.0
"""How far a frame's exchange time (trade `T`, diff `E`/`T`, snapshot `E`) may lie from its receive time. Real
recorders are off by milliseconds to ~1.3 s (hftbacktest's 2024 host); beyond 5 minutes a value cannot be right."""


def exchange_ms_to_lake_ns(ms: np.ndarray) -> np.ndarray:
    """Binance ms -> lake int64 ns exactly as cryptofeed + Crypto Lake do: `int(ms / 1000.0 * 1e9)`."""
    return (np.asarray(ms, dtype=np.float64) / 1000.0 * 1e9).astype(np.int64)


@dataclass
class ConversionReport:
    """What was written: rows per table and date, the sync's counters, frames per stream, the grid used, the
    capture files, frames left out (by reason) and stale temp directories of killed runs removed at start."""

    rows: dict[str, dict[str, int]]
    sync: dict[str, int]
    streams: dict[str, int]
    spec: dict[str, str]
    partitions: list[str] = field(default_factory=list)
    exchange: str = ""
    captures: list[dict] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    session: dict[str, str | None] = field(default_factory=dict)
    cleaned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class _BookRows:
    """Collects one top-N book row per applied diff (called back by the sync with the book updated)."""

    def __init__(self, book: object, levels: int = N_LEVELS) -> None:
        self.book, self.levels = book, levels
        self._meta: list[DiffMeta] = []
        self._ids: list[int] = []
        self._tops: list[np.ndarray] = []

    def __call__(self, diff: DepthDiff) -> None:
        self._meta.append(diff.meta)
        self._tops.append(np.stack(self.book.top(self.levels)))  # (4, N): bid_px, bid_sz, ask_px, ask_sz
        self._ids.append(diff.last_id)

    def take(self, spec: SymbolSpec) -> pa.Table:
        """The rows collected since the last call, as a lake `book` table."""
        meta, tops, ids = self._meta, self._tops, self._ids
        self._meta, self._tops, self._ids = [], [], []
        schema = LAKE_STORED["book"]
        if not meta:
            return schema.empty_table()
        top = np.stack(tops)  # (rows, 4, N)
        columns: dict[str, np.ndarray] = {
            "timestamp": exchange_ms_to_lake_ns(np.array([m.exchange_ms for m in meta])),
            "receipt_timestamp": np.array([m.recv_ns for m in meta], dtype=np.int64),
            "sequence_number": np.array(ids, dtype=np.int64),
        }
        for s, side in enumerate(("bid", "ask")):
            prices = units_to_float(top[:, 2 * s], spec.tick)
            sizes = units_to_float(top[:, 2 * s + 1], spec.lot)
            for i in range(self.levels):
                columns[f"{side}_{i}_price"] = prices[:, i]
                columns[f"{side}_{i}_size"] = sizes[:, i]
        return pa.table(columns, schema=schema)


def _trades_table(trades: pl.DataFrame, spec: SymbolSpec) -> pa.Table:
    return pa.table(
        {
            "side": np.where(trades["is_buyer_maker"].to_numpy(), "sell", "buy"),
            "amount": units_to_float(trades["qty"].to_numpy(), spec.lot),
            "price": units_to_float(trades["price"].to_numpy(), spec.tick),
            "id": trades["t"].to_numpy(),
            "timestamp": exchange_ms_to_lake_ns(trades["T"].to_numpy()),
            "receipt_timestamp": trades["recv_ns"].to_numpy(),
        },
        schema=LAKE_STORED["trades"],
    )


def _delta_table(depth: pl.DataFrame, spec: SymbolSpec) -> pa.Table:
    """One row per level: each message's bids, then its asks, in wire order."""
    sides = [
        depth.select("frame_no", "E", "recv_ns", "u", pl.col(f"{side}_px").alias("px"),
                     pl.col(f"{side}_qty").alias("qty"), pl.lit(side == "bid").alias("side_is_bid"))
        .explode(["px", "qty"], empty_as_null=False)
        for side in ("bid", "ask")
    ]
    rows = pl.concat(sides).sort("frame_no", pl.col("side_is_bid").not_(), maintain_order=True)
    return pa.table(
        {
            "timestamp": exchange_ms_to_lake_ns(rows["E"].to_numpy()),
            "receipt_timestamp": rows["recv_ns"].to_numpy(),
            "sequence_number": rows["u"].to_numpy(),
            "side_is_bid": rows["side_is_bid"].to_numpy(),
            "price": units_to_float(rows["px"].to_numpy(), spec.tick),
            "size": units_to_float(rows["qty"].to_numpy(), spec.lot),
        },
        schema=LAKE_STORED["book_delta_v2"],
    )


def resolve_spec(instrument: Instrument, tick: str | None = None, lot: str | None = None) -> SymbolSpec | None:
    """Tick/lot from the arguments, else from config; None when neither has them (then inferred from the capture:
    `infer_capture_spec`)."""
    from decimal import Decimal

    symbol = instrument.symbol
    configured = symbol_spec(instrument)
    if tick is None or lot is None:
        if configured is None:
            if tick is not None or lot is not None:
                raise ValueError(f"symbol {symbol} has no tick/lot in config (lake_pipeline/symbols.yaml): pass both "
                                 "--tick and --lot, or neither (then both are inferred from the capture)")
            return None
        tick, lot = tick or str(configured.tick), lot or str(configured.lot)
    return SymbolSpec(symbol, Decimal(tick), Decimal(lot), "config" if configured else "argument")


_FRACTION_DIGITS = pl.col("v").str.extract(r"\.(\d*?)0*$", 1).str.len_chars().fill_null(0)
_GRID_COLUMNS = {"tick": ("price", "bid_px", "ask_px"), "lot": ("qty", "bid_qty", "ask_qty")}


def infer_capture_spec(paths: list[Path], symbol: str) -> SymbolSpec:
    """The coarsest decimal grids 10^-k holding every price and every size of the capture's trades, diffs and
    snapshots, from Binance's exact decimal strings (a first, string-only pass over the files)."""
    from lake_pipeline.lake.grid import decimal_step

    needed = dict.fromkeys(_GRID_COLUMNS, 0)
    for frames in iter_golden(paths, None, kinds=_KINDS):
        for kind in _KINDS:
            frame = frames.frame(kind)
            for unit, columns in _GRID_COLUMNS.items():
                for c in (c for c in columns if c in frame.columns):
                    values = frame[c].explode() if isinstance(frame[c].dtype, pl.List) else frame[c]
                    digits = values.drop_nulls().to_frame("v").select(_FRACTION_DIGITS.max()).item()
                    needed[unit] = max(needed[unit], digits or 0)
    spec = SymbolSpec(symbol, decimal_step(needed["tick"]), decimal_step(needed["lot"]), "inferred")
    logger.info("{} is not in the symbol config: tick {} and lot {} inferred from the capture's decimal strings",
                symbol, f"{spec.tick:f}", f"{spec.lot:f}")
    return spec


def _check_streams(frames: GoldenFrames, symbol: str) -> None:
    """One symbol, and no depth stream this converter would have to drop (e.g. `@depth20@100ms`)."""
    wire = wire_symbol(symbol).lower()
    for stream in sorted(frames.counts):
        if stream in (SNAPSHOT_STREAM, OTHER_STREAM) or "@" not in stream:
            continue
        name, _, suffix = stream.partition("@")
        if name != wire:
            raise CaptureFormatError(f"{frames.source}: capture holds stream {stream!r}, not symbol {symbol} "
                                     f"(expected streams '{wire}@...')")
        if is_depth_stream(suffix) and stream_kind(suffix) != "depth":
            raise CaptureFormatError(
                f"{frames.source}: {frames.counts[stream]:,} frames of depth stream {stream!r} cannot be converted "
                "(only diff-depth streams make book_delta_v2: @depth, @depth@100ms, @depth@1000ms, @depth@500ms, "
                "@depth@0ms); refusing to drop them")


def _check_venue(frames: GoldenFrames, exchange: str) -> None:
    """USD-M diffs carry `pu`, spot diffs do not: a capture converted under the wrong venue is an error."""
    depth = frames.depth
    if depth.is_empty():
        return
    with_pu = depth.height - depth["pu"].null_count()
    futures = venue_protocol(exchange).diff_has_prev_id
    if futures and with_pu < depth.height:
        raise CaptureFormatError(f"{frames.source}: depth diffs without 'pu' (a spot capture?) converted as "
                                 f"{exchange}; pass --exchange BINANCE for spot")
    if not futures and with_pu:
        raise CaptureFormatError(f"{frames.source}: depth diffs carry 'pu' (a USD-M futures capture) converted as "
                                 f"{exchange}; pass --exchange BINANCE_FUTURES")


def _iso_ns(ns: int) -> str:
    return np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="ms") + "Z"


def _check_times(frames: GoldenFrames, max_skew_s: float) -> None:
    """Every exchange time within `max_skew_s` of its frame's receive time (the capture session's own clock)."""
    limit = int(max_skew_s * 1e9)
    for kind, columns in (("trades", ("T", "E")), ("depth", ("E", "T")), ("snapshots", ("E", "T"))):
        frame = frames.frame(kind)
        for column in columns:
            if frame.is_empty() or frame[column].null_count() == frame.height:
                continue
            off = frame.filter(((pl.col(column) * 1_000_000 - pl.col("recv_ns")).abs() > limit)
                               & pl.col(column).is_not_null())
            if off.is_empty():
                continue
            row = off.row(0, named=True)
            ms, recv = row[column], row["recv_ns"]
            raise CaptureFormatError(
                f"{frames.source}: {kind}.{column} = {ms} ({_iso_ns(ms * 1_000_000)}) of frame #{row['frame_no']} "
                f"is {(ms * 1_000_000 - recv) / 1e9:+,.1f} s from its receive time {_iso_ns(recv)}: outside the "
                f"capture session (max clock skew {max_skew_s:g} s; {off.height} such frame(s) in this block); "
                f"it would publish a partition dt={utc_date_of_ns(ms * 1_000_000)}")


def _check_values(frames: GoldenFrames, spec: SymbolSpec) -> None:
    """The shared value policy (lake/values.py) on what this block would publish: prices > 0, sizes >= 0."""
    trades, depth = frames.trades, frames.depth
    levels = {side: depth.select("frame_no", pl.col(f"{side}_px"), pl.col(f"{side}_qty"))
              .explode([f"{side}_px", f"{side}_qty"], empty_as_null=False).drop_nulls() for side in ("bid", "ask")}
    checks = [("trades", trades, "price", "qty")] + [("depth", levels[side], f"{side}_px", f"{side}_qty")
                                                      for side in ("bid", "ask")]
    for kind, frame, price, size in checks:
        violation = (check_prices(f"{kind}.{price}", units_to_float(frame[price].to_numpy(), spec.tick))
                     or check_sizes(f"{kind}.{size}", units_to_float(frame[size].to_numpy(), spec.lot)))
        if violation is not None:
            raise _frame_error(frames, frame, violation)


def _frame_error(frames: GoldenFrames, frame: pl.DataFrame, v: Violation) -> CaptureFormatError:
    return CaptureFormatError(f"{frames.source}: {v.column} of frame #{frame['frame_no'][v.row]} = {v.value!r} "
                              f"{v.problem}; nothing was published")


def _check_trade_ids(paths: list[Path], ids: list[np.ndarray]) -> None:
    """Trade ids unique over the whole capture (a frame recorded twice would publish one trade twice)."""
    if ids and (v := find_duplicate_trade_id(np.concatenate(ids), "t")) is not None:
        raise CaptureFormatError(f"{', '.join(map(str, paths))}: trade id {v.value} appears twice (again as trade "
                                 f"{v.row} of the capture, 0-based): trade ids must be unique; nothing was published")


def _check_capture(paths: list[Path], streams: dict[str, int], sync: BookSync) -> None:
    """The capture as a whole: not empty, Binance market frames, a depth stream, and a book that synced."""
    names = ", ".join(str(p) for p in paths)
    if not streams:
        raise CaptureFormatError(f"{names}: the capture holds no frames")
    known = {s: n for s, n in streams.items() if s == SNAPSHOT_STREAM or stream_kind(s.partition("@")[2])}
    if not known:
        raise CaptureFormatError(f"{names}: no Binance market frames (streams seen: {dict(sorted(streams.items()))}); "
                                 "not a Binance capture?")
    if not any(stream_kind(s.partition("@")[2]) == "depth" for s in known):
        raise CaptureFormatError(f"{names}: no diff-depth stream (streams: {dict(sorted(streams.items()))}); "
                                 "book and book_delta_v2 cannot be made")
    if sync.stats.applied == 0:
        raise CaptureFormatError(f"{names}: the book never synchronised ({streams.get(SNAPSHOT_STREAM, 0)} REST "
                                 f"snapshot(s), sync {sync.stats.to_dict()}); book cannot be made")


def _manifests(captures: list[CaptureFile], spec: SymbolSpec, exchange: str, symbol: str, sync: BookSync,
               skipped: dict[str, int], writers: dict[str, LakePartitionWriter],
               max_skew_s: float) -> Callable[[str, str], dict]:
    """`_manifest.json` of each published partition: what made it (capture files) and what was left out."""

    def manifest(table: str, day: str) -> dict:
        return {
            "table": table, "exchange": exchange, "symbol": symbol, "date": day, "source": SOURCE,
            "rows": writers[table].rows.get(day, 0), "captures": [c.to_dict() for c in captures],
            "spec": spec.to_dict(), "sync": sync.stats.to_dict(), "skipped": skipped,
            "max_clock_skew_s": max_skew_s, "tool": f"lake_pipeline {__version__}",
            "converted_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
    return manifest


def lake_from_capture(
    capture: Iterable[str | Path],
    data_root: str | Path,
    instrument: Instrument,
    spec: SymbolSpec | None = None,
    book_factory: Callable[[], object] | None = None,
    progress: Callable[[int], None] | None = None,
    replace: bool = False,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
) -> ConversionReport:
    """Convert capture files (in order: one continuous session) into the three lake tables; return the report.

    The instrument's venue, `BINANCE` (spot) or `BINANCE_FUTURES` (USD-M), picks the sync rule. `book_factory` builds
    the order book (default: the numba `OrderBook`); `progress(frames)` is called per block. `replace` lets this
    capture replace dates another capture made.
    """
    paths = [Path(p) for p in capture]
    if not paths:
        raise ValueError("no capture files given")
    exchange, symbol = instrument.exchange, instrument.symbol
    rule = rule_for(exchange)
    captures = fingerprint(paths)
    spec = spec or resolve_spec(instrument) or infer_capture_spec(paths, symbol)
    if book_factory is None:
        from lake_pipeline.book import OrderBook

        book_factory = OrderBook
    book = book_factory()
    book_rows = _BookRows(book)
    sync = BookSync(book, on_applied=book_rows, rule=rule)
    streams: dict[str, int] = {}
    skipped: dict[str, int] = {}
    writers = {t: LakePartitionWriter(Path(data_root), t, instrument, LAKE_STORED[t]) for t in LAKE_TABLES}
    cleaned = [str(p) for w in writers.values() for p in clean_stale_temps(w.directory)]
    for path in cleaned:
        logger.warning("removed {} (left by a killed run)", path)
    first_recv = last_recv = None
    trade_ids: list[np.ndarray] = []
    try:
        for frames in iter_golden(paths, spec, kinds=_KINDS):
            _check_streams(frames, symbol)
            _check_venue(frames, exchange)
            _check_times(frames, max_skew_s)
            _check_values(frames, spec)
            trade_ids.append(frames.trades["t"].to_numpy())
            for stream, n in frames.counts.items():
                streams[stream] = streams.get(stream, 0) + n
            for reason, n in frames.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + n
            recv = pl.concat([frames.frame(k)["recv_ns"] for k in _KINDS])
            if recv.len():
                first_recv = min(first_recv or recv.min(), recv.min())
                last_recv = max(last_recv or recv.max(), recv.max())
            writers["trades"].write(_trades_table(frames.trades, spec))
            writers["book_delta_v2"].write(_delta_table(frames.depth, spec))
            for event in book_events(frames):
                feed(sync, event)
            writers["book"].write(book_rows.take(spec))
            if progress is not None:
                progress(sum(frames.counts.values()))
        _check_capture(paths, streams, sync)
        _check_trade_ids(paths, trade_ids)
        days = sorted({d for w in writers.values() for d in w.days})
        for writer in writers.values():
            for day in days:
                writer.ensure(day)
                check_no_mix(writer.final_dir(day), captures, replace)
    except BaseException as exc:
        for writer in writers.values():
            writer.abort(exc)
        raise
    manifest = _manifests(captures, spec, exchange, symbol, sync, skipped, writers, max_skew_s)
    for writer in writers.values():
        writer.close(manifest)
    report = ConversionReport(
        rows={t: dict(sorted(w.rows.items())) for t, w in writers.items()},
        sync=sync.stats.to_dict(),
        streams=streams,
        spec=spec.to_dict(),
        partitions=sorted(str(w.final_dir(d)) for w in writers.values() for d in w.rows),
        exchange=exchange,
        captures=[c.to_dict() for c in captures],
        skipped=skipped,
        session={"first_recv": _iso_ns(first_recv) if first_recv else None,
                 "last_recv": _iso_ns(last_recv) if last_recv else None},
        cleaned=cleaned,
    )
    logger.info("lake-from-capture {} {}: rows {} sync {} skipped {}", exchange, symbol, report.rows, report.sync,
                skipped)
    return report
