"""The numba replay equals an independent pure-Python replay on random markets full of irregularities."""

from __future__ import annotations

import pytest

from lake_pipeline.instrument import Partition
from lake_pipeline.reconstruct.run import reconstruct_partition
from lake_pipeline.reconstruct.strategies import STRATEGIES
from lake_pipeline_tests.recon_support import (
    DAY,
    DAY_END,
    EX,
    SYM,
    T0,
    book_states,
    random_partition,
    reference_rows,
    state_rows,
    unified,
    unified_rows,
    write_partition,
)
from lake_pipeline_tests.reference_replay import ReferenceReplay

GAP_KINDS = ("sequence_backwards", "time_hole", "crossed", "drift", "invalid_snapshot")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kernel_equals_reference(data_root, strategy, seed):
    trades, deltas, snaps = random_partition(seed)
    write_partition(data_root, trades, deltas, snaps)
    summary = reconstruct_partition(data_root, Partition(EX, SYM, DAY), strategy=strategy, chunk_rows=97)
    expected = ReferenceReplay(strategy, T0, DAY_END).run(trades, deltas, snaps)
    got = unified_rows(unified(data_root))
    want = reference_rows(expected.rows)
    repeated = sum(1 for a, b in zip(deltas, deltas[1:]) if a == b)  # dropped by the value policy, counted
    assert summary.repairs == {"duplicate_delta_rows_dropped": repeated}
    assert len(got) == len(want) == len(trades) + len(deltas) - repeated + len(snaps)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"row {i}: kernel {g} != reference {w}"
    assert state_rows(book_states(data_root)) == expected.states
    for name in GAP_KINDS:
        assert summary.gaps[name] == expected.counts.get(f"gaps_{name}", 0), name
    for name in ("recoveries", "reseeds", "history_too_short"):
        assert summary.replay[name] == expected.counts.get(name, 0), name
    assert summary.chunks["count"] > 3  # the chunking was exercised
