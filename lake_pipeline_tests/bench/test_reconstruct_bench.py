"""Benchmark: a simulated full BTC-USDT day through the reconstruction, against its I/O floor and a naive replay.

Run with `make bench` (or `pytest lake_pipeline_tests/bench/test_reconstruct_bench.py -m bench -s`). The day
(~30 M delta rows, ~1 M trades, ~860 k book rows) is simulated once into `$LAKE_BENCH_DIR/reconstruct`
(default `data/bench/reconstruct`, git-ignored) and reused. Reported in one run, with the machine's load:

* end to end: `lake-pipeline reconstruct` as a subprocess (numba cache warmed first): wall time, peak RSS; and
  once more with 4x smaller chunks, to show memory follows the chunk size, not the day;
* the replay loop alone (the numba kernel over the day's chunks, inputs already in memory): events/s;
* the I/O floor: reading the same inputs (polars) plus writing the same outputs (pyarrow, same settings);
* the naive replay, two ways, each extrapolated to the day:
  - the same job as ours in plain Python, on 1 M delta rows and the trades and book rows of the same period: the
    tests' independent reference replay (dict books, one stable sort, atomic messages, provisional trades, resync
    with drift, top-20 states). This is the baseline the >= 100x target is checked against, because it produces
    what we produce;
  - the micro-baseline of research performance.md §2b (deltas only, best bid/ask and top 5 per row into tuples,
    no trades, no snapshots, no output file), also on 1 M delta rows: reported for comparison with published
    figures (Tiergarten's 114x is against this kind of loop); it does a fraction of the job, so the end-to-end
    ratio against it is bounded by our Parquet output, not by the replay.

Targets (issue 3): end to end <= 60 s (stretch 30 s), peak RSS <= 3 GiB, replay loop >= 10 M events/s,
<= 2x the I/O floor, >= 100x the naive replay. Set LAKE_BENCH_HOURS to bench a shorter day while iterating.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.paths import book_states_dir, lake_ready, unified_dir
from lake_pipeline.schemas import LAKE_TABLES

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[2]
EX, SYM, DAY, SEED = "BINANCE", "BTC-USDT", "2024-08-08", 7
HOURS = float(os.environ.get("LAKE_BENCH_HOURS", "24"))
NAIVE_ROWS = 1_000_000
SMALL_CHUNK = 250_000
SAME_JOB_ROWS = 1_000_000
TARGETS = {"wall_s": 60.0, "stretch_wall_s": 30.0, "peak_rss_gib": 3.0, "replay_mev_s": 10.0, "floor_ratio": 2.0,
           "naive_speedup": 100.0}


def _bench_root() -> Path:
    base = Path(os.environ.get("LAKE_BENCH_DIR", REPO / "data" / "bench"))
    return base / "reconstruct" / f"{SYM}-{HOURS:g}h-seed{SEED}"


def _simulated_day() -> Path:
    """The simulated day, generated once (a marker file says it is complete and for which parameters)."""
    root = _bench_root()
    marker = root / "_bench_ready.json"
    params = {"symbol": SYM, "date": DAY, "hours": HOURS, "seed": SEED}
    if marker.exists() and json.loads(marker.read_text()).get("params") == params:
        return root
    from lake_pipeline.sim import simulate

    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    s = simulate(root, Instrument.parse(SYM).on(DAY), HOURS, SEED, golden_hours=0)
    marker.write_text(json.dumps({"params": params, "rows": s.rows, "seconds": time.perf_counter() - t0}))
    return root


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))
    return env


def _cli(root: Path, date: str = DAY, timed: bool = False, chunk_rows: int | None = None
         ) -> tuple[dict, float, float | None]:
    """Run `lake-pipeline reconstruct`; (its JSON summary, wall seconds, peak RSS GiB from /usr/bin/time)."""
    cmd = [sys.executable, "-m", "lake_pipeline.cli", "reconstruct", "--data-root", str(root), "--symbol", SYM,
           "--date", date, "--quiet"]
    if chunk_rows:
        cmd += ["--chunk-rows", str(chunk_rows)]
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if timed and gnu_time:
        cmd = [gnu_time, "-v", *cmd]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    rss = int(found.group(1)) / 2**20 if found else None
    return json.loads(done.stdout), wall, rss


def _warm_numba(tmp: Path) -> None:
    """Compile (or load) every kernel once in a throwaway process on a tiny partition."""
    from lake_pipeline.sim import simulate

    simulate(tmp, Instrument.parse(SYM).on(DAY), 0.01, 1, golden_hours=0)
    _cli(tmp)


def _replay_loop(root: Path) -> dict[str, float]:
    """The kernel alone over the whole day: inputs read and merged first (not timed), buffers reused."""
    from lake_pipeline.book import OrderBook
    from lake_pipeline.lake.read import resolve_symbol_spec
    from lake_pipeline.reconstruct.buffers import ChunkBuffers
    from lake_pipeline.reconstruct.kernel import new_scratch, replay_chunk
    from lake_pipeline.reconstruct.order import Stream, plan_chunk, stream_batch_rows
    from lake_pipeline.reconstruct.run import (DEFAULT_CHUNK_ROWS, DEFAULT_MAX_DISORDER_NS, _day_bounds,
                                               _kernel_inputs, _state_capacity, _time_cap)
    from lake_pipeline.reconstruct.source import TABLE_ORDER, TableSource
    from lake_pipeline.reconstruct.state import ReplayParams, ReplayState

    spec = resolve_symbol_spec(root, Partition(EX, SYM, DAY))
    streams = [Stream(TableSource(root, Partition(EX, SYM, DAY), t, spec), stream_batch_rows(t, DEFAULT_CHUNK_ROWS),
                      DEFAULT_MAX_DISORDER_NS) for t in TABLE_ORDER]
    state = ReplayState.new(0, *_day_bounds(DAY), ReplayParams())
    book = OrderBook()
    scratch, top = new_scratch()
    buf = ChunkBuffers()
    events, wall, cpu = 0, 0.0, 0.0
    while True:
        plan = plan_chunk(streams, DEFAULT_CHUNK_ROWS, _time_cap(state.st))
        rows = [s.pop(n) for s, n in zip(streams, plan.counts, strict=True)]
        buf.reserve(plan.rows, _state_capacity(state.st, plan, rows))
        for column in (*buf.unified.arrays(), buf.states.time, buf.states.levels):
            column.fill(0)  # first touch outside the timing, as in the pipeline's reused buffers
        trades, deltas, snaps = _kernel_inputs(rows)
        w0, c0 = time.perf_counter(), time.process_time()
        n, _ = replay_chunk(trades, deltas, snaps, np.iinfo(np.int64).min if plan.final else plan.horizon,
                            book.bid, book.ask, book.meta, state.st, state.prov, state.ring, state.hist, state.last,
                            scratch, top, buf.unified.arrays(), (buf.states.time, buf.states.levels))
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        events += n
        if plan.final:
            return {"events": events, "wall_s": wall, "cpu_s": cpu, "mev_s": events / cpu / 1e6}


def _io_floor(root: Path) -> dict[str, float]:
    """Read the same inputs with polars, write the same outputs with pyarrow (same writer settings)."""
    from lake_pipeline.reconstruct.writer import write_parquet

    t0 = time.perf_counter()
    rows_in = sum(pl.read_parquet(lake_ready(root, Partition(EX, SYM, DAY), t) / "*.parquet").height for t in LAKE_TABLES)
    read_s = time.perf_counter() - t0
    parts = [*sorted(unified_dir(root, Partition(EX, SYM, DAY)).glob("part-*.parquet")),
             *sorted(book_states_dir(root, Partition(EX, SYM, DAY)).glob("part-*.parquet"))]
    out = root / "_io_floor"
    out.mkdir(exist_ok=True)
    write_s = 0.0
    for i, part in enumerate(parts):
        table = pq.read_table(part)  # in memory first: only the write is timed
        t0 = time.perf_counter()
        write_parquet(out / f"{i}.parquet", table)
        write_s += time.perf_counter() - t0
    shutil.rmtree(out)
    return {"read_s": read_s, "write_s": write_s, "floor_s": read_s + write_s, "rows_in": rows_in}


def _naive_replay(root: Path, n: int) -> dict[str, float]:
    """The naive replay of research performance.md §2b: rows from `iter_rows()`, a dict per side plus a sorted
    price list kept with bisect, and per event a tuple of best bid/ask and the top-5 prices and sizes per side."""
    frame = pl.scan_parquet(lake_ready(root, Partition(EX, SYM, DAY), "book_delta_v2") / "*.parquet").head(n).collect()
    t0 = time.perf_counter()
    books: dict[bool, dict[float, float]] = {True: {}, False: {}}
    prices: dict[bool, list[float]] = {True: [], False: []}  # ascending
    out = []
    for ts, is_bid, price, size in frame.select("timestamp", "side_is_bid", "price", "size").iter_rows():
        side, levels = books[is_bid], prices[is_bid]
        if size > 0:
            if price not in side:
                bisect.insort(levels, price)
            side[price] = size
        elif price in side:
            del side[price]
            levels.pop(bisect.bisect_left(levels, price))
        bids, asks = prices[True][-5:][::-1], prices[False][:5]
        out.append((ts, bids[0] if bids else None, asks[0] if asks else None, tuple(bids),
                    tuple(books[True][p] for p in bids), tuple(asks), tuple(books[False][p] for p in asks)))
    seconds = time.perf_counter() - t0
    return {"rows": frame.height, "seconds": seconds, "events_per_s": frame.height / seconds}


def _same_job_in_python(root: Path, n: int) -> dict[str, float]:
    """The same replay semantics in plain Python (the tests' independent reference replay: dict books, one sort,
    messages, provisional trades, resync with drift, top-20 states), on the first `n` delta rows and the trades
    and book rows of the same period; building its event objects from the rows counts too."""
    from lake_pipeline.lake.read import scan_table
    from lake_pipeline.reconstruct.run import _day_bounds
    from lake_pipeline.schemas import N_LEVELS
    from lake_pipeline_tests.reference_replay import Delta, ReferenceReplay, Snapshot, Trade

    deltas = scan_table(root, Partition(EX, SYM, DAY), "book_delta_v2").head(n).collect()
    until = pl.col("origin_time") <= deltas["origin_time"][-1]
    trades = scan_table(root, Partition(EX, SYM, DAY), "trades").filter(until).collect()
    book = scan_table(root, Partition(EX, SYM, DAY), "book").filter(until).collect()
    levels = [f"{side}_{i}_{k}" for side in ("bid", "ask") for i in range(N_LEVELS) for k in ("price", "size")]
    t0 = time.perf_counter()
    t_events = [Trade(*r) for r in trades.select("origin_time", "received_time", "trade_id", "side_is_buy", "price",
                                                 "quantity").iter_rows()]
    d_events = [Delta(*r) for r in deltas.select("origin_time", "received_time", "sequence_number", "side_is_bid",
                                                 "price", "size").iter_rows()]
    s_events = []
    for row in book.select("origin_time", "received_time", "sequence_number", *levels).iter_rows():
        lv = row[3:]
        sides = [[(lv[o + 2 * i], lv[o + 2 * i + 1]) for i in range(N_LEVELS) if lv[o + 2 * i] and lv[o + 2 * i + 1]]
                 for o in (0, 2 * N_LEVELS)]
        s_events.append(Snapshot(row[0], row[1], row[2], *sides))
    ReferenceReplay("full_event_replay", *_day_bounds(DAY)).run(t_events, d_events, s_events)
    seconds = time.perf_counter() - t0
    events = len(t_events) + len(d_events) + len(s_events)
    return {"rows": events, "seconds": seconds, "events_per_s": events / seconds}


def test_bench_reconstruct_full_day(tmp_path: Path) -> None:
    root = _simulated_day()
    _warm_numba(tmp_path / "warm")
    load_before = os.getloadavg()
    summary, wall, rss = _cli(root, timed=True)
    load_after = os.getloadavg()
    small = _cli(root, timed=True, chunk_rows=SMALL_CHUNK)  # memory follows the chunk size, not the day
    loop = _replay_loop(root)
    floor = _io_floor(root)
    naive = _naive_replay(root, NAIVE_ROWS)
    same_job = _same_job_in_python(root, SAME_JOB_ROWS)
    total = summary["rows"]["total"]
    naive_day_s = total / naive["events_per_s"]
    same_job_day_s = total / same_job["events_per_s"]
    results = {
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after},
        "rows": summary["rows"], "book_state_rows": summary["book_state_rows"],
        "end_to_end": {"wall_s": wall, "peak_rss_gib": rss, "events_per_s": total / wall,
                       "phases_wall_s": summary["timings_s"], "phases_cpu_s": summary["cpu_s"]},
        "small_chunks": {"chunk_rows": SMALL_CHUNK, "wall_s": small[1], "peak_rss_gib": small[2]},
        "replay_loop": loop, "io_floor": floor,
        "naive": {**naive, "extrapolated_day_s": naive_day_s},
        "same_job_in_python": {**same_job, "extrapolated_day_s": same_job_day_s},
        "ratios": {"vs_io_floor": wall / floor["floor_s"], "speedup_vs_naive": naive_day_s / wall,
                   "replay_loop_vs_naive": loop["mev_s"] * 1e6 / naive["events_per_s"],
                   "speedup_vs_same_job": same_job_day_s / wall,
                   "replay_loop_vs_same_job": loop["mev_s"] * 1e6 / same_job["events_per_s"]},
    }
    (root / "bench_results.json").write_text(json.dumps(results, indent=2))
    ratios = results["ratios"]
    # (name, measured, target, met, asserted): the replay-loop and naive figures depend on cache contention from
    # whatever else runs on the machine and on how fast the naive baseline happens to be, so they are reported
    # (MISS is printed) but only the end-to-end, memory and I/O-floor targets fail the benchmark.
    checks = [
        ("end to end wall", f"{wall:.1f} s", f"<= {TARGETS['wall_s']:g} s (stretch {TARGETS['stretch_wall_s']:g})",
         wall <= TARGETS["wall_s"], True),
        ("peak RSS", f"{rss:.2f} GiB" if rss else "n/a", f"<= {TARGETS['peak_rss_gib']:g} GiB",
         rss is None or rss <= TARGETS["peak_rss_gib"], True),
        ("  small chunks", f"{small[2] or 0:.2f} GiB, {small[1]:.1f} s with --chunk-rows {SMALL_CHUNK:,}",
         "memory follows the chunk size", True, False),
        ("vs I/O floor", f"{ratios['vs_io_floor']:.2f}x ({floor['floor_s']:.1f} s: read {floor['read_s']:.1f} + "
         f"write {floor['write_s']:.1f})", f"<= {TARGETS['floor_ratio']:g}x",
         ratios["vs_io_floor"] <= TARGETS["floor_ratio"], True),
        ("replay loop", f"{loop['mev_s']:.1f} M events/s (CPU)", f">= {TARGETS['replay_mev_s']:g} M/s",
         loop["mev_s"] >= TARGETS["replay_mev_s"], False),
        ("vs naive Python", f"end to end {ratios['speedup_vs_same_job']:.0f}x, replay loop "
         f"{ratios['replay_loop_vs_same_job']:.0f}x (same job in Python: {same_job['events_per_s'] / 1e3:.1f} k "
         f"ev/s, day ~{same_job_day_s / 3600:.1f} h)", f">= {TARGETS['naive_speedup']:g}x",
         ratios["speedup_vs_same_job"] >= TARGETS["naive_speedup"], True),
        ("  vs §2b micro", f"end to end {ratios['speedup_vs_naive']:.0f}x, replay loop "
         f"{ratios['replay_loop_vs_naive']:.0f}x (deltas + top 5 only: {naive['events_per_s'] / 1e3:.0f} k ev/s, "
         f"day ~{naive_day_s / 60:.1f} min)", "reported", True, False),
    ]
    print(f"\nreconstruct {SYM} {DAY} ({HOURS:g} h simulated): {total:,} events "
          f"({summary['rows']['book_deltas']:,} delta rows, {summary['rows']['trades']:,} trades, "
          f"{summary['rows']['book_snapshots']:,} book rows) -> {summary['book_state_rows']:,} book states")
    print(f"machine: {os.cpu_count()} CPUs, load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"phases (wall s): {summary['timings_s']}\nphases (thread CPU s): {summary['cpu_s']}")
    for name, got, target, ok, _ in checks:
        print(f"  {name:<16} {got:<72} target {target:<26} {'PASS' if ok else 'MISS'}")
    print(f"  results: {root / 'bench_results.json'}")
    assert summary["gaps"]["total"] == 0  # a fault-free simulated day replays without a single gap
    assert all(ok for *_, ok, hard in checks if hard), [name for name, *_, ok, hard in checks if hard and not ok]
