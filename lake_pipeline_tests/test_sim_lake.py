"""Simulator: lake tables have the exact schemas, real-lake conventions, and replay to the true BBO exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lake_pipeline import schemas
from lake_pipeline.instrument import Instrument
from lake_pipeline.sim import simulate
from lake_pipeline_tests.sim_support import (
    DictBook,
    book_row_levels,
    delta_messages,
    lake_file,
    read_faults,
    read_lake,
    read_truth,
    ticks,
)

SEED = 11
HOURS = 0.05  # 3 simulated minutes


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("sim_lake")
    return root, simulate(root, Instrument.parse("BTC-USDT").on("2024-08-08"), HOURS, SEED, golden_hours=0)


@pytest.mark.parametrize("table", schemas.LAKE_TABLES)
def test_stored_schema_and_metadata_are_exactly_the_lakes(sim, table: str) -> None:
    root, summary = sim
    schema = pq.read_schema(lake_file(root, table))
    assert schema.remove_metadata().equals(schemas.LAKE_STORED[table])
    assert schema.metadata[b"contains_gaps"] == b"Yes"
    assert pq.ParquetFile(lake_file(root, table)).metadata.row_group(0).column(0).compression == "SNAPPY"
    assert summary.rows[table] == pq.ParquetFile(lake_file(root, table)).metadata.num_rows > 0


def test_loaded_variant_has_lakeapi_schema_and_the_same_values(sim, tmp_path: Path) -> None:
    root, _ = sim
    simulate(tmp_path, Instrument.parse("BTC-USDT").on("2024-08-08"), HOURS, SEED, golden_hours=0, lake_variant="loaded")
    for table in schemas.LAKE_TABLES:
        loaded = pq.read_table(lake_file(tmp_path, table))
        assert loaded.schema.remove_metadata().equals(schemas.LAKE_LOADED[table])
        assert loaded.schema.metadata[b"contains_gaps"] == b"Yes"
        assert set(loaded.column("exchange").to_pylist()) == {"BINANCE"}
        assert set(loaded.column("symbol").to_pylist()) == {"BTC-USDT"}
        stored = pq.read_table(lake_file(root, table))
        for s_name, l_name in (("timestamp", "origin_time"), ("receipt_timestamp", "received_time")):
            assert np.array_equal(stored.column(s_name).to_numpy(), loaded.column(l_name).cast("int64").to_numpy())
    trades = pq.read_table(lake_file(tmp_path, "trades"))
    stored = pq.read_table(lake_file(root, "trades"))
    assert trades.column("trade_id").to_pylist() == stored.column("id").to_pylist()
    assert trades.column("quantity").to_pylist() == stored.column("amount").to_pylist()
    assert trades.column("side").cast("string").to_pylist() == stored.column("side").to_pylist()


def test_delta_messages_share_times_and_sequence_and_look_like_the_lake(sim) -> None:
    root, _ = sim
    d = read_lake(root, "book_delta_v2")
    seq, ts, recv = d["sequence_number"], d["timestamp"], d["receipt_timestamp"]
    starts = np.flatnonzero(np.diff(seq)) + 1
    assert np.all(np.diff(seq) >= 0) and len(starts) > 1000  # one block per message, ids increase
    for col in (ts, recv):  # every row of a message shares both timestamps
        assert np.array_equal(np.flatnonzero(np.diff(col)) + 1, starts)
    assert np.all(recv >= ts)
    lat_ms = (recv[np.concatenate(([0], starts))] - ts[np.concatenate(([0], starts))]) / 1e6
    assert 2 < np.median(lat_ms) < 10 and 30 < np.percentile(lat_ms, 95) < 200
    # exchange times went through float seconds: int(ms / 1000.0 * 1e9), hence the …999936 artefacts
    ms = np.round(ts / 1e6).astype(np.int64)
    assert np.array_equal(ts, (ms / 1000.0 * 1e9).astype(np.int64))
    assert np.any(ts % 1_000_000 != 0)
    gaps = np.diff(ms[np.concatenate(([0], starts))])
    assert np.median(gaps) == 100 and gaps.min() >= 100
    zeros = np.mean(d["size"] == 0)
    assert 0.2 <= zeros <= 0.5, zeros
    assert 20 <= len(seq) / (len(starts) + 1) <= 50  # rows per message (real BTC spot: median 16, mean 46)
    assert np.all(np.abs(d["price"] * 100 - np.round(d["price"] * 100)) < 1e-6)
    assert np.all(np.abs(d["size"] * 1e5 - np.round(d["size"] * 1e5)) < 1e-4)


def test_book_rows_are_ten_per_second_sorted_and_keyed_by_delta_sequence(sim) -> None:
    root, _ = sim
    b, d = read_lake(root, "book"), read_lake(root, "book_delta_v2")
    n = len(b["timestamp"])
    span_s = (b["timestamp"][-1] - b["timestamp"][0]) / 1e9
    assert 9.5 <= n / span_s <= 10.05
    assert np.array_equal(b["sequence_number"], np.unique(d["sequence_number"]))
    assert b["sequence_number"][0] == d["sequence_number"][0]  # the file starts mid-stream: no snapshot rows
    for i in range(0, n, 97):
        bids, asks = book_row_levels(b, i)
        assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
        assert [p for p, _ in asks] == sorted(p for p, _ in asks)
        assert bids[0][0] < asks[0][0] and all(q > 0 for _, q in bids + asks)
        assert len(bids) == 20 or b[f"bid_{len(bids)}_size"][i] == 0.0


def test_trades_are_aggregate_rows_with_consecutive_ids(sim) -> None:
    root, _ = sim
    t = read_lake(root, "trades")
    assert np.array_equal(np.diff(t["id"]), np.ones(len(t["id"]) - 1, dtype=np.int64))
    assert set(np.unique(t["side"])) == {"buy", "sell"}
    assert np.all(np.diff(t["timestamp"]) >= 0) and np.all(t["receipt_timestamp"] >= t["timestamp"])
    assert all(ticks(p) > 0 for p in t["price"][:500])
    assert np.all(t["amount"] > 0) and np.all(np.abs(t["amount"] * 1e5 - np.round(t["amount"] * 1e5)) < 1e-4)


def test_book_from_first_row_plus_deltas_equals_truth_after_every_message(sim) -> None:
    """Start-of-file scheme: the first book row describes every level, so deltas alone stay exact."""
    root, _ = sim
    book, truth = read_lake(root, "book"), read_truth(root)
    replay = DictBook()
    bids, asks = book_row_levels(book, 0)
    replay.resync_range(bids, asks)
    assert replay.bbo() == truth[int(book["sequence_number"][0])]
    rows_of = {int(s): i for i, s in enumerate(book["sequence_number"])}
    checked = 0
    for seq, _, rows in delta_messages(read_lake(root, "book_delta_v2"))[1:]:
        for is_bid, p, q in rows:
            replay.set(is_bid, p, q)
        assert replay.bbo() == truth[seq], f"BBO differs after message {seq}"
        if checked % 50 == 0:  # the whole top 20 agrees with the lake book row as well
            assert replay.top() == book_row_levels(book, rows_of[seq]), f"top-20 differs at {seq}"
        checked += 1
    assert checked == len(truth) - 1
    assert read_faults(root)["reference_replay"]["mismatched_messages"] == 0
