"""Chunk buffers -> Arrow tables with EXACTLY `schemas.UNIFIED_EVENT` / `schemas.BOOK_STATE` -> Parquet segments.

This is the only place decimals exist. Encoding settings were measured on this machine class (research
performance.md §2d and a day of our own output): zstd at a low level, ~1 M-row row groups, dictionary encoding
for the dictionary columns and the unified price columns (few distinct prices per row group: 20 % smaller and a
little faster; on sizes and on the book-state levels it gains nothing), statistics only on the time columns
readers filter on (statistics on 16-byte decimals cost ~20 % of the write).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipeline.atomic import atomic_path
from lake_pipeline.config import SymbolSpec
from lake_pipeline.reconstruct.buffers import EMPTY_PRICE, NULL_I32, NULL_I64, SIDES, ChunkBuffers
from lake_pipeline.reconstruct.dec128 import Scratch, decimal_array, dictionary_array, primitive_array, scale_factor
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS, BOOK_STATE, EVENT_TYPES, TS_NS_UTC, UNIFIED_EVENT

ROW_GROUP_ROWS = 1 << 20
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 1
DICTIONARY_COLUMNS = ["event_type", "exchange", "symbol", "side", "price", "best_bid_price", "best_ask_price"]
STATISTICS_COLUMNS = ["event_time", "received_time"]
METADATA_PREFIX = "lake_pipeline."


@dataclass(frozen=True)
class OutputContext:
    """What every segment of one partition shares: scale factors, dictionaries and file metadata."""

    tick_factor: int
    lot_factor: int
    exchange: pa.Array
    symbol: pa.Array
    metadata: dict[str, str]

    @classmethod
    def build(cls, exchange: str, symbol: str, spec: SymbolSpec, extra: dict[str, str]) -> OutputContext:
        meta = {f"{METADATA_PREFIX}{k}": v for k, v in {**spec.to_dict(), **extra}.items()}
        meta[f"{METADATA_PREFIX}spec"] = json.dumps(spec.to_dict(), sort_keys=True)
        return cls(
            tick_factor=scale_factor(spec.tick),
            lot_factor=scale_factor(spec.lot),
            exchange=pa.array([exchange], pa.string()),
            symbol=pa.array([symbol], pa.string()),
            metadata=meta,
        )


_EVENT_TYPES = pa.array(list(EVENT_TYPES), pa.string())
_SIDES = pa.array(list(SIDES), pa.string())


class TableBuilder:
    """Builds the two output tables from chunk buffers; owns the scratch memory the Arrow arrays point into."""

    def __init__(self, ctx: OutputContext) -> None:
        self.ctx = ctx
        self.scratch = Scratch()
        self._zeros = np.zeros(0, np.int32)

    def _constant(self, n: int, dictionary: pa.Array, slot: str) -> pa.DictionaryArray:
        if self._zeros.shape[0] < n:
            self._zeros = np.zeros(n + n // 4, np.int32)
        return dictionary_array(self._zeros[:n], dictionary, False, self.scratch, slot)

    def unified(self, buf: ChunkBuffers) -> pa.Table:
        n, u, ctx, s = buf.n, buf.unified, self.ctx, self.scratch
        tick, lot = ctx.tick_factor, ctx.lot_factor
        px_present = u.px[:n]
        columns = [
            primitive_array(u.time[:n], TS_NS_UTC, None, s, "time"),
            primitive_array(u.recv[:n], TS_NS_UTC, NULL_I64, s, "recv"),
            dictionary_array(u.etype[:n], _EVENT_TYPES, False, s, "etype"),
            self._constant(n, ctx.exchange, "exchange"),
            self._constant(n, ctx.symbol, "symbol"),
            primitive_array(u.seq[:n], pa.int64(), NULL_I64, s, "seq"),
            primitive_array(u.tid[:n], pa.int64(), NULL_I64, s, "tid"),
            dictionary_array(u.side[:n], _SIDES, True, s, "side"),
            decimal_array(u.px[:n], tick, px_present, NULL_I64, s, "px"),
            decimal_array(u.qty[:n], lot, px_present, NULL_I64, s, "qty"),
            decimal_array(u.bbp[:n], tick, u.bbp[:n], EMPTY_PRICE, s, "bbp"),
            decimal_array(u.bbq[:n], lot, u.bbp[:n], EMPTY_PRICE, s, "bbq"),
            decimal_array(u.bap[:n], tick, u.bap[:n], EMPTY_PRICE, s, "bap"),
            decimal_array(u.baq[:n], lot, u.bap[:n], EMPTY_PRICE, s, "baq"),
            primitive_array(u.flags[:n], pa.int32(), None, s, "flags"),
            primitive_array(u.drift[:n], pa.int32(), NULL_I32, s, "drift"),
        ]
        return pa.Table.from_arrays(columns, schema=UNIFIED_EVENT.with_metadata(ctx.metadata))

    def book_states(self, buf: ChunkBuffers) -> pa.Table:
        m, lv, ctx, s = buf.m, buf.states.levels, self.ctx, self.scratch
        columns = [primitive_array(buf.states.time[:m], TS_NS_UTC, None, s, "bs_time")]
        for c, name in enumerate(BOOK_LEVEL_COLUMNS):
            price_col = c - (c % 2)  # a level is absent (price and size null) when its price is 0
            factor = ctx.tick_factor if c % 2 == 0 else ctx.lot_factor
            columns.append(decimal_array(lv[c, :m], factor, lv[price_col, :m], EMPTY_PRICE, s, name))
        return pa.Table.from_arrays(columns, schema=BOOK_STATE.with_metadata(ctx.metadata))


def write_parquet(path: Path, table: pa.Table) -> int:
    """Write `table` to `path` atomically (temp name, fsync, rename); returns the file's size in bytes."""
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(
            tmp,
            table.schema,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            use_dictionary=[c for c in DICTIONARY_COLUMNS if c in table.schema.names],
            write_statistics=[c for c in STATISTICS_COLUMNS if c in table.schema.names],
        ) as writer:
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    return path.stat().st_size
