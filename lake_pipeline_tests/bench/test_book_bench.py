"""Order-book engine benchmark: events/s of the compiled loops, top-20 cost, scans, re-centring, checkpoints, and the
speed-up over a pure-Python dict book doing the same work.

Run with `make bench` (or `pytest lake_pipeline_tests/bench/test_book_bench.py -m bench -s`). Figures are printed;
the assertions are loose sanity bounds only, never tight timings (the machine is shared).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import pytest
from numba import njit

from lake_pipeline.book import M_BASE, OrderBook, apply_batch, book_apply, book_apply_rows, book_best_bid, book_top
from lake_pipeline_tests.book_streams import delta_stream
from lake_pipeline_tests.reference_book import ReferenceBook

N_ROWS = 10_000_000
N_NAIVE = 1_000_000
SEED = 42
Rows = tuple[np.ndarray, np.ndarray, np.ndarray]


def _say(text: str) -> None:
    print(f"[book bench] {text}")


def _touched(shape: tuple[int, ...]) -> np.ndarray:
    """Output buffers faulted in up front: first touch of fresh pages costs more than the loop on this VM."""
    arr = np.empty(shape, dtype=np.int64)
    arr.fill(0)
    return arr


def _faulted_book(window: int = 1 << 21) -> OrderBook:
    """A book whose window pages are already faulted in, as a long-lived book's are (a fresh 2 MiB huge page costs
    milliseconds on first touch here, more than the work being timed)."""
    book = OrderBook(window)
    book.bid.fill(0)
    book.ask.fill(0)
    return book


def _timed(kernel: Callable[[OrderBook, Rows], None], rows: Rows, runs: int = 3) -> tuple[list[float], OrderBook]:
    """Seconds of `kernel` over `rows` on fresh faulted books, after a JIT warm-up; returns the last book too."""
    kernel(_faulted_book(), tuple(col[:1_000] for col in rows))
    times = []
    for _ in range(runs):
        book = _faulted_book()
        t0 = time.perf_counter()
        kernel(book, rows)
        times.append(time.perf_counter() - t0)
    return times, book


@njit(cache=True)
def _book_apply_loop(bid: np.ndarray, ask: np.ndarray, meta: np.ndarray, is_bid: np.ndarray, price: np.ndarray,
                     size: np.ndarray) -> None:
    """What a kernel gets by calling the single-row primitive per row (state goes through `meta` every time)."""
    for r in range(is_bid.shape[0]):
        book_apply(bid, ask, meta, is_bid[r], price[r], size[r])


@njit(cache=True)
def _top_repeat(bid: np.ndarray, ask: np.ndarray, meta: np.ndarray, reps: int, out: np.ndarray) -> int:
    acc = 0
    for _ in range(reps):
        book_top(bid, ask, meta, 20, out[0], out[1], out[2], out[3])
        acc += out[0, 19] + out[3, 19]
    return acc


def _top20_ns_per_call(rows: Rows, states: int, reps: int) -> float:
    """Mean cost of book_top(20) inside numba, over `states` book states spread across the stream."""
    book = OrderBook()
    out = np.zeros((4, 20), dtype=np.int64)
    step = rows[0].shape[0] // states
    _top_repeat(book.bid, book.ask, book.meta, 1, out)  # JIT (or cache load) outside the timing
    spent = 0.0
    for k in range(states):
        book_apply_rows(book.bid, book.ask, book.meta, *rows, k * step, (k + 1) * step)
        t0 = time.perf_counter()
        _top_repeat(book.bid, book.ask, book.meta, reps, out)
        spent += time.perf_counter() - t0
    return spent / (states * reps) * 1e9


@njit(cache=True)
def _delete_best_churn(bid: np.ndarray, ask: np.ndarray, meta: np.ndarray, gap: int, n: int) -> None:
    """100 bids `gap` ticks apart; delete the best and add one below the deepest, n times (each delete scans `gap`)."""
    top = 50_000_000
    for k in range(100):
        book_apply(bid, ask, meta, True, top - k * gap, 1)
    low = top - 99 * gap
    for _ in range(n):
        book_apply(bid, ask, meta, True, book_best_bid(bid, ask, meta)[0], 0)
        low -= gap
        book_apply(bid, ask, meta, True, low, 1)


def _scan_ns(gap: int) -> float:
    """ns per delete-best + insert with levels `gap` ticks apart (the walk stays inside one pre-faulted window)."""
    n = min(200_000, 3_000_000 // gap)
    book = OrderBook(1 << 23)
    _delete_best_churn(book.bid, book.ask, book.meta, gap, 10)
    book = _faulted_book(1 << 23)
    t0 = time.perf_counter()
    _delete_best_churn(book.bid, book.ask, book.meta, gap, n)
    assert book.n_recentres == 1  # only the initial placement
    return (time.perf_counter() - t0) / n * 1e9


@njit(cache=True)
def _apply_with_top(bid: np.ndarray, ask: np.ndarray, meta: np.ndarray, is_bid: np.ndarray, price: np.ndarray,
                    size: np.ndarray, out: np.ndarray) -> None:
    """Per-event depth output: apply a row, then write the top-k book (out[row] is 4 x k) after it."""
    k = out.shape[2]
    for r in range(is_bid.shape[0]):
        book_apply(bid, ask, meta, is_bid[r], price[r], size[r])
        book_top(bid, ask, meta, k, out[r, 0], out[r, 1], out[r, 2], out[r, 3])


def _naive_seconds(rows: Rows, depth: int) -> tuple[float, list]:
    """The pure-Python dict book doing the same work as the compiled loop: apply, then record the best bid/ask
    (depth 0) or the top-`depth` book after every row."""
    ref = ReferenceBook(1 << 21)
    out: list = []
    t0 = time.perf_counter()
    for is_bid, price, size in zip(*(col.tolist() for col in rows)):
        ref.apply(is_bid, price, size)
        out.append(ref.top(depth) if depth else ref.best_bid() + ref.best_ask())
    return time.perf_counter() - t0, out


def _recentre_ms(book: OrderBook) -> float:
    """One re-centring of a copy of `book` (loaded so its window is centred on the best bid, below the mid)."""
    far = _faulted_book()
    far.apply(True, 1, 1)  # dispatch warm-up for a Python-level call
    far.load_snapshot(*book.levels(True), *book.levels(False))
    far_price = int(far.meta[M_BASE]) + far.window  # just outside; a window centred on the mid holds it
    t0 = time.perf_counter()
    far.apply(False, far_price, 1)
    spent = (time.perf_counter() - t0) * 1e3
    assert far.n_recentres == 2 and far.size_at(False, far_price) == 1  # placed by the load, then moved
    return spent


@pytest.mark.bench
def test_book_engine_bench() -> None:
    delta_stream(1_000, seed=SEED)  # JIT (or cache load) outside the timing
    t0 = time.perf_counter()
    rows = delta_stream(N_ROWS, seed=SEED)
    gen_s = time.perf_counter() - t0
    _say(f"{N_ROWS:,} synthetic book-consistent rows in {gen_s:.2f} s: {np.mean(rows[2] == 0):.1%} deletes, "
         f"price span {rows[1].max() - rows[1].min():,} ticks")

    out = _touched((4, N_ROWS))
    times, book = _timed(lambda b, r: apply_batch(b.bid, b.ask, b.meta, *r, out[0], out[1], out[2], out[3]), rows)
    ev_s = N_ROWS / min(times)
    crossed_rows = int(np.count_nonzero((out[0] >= out[2]) & (out[0] > 0) & (out[2] > 0)))
    _say(f"apply_batch (apply + best bid/ask written per row), JIT warm: best {min(times):.3f} s, median "
         f"{statistics.median(times):.3f} s -> {ev_s / 1e6:.1f} M events/s ({min(times) / N_ROWS * 1e9:.0f} ns/event); "
         f"final book {book.n_levels()} levels, {book.n_dropped} dropped, {crossed_rows} crossed rows")
    rows_s = min(_timed(lambda b, r: book_apply_rows(b.bid, b.ask, b.meta, *r, 0, len(r[0])), rows)[0])
    loop_s = min(_timed(lambda b, r: _book_apply_loop(b.bid, b.ask, b.meta, *r), rows)[0])
    _say(f"apply only: book_apply_rows {N_ROWS / rows_s / 1e6:.1f} M events/s, a numba loop of book_apply "
         f"{N_ROWS / loop_s / 1e6:.1f} M events/s")

    top_ns = _top20_ns_per_call(rows, states=1_000, reps=1_000)
    book.top(20)  # dispatch warm-up
    t0 = time.perf_counter()
    for _ in range(20_000):
        book.top(20)
    handle_us = (time.perf_counter() - t0) / 20_000 * 1e6
    _say(f"top-20 both sides: {top_ns:.0f} ns/call inside numba (1,000 states x 1,000 calls); "
         f"{handle_us:.1f} us/call through OrderBook.top() from Python")

    scans = {gap: _scan_ns(gap) for gap in (1, 11, 300, 3_000)}
    _say("delete-best + re-insert with levels g ticks apart (plain scan, no bitmap): "
         + ", ".join(f"g={g}: {ns:.0f} ns" for g, ns in scans.items()))

    recentre_ms = _recentre_ms(book)
    t0 = time.perf_counter()
    state = book.checkpoint()
    ckpt_ms = (time.perf_counter() - t0) * 1e3
    _say(f"one re-centring of a {sum(book.n_levels()):,}-level book: {recentre_ms:.2f} ms; "
         f"checkpoint {sum(a.nbytes for a in state.values()) / 1024:.0f} KiB in {ckpt_ms:.2f} ms")

    head = tuple(col[:N_NAIVE] for col in rows)
    naive_s, naive_out = _naive_seconds(head, 0)
    naive_ev_s = N_NAIVE / naive_s
    _say(f"naive pure-Python dict book (dict + bisect-sorted prices, best bid/ask per row): {N_NAIVE:,} rows in "
         f"{naive_s:.2f} s = {naive_ev_s / 1e3:.0f} k events/s, {naive_s * N_ROWS / N_NAIVE:.0f} s extrapolated to "
         f"{N_ROWS:,}; apply_batch speed-up {ev_s / naive_ev_s:.0f}x")
    assert np.array_equal(np.array(naive_out, dtype=np.int64), out[:, :N_NAIVE].T), "engine and dict book disagree"

    top5 = _touched((N_NAIVE, 4, 5))
    top5_s = min(_timed(lambda b, r: _apply_with_top(b.bid, b.ask, b.meta, *r, top5), head, runs=1)[0])
    naive5_s, naive5_out = _naive_seconds(head, 5)
    _say(f"with the top-5 book emitted after every row ({N_NAIVE:,} rows): compiled {N_NAIVE / top5_s / 1e6:.1f} M "
         f"events/s, naive {N_NAIVE / naive5_s / 1e3:.0f} k events/s, speed-up {naive5_s / top5_s:.0f}x")
    for r in range(0, N_NAIVE, 997):
        assert tuple(a.tolist() for a in top5[r]) == naive5_out[r], f"top-5 differs after row {r}"

    assert crossed_rows == 0 and book.n_dropped == 0  # the stream is book-consistent and fits the window
    assert ev_s > 1e6 and ev_s / naive_ev_s > 5 and top_ns < 100_000  # loose sanity bounds, not targets
