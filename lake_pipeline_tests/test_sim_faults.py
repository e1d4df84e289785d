"""Simulator faults: each one is where faults.json says, and a replay mismatches exactly where it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lake_pipeline.instrument import Instrument
from lake_pipeline.sim import SimulationError, simulate
from lake_pipeline.sim.faults import FaultError
from lake_pipeline_tests.sim_support import (
    book_row_levels,
    delta_messages,
    read_faults,
    read_lake,
    read_truth,
    reference_replay,
)

SEED = 23
FAULTS = ("dropped-delta", "time-hole", "crossed-snapshot")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict]]:
    root = tmp_path_factory.mktemp("sim_faults")
    summary = simulate(root, Instrument.parse("BTC-USDT").on("2024-08-08"), 0.05, SEED, faults=FAULTS, golden_hours=0)
    by_kind = {f["kind"]: f for f in read_faults(root)["faults"]}
    assert [f["kind"] for f in summary.faults] == list(FAULTS)
    return root, by_kind


def test_every_requested_fault_is_injected_with_a_time_range_and_sequence_numbers(sim) -> None:
    _, faults = sim
    assert set(faults) == set(FAULTS)
    for f in faults.values():
        assert f["injected"] is True and f["expected_effect"]
        lo, hi = f["time_range_ns"]
        assert 1723075200 * 10**9 <= lo <= hi < 1723075200 * 10**9 + 180 * 10**9
        assert f["sequence_numbers"]


def test_replay_mismatches_exactly_where_faults_json_says(sim) -> None:
    """An independent dict-book replay of the documented rules finds the very mismatches and re-syncs listed."""
    root, faults = sim
    mismatches, resyncs = reference_replay(root)
    assert mismatches, "the faults must show in the replayed BBO"
    lake_seqs = np.unique(read_lake(root, "book_delta_v2")["sequence_number"])
    in_ranges = set()
    for f in faults.values():
        for first, last, first_ns, last_ns, count in f["reference_replay"]["mismatch_ranges"]:
            run = lake_seqs[(lake_seqs >= first) & (lake_seqs <= last)]
            assert len(run) == count and run[0] == first and run[-1] == last
            in_ranges |= set(run.tolist())
    assert in_ranges == set(mismatches)
    assert sum(f["reference_replay"]["mismatched_messages"] for f in faults.values()) == len(mismatches)
    listed_resyncs = [(r["sequence_number"], r["reason"])
                      for f in faults.values() for r in f["reference_replay"]["resyncs"]]
    assert sorted(listed_resyncs) == sorted(resyncs)
    assert read_faults(root)["reference_replay"]["before_any_fault"]["mismatched_messages"] == 0


def test_dropped_delta_strands_the_best_level_until_the_book_crosses(sim) -> None:
    root, faults = sim
    f = faults["dropped-delta"]
    seqs = {s for s, _, _ in delta_messages(read_lake(root, "book_delta_v2"))}
    assert f["sequence_number"] not in seqs and f["sequence_number"] in read_truth(root)
    assert f["rows_removed"] > 0
    lvl, truth = f["stranded_level"], read_truth(root)
    prior = max(u for u in truth if u < f["sequence_number"])
    bid_p, _, ask_p, _ = truth[prior]
    assert lvl["price_ticks"] == (bid_p if lvl["side"] == "bid" else ask_p)  # it was the best level
    cross = truth[f["crossed_from_sequence_number"]]
    assert (cross[2] <= lvl["price_ticks"]) if lvl["side"] == "bid" else (cross[0] >= lvl["price_ticks"])
    rr = f["reference_replay"]
    assert rr["mismatch_ranges"][0][0] > f["sequence_number"]
    crossed = {"sequence_number": f["crossed_from_sequence_number"], "ns": f["crossed_from_ns"], "reason": "crossed"}
    assert crossed in rr["resyncs"]
    assert f["time_range_ns"][0] == f["ns"] and f["time_range_ns"][1] >= f["crossed_from_ns"]


def test_time_hole_removes_thirty_seconds_of_deltas_only(sim) -> None:
    root, faults = sim
    f = faults["time-hole"]
    d_ts = np.unique(read_lake(root, "book_delta_v2")["timestamp"])
    lo, hi = f["time_range_ns"]
    assert not np.any((d_ts >= lo) & (d_ts <= hi))
    gaps = np.diff(d_ts)
    k = int(np.argmax(gaps))
    assert 29.9e9 < gaps[k] < 30.5e9 and d_ts[k] < lo and d_ts[k + 1] > hi
    book_ts = read_lake(root, "book")["timestamp"]
    assert np.count_nonzero((book_ts >= lo) & (book_ts <= hi)) == f["messages_removed"] > 250
    assert f["detected_at"]["reason"] == "gap" and f["detected_at"]["ns"] == d_ts[k + 1]
    assert f["reference_replay"]["mismatch_ranges"][0][2] == d_ts[k + 1]  # stale book right after the hole


def test_crossed_snapshot_rows_are_exactly_the_listed_ones(sim) -> None:
    root, faults = sim
    book = read_lake(root, "book")
    crossed = [int(s) for i, s in enumerate(book["sequence_number"])
               if book["bid_0_price"][i] >= book["ask_0_price"][i]]
    assert crossed == faults["crossed-snapshot"]["sequence_numbers"]
    truth = read_truth(root)
    row_of = {int(s): i for i, s in enumerate(book["sequence_number"])}
    for r in faults["crossed-snapshot"]["rows"]:
        bids, asks = book_row_levels(book, row_of[r["sequence_number"]])
        assert 1 <= bids[0][0] - asks[0][0] <= 5
        assert bids[1][0] == truth[r["sequence_number"]][0]  # the true best bid moved down one level


def test_missing_hour_needs_two_hours_and_unknown_faults_are_named(tmp_path: Path) -> None:
    with pytest.raises(FaultError, match="missing-hour needs --hours >= 2"):
        simulate(tmp_path, Instrument.parse("BTC-USDT").on("2024-08-08"), 1.0, 1, faults=["missing-hour"])
    with pytest.raises(FaultError, match="unknown fault.*'stale-book'"):
        simulate(tmp_path, Instrument.parse("BTC-USDT").on("2024-08-08"), 0.05, 1, faults=["stale-book"])
    with pytest.raises(SimulationError, match="no tick/lot in config"):
        simulate(tmp_path, Instrument.parse("DOGE-TRY").on("2024-08-08"), 0.05, 1)
    with pytest.raises(SimulationError, match="end within the date"):
        simulate(tmp_path, Instrument.parse("BTC-USDT").on("2024-08-08"), 2.0, 1, start_hour=23)
    assert not any(tmp_path.iterdir())  # nothing half-written


@pytest.mark.slow
def test_missing_hour_removes_the_second_hour_of_deltas(tmp_path: Path) -> None:
    simulate(tmp_path, Instrument.parse("BTC-USDT").on("2024-08-08"), 2.05, 3, faults=["missing-hour"], golden_hours=0)
    f = read_faults(tmp_path)["faults"][0]
    start = 1723075200 * 10**9
    d_ts = np.unique(read_lake(tmp_path, "book_delta_v2")["timestamp"])
    assert not np.any((d_ts >= start + 3600 * 10**9) & (d_ts < start + 7200 * 10**9))
    assert f["messages_removed"] > 35_000 and f["detected_at"]["reason"] == "gap"
    mismatches, _ = reference_replay(tmp_path)
    assert len(mismatches) == f["reference_replay"]["mismatched_messages"] > 0
