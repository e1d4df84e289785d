"""Independent readers and a pure-Python order book for the simulator tests (no numba, no simulator internals)."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from lake_pipeline import paths
from lake_pipeline.config import symbol_spec
from lake_pipeline.instrument import Instrument, Partition

EXCHANGE, SYMBOL, DATE = "BINANCE", "BTC-USDT", "2024-08-08"
TICK, STEP = Decimal("0.01"), Decimal("0.00001")  # BTC-USDT tick and order step (sizes are drawn on it)
LOT = symbol_spec(Instrument.parse("BTC-USDT")).lot  # the unit of int64 sizes, as in sim_truth/bbo.parquet


def lake_file(root: Path, table: str) -> Path:
    return paths.lake_ready(root, Partition(EXCHANGE, SYMBOL, DATE), table) / "1.snappy.parquet"


def read_lake(root: Path, table: str) -> dict[str, np.ndarray]:
    t = pq.read_table(lake_file(root, table))
    return {name: t.column(name).to_numpy() for name in t.column_names if name not in ("exchange", "symbol")}


def truth_dir(root: Path) -> Path:
    return paths.truth_dir(root, Partition(EXCHANGE, SYMBOL, DATE))


def read_truth(root: Path) -> dict[int, tuple[int, int, int, int]]:
    t = pq.read_table(truth_dir(root) / "bbo.parquet").to_pydict()
    return {u: (bp, bq, ap, aq) for u, bp, bq, ap, aq in zip(
        t["update_id"], t["bid_price"], t["bid_size"], t["ask_price"], t["ask_size"], strict=True)}


def read_faults(root: Path) -> dict:
    return json.loads((truth_dir(root) / "faults.json").read_text())


def golden_session(root: Path, seed: int) -> Path:
    return paths.golden_dir(root, Partition(EXCHANGE, SYMBOL, DATE)) / f"session=sim-{seed}"


def golden_lines(root: Path, seed: int) -> list[tuple[int, dict]]:
    out = []
    for f in sorted(golden_session(root, seed).glob("frames-*.jsonl.gz")):
        with gzip.open(f, "rt") as fh:
            for line in fh:
                ns, _, frame = line.rstrip("\n").partition(" ")
                out.append((int(ns), json.loads(frame)))
    return out


def ticks(x: float | str) -> int:
    """Exact decimal -> ticks (asserts on the grid)."""
    q = Decimal(str(x)) / TICK
    assert q == q.to_integral_value(), f"price {x} off the 0.01 grid"
    return int(q)


def lots(x: float | str) -> int:
    """Exact decimal -> config lots (asserts the size is on the 0.00001 order-step grid)."""
    q = Decimal(str(x)) / STEP
    assert q == q.to_integral_value(), f"size {x} off the 0.00001 grid"
    return int(Decimal(str(x)) / LOT)


class DictBook:
    """The simplest correct L2 book: {price: size} per side, absolute updates, 0 deletes."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def set(self, is_bid: bool, price: int, size: int) -> None:
        side = self.bids if is_bid else self.asks
        if size == 0:
            side.pop(price, None)
        else:
            side[price] = size

    def bbo(self) -> tuple[int, int, int, int]:
        bp = max(self.bids) if self.bids else 0
        ap = min(self.asks) if self.asks else 0
        return bp, self.bids.get(bp, 0), ap, self.asks.get(ap, 0)

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))

    def top(self, n: int = 20) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        b = sorted(self.bids.items(), reverse=True)[:n]
        a = sorted(self.asks.items())[:n]
        return b, a

    def resync_range(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """Replace the book inside the price range of a top-N snapshot; deeper levels stay."""
        low_bid, high_ask = bids[-1][0], asks[-1][0]
        self.bids = {p: q for p, q in self.bids.items() if p < low_bid}
        self.asks = {p: q for p, q in self.asks.items() if p > high_ask}
        self.bids.update(bids)
        self.asks.update(asks)


def book_row_levels(book: dict[str, np.ndarray], i: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Present levels of lake book row `i` as (ticks, lots), best first (absent levels are 0.0)."""
    sides = []
    for side in ("bid", "ask"):
        levels = []
        for k in range(20):
            p, q = book[f"{side}_{k}_price"][i], book[f"{side}_{k}_size"][i]
            if p == 0.0:
                break
            levels.append((ticks(p), lots(q)))
        sides.append(levels)
    return sides[0], sides[1]


def delta_messages(deltas: dict[str, np.ndarray]) -> list[tuple[int, int, list[tuple[bool, int, int]]]]:
    """(sequence_number, timestamp, [(is_bid, ticks, lots), …]) per message, in file order."""
    seq = deltas["sequence_number"]
    bounds = np.flatnonzero(np.diff(seq)) + 1
    out = []
    for lo, hi in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [len(seq)])), strict=True):
        rows = [(bool(b), ticks(p), lots(s)) for b, p, s in zip(deltas["side_is_bid"][lo:hi], deltas["price"][lo:hi],
                                                                 deltas["size"][lo:hi], strict=True)]
        out.append((int(seq[lo]), int(deltas["timestamp"][lo]), rows))
    return out


def reference_replay(root: Path, gap_ns: int = 5_000_000_000) -> tuple[list[int], list[tuple[int, str]]]:
    """The replay rules faults.json documents, re-implemented on a dict book: (mismatch seqs, re-syncs)."""
    deltas, book, truth = read_lake(root, "book_delta_v2"), read_lake(root, "book"), read_truth(root)
    row_of = {int(s): i for i, s in enumerate(book["sequence_number"])}
    replay = DictBook()
    b, a = book_row_levels(book, 0)
    replay.resync_range(b, a)
    first_seq = int(book["sequence_number"][0])
    last_ts = int(book["timestamp"][0])
    mismatches, resyncs = [], []
    for seq, ts, rows in delta_messages(deltas):
        if seq <= first_seq:
            continue
        for is_bid, p, q in rows:
            replay.set(is_bid, p, q)
        if replay.bbo() != truth[seq]:
            mismatches.append(seq)
        reason = "gap" if ts - last_ts > gap_ns else "crossed" if replay.crossed() else None
        if reason:
            b, a = book_row_levels(book, row_of[seq])
            if b and a and b[0][0] < a[0][0]:
                replay.resync_range(b, a)
                resyncs.append((seq, reason))
        last_ts = ts
    return mismatches, resyncs
