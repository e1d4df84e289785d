"""Each strategy on tiny hand-made lake files, against rows written out by hand.

Rows are (ms after midnight, type, sequence_number, trade_id, side, price, qty, best bid, its qty, best ask, its
qty, book_flags, drift_levels) in ticks (0.01) and lots (1e-8). Flags: 1 uninitialised, 2 crossed, 4 gap/resync,
8 a trade's consumption is provisional.
"""

from __future__ import annotations

import pytest

from lake_pipeline.instrument import Partition
from lake_pipeline.reconstruct.run import reconstruct_partition
from lake_pipeline_tests.recon_support import (
    DAY,
    EX,
    MS,
    SYM,
    T0,
    book_states,
    state_rows,
    unified,
    unified_rows,
    write_partition,
)
from lake_pipeline_tests.reference_replay import Delta, Snapshot, Trade

D, S, X = "BOOK_DELTA", "BOOK_SNAPSHOT", "TRADE"


def at(ms: int) -> int:
    return T0 + ms * MS


def delta(ms: int, seq: int, is_bid: bool, px: int, sz: int) -> Delta:
    return Delta(at(ms), at(ms) + 5 * MS, seq, is_bid, px, sz)


def snap(ms: int, seq: int, bids: list, asks: list) -> Snapshot:
    return Snapshot(at(ms), at(ms) + 5 * MS, seq, bids, asks)


def trade(ms: int, tid: int, is_buy: bool, px: int, qty: int) -> Trade:
    return Trade(at(ms), at(ms) + 3 * MS, tid, is_buy, px, qty)


# ---- scenario 1: seed, ties, message atomicity, provisional trades, delete-absent ----------------------------
TRADES_1 = [trade(200, 1, False, 10000, 3), trade(250, 2, True, 10002, 1)]
DELTAS_1 = [
    delta(50, 9, True, 9998, 3),  # before any book row: not applied
    delta(200, 11, False, 10001, 0), delta(200, 11, True, 10000, 2),  # one message, two rows
    delta(300, 12, True, 9990, 0),  # deleting an absent level: no-op
]
SNAPS_1 = [
    snap(100, 10, [(10000, 5), (9999, 7)], [(10001, 4), (10002, 6)]),
    snap(300, 12, [(10000, 2), (9999, 7)], [(10002, 6)]),  # same time and sequence_number as a message: after it
]


def rows(*spec):
    return [(at(ms), *rest) for ms, *rest in spec]


EXPECTED_1 = {
    "full_event_replay": rows(
        (50, D, 9, None, "bid", 9998, 3, None, None, None, None, 1, None),
        (100, S, 10, None, None, None, None, 10000, 5, 10001, 4, 0, None),
        # the trade at 200 ms comes before the diff at 200 ms; it takes 3 of the 5 bid lots provisionally
        (200, X, None, 1, "sell", 10000, 3, 10000, 2, 10001, 4, 8, None),
        # the diff confirms the bid at 2 (absolute, not 2 - 3) and deletes the ask: both rows carry the result
        (200, D, 11, None, "ask", 10001, 0, 10000, 2, 10002, 6, 0, None),
        (200, D, 11, None, "bid", 10000, 2, 10000, 2, 10002, 6, 0, None),
        (250, X, None, 2, "buy", 10002, 1, 10000, 2, 10002, 5, 8, None),
        # the next diff does not report 10002: the trade belongs to a later diff, the reduction is undone
        (300, D, 12, None, "bid", 9990, 0, 10000, 2, 10002, 6, 0, None),
        (300, S, 12, None, None, None, None, 10000, 2, 10002, 6, 0, 0),
    ),
    "snapshot_anchored": rows(
        (50, D, 9, None, "bid", 9998, 3, None, None, None, None, 1, None),
        (100, S, 10, None, None, None, None, 10000, 5, 10001, 4, 0, None),
        (200, X, None, 1, "sell", 10000, 3, 10000, 2, 10001, 4, 8, None),
        (200, D, 11, None, "ask", 10001, 0, 10000, 2, 10001, 4, 8, None),  # deltas do not move this book
        (200, D, 11, None, "bid", 10000, 2, 10000, 2, 10001, 4, 8, None),
        (250, X, None, 2, "buy", 10002, 1, 10000, 2, 10001, 4, 8, None),
        (300, D, 12, None, "bid", 9990, 0, 10000, 2, 10001, 4, 8, None),
        # drift: ask 10001 (4, gone) and ask 10002 (5 after the trade, 6) disagree; then the row replaces the book
        (300, S, 12, None, None, None, None, 10000, 2, 10002, 6, 0, 2),
    ),
    "origin_time_sort": rows(
        (50, D, 9, None, "bid", 9998, 3, None, None, None, None, 1, None),
        (100, S, 10, None, None, None, None, 10000, 5, 10001, 4, 0, None),
        (200, X, None, 1, "sell", 10000, 3, 10000, 5, 10001, 4, 0, None),  # the last book row, as given
        (200, D, 11, None, "ask", 10001, 0, 10000, 5, 10001, 4, 0, None),
        (200, D, 11, None, "bid", 10000, 2, 10000, 5, 10001, 4, 0, None),
        (250, X, None, 2, "buy", 10002, 1, 10000, 5, 10001, 4, 0, None),
        (300, D, 12, None, "bid", 9990, 0, 10000, 5, 10001, 4, 0, None),
        (300, S, 12, None, None, None, None, 10000, 2, 10002, 6, 0, 2),  # bid 10000 and ask 10001 changed
    ),
}
SEED_1 = ([(10000, 5), (9999, 7)], [(10001, 4), (10002, 6)])
FINAL_1 = ([(10000, 2), (9999, 7)], [(10002, 6)])
STATES_1 = {
    # book rows at 100 and 300 ms, grid rows at 100, 200, 300 ms (state after every event at or before them)
    "full_event_replay": [(at(100), *SEED_1), (at(100), *SEED_1), (at(200), *FINAL_1), (at(300), *FINAL_1),
                          (at(300), *FINAL_1)],
    "snapshot_anchored": [(at(100), *SEED_1), (at(100), *SEED_1), (at(200), [(10000, 2), (9999, 7)], SEED_1[1]),
                          (at(300), *FINAL_1), (at(300), *FINAL_1)],
    "origin_time_sort": [(at(100), *SEED_1), (at(100), *SEED_1), (at(200), *SEED_1), (at(300), *FINAL_1),
                         (at(300), *FINAL_1)],
}


@pytest.mark.parametrize("strategy", list(EXPECTED_1))
def test_tiny_case_exact_rows(data_root, strategy):
    write_partition(data_root, TRADES_1, DELTAS_1, SNAPS_1)
    summary = reconstruct_partition(data_root, Partition(EX, SYM, DAY), strategy=strategy)
    assert unified_rows(unified(data_root)) == EXPECTED_1[strategy]
    assert state_rows(book_states(data_root)) == STATES_1[strategy]
    assert summary.rows == {"total": 8, "trades": 2, "book_snapshots": 2, "book_deltas": 4, "delta_messages": 3}
    assert summary.strategy["name"] == strategy and summary.strategy["source"] == "caller"


# ---- scenario 2: 20-level rows: drift, deeper levels kept, sequence backwards, time hole, crossed, re-seed -------
BIDS = [(10000 - i, 1) for i in range(20)]  # 10000 .. 9981
ASKS = [(10001 + i, 1) for i in range(20)]  # 10001 .. 10020


def with_level(levels, px, sz):
    return [(p, sz if p == px else s) for p, s in levels]


DELTAS_2 = [
    delta(200, 101, True, 9970, 5),  # deeper than the rows' 20th bid (9981)
    delta(200, 101, False, 10001, 3),
    delta(400, 99, True, 10000, 8),  # sequence_number goes backwards: gap
    delta(6500, 103, False, 10001, 2),  # 6.1 s after the previous diff: time hole
    delta(6510, 104, True, 9981, 0),  # after the re-seed: 9970 would now show as the 20th bid, had it been kept
    delta(6700, 105, True, 10005, 1),  # a bid through the best ask: crossed
    delta(7000, 106, True, 9900, 1),
]
SNAPS_2 = [
    snap(100, 100, BIDS, ASKS),
    snap(300, 102, with_level(BIDS, 10000, 9), ASKS),  # bid 10000: 9 (replay 1); ask 10001: 1 (replay 3)
    snap(6500, 103, with_level(BIDS, 10000, 8), with_level(ASKS, 10001, 2)),  # agrees with the replay
    snap(9000, 107, BIDS, ASKS),  # 2.3 s after the book crossed
]
EXPECTED_2 = rows(
    (100, S, 100, None, None, None, None, 10000, 1, 10001, 1, 0, None),
    (200, D, 101, None, "bid", 9970, 5, 10000, 1, 10001, 3, 0, None),
    (200, D, 101, None, "ask", 10001, 3, 10000, 1, 10001, 3, 0, None),
    (300, S, 102, None, None, None, None, 10000, 9, 10001, 1, 4, 2),  # drift 2 -> gap; resync the 20 levels
    (400, D, 99, None, "bid", 10000, 8, 10000, 8, 10001, 1, 4, None),  # backwards -> gap
    (6500, D, 103, None, "ask", 10001, 2, 10000, 8, 10001, 2, 4, None),  # hole -> gap
    (6500, S, 103, None, None, None, None, 10000, 8, 10001, 2, 4, 0),  # recovery: full re-seed, no drift
    (6510, D, 104, None, "bid", 9981, 0, 10000, 8, 10001, 2, 0, None),
    (6700, D, 105, None, "bid", 10005, 1, 10005, 1, 10001, 2, 6, None),  # crossed -> gap
    (7000, D, 106, None, "bid", 9900, 1, 10005, 1, 10001, 2, 2, None),  # still crossed
    # crossed for 2.3 s > 2 s: re-seed. Drift over the row's range: bid 10005 (extra), bid 10000 (8 vs 1), bid 9981
    # (deleted vs 1), ask 10001 (2 vs 1)
    (9000, S, 107, None, None, None, None, 10000, 1, 10001, 1, 4, 4),
)


def test_drift_resync_gaps_and_reseed_exact_rows(data_root):
    write_partition(data_root, [], DELTAS_2, SNAPS_2)
    summary = reconstruct_partition(data_root, Partition(EX, SYM, DAY), strategy="full_event_replay", chunk_rows=3)
    assert unified_rows(unified(data_root)) == EXPECTED_2
    states = state_rows(book_states(data_root))
    row_300 = next(s for s in states if s[0] == at(300))  # the book row's state: its 20 levels, resynced
    assert row_300[1] == [(10000, 9)] + BIDS[1:] and row_300[2] == ASKS
    grid_400 = next(s for s in states if s[0] == at(400))  # 9981 is still the 20th: 9970 lies deeper
    assert grid_400[1][0] == (10000, 8) and grid_400[1][-1] == (9981, 1) and len(grid_400[1]) == 20
    grid_6600 = next(s for s in states if s[0] == at(6600))  # the re-seed at 6500 ms dropped 9970
    assert grid_6600[1] == [(10000, 8)] + BIDS[1:19]
    assert summary.gaps == {"sequence_backwards": 1, "time_hole": 1, "crossed": 1, "drift": 2,
                            "invalid_snapshot": 0, "total": 5, "recoveries": 2}
    assert summary.replay["reseeds"] == 2 and summary.replay["resyncs"] == 1 and summary.replay["seeds"] == 1
    assert summary.drift["histogram"] == {"0": 1, "2": 1, "4": 1}


def test_resync_keeps_levels_deeper_than_the_row(data_root):
    deltas = [*DELTAS_2[:2], delta(350, 103, True, 9981, 0), delta(450, 104, False, 10020, 2)]
    write_partition(data_root, [], deltas, SNAPS_2[:2])
    reconstruct_partition(data_root, Partition(EX, SYM, DAY), strategy="full_event_replay")
    grid_400 = next(s for s in state_rows(book_states(data_root)) if s[0] == at(400))
    assert grid_400[1] == [(10000, 9)] + BIDS[1:19] + [(9970, 5)]  # 9970 survived the resync at 300 ms
