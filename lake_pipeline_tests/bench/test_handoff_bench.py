"""Benchmark: export a simulated full BTC-USDT day to hftbacktest, against reading its inputs in the same process.

Run with `make bench` (or `pytest lake_pipeline_tests/bench/test_handoff_bench.py -m bench -s`). The day is
simulated and reconstructed once into `$LAKE_BENCH_DIR/handoff` (default `data/bench/handoff`, git-ignored; ~1 min
simulate + ~0.5 min reconstruct on an idle 2-core box) and reused. Measured in one run, with the machine's load:

* the export as a subprocess (`lake-pipeline export --format hftbacktest`, numba cache warm): wall time, CPU,
  peak RSS (GNU time), and its phases;
* the baseline: reading the columns the export reads from the same unified parts (polars), in this process.

Targets (issue 14): <= 30 s and <= 2 GiB for the day. On a shared box (load 4-9 on 2 cores while this was
written) wall times swing 2x from run to run, so the hard checks are the memory bound and the CPU seconds, as a
ratio to the read baseline (<= 5x: measured 3.3-3.7x, the code before this work 5.8x; load inflates CPU time far
less than wall); the 30 s wall target, the 20 s CPU target and the wall ratio are printed with their verdicts.
Measured (load 2-5): 14-19 s CPU, 16-22 s wall, 0.7 GiB (before the exportspeed work: 28-32 s CPU, 53-67 s wall).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[2]
EX, SYM, DAY, SEED = "BINANCE", "BTC-USDT", "2024-08-08", 7
HOURS = float(os.environ.get("LAKE_BENCH_HOURS", "24"))
TARGETS = {"wall_s": 30.0, "cpu_s": 20.0, "peak_rss_gib": 2.0, "cpu_ratio": 5.0}


def _day() -> Path:
    """The simulated, reconstructed day (generated once; reused while its unified partition is published)."""
    from lake_pipeline.handoff import published
    from lake_pipeline.instrument import Partition
    from lake_pipeline.reconstruct.run import reconstruct_partition
    from lake_pipeline.sim import simulate

    base = Path(os.environ.get("LAKE_BENCH_DIR", REPO / "data" / "bench"))
    root = base / "handoff" / f"{SYM}-{HOURS:g}h-seed{SEED}"
    try:
        published(root, Partition(EX, SYM, DAY))
        return root
    except ValueError:
        shutil.rmtree(root, ignore_errors=True)
    simulate(root, Partition(EX, SYM, DAY), HOURS, SEED, golden_hours=0)
    reconstruct_partition(root, Partition(EX, SYM, DAY))
    return root


def _export(root: Path, out: Path) -> tuple[dict, float, float, float]:
    """(summary, wall s, user+sys CPU s, peak RSS GiB) of `lake-pipeline export` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "lake_pipeline.cli", "export", "--format", "hftbacktest",
           "--data-root", str(root), "--symbol", SYM, "--date", DAY, "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", done.stderr))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 2**20
    return json.loads(done.stdout), wall, cpu, rss


def _read_inputs(root: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds (all threads) to read what the export reads (the unified columns), and the rows."""
    from lake_pipeline.handoff import published
    from lake_pipeline.instrument import Partition

    p = published(root, Partition(EX, SYM, DAY))
    t0, c0 = time.perf_counter(), time.process_time()
    df = pl.scan_parquet(list(p.unified_parts)).select("event_time", "received_time", "event_type", "side", "price",
                                                       "quantity", "book_flags", "drift_levels").collect()
    return time.perf_counter() - t0, time.process_time() - c0, len(df)


def test_export_full_day(tmp_path: Path) -> None:
    if not Path("/usr/bin/time").exists():
        pytest.skip("GNU time (/usr/bin/time) is needed for the peak RSS")
    root = _day()
    warm = tmp_path / "warm.npz"
    load_before = os.getloadavg()
    read_s, read_cpu, rows = _read_inputs(root)
    summary, wall, cpu, rss = _export(root, tmp_path / "day.npz")
    load_after = os.getloadavg()
    ratio, cpu_ratio = wall / read_s, cpu / read_cpu
    checks = [("wall_s", wall <= TARGETS["wall_s"], False), ("cpu_s", cpu <= TARGETS["cpu_s"], False),
              ("peak_rss_gib", rss <= TARGETS["peak_rss_gib"], True),
              ("cpu_ratio", cpu_ratio <= TARGETS["cpu_ratio"], True)]
    print(f"\nhftbacktest export of {SYM} {DAY} ({HOURS:g} h simulated): {rows:,} unified rows -> "
          f"{summary['rows']:,} events, {summary['bytes'] / 2**30:.2f} GiB")
    print(f"machine: {os.cpu_count()} CPUs, load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"  export: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {rss:.2f} GiB; phases {summary['timings_s']}")
    print(f"  baseline, reading its inputs in this process: {read_s:.1f} s wall, {read_cpu:.1f} s CPU -> export = "
          f"{ratio:.1f}x the wall, {cpu_ratio:.1f}x the CPU")
    for name, ok, hard in checks:
        print(f"  {name:<14} target {TARGETS[name]:<6} {'PASS' if ok else 'MISS'}{'' if hard else ' (not asserted)'}")
    (root / "bench_results.json").write_text(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_gib": rss,
                                                         "read_s": read_s, "read_cpu_s": read_cpu,
                                                         "ratio": ratio, "cpu_ratio": cpu_ratio, "summary": summary,
                                                         "load": [load_before, load_after]}, indent=2))
    warm.unlink(missing_ok=True)
    assert all(ok for _, ok, hard in checks if hard), checks
