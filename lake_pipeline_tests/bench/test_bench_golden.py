"""Benchmarks (marker `bench`): golden reader lines/s and capture -> lake conversion on the real BTC session."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lake_pipeline.capture.golden import read_golden, stream_counts
from lake_pipeline.config import symbol_spec
from lake_pipeline.instrument import Instrument
from lake_pipeline.lake.from_capture import lake_from_capture
from lake_pipeline_tests.conftest import realdata_dir

pytestmark = [pytest.mark.bench, pytest.mark.realdata]


def _recording() -> list[Path]:
    return [realdata_dir() / "hftbacktest" / "spot" / f"btcusdt_2024080{d}.gz" for d in (8, 9)]


def _best_rate(fn, lines: int, repeats: int = 3) -> float:  # noqa: ANN001
    fn()  # warm-up: numba cache load, polars thread pool
    best = min(_timed(fn) for _ in range(repeats))
    return lines / best


def _timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_bench_golden_reader_lines_per_second() -> None:
    paths = _recording()
    lines = sum(stream_counts(paths).values())
    spec = symbol_spec(Instrument.parse("BTC-USDT"))
    rates = {
        "stream_counts": _best_rate(lambda: stream_counts(paths), lines),
        "read_golden strings": _best_rate(lambda: read_golden(paths), lines),
        "read_golden int64 ticks/lots": _best_rate(lambda: read_golden(paths, spec), lines),
    }
    for name, rate in rates.items():
        print(f"{name}: {rate:,.0f} lines/s ({lines:,} lines)")
    assert rates["read_golden int64 ticks/lots"] > 50_000


def test_bench_lake_from_capture(tmp_path: Path) -> None:
    paths = _recording()
    lines = sum(stream_counts(paths).values())
    lake_from_capture(paths, tmp_path / "warm", Instrument.parse("BTC-USDT"))
    seconds = _timed(lambda: lake_from_capture(paths, tmp_path / "data", Instrument.parse("BTC-USDT")))
    print(f"lake-from-capture: {seconds:.2f} s for {lines:,} lines ({lines / seconds:,.0f} lines/s)")
    assert seconds < 60
