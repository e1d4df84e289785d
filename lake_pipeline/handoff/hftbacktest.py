"""Published unified events -> hftbacktest's event array (`.npz`), the way its backtester needs them.

Mapping (hftbacktest's `event_dtype`: ev, exch_ts, local_ts, px, qty, order_id, ival, fval):

- exch_ts = `event_time`, local_ts = `received_time` (its `event_time` where absent), shifted as a whole by
  hftbacktest's rule when some local time precedes its exchange time (`correct_local_timestamp`: every local_ts +=
  -min(latency) + base latency), so its latency model sees no negative feed latency;
- BOOK_DELTA row -> DEPTH_EVENT, BUY_EVENT for bids / SELL_EVENT for asks, qty = the level's new absolute size
  (0 deletes). Only where our replay applied it: the book is seeded (`book_flags` bit 0 clear) and the strategy
  is `full_event_replay` (the snapshot strategies ignore deltas);
- TRADE row -> TRADE_EVENT with the taker side (BUY_EVENT = the initiator bought);
- BOOK_SNAPSHOT row that changed our book (the seed, a re-seed, drift > 0, a resync after a gap; every snapshot
  for the snapshot strategies) -> one DEPTH_CLEAR_EVENT without a side, which makes hftbacktest empty BOTH sides
  completely, then DEPTH_SNAPSHOT_EVENTs of the top 20 after the snapshot (our `book_states` row of that snapshot).
  A sided clear would only remove levels between its best and the clear price (research hftbacktest.md: stale
  levels resurfaced after reconnects); a snapshot that agreed with our book (drift 0) changes nothing and is not
  sent, so hftbacktest keeps the deeper levels our replay keeps.

Order: hftbacktest processes exchange-side rows in exch_ts order and local-side rows in local_ts order. The rows
go through hftbacktest's own `correct_event_order` (rows whose two orders disagree are split into an exchange and
a local copy) and `validate_event_order`. To bound memory the day is ordered in chunks cut where no row crosses
the cut in local time (every earlier row's local_ts <= every later row's), so the chunks concatenate into one
valid array; chunks stream to the `.npz` (`npz.py`).

The initial snapshot a backtest starts from (`BacktestAsset().initial_snapshot(...)`) is written beside the data:
the top 20 of the range's first seeded snapshot, `<out>_snapshot.npz`.

hftbacktest is an optional dependency (`pip install 'lake_pipeline[hftbacktest]'`), imported only here, lazily.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lake_pipeline.handoff.npz import BackgroundAppend, NpzChunkWriter, save_npz
from lake_pipeline.handoff.readable import PublishedPartition, published
from lake_pipeline.instrument import Instrument
from lake_pipeline.schemas import EVENT_DELTA, EVENT_SNAPSHOT, EVENT_TRADE, FLAG_GAP, FLAG_UNINITIALISED, N_LEVELS

FULL_REPLAY = "full_event_replay"
INSTALL_HINT = "hftbacktest is not installed: pip install 'lake_pipeline[hftbacktest]' (or pip install hftbacktest)"


def _hbt() -> Any:
    """The installed hftbacktest's constants, dtype and data utilities (lazy: the CLI starts without it)."""
    try:
        import hftbacktest.data as data
        import hftbacktest.types as types
    except ImportError as exc:
        raise RuntimeError(INSTALL_HINT) from exc
    order = data.correct_event_order
    if not order.signatures and getattr(order, "_cache", None) is not None:
        try:  # compiled once per machine instead of ~2 s in every process (its @njit has no cache=True)
            order.enable_caching()
        except Exception:  # noqa: BLE001 - an unwritable cache only costs the compile
            pass
    return types, data


@dataclass
class ExportSummary:
    instrument: str
    dates: list[str]
    out: str
    snapshot_out: str
    rows: int = 0
    events: dict[str, int] = field(default_factory=dict)
    split_rows: int = 0
    local_ts_offset_ns: int = 0
    bytes: int = 0
    seconds: float = 0.0
    timings_s: dict[str, float] = field(default_factory=dict)
    tick: str = ""
    lot: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- one batch of unified rows -> unordered event rows ---------------------------------------------------------


def _read_batch(p: PublishedPartition, part: Path):
    """One unified part -> the rows to export with their hftbacktest `ev` (kind | side), in stream order.

    Kept: trades, deltas our replay applied (seeded book, full_event_replay) and snapshots that changed our book
    (`changed`); `seeded_snapshot` marks every snapshot with a seeded book (to find its book_states row)."""
    import polars as pl

    from lake_pipeline.handoff.read import as_units

    types, _ = _hbt()
    strategy = p.strategy
    etype, flags, drift = pl.col("event_type"), pl.col("book_flags"), pl.col("drift_levels")
    seeded = (flags & FLAG_UNINITIALISED) == 0
    changed = drift.is_null() | (drift > 0) | ((flags & FLAG_GAP) != 0) | pl.lit(strategy != FULL_REPLAY)
    buy = pl.col("side").is_in(["buy", "bid"])
    side = pl.when(buy).then(pl.lit(types.BUY_EVENT, pl.UInt64)).otherwise(pl.lit(types.SELL_EVENT, pl.UInt64))
    ev = (pl.when(etype == EVENT_TRADE).then(side | types.TRADE_EVENT)
          .when(etype == EVENT_DELTA).then(side | types.DEPTH_EVENT)
          .otherwise(pl.lit(types.DEPTH_CLEAR_EVENT, pl.UInt64)))
    return (pl.scan_parquet(part)
            .select(pl.col("event_time").dt.epoch("ns").alias("exch"),
                    pl.col("received_time").fill_null(pl.col("event_time")).dt.epoch("ns").alias("local"),
                    ev.cast(pl.UInt64).alias("ev"),
                    as_units("price", p.tick).alias("px"), as_units("quantity", p.lot).alias("qty"),
                    (seeded & (etype == EVENT_SNAPSHOT)).alias("seeded_snapshot"),
                    ((etype == EVENT_TRADE) | (seeded & (etype == EVENT_DELTA) & pl.lit(strategy == FULL_REPLAY))
                     | (seeded & (etype == EVENT_SNAPSHOT) & changed)).alias("keep"))
            .collect())


@dataclass
class PartRows:
    """A part's kept rows as numpy columns (built in the reader thread, so the main thread only orders and writes)
    and its seeded snapshot rows (exch, keep) for `_snapshot_levels`."""

    ev: np.ndarray
    exch: np.ndarray
    local: np.ndarray
    px: np.ndarray
    px_null: np.ndarray
    qty: np.ndarray
    qty_null: np.ndarray
    seeded_snaps: Any


def read_part(p: PublishedPartition, part: Path) -> PartRows:
    """`_read_batch` as numpy columns of the kept rows (px/qty units with their null masks)."""
    batch = _read_batch(p, part)
    rows = batch.filter("keep")
    px, qty = rows["px"], rows["qty"]
    return PartRows(rows["ev"].to_numpy(), rows["exch"].to_numpy(), rows["local"].to_numpy(),
                    px.fill_null(0).to_numpy(), px.is_null().to_numpy(), qty.fill_null(0).to_numpy(),
                    qty.is_null().to_numpy(), batch.filter("seeded_snapshot").select("exch", "keep"))


def _snapshot_levels(p: PublishedPartition, seeded_snaps) -> np.ndarray:
    """(kept snapshots, 80) float levels (NaN = absent) of their book_states rows.

    A snapshot's state row is the k-th row at its event time when it is the k-th seeded snapshot at that time
    (the replay writes it right after the snapshot; a grid row at the same time comes after)."""
    import polars as pl

    from lake_pipeline.handoff.read import as_units
    from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS

    keyed = (seeded_snaps.select("exch", "keep", pl.int_range(pl.len()).over("exch").alias("k"))
             .filter("keep").drop("keep"))
    first, last = int(keyed["exch"].min()), int(keyed["exch"].max())
    bounds = pl.Series([first, last]).cast(pl.Datetime("ns", "UTC"))  # a filter on the raw column prunes by the
    states = (pl.scan_parquet(list(p.book_states_parts))  # Parquet statistics: one row group read, not the whole day
              .filter(pl.col("event_time").is_between(bounds[0], bounds[1]))
              .with_columns(pl.col("event_time").dt.epoch("ns").alias("exch"))
              .with_columns(pl.int_range(pl.len()).over("exch").alias("k"))
              .join(keyed.lazy(), on=["exch", "k"], how="right", maintain_order="right")
              .select("exch", *[as_units(c, p.tick if c.endswith("_price") else p.lot) for c in BOOK_LEVEL_COLUMNS])
              .collect())
    missing = states.filter(pl.col("bid_0_price").is_null() & pl.col("ask_0_price").is_null())
    if len(missing):
        raise ValueError(f"partition {p.partition.key}: no book_states row for the snapshot at exch_ts "
                         f"{missing['exch'][0]} (book_states and unified disagree; re-run reconstruct)")
    prices = [c for c in BOOK_LEVEL_COLUMNS if c.endswith("_price")]
    levels = np.empty((len(states), len(BOOK_LEVEL_COLUMNS)))
    levels[:, 0::2] = _floats(states.select(prices).to_numpy(), p.tick)
    levels[:, 1::2] = _floats(states.select([c for c in BOOK_LEVEL_COLUMNS if c not in prices]).to_numpy(), p.lot)
    return levels


def _floats(units: np.ndarray, unit) -> np.ndarray:
    """Int64 units of 10^-d (`read.as_units`, NaN/None = null) -> correctly rounded floats (IEEE division)."""
    from lake_pipeline.handoff.read import unit_decimals

    return units.astype(np.float64) / 10 ** unit_decimals(unit)


class EventBuffer:
    """The record array a part's events are written into, reused across parts (grown when a part needs more)."""

    def __init__(self, dtype: np.dtype) -> None:
        self.array = np.zeros(0, dtype)

    def take(self, n: int) -> np.ndarray:
        if len(self.array) < n:
            self.array = np.empty(int(n * 1.25), self.array.dtype)
        return self.array[:n]


def batch_events(p: PublishedPartition, rows: PartRows, offset_ns: int, head: np.ndarray,
                 buffer: EventBuffer) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """One unified part (`read_part`) -> (`head` then the part's event rows in our stream order, in `buffer`;
    the first emitted snapshot's levels or None; event counts by kind (ev & 0xFF, 8 kinds) of the part)."""
    from lake_pipeline.handoff.fill import fill_rows
    from lake_pipeline.handoff.read import unit_decimals

    types, _ = _hbt()
    ev = rows.ev
    n = len(ev)
    is_snap = (ev & 0xFF) == types.DEPTH_CLEAR_EVENT
    levels = np.zeros((0, 4 * N_LEVELS))
    if is_snap.any():
        levels = _snapshot_levels(p, rows.seeded_snaps)
    present = ~np.isnan(levels[:, 0::2])  # (snapshots, 40): bid levels 0..19 then ask levels 0..19
    counts = np.ones(n, np.int64)
    counts[is_snap] += present.sum(axis=1)
    start = np.cumsum(counts) - counts + len(head)
    out = buffer.take(len(head) + int(counts.sum()))
    out[:len(head)] = head
    exch, local = rows.exch, (rows.local + offset_ns if offset_ns else rows.local)
    fill_rows(out, start, counts, ev, exch, local, rows.px, rows.px_null, rows.qty, rows.qty_null,
              float(10 ** unit_decimals(p.tick)), float(10 ** unit_decimals(p.lot)))
    kinds = np.bincount((ev & 0xFF).astype(np.intp), minlength=8)[:8]
    if len(levels):
        snap_start = start[is_snap]
        slot = snap_start[:, None] + np.cumsum(present, axis=1)  # 1-based position behind the clear row
        level_ev = np.repeat(np.array([types.BUY_EVENT, types.SELL_EVENT], np.uint64), N_LEVELS)
        ev_levels = np.broadcast_to(level_ev | np.uint64(types.DEPTH_SNAPSHOT_EVENT), present.shape)
        idx = slot[present]
        per_snap = present.sum(axis=1)
        out["ev"][idx] = ev_levels[present]
        out["exch_ts"][idx] = np.repeat(exch[is_snap], per_snap)
        out["local_ts"][idx] = np.repeat(local[is_snap], per_snap)
        out["px"][idx], out["qty"][idx] = levels[:, 0::2][present], levels[:, 1::2][present]
        kinds[types.DEPTH_SNAPSHOT_EVENT] += len(idx)
    return out, (levels[0] if len(levels) else None), kinds


# ---- ordering in chunks -----------------------------------------------------------------------------------------


ORDER_SEGMENT_ROWS = 200_000
"""Rows per `correct_event_order` call: its 2x output buffer stays under glibc's mmap threshold (32 MiB), so the
allocator reuses memory instead of faulting in fresh pages for every call (measured: a third of the system time)."""


def safe_cuts(exch: np.ndarray, local: np.ndarray, final: bool, every: int = ORDER_SEGMENT_ROWS) -> list[int]:
    """Cut positions (ascending, about `every` rows apart) where rows before can be ordered apart from rows after.

    A cut at i needs max(local[:i]) <= min(local[i:]) and <= the last exch_ts (later batches have exch_ts >= it
    and, with no negative latency, local_ts >= exch_ts). The last cut is the end when `final`; rows after the last
    cut are carried into the next batch."""
    n = len(exch)
    if n == 0:
        return []
    prefix_max = np.maximum.accumulate(local)[:-1]
    suffix_min = np.minimum.accumulate(local[::-1])[::-1][1:]
    ok = np.flatnonzero((prefix_max <= suffix_min) & (prefix_max <= exch[-1])) + 1
    cuts: list[int] = []
    if len(ok):
        wanted = np.arange(every, n, every)
        picked = ok[np.clip(np.searchsorted(ok, wanted, side="right") - 1, 0, None)]
        cuts = sorted(set(picked[picked > 0].tolist()) | {int(ok[-1])})
    if final and (not cuts or cuts[-1] != n):
        cuts.append(n)
    return cuts


def order_chunk(rows: np.ndarray) -> np.ndarray:
    """hftbacktest's `correct_event_order` on one chunk, given both orders as (time, other time, stream position).

    Equal (exch_ts, local_ts) rows must sit in the same relative order in both permutations, or its merge pairs
    different rows; the stream position breaks ties, so a message's rows stay whole and in order. Each order is
    a stable sort by the other time followed by a stable sort by its own time (= lexsort, fewer passes); when the
    stream is in exch_ts order already (the usual case) the sort by exch_ts is the identity and is skipped."""
    _, data = _hbt()
    exch, local = np.ascontiguousarray(rows["exch_ts"]), np.ascontiguousarray(rows["local_ts"])
    exch_sorted = bool(np.all(exch[1:] >= exch[:-1]))
    by_local = np.argsort(local, kind="stable")  # (local, position)
    if exch_sorted and not np.any((exch[1:] == exch[:-1]) & (local[1:] < local[:-1])):
        by_exch = np.arange(len(rows))  # stream order is (exch, local, position) already
    else:
        by_exch = by_local[np.argsort(exch[by_local], kind="stable")]  # (exch, local, position)
    if not exch_sorted:
        by_exch_first = np.argsort(exch, kind="stable")  # (exch, position)
        by_local = by_exch_first[np.argsort(local[by_exch_first], kind="stable")]  # (local, exch, position)
    return data.correct_event_order(rows, by_exch, by_local)


def _local_offset(parts: list[PublishedPartition], base_latency_ns: int) -> int:
    """hftbacktest's correct_local_timestamp rule over the whole range: -min(local - exch) + base, if negative."""
    import polars as pl

    lat = (pl.scan_parquet([f for p in parts for f in p.unified_parts])
           .select((pl.col("received_time").dt.epoch("ns") - pl.col("event_time").dt.epoch("ns")).min())
           .collect().item())
    return -int(lat) + base_latency_ns if lat is not None and lat < 0 else 0


class _Clock:
    """Wall seconds per phase, summed into `timings` (rounded when read)."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = round(self.timings.get(phase, 0.0) + time.perf_counter() - t0, 3)


def export_hftbacktest(data_root: str | Path, instrument: Instrument | str, dates: list[str], out: str | Path,
                       *, base_latency_ns: int = 0, progress=None) -> ExportSummary:
    """Export the published partitions of `instrument` on `dates` (in order) to hftbacktest's `.npz`.

    Raises UnpublishedPartition (a ValueError) naming a partition that is absent, unpublished or stale, and
    RuntimeError when hftbacktest is not installed. Nothing is written unless the whole export succeeds."""
    t0 = time.perf_counter()
    types, data = _hbt()
    inst = instrument if isinstance(instrument, Instrument) else Instrument.parse(instrument)
    parts = [published(data_root, inst.on(d)) for d in dates]
    out = Path(out)
    snapshot_out = out.with_name(out.name.removesuffix(".npz") + "_snapshot.npz")
    summary = ExportSummary(inst.key, list(dates), str(out), str(snapshot_out), tick=f"{parts[0].tick:f}",
                            lot=f"{parts[0].lot:f}")
    summary.local_ts_offset_ns = _local_offset(parts, base_latency_ns)
    writer = NpzChunkWriter(out, types.event_dtype)
    appender = BackgroundAppend(writer)  # ordered chunks are fresh arrays (correct_event_order's): safe to queue
    first_snapshot: np.ndarray | None = None
    carry = np.zeros(0, types.event_dtype)
    kinds = np.zeros(8, np.int64)
    todo = [(p, f) for p in parts for f in p.unified_parts]
    clock = _Clock(summary.timings_s)
    buffer = EventBuffer(types.event_dtype)
    reader = ThreadPoolExecutor(1, thread_name_prefix="export-read")  # the next part is read (polars, GIL
    try:  # released) while this one is ordered and written
        ahead = reader.submit(read_part, *todo[0]) if todo else None
        for i, (p, part) in enumerate(todo):
            with clock("read"):
                rows = ahead.result()
            ahead = reader.submit(read_part, *todo[i + 1]) if i + 1 < len(todo) else None
            with clock("convert"):
                pending, first, part_kinds = batch_events(p, rows, summary.local_ts_offset_ns, carry, buffer)
            del rows
            if first_snapshot is None and first is not None:
                first_snapshot = first
            kinds += part_kinds
            done = 0
            cuts = safe_cuts(np.ascontiguousarray(pending["exch_ts"]), np.ascontiguousarray(pending["local_ts"]),
                             final=i == len(todo) - 1)
            for cut in cuts:
                with clock("order"):
                    ordered = order_chunk(pending[done:cut])
                    data.validate_event_order(ordered)
                summary.split_rows += len(ordered) - (cut - done)
                with clock("write"):
                    appender.append(ordered)
                done = cut
            carry = pending[done:].copy()
            if progress is not None:
                progress(i + 1, len(todo))
        if first_snapshot is None:
            raise ValueError(f"{inst.key} {dates}: no seeded book in the range (no valid snapshot), nothing to export")
        with clock("publish"):
            appender.drain()
            summary.bytes = writer.close()
    except BaseException:
        appender.shutdown()
        writer.abort()
        raise
    finally:
        appender.shutdown()
        reader.shutdown(wait=True, cancel_futures=True)
    summary.bytes += save_npz(snapshot_out, initial_snapshot(first_snapshot))
    summary.rows = writer.rows
    names = {types.DEPTH_EVENT: "depth", types.TRADE_EVENT: "trade", types.DEPTH_CLEAR_EVENT: "depth_clear",
             types.DEPTH_SNAPSHOT_EVENT: "depth_snapshot"}
    summary.events = {names[k]: int(kinds[k]) for k in names}
    summary.seconds = round(time.perf_counter() - t0, 3)
    return summary


def initial_snapshot(levels: np.ndarray) -> np.ndarray:
    """hftbacktest snapshot rows (bids, then asks) of one book_states row of 80 floats (NaN = absent level)."""
    types, _ = _hbt()
    px, qty = levels[0::2], levels[1::2]
    present = ~np.isnan(px)
    side = np.repeat(np.array([types.BUY_EVENT, types.SELL_EVENT], np.uint64), N_LEVELS)
    snap = np.zeros(int(present.sum()), types.event_dtype)
    snap["ev"] = np.uint64(types.EXCH_EVENT | types.LOCAL_EVENT | types.DEPTH_SNAPSHOT_EVENT) | side[present]
    snap["px"], snap["qty"] = px[present], qty[present]
    return snap
