"""`simulate()`: one seeded true market -> lake tables, golden Binance feed, ground truth, fault report.

The market runs in chunks (≈10 simulated minutes); each chunk is turned into the lake's rows (float-second times,
collector latency, faults), the golden frames of the same events (another collector's latency) and the truth BBO,
then forgotten, so memory stays flat for a full day. Every output partition is built in a temporary directory and
published whole at the end (`atomic.atomic_dir`); a re-run replaces it.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import date as date_cls
from datetime import datetime, UTC
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger

from lake_pipeline import paths
from lake_pipeline.atomic import atomic_dir
from lake_pipeline.config import symbol_spec
from lake_pipeline.instrument import FUTURES, VENUES, Partition
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS
from lake_pipeline.sim.clock import (
    NS_PER_MS,
    InOrderDelivery,
    float_seconds_ns,
    golden_latency,
    lake_latency,
    trade_event_delay_ms,
    via_float_seconds,
)
from lake_pipeline.sim.engine import ASK0_COL, ChunkOutput, Market
from lake_pipeline.sim.faults import FaultPlan, fault_report, unattributed
from lake_pipeline.sim.golden_writer import GoldenFeed
from lake_pipeline.sim.lake_writer import LakeTableWriter, lake_schema, units_to_float
from lake_pipeline.sim.params import market_params, size_table, start_price
from lake_pipeline.sim.replay import GAP_MS, ReferenceReplay, ReplayLog

HOUR_MS = 3_600_000
CHUNK_MINUTES = 10
TRUTH_BBO_SCHEMA = pa.schema([(c, pa.int64()) for c in ("update_id", "exchange_time_ns", "bid_price", "bid_size",
                                                      "ask_price", "ask_size")])
REPLAY_RULES = [
    "seed from the first book row",
    "apply each book_delta_v2 message (absolute sizes; 0 deletes; deleting an absent level is a no-op)",
    "compare best bid/ask price and size with sim_truth bbo at the same update_id (before any re-sync): a mismatch",
    f"after a message more than {GAP_MS} ms after the previous one, or when the book is crossed, re-sync the price "
    "range of the book row with the same sequence_number if it is two-sided and uncrossed",
]


class SimulationError(ValueError):
    """Bad simulator arguments (named in the message)."""


@dataclass
class SimSummary:
    """What one simulation wrote: rows per table, golden frames per stream, where, and how long it took."""

    data_root: Path
    exchange: str
    symbol: str
    date: str
    seed: int
    hours: float
    start_hour: int
    lake_variant: str
    rows: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    messages: int = 0
    fills: int = 0
    faults: list[dict] = field(default_factory=list)
    reference_mismatches: int = 0

    @property
    def lake_rows(self) -> int:
        return sum(self.rows.get(t, 0) for t in ("trades", "book", "book_delta_v2"))

    @property
    def rows_per_second(self) -> float:
        return self.lake_rows / max(self.timings.get("total_s", 0.0), 1e-9)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data_root"] = str(self.data_root)
        d["rows_per_second"] = self.rows_per_second
        return d


def _validate(part: Partition, hours: float, start_hour: int, golden_hours: float | None,
              lake_variant: str) -> tuple[int, float]:
    if part.exchange not in VENUES:
        raise SimulationError(f"exchange {part.exchange!r}: the simulator speaks {' and '.join(VENUES)}")
    if symbol_spec(part.instrument) is None:
        raise SimulationError(f"instrument {part.instrument} has no tick/lot in config (lake_pipeline/symbols.yaml)")
    day = date_cls.fromisoformat(part.date)  # Partition validated it
    if not 0 <= start_hour < 24:
        raise SimulationError(f"start_hour must be in 0..23, got {start_hour}")
    if not 0 < hours <= 24 - start_hour:
        raise SimulationError(f"hours must be > 0 and end within the date "
                              f"(start_hour {start_hour} + hours {hours} <= 24)")
    lake_schema("trades", lake_variant)  # raises for an unknown variant
    if golden_hours is None:
        golden_hours = hours if hours <= 2 else 1.0
    if golden_hours < 0:
        raise SimulationError(f"golden_hours must be >= 0, got {golden_hours}")
    day_start_ms = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    return day_start_ms, min(float(golden_hours), hours)


def _e8(unit: Decimal) -> int:
    scaled = unit * 10**8
    if scaled != scaled.to_integral_value():
        raise SimulationError(f"tick/lot {unit} is finer than 1e-8 (Binance's 8 decimals)")
    return int(scaled)


class _Outputs:
    """Open writers for every output partition of one run (all published together, or none)."""

    def __init__(self, stack: contextlib.ExitStack, root: Path, part: Partition, seed: int,
                 variant: str, golden: bool) -> None:
        self.dirs: dict[str, Path] = {}
        self.lake: dict[str, LakeTableWriter] = {}
        for table in ("trades", "book", "book_delta_v2"):
            final = paths.lake_ready(root, part, table)
            tmp = stack.enter_context(atomic_dir(final))
            self.lake[table] = LakeTableWriter(tmp, table, variant, part.exchange, part.symbol)
            stack.callback(self.lake[table].close)
            self.dirs[table] = final
        final = paths.truth_dir(root, part)
        self.truth_tmp = stack.enter_context(atomic_dir(final))
        self.dirs["sim_truth"] = final
        self.bbo = pq.ParquetWriter(self.truth_tmp / "bbo.parquet", TRUTH_BBO_SCHEMA, compression="zstd")
        stack.callback(self.bbo.close)
        self.golden_tmp: Path | None = None
        if golden:
            final = paths.golden_dir(root, part) / f"session=sim-{seed}"
            self.golden_tmp = stack.enter_context(atomic_dir(final))
            self.dirs["golden"] = final


def _write_lake(out: _Outputs, chunk: ChunkOutput, keep: np.ndarray, lake_book: np.ndarray, lake_ts: np.ndarray,
                depth_recv: np.ndarray, trade_recv: np.ndarray, tick_e8: int, lot_e8: int) -> None:
    n_rows = chunk.msg_row_end - chunk.msg_row_start
    row_keep = np.repeat(keep, n_rows)
    out.lake["book_delta_v2"].write({
        "timestamp": np.repeat(lake_ts[keep], n_rows[keep]),
        "receipt_timestamp": np.repeat(depth_recv[keep], n_rows[keep]),
        "sequence_number": np.repeat(chunk.msg_last_uid[keep], n_rows[keep]),
        "side_is_bid": chunk.row_is_bid[row_keep],
        "price": units_to_float(chunk.row_price[row_keep], tick_e8),
        "size": units_to_float(chunk.row_size[row_keep], lot_e8),
    })
    book = {"timestamp": lake_ts, "receipt_timestamp": depth_recv, "sequence_number": chunk.msg_last_uid}
    for k, name in enumerate(BOOK_LEVEL_COLUMNS):
        book[name] = units_to_float(lake_book[:, k], tick_e8 if name.endswith("_price") else lot_e8)
    out.lake["book"].write(book)
    a = chunk.aggs
    out.lake["trades"].write({
        "side": np.where(a[:, 3] == 1, "buy", "sell"),
        "amount": units_to_float(a[:, 2], lot_e8),
        "price": units_to_float(a[:, 1], tick_e8),
        "id": a[:, 4],
        "timestamp": float_seconds_ns(a[:, 0]),
        "receipt_timestamp": trade_recv,
    })


def _write_truth(out: _Outputs, chunk: ChunkOutput, lots_per_step: int) -> None:
    b = chunk.book
    out.bbo.write_table(pa.Table.from_arrays(
        [pa.array(chunk.msg_last_uid), pa.array(chunk.msg_e_ms * NS_PER_MS), pa.array(b[:, 0]),
         pa.array(b[:, 1] * lots_per_step), pa.array(b[:, ASK0_COL]), pa.array(b[:, ASK0_COL + 1] * lots_per_step)],
        schema=TRUTH_BBO_SCHEMA))


def simulate(data_root: Path, part: Partition, hours: float, seed: int, *, start_hour: int = 0, faults: tuple[str, ...] | list[str] = (), golden_hours: float | None = None,
             lake_variant: str = "stored", progress: bool = False) -> SimSummary:
    """Simulate `hours` of the partition's instrument from `start_hour` (UTC) and write every view of it under
    `data_root` (lake tables under `exchange=E/symbol=S/dt=D`, with the instrument's configured tick/lot).

    Same arguments -> byte-identical files. `golden_hours` defaults to all hours when `hours <= 2`, else 1
    (0 disables the golden feed; a futures partition has none yet). `faults` affect the lake tables only (see `lake_pipeline.sim.faults`).
    """
    t_start = time.perf_counter()
    data_root = Path(data_root)
    day_start_ms, golden_hours = _validate(part, hours, start_hour, golden_hours, lake_variant)
    exchange, symbol, date = part.exchange, part.symbol, part.date
    spec = symbol_spec(part.instrument)
    # The market draws sizes in order steps (LOT_SIZE.stepSize); truth is written in the config's lot units.
    tick_e8, lot_e8 = _e8(spec.tick), _e8(spec.order_step)
    truth_lots_per_step = int(spec.order_step / spec.lot)
    start_ms = day_start_ms + start_hour * HOUR_MS
    end_ms = start_ms + int(round(hours * HOUR_MS))
    golden_end_ms = start_ms + int(round(golden_hours * HOUR_MS))
    plan = FaultPlan(tuple(dict.fromkeys(faults)), start_ms, end_ms)
    price = start_price(part.instrument)
    market = Market(market_params(price, spec.tick, spec.order_step), size_table(price, spec.order_step), seed, start_ms,
                    day_start_ms, price, spec.tick)
    streams = {name: np.random.default_rng([int(seed), k]) for k, name in enumerate(
        ("lake_trades", "lake_depth", "golden", "trade_delay", "depth_delay", "golden_snapshot"), start=10)}
    lake_depth = InOrderDelivery(lake_latency(streams["lake_depth"]))
    lake_trades = InOrderDelivery(lake_latency(streams["lake_trades"]))
    replay = ReferenceReplay(market.base)
    log = ReplayLog()
    summary = SimSummary(data_root, exchange, symbol, date, int(seed), float(hours), int(start_hour), lake_variant)
    timings = dict.fromkeys(("market_s", "lake_s", "golden_s", "replay_s"), 0.0)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=round((end_ms - start_ms) / 60_000), unit="sim-min", desc=f"simulate {symbol} {date}")
    with contextlib.ExitStack() as stack:
        out = _Outputs(stack, data_root, part, seed, lake_variant, golden_hours > 0)
        golden = None
        if out.golden_tmp is not None:
            delivery = InOrderDelivery(golden_latency(streams["golden"]))
            golden = GoldenFeed(out.golden_tmp, symbol, tick_e8, lot_e8, delivery, streams["golden_snapshot"],
                                golden_end_ms, futures=exchange == FUTURES)
        stop_ms = end_ms - 101  # the last depth tick closes before the period ends
        msg_index = 0
        last_trade_e_ms = 0
        while market.now_ms < stop_ms:
            t0 = time.perf_counter()
            chunk = market.run(min(stop_ms, market.now_ms + CHUNK_MINUTES * 60_000),
                               record_bookticker=golden is not None and market.now_ms < golden_end_ms)
            t1 = time.perf_counter()
            # Binance pushes trades in id order: E = running max of (T + delay)
            agg_e_ms = np.maximum.accumulate(np.maximum(
                chunk.aggs[:, 0] + trade_event_delay_ms(streams["trade_delay"], len(chunk.aggs)), last_trade_e_ms))
            last_trade_e_ms = int(agg_e_ms[-1]) if len(agg_e_ms) else last_trade_e_ms
            depth_send_ms = chunk.msg_e_ms + streams["depth_delay"].integers(0, 5, chunk.n_messages)
            lake_ts = float_seconds_ns(chunk.msg_e_ms)
            depth_recv = via_float_seconds(lake_depth.receive(depth_send_ms * NS_PER_MS))
            trade_recv = via_float_seconds(lake_trades.receive(agg_e_ms * NS_PER_MS))
            keep, lake_book = plan.lake_view(chunk, lake_ts)
            _write_lake(out, chunk, keep, lake_book, lake_ts, depth_recv, trade_recv, tick_e8, lot_e8)
            _write_truth(out, chunk, truth_lots_per_step)
            t2 = time.perf_counter()
            if golden is not None and len(chunk.bookticker):
                snap = market.rest_snapshot()
                here = snap is not None and msg_index <= snap.message_index < msg_index + chunk.n_messages
                golden.add_chunk(chunk, np.repeat(agg_e_ms, chunk.aggs[:, 6]), depth_send_ms,
                                 snap if here else None, msg_index)
            t3 = time.perf_counter()
            mismatch, reason = replay.run(chunk.msg_e_ms, keep, chunk.msg_row_end, chunk.row_is_bid, chunk.row_price,
                                          chunk.row_size, lake_book, chunk.book)
            log.add(chunk.msg_last_uid, lake_ts, keep, mismatch, reason)
            t4 = time.perf_counter()
            for key, dt in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                timings[key] += dt
            summary.messages += chunk.n_messages
            summary.fills += len(chunk.fills)
            msg_index += chunk.n_messages
            if bar is not None:
                bar.update(round((chunk.end_ms - start_ms) / 60_000) - bar.n)
        if bar is not None:
            bar.close()
        log_arrays = log.arrays()
        summary.faults = fault_report(plan, log_arrays)
        report = {
            "symbol": symbol, "exchange": exchange, "date": date, "seed": int(seed),
            "reference_replay": {"rules": REPLAY_RULES, "gap_ms": GAP_MS,
                                 "mismatched_messages": int(log_arrays[3].sum()),
                                 "before_any_fault": unattributed(plan, log_arrays)},
            "faults": summary.faults,
        }
        (out.truth_tmp / "faults.json").write_text(json.dumps(report, indent=2) + "\n")
        summary.reference_mismatches = int(log_arrays[3].sum())
        if golden is not None:
            golden.close({"exchange": exchange, "source": "simulator", "seed": int(seed), "session_id": f"sim-{seed}",
                          "simulated_period_ms": [start_ms, end_ms]})
            summary.frames = dict(golden.frames)
        summary.rows = {t: w.rows for t, w in out.lake.items()} | {"truth_bbo": summary.messages}
        summary.paths = {k: str(v) for k, v in out.dirs.items()}
    timings["total_s"] = time.perf_counter() - t_start
    summary.timings = timings
    logger.info("simulated {} {} {} h: {} lake rows in {:.1f} s ({:.0f} rows/s)", symbol, date, hours,
                summary.lake_rows, timings["total_s"], summary.rows_per_second)
    return summary
