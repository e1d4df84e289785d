"""Real golden capture -> Crypto-Lake-format trades / book / book_delta_v2 in the ready zone.

Gives every later stage a real-data end-to-end case. Derivation (issue 2 §7, research cryptolake.md §3):
- book_delta_v2: one row per level of every depth diff, the diff's bids then asks in wire order;
  `sequence_number` = the diff's `u`; `timestamp` = `int(E / 1000.0 * 1e9)` (the lake's float-seconds
  quantisation); `receipt_timestamp` = the line's receive ns; price/size as float64.
- book: the book rebuilt by the official spot sync (capture.sync + the numba engine), one row after each
  applied diff, top 20 per side (absent levels 0.0), `sequence_number` = the book update id `u`.
- trades: every `@trade` (side = taker side: `sell` when the buyer is the maker), `id` = `t`, time from `T`.
Partitions follow the UTC date of the exchange time. Everything streams block by block; all partitions are
published atomically at the end (a failure leaves the ready zone as it was).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from loguru import logger

from lake_pipeline.capture.golden import SNAPSHOT_STREAM, GoldenFrames, iter_golden
from lake_pipeline.capture.replay import DiffMeta, book_events, feed
from lake_pipeline.capture.sync import BookSync, DepthDiff
from lake_pipeline.capture.units import units_to_float
from lake_pipeline.config import SymbolSpec, symbol_spec
from lake_pipeline.instrument import Instrument
from lake_pipeline.lake.partition_writer import LakePartitionWriter
from lake_pipeline.schemas import LAKE_STORED, LAKE_TABLES, N_LEVELS

_KINDS = ("trades", "depth", "snapshots")


def exchange_ms_to_lake_ns(ms: np.ndarray) -> np.ndarray:
    """Binance ms -> lake int64 ns exactly as cryptofeed + Crypto Lake do: `int(ms / 1000.0 * 1e9)`."""
    return (np.asarray(ms, dtype=np.float64) / 1000.0 * 1e9).astype(np.int64)


@dataclass
class ConversionReport:
    """What was written: rows per table and date, the sync's counters, frames per stream, the grid used."""

    rows: dict[str, dict[str, int]]
    sync: dict[str, int]
    streams: dict[str, int]
    spec: dict[str, str]
    partitions: list[str] = field(default_factory=list)

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


def _check_symbol(frames: GoldenFrames, symbol: str, paths: list[Path]) -> None:
    wire = symbol.replace("-", "").lower()
    for stream in sorted(frames.counts):
        if stream != SNAPSHOT_STREAM and "@" in stream and stream.partition("@")[0] != wire:
            raise ValueError(f"{[str(p) for p in paths]}: capture holds stream {stream!r}, not symbol {symbol} "
                             f"(expected streams '{wire}@...')")


def resolve_spec(instrument: Instrument, tick: str | None = None, lot: str | None = None) -> SymbolSpec:
    """Tick/lot from the arguments, else from config; a clear error when neither has them."""
    from decimal import Decimal

    symbol = instrument.symbol
    configured = symbol_spec(instrument)
    if tick is None or lot is None:
        if configured is None:
            raise ValueError(f"instrument {instrument} has no tick/lot in config (lake_pipeline/symbols.yaml); "
                             "pass --tick and --lot (Binance's wire precision 0.00000001 is always exact)")
        tick, lot = tick or str(configured.tick), lot or str(configured.lot)
    return SymbolSpec(symbol, Decimal(tick), Decimal(lot), "config" if configured else "argument")


def lake_from_capture(
    capture: Iterable[str | Path],
    data_root: str | Path,
    instrument: Instrument,
    spec: SymbolSpec | None = None,
    book_factory: Callable[[], object] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ConversionReport:
    """Convert capture files (in order: one continuous session) into the three lake tables; return the report.

    `book_factory` builds the order book (default: the numba `OrderBook`); `progress(frames)` is called per block.
    """
    paths = [Path(p) for p in capture]
    if not paths:
        raise ValueError("no capture files given")
    symbol = instrument.symbol
    spec = spec or resolve_spec(instrument)
    if book_factory is None:
        from lake_pipeline.book import OrderBook

        book_factory = OrderBook
    book = book_factory()
    book_rows = _BookRows(book)
    sync = BookSync(book, on_applied=book_rows)
    streams: dict[str, int] = {}
    writers = {t: LakePartitionWriter(Path(data_root), t, instrument, LAKE_STORED[t]) for t in LAKE_TABLES}
    try:
        for frames in iter_golden(paths, spec, kinds=_KINDS):
            _check_symbol(frames, symbol, paths)
            for stream, n in frames.counts.items():
                streams[stream] = streams.get(stream, 0) + n
            writers["trades"].write(_trades_table(frames.trades, spec))
            writers["book_delta_v2"].write(_delta_table(frames.depth, spec))
            for event in book_events(frames):
                feed(sync, event)
            writers["book"].write(book_rows.take(spec))
            if progress is not None:
                progress(sum(frames.counts.values()))
    except BaseException as exc:
        for writer in writers.values():
            writer.abort(exc)
        raise
    for writer in writers.values():
        writer.close()
    report = ConversionReport(
        rows={t: dict(sorted(w.rows.items())) for t, w in writers.items()},
        sync=sync.stats.to_dict(),
        streams=streams,
        spec=spec.to_dict(),
        partitions=sorted(str(w.final_dir(d)) for w in writers.values() for d in w.rows),
    )
    logger.info("lake-from-capture {}: rows {} sync {}", instrument, report.rows, report.sync)
    return report
