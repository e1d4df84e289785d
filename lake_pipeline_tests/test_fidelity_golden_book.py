"""The golden book rebuilt in one numba pass equals feeding the shared OrderBook diff by diff through the official
sync, also across a gap, a too-old snapshot, a resync and a reload; and after the resync it is the true book."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lake_pipeline.book import OrderBook
from lake_pipeline.book.handle import BookStateError
from lake_pipeline.capture.golden import read_golden
from lake_pipeline.capture.replay import book_events, feed, recorded_rule
from lake_pipeline.capture.sync import BookSync
from lake_pipeline.config import SymbolSpec
from lake_pipeline.fidelity.golden_book import rebuild_golden_book
from lake_pipeline.schemas import N_LEVELS
from lake_pipeline_tests import fidelity_fixtures as fxt

SPEC = SymbolSpec(fxt.SYMBOL, fxt.TICK, fxt.LOT)
DROPPED = range(100, 103)  # diffs lost on the wire: a gap, the sync buffers until a snapshot fits


@pytest.fixture(scope="module")
def market():
    return fxt.synthetic_market(60, seed=7)


def _snapshot_line(m: fxt.Market, i: int, recv_ns: int) -> str:
    """A REST depth snapshot of the true book after message i."""
    def levels(px, sz):
        return [[fxt._dec_str(p, fxt.TICK), fxt._dec_str(s, fxt.LOT)] for p, s in zip(px, sz, strict=True)]

    body = {"lastUpdateId": int(m.last_id[i]), "bids": levels(m.bid_px[i], m.bid_sz[i]),
            "asks": levels(m.ask_px[i], m.ask_sz[i])}
    return f"{recv_ns} {json.dumps(body, separators=(',', ':'))}"


def _troubled_capture(m: fxt.Market, tmp: Path) -> Path:
    """The fixture capture with diffs 100-102 dropped, a too-old snapshot (book after message 50) and a fitting one
    (after message 108) received after diff 110, and a snapshot of the current book received after diff 205 while
    live (a reload)."""
    clean = fxt.write_golden_capture(m, tmp / "clean.jsonl.gz")
    lines = gzip.open(clean, "rt").read().splitlines()
    out, diff = [], -1
    for line in lines:
        recv_ns = int(line.split(" ", 1)[0])
        if "@depth" in line:
            diff += 1
            if diff in DROPPED:
                continue
        out.append(line)
        if "@depth" in line and diff == 110:
            out += [_snapshot_line(m, 50, recv_ns), _snapshot_line(m, 108, recv_ns)]
        if "@depth" in line and diff == 205:
            out.append(_snapshot_line(m, 205, recv_ns))
    path = tmp / "troubled.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(out) + "\n")
    return path


def _diff_by_diff(frames) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference: the shared OrderBook fed one diff at a time; (time_ns, u, top-20 [bid px, bid sz, ask px, ask sz])
    after each applied diff."""
    book = OrderBook()
    times, ids, tops = [], [], []

    def record(diff) -> None:
        times.append(diff.meta.exchange_ms * fxt.MS)
        ids.append(diff.last_id)
        tops.append(np.stack(book.top(N_LEVELS)))

    sync = BookSync(book, on_applied=record, rule=recorded_rule(frames))
    for event in book_events(frames):
        feed(sync, event)
    return np.asarray(times), np.asarray(ids), np.stack(tops)


def _ladder_array(ladder, side: str, what: str) -> np.ndarray:
    cols = [f"{side}_{k}_{what}" for k in range(N_LEVELS)]
    return ladder.select(cols).fill_null(0).to_numpy()


def test_one_pass_rebuild_equals_feeding_the_book_diff_by_diff_across_gaps_and_snapshots(market, tmp_path):
    frames = read_golden([_troubled_capture(market, tmp_path)], SPEC)
    assert frames.snapshots.height == 4
    ladder, bbo = rebuild_golden_book(frames)
    times, ids, tops = _diff_by_diff(frames)
    n = market.msg_time.size
    # applied: every diff before the gap, none until the fitting snapshot, then 109.. (the reload changes nothing)
    assert ids.tolist() == [int(market.last_id[i]) for i in [*range(100), *range(109, n)]]
    assert ladder["time_ns"].to_numpy().tolist() == times.tolist()
    for si, side in ((0, "bid"), (2, "ask")):
        assert np.array_equal(_ladder_array(ladder, side, "price"), tops[:, si])
        assert np.array_equal(_ladder_array(ladder, side, "size"), tops[:, si + 1])
    assert bbo["update_id"].to_list() == ids.tolist()
    assert bbo["bid_px"].to_list() == tops[:, 0, 0].tolist() and bbo["ask_sz"].to_list() == tops[:, 3, 0].tolist()
    # and it is the true book: after the resync, after the reload and at the end
    for i in (109, 206, n - 1):
        row = ids.tolist().index(int(market.last_id[i]))
        assert np.array_equal(tops[row, 0], market.bid_px[i]) and np.array_equal(tops[row, 3], market.ask_sz[i])


def test_a_negative_golden_size_is_refused_naming_the_side(market, tmp_path):
    frames = read_golden([fxt.write_golden_capture(market, tmp_path / "c.jsonl.gz")], SPEC)
    frames.depth = frames.depth.with_columns(pl.col("ask_qty").list.eval(-pl.element()))
    with pytest.raises(BookStateError, match="golden depth ask sizes holds a negative size"):
        rebuild_golden_book(frames)
