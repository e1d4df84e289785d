"""Simulator data: the replay equals the true market's best bid/ask after every delta message wherever no fault
was injected, and every injected fault is flagged and recovered at the next book row."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.paths import truth_dir
from lake_pipeline.reconstruct.run import reconstruct_partition
from lake_pipeline.schemas import FLAG_CROSSED, FLAG_GAP, FLAG_UNINITIALISED
from lake_pipeline.sim.simulate import simulate
from lake_pipeline_tests.recon_support import DAY, EX, SYM, equals_truth, message_bbo, snapshot_bbo

FAULTS = ("dropped-delta", "time-hole", "crossed-snapshot")
AFTER_LOSS_NS = 300 * 10**9
"""Mismatches are allowed inside each fault's effect range as faults.json states it (a dropped message also strands
levels deeper than the book rows show, which can cross the book seconds later), and after lost messages (time
hole, missing hour) until this long after: the replay re-seeds from 20 levels, deeper levels are unknown until a
diff or a book row reveals them, and one can become best before that. Every mismatch must be flagged and repaired
by the book row of the same message (asserted below)."""
LOSSES = ("time-hole", "missing-hour")


def _run(root: Path, hours: float, seed: int, faults: tuple[str, ...]) -> tuple:
    simulate(root, Instrument.parse(SYM).on(DAY), hours, seed, faults=list(faults), golden_hours=0)
    summary = reconstruct_partition(root, Partition(EX, SYM, DAY), chunk_rows=100_000)
    truth_path = truth_dir(root, Partition(EX, SYM, DAY))
    faults_json = {f["kind"]: f for f in json.loads((truth_path / "faults.json").read_text())["faults"]}
    truth = pl.read_parquet(truth_path / "bbo.parquet")
    messages = message_bbo(root).join(truth, left_on="sequence_number", right_on="update_id", how="left")
    snaps = snapshot_bbo(root).join(truth, left_on="sequence_number", right_on="update_id", how="left")
    return summary, faults_json, truth, messages, snaps


@pytest.fixture(scope="module")
def quarter_hour(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    return _run(tmp_path_factory.mktemp("sim"), 0.25, 3, FAULTS)


def _first_fault_ns(faults: dict) -> int:
    return min(f["time_range_ns"][0] for f in faults.values())


def check_truth(summary, faults, truth, messages, snaps) -> None:
    assert set(FAULTS) <= set(faults) and all(f["injected"] for f in faults.values())  # each asked-for fault is there
    # every message of the lake is a message of the true market
    assert messages["bid_price"].null_count() == 0
    unseeded = messages["book_flags"] & FLAG_UNINITIALISED != 0
    assert unseeded.sum() <= 1 and messages.filter(unseeded)["r_bid_price"].null_count() == unseeded.sum()
    messages = messages.filter(~unseeded)  # the lake starts with a diff; the first book row follows it
    ok = messages.select(equals_truth()).to_series()
    before = messages["ns"] < _first_fault_ns(faults)
    assert before.sum() > 1000 and ok.filter(before).all()
    allowed = pl.Series([False] * messages.height)
    for kind, fault in faults.items():  # the fault's own effect range (faults.json), longer after lost messages
        start, end = fault["time_range_ns"]
        allowed |= messages["ns"].is_between(start, end + (AFTER_LOSS_NS if kind in LOSSES else 0))
    bad = messages.filter(~ok)
    assert bad.height == messages.filter(~ok & allowed).height, bad.filter(~allowed.filter(~ok))
    print(f"messages equal to the truth: {ok.sum()}/{messages.height}")
    # each mismatch: the book row of the same message flags drift and re-syncs to the truth
    fix = snaps.join(bad.select("sequence_number"), on="sequence_number", how="semi")
    assert fix.height == bad.height
    assert (fix["drift_levels"] > 0).all() and (fix["book_flags"] & FLAG_GAP != 0).all()
    assert fix.select(equals_truth()).to_series().all()
    # book rows: after each valid one the replayed top equals the truth at that update id
    valid = ~snaps["sequence_number"].is_in(faults["crossed-snapshot"]["sequence_numbers"])
    assert snaps.filter(valid).select(equals_truth()).to_series().all()


def check_faults(summary, faults, messages, snaps) -> None:
    # dropped-delta: the book row of the lost message sees the drift, flags it and re-syncs
    dropped = snaps.filter(pl.col("sequence_number") == faults["dropped-delta"]["sequence_number"]).row(0, named=True)
    assert dropped["drift_levels"] > 0 and dropped["book_flags"] & FLAG_GAP
    # time-hole: the first message after it is flagged, the next book row re-seeds (recovery)
    at = faults["time-hole"]["detected_at"]["sequence_number"]
    first = messages.filter(pl.col("sequence_number") == at).row(0, named=True)
    assert first["book_flags"] & FLAG_GAP
    recovery = snaps.filter(pl.col("sequence_number") == at).row(0, named=True)
    assert recovery["book_flags"] & FLAG_GAP and not recovery["book_flags"] & FLAG_CROSSED
    assert summary.gaps["time_hole"] >= 1 and summary.replay["reseeds"] >= 1 and summary.gaps["recoveries"] >= 1
    # crossed-snapshot: the three rows are rejected and flagged; the replayed book is not crossed there
    crossed = snaps.filter(pl.col("sequence_number").is_in(faults["crossed-snapshot"]["sequence_numbers"]))
    assert crossed.height == 3 and summary.gaps["invalid_snapshot"] == 3
    assert (crossed["book_flags"] & FLAG_GAP != 0).all() and (crossed["book_flags"] & FLAG_CROSSED == 0).all()
    assert crossed.select(equals_truth()).to_series().all()


def test_replay_equals_truth_outside_faults(quarter_hour) -> None:
    summary, faults, truth, messages, snaps = quarter_hour
    check_truth(summary, faults, truth, messages, snaps)


def test_every_fault_is_flagged_and_recovered(quarter_hour) -> None:
    summary, faults, _, messages, snaps = quarter_hour
    check_faults(summary, faults, messages, snaps)


@pytest.mark.slow
def test_three_hours_with_a_missing_hour(tmp_path: Path) -> None:
    summary, faults, truth, messages, snaps = _run(tmp_path, 3, 11, (*FAULTS, "missing-hour"))
    check_truth(summary, faults, truth, messages, snaps)
    check_faults(summary, faults, messages, snaps)
    hour = faults["missing-hour"]["time_range_ns"]
    after = messages.filter(pl.col("ns") > hour[1]).row(0, named=True)
    assert after["book_flags"] & FLAG_GAP  # the first message after the missing hour is a time hole
    inside = snaps.filter(pl.col("ns").is_between(hour[0], hour[1]))
    assert inside.height > 30_000 and inside.select(equals_truth()).to_series().all()  # book rows carry the hour
