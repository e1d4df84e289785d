"""Deltas replayed with the book rows thinned out: in the simulator's lake every delta message has a book row beside
it, so every other truth test is resynchronised every 100 ms. Here only one book row in 200 (~20 s) stays: the
replay must carry the book through the deltas alone, equal to the independent reference replay row for row and to
the simulator's true BBO after every message."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake_pipeline.config import symbol_spec
from lake_pipeline.instrument import Partition
from lake_pipeline.paths import lake_ready, truth_dir
from lake_pipeline.reconstruct.run import reconstruct_partition
from lake_pipeline.schemas import N_LEVELS
from lake_pipeline.sim import simulate
from lake_pipeline_tests.recon_support import (
    DAY,
    DAY_END,
    EX,
    SYM,
    T0,
    book_states,
    equals_truth,
    message_bbo,
    reference_rows,
    state_rows,
    unified,
    unified_rows,
)
from lake_pipeline_tests.reference_replay import Delta, ReferenceReplay, Snapshot, Trade

KEEP_EVERY = 200
PART = Partition(EX, SYM, DAY)


def _us(ns: np.ndarray) -> list[int]:
    return ((ns + 500) // 1000 * 1000).tolist()  # the reader's normalisation of lake times


def _lake(root, table: str) -> pa.Table:
    return pq.read_table(lake_ready(root, PART, table) / "1.snappy.parquet")


def _reference_inputs(root) -> tuple[list[Trade], list[Delta], list[Snapshot]]:
    spec = symbol_spec(PART.instrument)
    tick, lot = float(spec.tick), float(spec.lot)

    def units(x, step: float) -> list[int]:
        return np.rint(np.asarray(x) / step).astype(np.int64).tolist()

    t = _lake(root, "trades")
    trades = [Trade(*r) for r in zip(_us(t["timestamp"].to_numpy()), _us(t["receipt_timestamp"].to_numpy()),
                                     t["id"].to_pylist(), [s == "buy" for s in t["side"].to_pylist()],
                                     units(t["price"], tick), units(t["amount"], lot), strict=True)]
    d = _lake(root, "book_delta_v2")
    deltas = [Delta(*r) for r in zip(_us(d["timestamp"].to_numpy()), _us(d["receipt_timestamp"].to_numpy()),
                                     d["sequence_number"].to_pylist(), d["side_is_bid"].to_pylist(),
                                     units(d["price"], tick), units(d["size"], lot), strict=True)]
    b = _lake(root, "book")
    levels = {f"{s}_{i}_{k}": units(b[f"{s}_{i}_{k}"], tick if k == "price" else lot)
              for s in ("bid", "ask") for i in range(N_LEVELS) for k in ("price", "size")}

    def side(name: str, row: int) -> list[tuple[int, int]]:
        pairs = [(levels[f"{name}_{i}_price"][row], levels[f"{name}_{i}_size"][row]) for i in range(N_LEVELS)]
        return [(p, q) for p, q in pairs if p and q]

    snaps = [Snapshot(tm, rc, sq, side("bid", i), side("ask", i))
             for i, (tm, rc, sq) in enumerate(zip(_us(b["timestamp"].to_numpy()), _us(b["receipt_timestamp"].to_numpy()),
                                                  b["sequence_number"].to_pylist(), strict=True))]
    return trades, deltas, snaps


@pytest.fixture(scope="module")
def thinned(tmp_path_factory):
    root = tmp_path_factory.mktemp("thinned")
    simulate(root, PART, 0.04, 13, golden_hours=0)
    path = lake_ready(root, PART, "book") / "1.snappy.parquet"
    book = pq.read_table(path)
    kept = book.take(np.arange(0, book.num_rows, KEEP_EVERY))
    pq.write_table(kept, path)
    summary = reconstruct_partition(root, PART, strategy="full_event_replay", chunk_rows=5_000)
    return root, book.num_rows, kept.num_rows, summary


def test_thinned_replay_equals_the_reference_replay(thinned) -> None:
    root, _, kept, summary = thinned
    trades, deltas, snaps = _reference_inputs(root)
    assert len(snaps) == kept and len(deltas) > 50 * kept  # many messages between two book rows
    expected = ReferenceReplay("full_event_replay", T0, DAY_END).run(trades, deltas, snaps)
    got, want = unified_rows(unified(root)), reference_rows(expected.rows)
    assert len(got) == len(want) == summary.total_rows
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"row {i}: kernel {g} != reference {w}"
    assert state_rows(book_states(root)) == expected.states


def test_thinned_replay_equals_the_true_market_after_every_message(thinned) -> None:
    root, rows, kept, summary = thinned
    truth = pl.read_parquet(truth_dir(root, PART) / "bbo.parquet")
    faults = json.loads((truth_dir(root, PART) / "faults.json").read_text())["faults"]
    assert faults == [] and rows > 100 * kept
    messages = message_bbo(root).join(truth, left_on="sequence_number", right_on="update_id", how="left")
    seeded = messages.filter(pl.col("r_bid_price").is_not_null() & (pl.col("book_flags") & 1 == 0))
    assert seeded.height > messages.height - 5 and seeded.height > 500
    assert seeded.select(equals_truth()).to_series().all()
    assert summary.gaps["total"] == 0 and summary.drift["mean"] == 0
