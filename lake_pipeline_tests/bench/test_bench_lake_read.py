"""Benchmark: normalised lake reads vs a bare polars parquet read (prints rows/s; run with `-m bench`)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake_pipeline.instrument import Partition
from lake_pipeline.lake.read import partition_files, read_table, resolve_symbol_spec
from lake_pipeline.paths import lake_ready
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS, LAKE_STORED

pytestmark = pytest.mark.bench

EX, DAY = "BINANCE", "2024-08-08"
T0 = 1723075200 * 10**9


def _write(root: Path, table: str, symbol: str, columns: dict) -> None:
    directory = lake_ready(root, Partition(EX, symbol, DAY), table)
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=LAKE_STORED[table]), directory / "1.snappy.parquet")


def _deltas(n: int, rng: np.random.Generator) -> dict:
    ts = T0 + np.sort(rng.integers(0, 86_400 * 10**9, n))
    return {
        "timestamp": ts, "receipt_timestamp": ts + 4_400_000, "sequence_number": np.arange(n) // 10,
        "side_is_bid": rng.random(n) < 0.5, "price": (6_000_000 + rng.integers(-5000, 5000, n)) / 100,
        "size": rng.integers(0, 100_000, n) / 1e5,
    }


def _book(n: int, rng: np.random.Generator) -> dict:
    ts = T0 + np.arange(n) * 100_000_000
    best = 6_000_000 + rng.integers(-5000, 5000, n)
    cols: dict = {"timestamp": ts, "receipt_timestamp": ts + 4_400_000, "sequence_number": np.arange(n)}
    for c in BOOK_LEVEL_COLUMNS:
        side, level, kind = c.split("_")
        ticks = best - 1 - int(level) if side == "bid" else best + int(level)
        cols[c] = ticks / 100 if kind == "price" else rng.integers(1, 100_000, n) / 1e5
    return cols


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


@pytest.mark.parametrize(("table", "rows", "make"), [("book_delta_v2", 5_000_000, _deltas), ("book", 200_000, _book)])
def test_bench_read_table(data_root: Path, table: str, rows: int, make) -> None:
    _write(data_root, table, "BTC-USDT", make(rows, np.random.default_rng(7)))
    [path] = partition_files(data_root, Partition(EX, "BTC-USDT", DAY), table)
    cold, df = _timed(lambda: read_table(data_root, Partition(EX, "BTC-USDT", DAY), table))
    assert df.height == rows
    bare = min(_timed(lambda: pl.read_parquet(path))[0] for _ in range(2))
    warm = min(_timed(lambda: read_table(data_root, Partition(EX, "BTC-USDT", DAY), table))[0] for _ in range(2))
    print(f"\n{table}: {rows:,} rows; bare pl.read_parquet {bare:.2f} s ({rows / bare / 1e6:.1f} M rows/s); "
          f"read_table first call {cold:.2f} s, warm {warm:.2f} s ({rows / warm / 1e6:.1f} M rows/s, {warm / bare:.1f}x bare)")


def test_bench_infer_spec(data_root: Path) -> None:
    rows = 5_000_000
    _write(data_root, "book_delta_v2", "NEW-USDT", _deltas(rows, np.random.default_rng(7)))
    elapsed, spec = _timed(lambda: resolve_symbol_spec(data_root, Partition(EX, "NEW-USDT", DAY)))
    assert (str(spec.tick), str(spec.lot), spec.source) == ("0.01", "0.00001", "inferred")
    print(f"\ntick/lot inference over {rows:,} delta rows: {elapsed:.2f} s ({rows / elapsed / 1e6:.1f} M rows/s)")
