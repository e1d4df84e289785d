"""`reconstruct_partition`: lake tables of one symbol-day -> unified events + book states, crash-safe.

The main thread reads, merges and replays chunk after chunk; two writer threads (unified, book states) turn each
finished chunk into decimal Parquet segments and a committer makes it durable in the WAL (encoding dominates the
cost and pyarrow/numba release the GIL, so writing overlaps the replay on the 2 cores). Two buffer sets alternate
between replay and writers, which bounds memory to about two chunks of output. When every chunk is durable the
partition is published atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from lake_pipeline.atomic import clean_stale_temps
from lake_pipeline.book import DEFAULT_WINDOW, META_NAMES, OrderBook
from lake_pipeline.config import SymbolSpec
from lake_pipeline.exits import InputChangedError
from lake_pipeline.instrument import Partition
from lake_pipeline.lake import values
from lake_pipeline.lake.files import partition_files
from lake_pipeline.lake.partition_checks import check_partition
from lake_pipeline.lake.read import resolve_symbol_spec
from lake_pipeline.paths import book_states_dir, unified_dir
from lake_pipeline.reconstruct.buffers import ChunkBuffers
from lake_pipeline.reconstruct.kernel import new_scratch, replay_chunk
from lake_pipeline.reconstruct.order import INF, ChunkPlan, Stream, StreamPosition, plan_chunk, stream_batch_rows
from lake_pipeline.reconstruct.source import BOOK, DELTAS, TABLE_ORDER, TRADES, Rows, TableSource
from lake_pipeline.reconstruct.state import (
    ST_DAY_END,
    ST_DAY_START,
    ST_GRID_NS,
    ST_LAST_TIME,
    ST_NEXT_GRID,
    ReplayParams,
    ReplayState,
)
from lake_pipeline.reconstruct.strategies import StrategyChoice, choose_strategy
from lake_pipeline.reconstruct.summary import ReconstructSummary, drift_stats
from lake_pipeline.reconstruct.wal import Wal
from lake_pipeline.reconstruct.writer import OutputContext, TableBuilder

WAL_VERSION = 1
DEFAULT_CHUNK_ROWS = 1_000_000
"""~1.4 GiB peak for a BTC-USDT day; a chunk becomes one ~1 M-row row group per output part. Smaller chunks use
less memory at about the same speed (0.9 GiB at 500 k)."""
GRID_ROWS_PER_CHUNK = 1 << 16
"""A chunk spans at most this many book-state grid steps (~1.8 h at 100 ms), bounding its state rows."""
DEFAULT_MAX_DISORDER_NS = int(values.MAX_DISORDER_S * 1e9)


@dataclass(frozen=True)
class ReconstructOptions:
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    params: ReplayParams = field(default_factory=ReplayParams)
    max_disorder_ns: int = DEFAULT_MAX_DISORDER_NS
    book_window: int = DEFAULT_WINDOW

    def to_dict(self) -> dict[str, Any]:
        return {"chunk_rows": self.chunk_rows, "max_disorder_ns": self.max_disorder_ns,
                "book_window": self.book_window, **self.params.to_dict()}


class _EmptySource:
    """Stands in for an absent book_delta_v2 table (the snapshot strategies need none)."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.files: list = []
        self.total_rows = 0

    def fingerprint(self) -> list:
        return []

    def read(self, start: int, stop: int) -> tuple[Rows, int]:
        return self.empty(), 0

    def empty(self) -> Rows:
        return TableSource.empty(self)  # type: ignore[arg-type]


def _day_bounds(date: str) -> tuple[int, int]:
    day = Date.fromisoformat(date)
    start = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) * 10**9
    return start, start + 86_400 * 10**9


def _has_table(root: Path, part: Partition, table: str) -> bool:
    try:
        partition_files(root, part, table)
    except FileNotFoundError:
        return False
    return True


def work_dir(root: Path, part: Partition) -> Path:
    """The WAL of a partition's reconstruction: outside `unified/` so no reader ever globs into it."""
    return part.dir(root, "_work/reconstruct")


class _Timer:
    """Wall and thread-CPU seconds per phase (threads add to their own phases; CPU shows contention honestly)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - w0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.thread_time() - c0


class _Writer:
    """Background writing: one thread per output (unified, book states) plus a committer, all in chunk order.

    Each writer thread owns its TableBuilder (its scratch memory), so encoding of the two outputs runs in
    parallel with each other and with the replay; the committer waits for both segments of a chunk before it
    writes the checkpoint and the DONE marker, which keeps the WAL's commit order.
    """

    def __init__(self, wal: Wal, ctx: OutputContext, timer: _Timer) -> None:
        self._unified = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconstruct-unified")
        self._states = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconstruct-states")
        self._commit = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconstruct-commit")
        self._builders = {"unified": TableBuilder(ctx), "states": TableBuilder(ctx)}
        self._wal = wal
        self._timer = timer
        self._pending: dict[int, Future] = {}  # buffer set id -> the commit of the chunk using it

    def wait_for(self, slot: int) -> None:
        """Block until the buffer set `slot` is free again; re-raises a failure of a writer thread."""
        job = self._pending.pop(slot, None)
        if job is not None:
            with self._timer.phase("wait_writer"):
                job.result()

    def submit(self, slot: int, chunk: int, buf: ChunkBuffers, arrays: dict[str, np.ndarray],
               info: dict[str, Any]) -> None:
        unified = self._unified.submit(self._segment, "unified", chunk, buf)
        states = self._states.submit(self._segment, "states", chunk, buf)
        self._pending[slot] = self._commit.submit(self._finish, chunk, unified, states, arrays, info)

    def _segment(self, kind: str, chunk: int, buf: ChunkBuffers) -> tuple[int, int, list[int]]:
        """Encode and write one segment: (rows, bytes, [first, last] event_time ns, or [] when empty)."""
        builder = self._builders[kind]
        with self._timer.phase(f"encode_{kind}"):
            table = builder.unified(buf) if kind == "unified" else builder.book_states(buf)
        with self._timer.phase(f"write_{kind}"):
            size = self._wal.write_segment(kind, chunk, table)
        times = table.column("event_time")  # sorted: the ends are the range
        span = [times[0].value, times[len(times) - 1].value] if len(times) else []
        return table.num_rows, size, span

    def _finish(self, chunk: int, unified: Future, states: Future, arrays: dict[str, np.ndarray],
                info: dict[str, Any]) -> None:
        rows, size, span = unified.result()
        state_rows, state_size, _ = states.result()
        record = {"rows": rows, "bytes": size, "state_rows": state_rows, "state_bytes": state_size, "span": span}
        self._wal.commit_chunk(chunk, record, arrays, info)

    def drain(self) -> None:
        for slot in list(self._pending):
            self.wait_for(slot)

    def close(self) -> None:
        for pool in (self._unified, self._states, self._commit):
            pool.shutdown(wait=True, cancel_futures=True)


def _kernel_inputs(chunk: list[Rows]) -> tuple[tuple, tuple, tuple]:
    t, d, s = (r.cols for r in chunk)
    trades = (t["time"], t["recv"], t["trade_id"], t["side_is_buy"], t["price"], t["quantity"])
    deltas = (d["time"], d["recv"], d["sequence_number"], d["side_is_bid"], d["price"], d["size"])
    snaps = (s["time"], s["recv"], s["sequence_number"], s["levels"])
    return trades, deltas, snaps


def _state_capacity(st: np.ndarray, plan: ChunkPlan, chunk: list[Rows]) -> int:
    """Upper bound of the chunk's book-state rows: its grid steps plus one row per snapshot."""
    if plan.final:
        last = max([int(st[ST_LAST_TIME])] + [int(r.cols["time"][-1]) for r in chunk if len(r)])
        until = last + 1
    else:
        until = plan.horizon
    span = min(until, int(st[ST_DAY_END])) - int(st[ST_NEXT_GRID])
    step = int(st[ST_GRID_NS])
    return max(0, -(-span // step)) + len(chunk[2]) + 1


def _time_cap(st: np.ndarray) -> int:
    cap = max(int(st[ST_NEXT_GRID]), int(st[ST_DAY_START])) + GRID_ROWS_PER_CHUNK * int(st[ST_GRID_NS])
    return INF if cap >= int(st[ST_DAY_END]) else cap


class _Run:
    """State of one reconstruction run (fresh or resumed)."""

    def __init__(self, root: Path, part: Partition, spec: SymbolSpec, choice: StrategyChoice,
                 sources: list, options: ReconstructOptions) -> None:
        self.root, self.part = root, part
        self.spec, self.choice, self.options = spec, choice, options
        self.sources = sources
        self.timer = _Timer()
        batch = {t: stream_batch_rows(t, options.chunk_rows) for t in TABLE_ORDER}
        self.streams = [Stream(src, batch[src.table], options.max_disorder_ns) for src in sources]
        day_start, day_end = _day_bounds(part.date)
        self.state = ReplayState.new(choice.code, day_start, day_end, options.params)
        self.book = OrderBook(options.book_window)
        self.horizon = np.iinfo(np.int64).min
        self.resumed_after = -1

    def fingerprint(self) -> dict[str, Any]:
        return {
            "wal_version": WAL_VERSION,
            "partition": [self.part.exchange, self.part.symbol, self.part.date],
            "strategy": self.choice.name,
            "spec": self.spec.to_dict(),
            "options": self.options.to_dict(),
            "inputs": {src.table: src.fingerprint() for src in self.sources},
        }

    def restore(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        book = {k.removeprefix("book."): v for k, v in arrays.items() if k.startswith("book.")}
        self.book = OrderBook.restore(book)
        self.state = ReplayState.restore({k.removeprefix("state."): v for k, v in arrays.items()
                                          if k.startswith("state.")})
        self.horizon = int(info["horizon"])
        for stream, pos in zip(self.streams, info["streams"], strict=True):
            stream.restore(StreamPosition(**pos), self.horizon)
        self.resumed_after = int(info["chunk"])

    def checkpoint(self, chunk: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"book.{k}": v for k, v in self.book.checkpoint().items()}
        arrays.update({f"state.{k}": v for k, v in self.state.checkpoint().items()})
        info = {"chunk": chunk, "horizon": self.horizon,
                "streams": [s.position().to_dict() for s in self.streams]}
        return arrays, info

    # ---- the chunk loop -----------------------------------------------------------------------------------

    def replay(self, wal: Wal, ctx: OutputContext, progress: Callable[[int, int], None] | None) -> None:
        writer = _Writer(wal, ctx, self.timer)
        pool = [ChunkBuffers(), ChunkBuffers()]
        scratch, top = new_scratch()
        st = self.state.st
        chunk = wal.next_chunk
        try:
            while True:
                with self.timer.phase("read_merge"):
                    plan = plan_chunk(self.streams, self.options.chunk_rows, _time_cap(st))
                    rows = [s.pop(n) for s, n in zip(self.streams, plan.counts, strict=True)]
                slot = chunk % 2
                writer.wait_for(slot)
                buf = pool[slot]
                buf.reserve(plan.rows, _state_capacity(st, plan, rows))
                with self.timer.phase("replay"):
                    trades, deltas, snaps = _kernel_inputs(rows)
                    grid_until = np.iinfo(np.int64).min if plan.final else plan.horizon
                    state = self.state
                    buf.n, buf.m = replay_chunk(
                        trades, deltas, snaps, grid_until, self.book.bid, self.book.ask, self.book.meta, st,
                        state.prov, state.ring, state.hist, state.last, scratch, top, buf.unified.arrays(),
                        (buf.states.time, buf.states.levels),
                    )
                if buf.n != plan.rows:
                    raise RuntimeError(f"replay wrote {buf.n} rows for a chunk of {plan.rows}")
                self.horizon = plan.horizon
                arrays, info = self.checkpoint(chunk)
                writer.submit(slot, chunk, buf, arrays, info)
                if progress is not None:
                    progress(sum(s.loaded for s in self.streams), sum(s.source.total_rows for s in self.streams))
                chunk += 1
                if plan.final:
                    break
            writer.drain()
        finally:
            writer.close()

    # ---- the summary --------------------------------------------------------------------------------------

    def summary(self, wal: Wal, wall_s: float) -> ReconstructSummary:
        c = self.state.counters()
        total = c["trades"] + c["snapshots"] + c["delta_rows"]
        timings = {k: round(v, 3) for k, v in sorted(self.timer.wall.items())}
        timings["total"] = round(wall_s, 3)
        cpu = {k: round(v, 3) for k, v in sorted(self.timer.cpu.items())}
        cpu["process"] = round(time.process_time(), 3)
        gaps = {k.removeprefix("gaps_"): v for k, v in c.items() if k.startswith("gaps_")}
        gaps["total"] = sum(gaps.values())
        meta = self.book.meta
        replay_s = max(self.timer.cpu.get("replay", 0.0), 1e-9)
        return ReconstructSummary(
            exchange=self.part.exchange,
            symbol=self.part.symbol,
            date=self.part.date,
            strategy=self.choice.to_dict(),
            spec=self.spec.to_dict(),
            rows={"total": total, "trades": c["trades"], "book_snapshots": c["snapshots"],
                  "book_deltas": c["delta_rows"], "delta_messages": c["delta_messages"]},
            book_state_rows=c["state_rows_grid"] + c["state_rows_snapshot"],
            drift=drift_stats(self.state.hist),
            gaps={**gaps, "recoveries": c["recoveries"]},
            replay={k: v for k, v in c.items() if not k.startswith("gaps_")},
            origin_time_fallback={s.source.table: s.origin_missing for s in self.streams},
            book={name: int(meta[i]) for i, name in enumerate(META_NAMES) if name in ("dropped", "recentres")},
            chunks={"count": len(wal.done), "resumed_after_chunk": self.resumed_after},
            output={"unified": str(unified_dir(self.root, self.part)),
                    "book_states": str(book_states_dir(self.root, self.part)),
                    "unified_bytes": sum(d["bytes"] for d in wal.done),
                    "book_states_bytes": sum(d["state_bytes"] for d in wal.done),
                    "unified_files": sum(1 for d in wal.done if d["rows"]),
                    "book_states_files": sum(1 for d in wal.done if d["state_rows"]),
                    **_event_time_range(wal.done)},
            timings_s=timings,
            cpu_s=cpu,
            throughput={"events_per_s": round(total / max(wall_s, 1e-9)),
                        "replay_events_per_cpu_s": round(total / replay_s)},
            params=self.options.to_dict(),
            repairs={values.REPAIR_DUPLICATE_DELTA_ROWS: self.sources[1].total_rows - c["delta_rows"]},
        )


def _event_time_range(done: list[dict]) -> dict[str, str | None]:
    """First and last event_time of the unified output (ISO, UTC), from the chunks' WAL records."""
    spans = [d["span"] for d in done if d.get("span")]
    if not spans:
        return {"first_event_time": None, "last_event_time": None}
    first, last = min(s[0] for s in spans), max(s[1] for s in spans)
    iso = [np.datetime_as_string(np.datetime64(t, "ns"), unit="ms") + "Z" for t in (first, last)]
    return {"first_event_time": iso[0], "last_event_time": iso[1]}


def _sources(root: Path, part: Partition, spec: SymbolSpec, has_deltas: bool) -> list:
    trades = TableSource(root, part, TRADES, spec)
    book = TableSource(root, part, BOOK, spec)
    deltas = TableSource(root, part, DELTAS, spec) if has_deltas else _EmptySource(DELTAS)
    return [trades, deltas, book]


def input_identity(root: Path, part: Partition) -> dict[str, list]:
    """Every input file as (name, bytes, mtime_ns, inode): taken at start and again before publishing, so an input
    replaced meanwhile (acquire's atomic rename gives new inodes) stops the publication."""
    out: dict[str, list] = {}
    for table in TABLE_ORDER:
        try:
            files = partition_files(root, part, table)
        except FileNotFoundError:
            out[table] = []
            continue
        out[table] = [[p.name, *(lambda s: (s.st_size, s.st_mtime_ns, s.st_ino))(p.stat())] for p in files]
    return out


def _check_inputs_unchanged(before: dict[str, list], root: Path, part: Partition) -> None:
    after = input_identity(root, part)
    changed = [table for table in TABLE_ORDER if before.get(table) != after.get(table)]
    if changed:
        raise InputChangedError(
            f"{part.exchange} {part.symbol} dt={part.date}: input table(s) {', '.join(changed)} changed during the reconstruction "
            f"(replaced, rewritten or added/removed files under {root / 'lake' / 'ready'})")


def reconstruct_partition(
    data_root: str | Path,
    part: Partition,
    *,
    strategy: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    options: ReconstructOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReconstructSummary:
    """Reconstruct one instrument-day into `unified/` and `book_states/` (published atomically with `_SUCCESS`).

    Resumes from the WAL of an interrupted run with the same inputs and parameters. `progress(done, total)` is
    called after each chunk with input rows read so far and in all. Bad input raises (ValueError /
    FileNotFoundError naming the file) and publishes nothing; `options`, when given, overrides `chunk_rows`.
    """
    t0 = time.perf_counter()
    root = Path(data_root).resolve()
    options = options or ReconstructOptions(chunk_rows=int(chunk_rows))
    if options.chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {options.chunk_rows}")
    for table in (TRADES, BOOK):  # required by every strategy: fail early, naming the missing partition
        partition_files(root, part, table)
    inputs_at_start = input_identity(root, part)
    has_deltas = _has_table(root, part, DELTAS)
    choice = choose_strategy(root, part, override=strategy, has_deltas=has_deltas)
    spec = resolve_symbol_spec(root, part)
    sources = _sources(root, part, spec, has_deltas)
    run = _Run(root, part, spec, choice, sources, options)
    wal = Wal(work_dir(root, part), run.fingerprint())
    unified, states = unified_dir(root, part), book_states_dir(root, part)
    for directory in (unified.parent, states.parent):
        clean_stale_temps(directory)  # hidden temp dirs of a publication that was killed
    with wal.opened():
        done = wal.finished()
        if done is not None:  # every chunk is durable; a previous run died while publishing
            logger.info("{}: all chunks were already done; publishing", wal.dir)
            _check_inputs_unchanged(inputs_at_start, root, part)
            wal.publish(unified, states, done)
            return ReconstructSummary.from_dict(done)
        saved = wal.load_checkpoint()
        try:
            checks = check_partition(root, part, spec, count_delta_repairs=False)
            for source in sources[:2]:
                source.reference_price_ticks = checks.reference_price_ticks
            if saved is not None:
                run.restore(*saved)
            ctx = OutputContext.build(part.exchange, part.symbol, spec, {"strategy": choice.name})
            run.replay(wal, ctx, progress)
            _check_inputs_unchanged(inputs_at_start, root, part)
        except (ValueError, FileNotFoundError, InputChangedError):
            wal.remove()  # bad or changed input: nothing to resume, nothing published
            raise
        t1 = time.perf_counter()
        summary = run.summary(wal, t1 - t0)
        wal.finish(summary.to_dict())
        _check_inputs_unchanged(inputs_at_start, root, part)
        wal.publish(unified, states, summary.to_dict())
        summary.timings_s["publish"] = round(time.perf_counter() - t1, 3)
    logger.info("{}: {} rows ({} book states) in {:.1f} s, {} events/s; drift {}; gaps {}", part,
                summary.total_rows, summary.book_state_rows, summary.timings_s["total"],
                summary.throughput["events_per_s"], summary.drift.get("mean"), summary.gaps)
    return summary
