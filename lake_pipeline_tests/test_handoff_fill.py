"""The export's fast paths equal the plain numpy they replace: records bit for bit, orders permutation for permutation."""

from __future__ import annotations

import numpy as np
import pytest

from lake_pipeline_tests.handoff_support import hftbacktest_installed


@pytest.fixture(scope="module")
def event_dtype() -> np.dtype:
    hftbacktest_installed()
    from hftbacktest.types import event_dtype

    return event_dtype


def test_fill_rows_is_bit_identical_to_numpy_scatter(event_dtype) -> None:
    from lake_pipeline.handoff.fill import fill_rows

    rng = np.random.default_rng(5)
    n = 10_000
    ev = rng.integers(0, 2**32, n, dtype=np.uint64)
    exch = rng.integers(0, 2**62, n)
    local = exch + rng.integers(0, 10**9, n)
    px = rng.integers(0, 10**9, n)
    qty = rng.integers(0, 10**12, n)
    px_null, qty_null = rng.random(n) < 0.1, rng.random(n) < 0.1
    count = np.where(rng.random(n) < 0.01, 41, 1)  # some rows own 40 records behind them (a snapshot's levels)
    start = np.cumsum(count) - count
    out = np.full(int(count.sum()), 7, event_dtype)  # garbage: a reused buffer
    out["fval"] = np.nan
    fill_rows(out, start, count, ev, exch, local, px, px_null, qty, qty_null, 100.0, 1e8)

    want = np.zeros(len(out), event_dtype)  # the numpy it replaces (batch_events before the kernel)
    want["ev"][start], want["exch_ts"][start], want["local_ts"][start] = ev, exch, local
    want["px"][start] = np.where(px_null, np.nan, px.astype(np.float64) / 10**2)
    want["qty"][start] = np.nan_to_num(np.where(qty_null, np.nan, qty.astype(np.float64) / 10**8), nan=0.0)
    head = out[start]
    assert head.tobytes() == want[start].tobytes()
    behind = np.setdiff1d(np.arange(len(out)), start)
    assert len(behind) > 0 and (out["order_id"][behind] == 0).all() and (out["ival"][behind] == 0).all()
    assert (out["fval"][behind] == 0).all()
    broken = out.copy()  # the comparison sees a single flipped bit
    broken["px"][start[0]] = np.nextafter(broken["px"][start[0]], np.inf) if not px_null[0] else 1.0
    assert broken[start].tobytes() != want[start].tobytes()


@pytest.mark.parametrize("exch_sorted", [True, False])
def test_order_chunk_orders_equal_the_lexsorts(event_dtype, exch_sorted: bool) -> None:
    from hftbacktest.data import correct_event_order

    from lake_pipeline.handoff.hftbacktest import order_chunk

    rng = np.random.default_rng(11)
    n = 5_000
    rows = np.zeros(n, event_dtype)
    exch = np.sort(rng.integers(0, 400, n)) if exch_sorted else rng.integers(0, 400, n)
    rows["exch_ts"], rows["local_ts"] = exch, exch + rng.integers(0, 30, n)  # many ties and crossings
    rows["px"], rows["ev"] = np.arange(n), 1
    pos = np.arange(n)
    want = correct_event_order(rows, np.lexsort((pos, rows["local_ts"], rows["exch_ts"])),
                               np.lexsort((pos, rows["exch_ts"], rows["local_ts"])))
    got = order_chunk(rows)
    assert len(got) > n  # the data does need splitting
    assert got.tobytes() == want.tobytes()
    in_order = rows[np.lexsort((pos, rows["local_ts"], rows["exch_ts"]))]
    in_order["local_ts"] = np.sort(in_order["local_ts"])
    tidy = order_chunk(in_order)  # both orders agree: nothing split
    assert len(tidy) == n and (tidy["px"] == in_order["px"]).all()
