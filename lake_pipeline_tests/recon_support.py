"""Helpers for the reconstruction tests: tiny lake partitions written by hand, outputs read back in ticks."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipeline.config import symbol_spec
from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.paths import book_states_dir, lake_ready, unified_dir
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS, LAKE_STORED, N_LEVELS
from lake_pipeline_tests.reference_replay import Delta, Snapshot, Trade

EX, SYM, DAY = "BINANCE", "BTC-USDT", "2024-08-08"
_SPEC = symbol_spec(Instrument.parse(SYM))
TICK, LOT = _SPEC.tick, _SPEC.lot
T0 = 1723075200 * 10**9  # 2024-08-08T00:00:00Z
DAY_END = T0 + 86_400 * 10**9
MS = 1_000_000
S = 1_000_000_000


def price(ticks: int) -> float:
    return float(Decimal(ticks) * TICK)


def size(lots: int) -> float:
    return float(Decimal(lots) * LOT)


def write_table(root: Path, table: str, columns: dict, name: str = "1.snappy.parquet",
                row_group_size: int | None = None) -> Path:
    directory = lake_ready(root, Partition(EX, SYM, DAY), table)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    pq.write_table(pa.table(columns, schema=LAKE_STORED[table]), path, row_group_size=row_group_size)
    return path


def trades_columns(trades: list[Trade]) -> dict:
    return {
        "side": ["buy" if t.is_buy else "sell" for t in trades],
        "amount": [size(t.qty) for t in trades],
        "price": [price(t.price) for t in trades],
        "id": [t.trade_id for t in trades],
        "timestamp": [t.time for t in trades],
        "receipt_timestamp": [t.recv for t in trades],
    }


def deltas_columns(deltas: list[Delta]) -> dict:
    return {
        "timestamp": [d.time for d in deltas],
        "receipt_timestamp": [d.recv for d in deltas],
        "sequence_number": [d.seq for d in deltas],
        "side_is_bid": [d.is_bid for d in deltas],
        "price": [price(d.price) for d in deltas],
        "size": [size(d.size) for d in deltas],
    }


def book_columns(snaps: list[Snapshot]) -> dict:
    cols: dict[str, list] = {"timestamp": [], "receipt_timestamp": [], "sequence_number": []}
    for c in BOOK_LEVEL_COLUMNS:
        cols[c] = []
    for s in snaps:
        cols["timestamp"].append(s.time)
        cols["receipt_timestamp"].append(s.recv)
        cols["sequence_number"].append(s.seq)
        for side, levels in (("bid", s.bids), ("ask", s.asks)):
            for i in range(N_LEVELS):
                p, q = levels[i] if i < len(levels) else (0, 0)
                cols[f"{side}_{i}_price"].append(price(p) if p else 0.0)
                cols[f"{side}_{i}_size"].append(size(q) if q else 0.0)
    return cols


def write_partition(root: Path, trades: list[Trade], deltas: list[Delta] | None, snaps: list[Snapshot]) -> None:
    write_table(root, "trades", trades_columns(trades))
    if deltas is not None:
        write_table(root, "book_delta_v2", deltas_columns(deltas))
    write_table(root, "book", book_columns(snaps))


def read_parts(directory: Path) -> pa.Table:
    parts = sorted(directory.glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts])


def unified(root: Path) -> pa.Table:
    return read_parts(unified_dir(root, Partition(EX, SYM, DAY)))


def book_states(root: Path) -> pa.Table:
    return read_parts(book_states_dir(root, Partition(EX, SYM, DAY)))


def _ticks(values: list, step: Decimal) -> list:
    return [None if v is None else int(v / step) for v in values]


def unified_rows(table: pa.Table) -> list[tuple]:
    """(time, type, seq, trade_id, side, price, qty, bbp, bbq, bap, baq, flags, drift) in ticks/lots."""
    d = {c: table[c].to_pylist() for c in table.column_names if "time" not in c}
    times = table["event_time"].cast(pa.int64()).to_pylist()
    cols = [
        times, d["event_type"], d["sequence_number"], d["trade_id"], d["side"],
        _ticks(d["price"], TICK), _ticks(d["quantity"], LOT),
        _ticks(d["best_bid_price"], TICK), _ticks(d["best_bid_quantity"], LOT),
        _ticks(d["best_ask_price"], TICK), _ticks(d["best_ask_quantity"], LOT),
        d["book_flags"], d["drift_levels"],
    ]
    return list(zip(*cols, strict=True))


def reference_rows(rows) -> list[tuple]:
    return [(r.time, r.type, r.seq, r.trade_id, r.side, r.price, r.qty, *r.bbo, r.flags, r.drift) for r in rows]


def state_rows(table: pa.Table) -> list[tuple]:
    """(time, bids [(px, sz)...], asks [...]) per book-state row, in ticks/lots, absent levels dropped."""
    times = table["event_time"].cast(pa.int64()).to_pylist()
    out = []
    cols = {c: table[c].to_pylist() for c in BOOK_LEVEL_COLUMNS}
    for i, t in enumerate(times):
        sides = []
        for side in ("bid", "ask"):
            levels = []
            for k in range(N_LEVELS):
                p = cols[f"{side}_{k}_price"][i]
                if p is not None:
                    levels.append((int(p / TICK), int(cols[f"{side}_{k}_size"][i] / LOT)))
            sides.append(levels)
        out.append((t, sides[0], sides[1]))
    return out


def random_partition(seed: int, n_messages: int = 300) -> tuple[list[Trade], list[Delta], list[Snapshot]]:
    """A small random market with every irregularity the replay handles: ties, provisional trades, drift,
    late-stamped snapshots, crossed books, sequence going backwards, time holes, invalid snapshots."""
    rng = np.random.default_rng(seed)
    truth_b = {10_000 - i: int(rng.integers(1, 50)) for i in range(1, 30)}
    truth_a = {10_000 + i: int(rng.integers(1, 50)) for i in range(0, 30)}
    trades: list[Trade] = []
    deltas: list[Delta] = []
    snaps: list[Snapshot] = []
    t = T0 + 50 * MS
    seq = 1000
    tid = 1

    def top(side, is_bid):
        ps = sorted(side, reverse=is_bid)[:N_LEVELS]
        return [(p, side[p]) for p in ps]

    snaps.append(Snapshot(t - 10 * MS, t - 9 * MS, seq, top(truth_b, True), top(truth_a, False)))
    for _ in range(n_messages):
        step = 7_000 if rng.random() < 0.02 else int(rng.choice([0, 1, 10, 100, 100, 100]))
        t += step * MS
        seq += int(rng.integers(1, 4))
        if rng.random() < 0.03:
            seq -= 10  # goes backwards
        bb, ba = max(truth_b), min(truth_a)
        if rng.random() < 0.3:  # a trade just before (or at) the message time
            is_buy = bool(rng.random() < 0.5)
            p = ba if is_buy else bb
            trades.append(Trade(t - int(rng.integers(0, 2)) * MS, t + 2 * MS, tid, is_buy, p, int(rng.integers(1, 30))))
            tid += 1
        rows = []
        for _ in range(int(rng.integers(1, 5))):
            is_bid = bool(rng.random() < 0.5)
            side = truth_b if is_bid else truth_a
            ref = bb if is_bid else ba
            p = ref - int(rng.integers(-2, 25)) if is_bid else ref + int(rng.integers(-2, 25))
            if (is_bid and p >= min(truth_a)) or (not is_bid and p <= max(truth_b)):
                p = ref - 1 if is_bid else ref + 1
            q = 0 if (rng.random() < 0.4 and p in side) else int(rng.integers(1, 60))
            if q:
                side[p] = q
            else:
                side.pop(p, None)
            rows.append(Delta(t, t + 3 * MS, seq, is_bid, p, q))
        if rng.random() < 0.02:  # a stranded level that crosses the book (not in the true market)
            is_bid = bool(rng.random() < 0.5)
            rows.append(Delta(t, t + 3 * MS, seq, is_bid, min(truth_a) + 1 if is_bid else max(truth_b) - 1, 9))
        for side, ref, sign in ((truth_b, min(truth_a), -1), (truth_a, max(truth_b), 1)):
            while len(side) < 3:
                side[ref + sign * (len(side) + 3)] = 7
        if rng.random() < 0.05 and len(rows) > 1:
            rows = rows[:-1]  # a dropped row: drift at the next snapshot
        deltas += rows
        if rng.random() < 0.35:
            snap = Snapshot(t, t + 4 * MS, seq, top(truth_b, True), top(truth_a, False))
            if rng.random() < 0.05:  # a crossed, invalid snapshot
                snap = Snapshot(t, t + 4 * MS, seq, [(ba + 2, 5)], [(ba, 5)])
            if rng.random() < 0.1:  # stamped late: sorts after the next message, which it does not include
                snap = Snapshot(t + 150 * MS, t + 151 * MS, seq, snap.bids, snap.asks)
            snaps.append(snap)
    snaps.sort(key=lambda s: s.time)
    deltas_sorted = sorted(range(len(deltas)), key=lambda i: deltas[i].time)
    deltas = [deltas[i] for i in deltas_sorted]
    trades.sort(key=lambda x: x.time)
    return trades, deltas, snaps


def _bbo_columns(spec) -> list:
    out = []
    for col, name, step in (("best_bid_price", "bid_price", spec.tick), ("best_bid_quantity", "bid_size", spec.lot),
                            ("best_ask_price", "ask_price", spec.tick), ("best_ask_quantity", "ask_size", spec.lot)):
        out.append((pl.col(col) / pl.lit(step)).cast(pl.Int64).alias(f"r_{name}"))
    return out


def scan_unified(root: Path, date: str = DAY) -> pl.LazyFrame:
    return pl.scan_parquet(str(unified_dir(root, Partition(EX, SYM, date))) + "/part-*.parquet")


def message_bbo(root: Path, date: str = DAY) -> pl.DataFrame:
    """Per delta message (keyed by sequence_number): time, flags and the best bid/ask after it, in ticks/lots."""
    return (
        scan_unified(root, date).filter(pl.col("event_type") == "BOOK_DELTA")
        .group_by("sequence_number", maintain_order=True).last()
        .select("sequence_number", pl.col("event_time").dt.epoch("ns").alias("ns"), "book_flags", *_bbo_columns(_SPEC))
        .collect()
    )


def snapshot_bbo(root: Path, date: str = DAY) -> pl.DataFrame:
    """Per book row: sequence_number, time, flags, drift and the best bid/ask after it, in ticks/lots."""
    return (
        scan_unified(root, date).filter(pl.col("event_type") == "BOOK_SNAPSHOT")
        .select("sequence_number", pl.col("event_time").dt.epoch("ns").alias("ns"), "book_flags", "drift_levels",
                *_bbo_columns(_SPEC))
        .collect()
    )


TRUTH_COLUMNS = ("bid_price", "bid_size", "ask_price", "ask_size")


def equals_truth() -> pl.Expr:
    return pl.all_horizontal([pl.col(c) == pl.col(f"r_{c}") for c in TRUTH_COLUMNS])
