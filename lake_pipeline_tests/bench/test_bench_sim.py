"""Benchmark: simulator throughput (prints rows/s, wall time, row counts; run with `-m bench`).

`LAKE_BENCH_SIM_HOURS` (default 1) sets the simulated hours; 24 measures the full day the reconstructor
benchmark generates (golden feed off, like `lake-pipeline simulate --hours 24 --golden-hours 0`).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from lake_pipeline.instrument import Instrument
from lake_pipeline.sim import simulate

pytestmark = pytest.mark.bench


def test_bench_simulate(tmp_path: Path) -> None:
    hours = float(os.environ.get("LAKE_BENCH_SIM_HOURS", "1"))
    simulate(tmp_path / "warm", Instrument.parse("BTC-USDT").on("2024-08-08"), 0.002, 1, golden_hours=0)  # numba compile / cache load
    s = simulate(tmp_path / "run", Instrument.parse("BTC-USDT").on("2024-08-08"), hours, 7, golden_hours=0)
    t = s.timings
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nsimulate {hours:g} h: {s.lake_rows:,} lake rows in {t['total_s']:.1f} s = {s.rows_per_second:,.0f} rows/s "
          f"(market {t['market_s']:.1f} s, lake writers {t['lake_s']:.1f} s, replay {t['replay_s']:.1f} s); "
          f"rows {s.rows}; peak RSS {peak_mib:,.0f} MiB")
    per_hour = s.rows["book_delta_v2"] / hours
    assert 0.4e6 < per_hour < 3e6  # a day is ~30 M delta rows
    assert s.reference_mismatches == 0
