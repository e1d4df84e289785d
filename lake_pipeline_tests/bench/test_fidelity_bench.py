"""Fidelity benchmarks (`make bench`): a simulated full day end to end through the CLI, and the Hawkes MLE at 1 M
events. They print figures; speed is never asserted by unit tests."""

from __future__ import annotations

import json
import resource
import time

import pytest

from lake_pipeline import paths
from lake_pipeline.cli import main
from lake_pipeline.fidelity import hawkes
from lake_pipeline.instrument import Partition
from lake_pipeline_tests import fidelity_fixtures as fxt

pytestmark = pytest.mark.bench


def test_bench_report_for_a_simulated_full_day(tmp_path):
    t = time.perf_counter()
    m = fxt.synthetic_market(86_400, seed=1, rate=8.0)
    fxt.write_unified(fxt.drop_messages(m, every=4000, stale_for=5), tmp_path, rows_per_part=1_000_000)
    hour = fxt.window(m, fxt.T0 + 3600 * 10**9, fxt.T0 + 2 * 3600 * 10**9)
    fxt.write_golden_capture(hour, fxt.golden_session_dir(tmp_path) / "cap-01.jsonl.gz")
    print(f"\nsetup (simulate + write a full day + a 1 h capture): {time.perf_counter() - t:.1f} s; "
          f"{m.msg_time.size:,} messages, {m.trades.height:,} trades")
    t = time.perf_counter()
    assert main(["fidelity", "--data-root", str(tmp_path), "--symbol", fxt.SYMBOL, "--date", fxt.DATE]) == 0
    wall = time.perf_counter() - t
    out = paths.fidelity_dir(tmp_path, Partition(fxt.EXCHANGE, fxt.SYMBOL, fxt.DATE))
    doc = json.loads((out / "fidelity.json").read_text())
    print(f"fidelity report: {wall:.1f} s wall, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f}"
          f" GB, HTML {(out / 'fidelity.html').stat().st_size / 1e6:.2f} MB; timings {doc['timings']}")
    print(f"status {doc['status']} score {doc['score']}")


def test_bench_hawkes_fit_at_1m_events():
    times = hawkes.simulate(20.0, 0.7, 50.0, 15_000.0, seed=1)
    f = hawkes.fit(times, 15_000.0)
    print(f"\nHawkes MLE on {times.size:,} events: {f.seconds:.2f} s, {f.iterations} iterations; "
          f"mu {f.mu:.3f} (20), n {f.n:.4f} (0.7), beta {f.beta:.2f} (50)")
