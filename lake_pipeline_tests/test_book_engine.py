"""The order-book engine against an independent dict reference book, plus its exact edge semantics."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from lake_pipeline.book import (
    DEFAULT_WINDOW,
    M_BASE,
    BookStateError,
    OrderBook,
    apply_batch,
    book_apply,
    book_apply_rows,
    book_best_ask,
    book_best_bid,
    book_is_crossed,
    book_levels,
    book_new,
    book_top,
)
from lake_pipeline_tests.book_streams import delta_stream
from lake_pipeline_tests.reference_book import ReferenceBook

START_MID = 10_000_000

# One step of a stream: ("set", is_bid, offset from the moving mid, size incl. 0), ("far", is_bid, offset in
# windows, size) for wide books whose deep levels a re-centring drops, ("jump", windows) moving the mid (often far
# enough to force re-centring or drop the update), ("snapshot", bids, asks) with
# lake-style zero padding, ("sweep", is_bid, k) deleting the k best levels of a side (a trade through the book: the
# mid follows a trend, so re-centring drops the stale tail), ("clear",), ("bad_price", is_bid, price <= 0, size).
_set = st.tuples(st.just("set"), st.booleans(), st.integers(-30, 30), st.integers(0, 6))
_far = st.tuples(st.just("far"), st.booleans(), st.floats(-0.75, 0.75), st.integers(1, 3))
_level = st.tuples(st.integers(-25, 25), st.integers(0, 4))
_snapshot = st.tuples(st.just("snapshot"), st.lists(_level, max_size=8), st.lists(_level, max_size=8))
_bad = st.tuples(st.just("bad_price"), st.booleans(), st.integers(-3, 0), st.integers(0, 3))


_jump = st.tuples(st.just("jump"), st.floats(-2.5, 2.5))
_walk = st.tuples(st.just("jump"), st.floats(-0.3, 0.3))
_sweep = st.tuples(st.just("sweep"), st.booleans(), st.integers(1, 12))


def _stream() -> st.SearchStrategy:
    clear = st.just(("clear",))
    step = st.one_of(*[_set] * 6, _far, _jump, _walk, _walk, _sweep, _snapshot, clear, _bad)  # repeats weight it
    return st.lists(step, min_size=30, max_size=150)


def _padded(mid: int, levels: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Snapshot arrays: offsets from the mid, then two (0, 0) padding entries like a lake row with fewer levels."""
    px = [mid + off if off else 0 for off, _ in levels] + [0, 0]
    sz = [size for _, size in levels] + [0, 0]
    return np.array(px, dtype=np.int64), np.array(sz, dtype=np.int64)


def _run_step(book: OrderBook, ref: ReferenceBook, mid: int, step: tuple) -> tuple[int, int | None]:
    """Apply one step to both books; return the new mid and the price touched (for size_at)."""
    kind = step[0]
    if kind in ("set", "far"):
        _, is_bid, off, size = step
        off = off if kind == "set" else round(off * book.window)
        book.apply(is_bid, mid + off, size)
        ref.apply(is_bid, mid + off, size)
        return mid, mid + off
    if kind == "jump":
        return max(mid + round(step[1] * book.window), 40), None
    if kind == "snapshot":
        bpx, bsz = _padded(mid, step[1])
        apx, asz = _padded(mid, step[2])
        book.load_snapshot(bpx, bsz, apx, asz)
        ref.load_snapshot(list(zip(bpx.tolist(), bsz.tolist())), list(zip(apx.tolist(), asz.tolist())))
        return mid, None
    if kind == "sweep":
        _, is_bid, k = step
        for price, _ in ref.levels(is_bid)[:k]:
            book.apply(is_bid, price, 0)
            ref.apply(is_bid, price, 0)
        return mid, None
    if kind == "clear":
        book.clear()
        ref.clear()
        return mid, None
    _, is_bid, price, size = step
    book.apply(is_bid, price, size)
    ref.apply(is_bid, price, size)
    return mid, None


def assert_same(book: OrderBook, ref: ReferenceBook, touched: int | None = None) -> None:
    assert book.best_bid() == ref.best_bid()
    assert book.best_ask() == ref.best_ask()
    assert book.is_crossed() == ref.is_crossed()
    assert book.n_levels() == ref.n_levels()
    assert book.n_dropped == ref.dropped
    assert book.n_recentres == ref.recentres
    assert int(book.meta[M_BASE]) == ref.base
    assert tuple(a.tolist() for a in book.top(20)) == ref.top(20)
    if touched is not None:
        for is_bid in (True, False):
            assert book.size_at(is_bid, touched) == dict(ref.levels(is_bid)).get(touched, 0)


def _replay(window: int, steps: list[tuple]) -> tuple[OrderBook, ReferenceBook]:
    book, ref, mid = OrderBook(window), ReferenceBook(window), START_MID
    for step in steps:
        mid, touched = _run_step(book, ref, mid, step)
        assert_same(book, ref, touched)
    return book, ref


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(window=st.sampled_from([4, 16, 64, 256]), steps=_stream())
def test_small_windows_match_reference_after_every_step(window: int, steps: list[tuple]) -> None:
    # Small windows make re-centring, dropped levels and out-of-window updates frequent.
    _replay(window, steps)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_stream())
def test_default_window_matches_reference_across_huge_jumps(steps: list[tuple]) -> None:
    _replay(DEFAULT_WINDOW, steps)


def test_trending_market_drops_stale_levels_exactly_like_reference() -> None:
    # The mid climbs ~2,400 ticks through a 512-tick window: stale deep levels must fall out at each re-centring.
    is_bid, price, size = delta_stream(20_000, seed=3, deep_range=300, move_prob=0.2, up_prob=0.8)
    book, ref = OrderBook(512), ReferenceBook(512)
    for r, (side, px, sz) in enumerate(zip(is_bid.tolist(), price.tolist(), size.tolist())):
        book.apply(side, px, sz)
        ref.apply(side, px, sz)
        assert (book.best_bid(), book.best_ask(), book.n_dropped) == (ref.best_bid(), ref.best_ask(), ref.dropped)
        if r % 50 == 0:
            assert_same(book, ref, px)
    assert_same(book, ref)
    assert ref.recentres > 50 and ref.dropped_levels > 1_000  # the window really moved and really dropped levels


def test_recentre_moves_window_to_mid_and_counts_each_drop_exactly() -> None:
    book = OrderBook(16)
    book.apply(True, 100, 1)  # empty book: centre on the price -> base 92, window [92, 108)
    assert (int(book.meta[M_BASE]), book.n_recentres, book.n_dropped) == (92, 1, 0)
    for is_bid, price in ((True, 93), (False, 101), (False, 107), (True, 105), (False, 106)):
        book.apply(is_bid, price, 2)
    book.apply(True, 100, 0)
    book.apply(False, 101, 0)
    assert book.best_bid() == (105, 2) and book.best_ask() == (106, 2)
    book.apply(False, 110, 3)  # mid 105 -> base 97: bid 93 falls out, 110 fits
    assert (int(book.meta[M_BASE]), book.n_recentres, book.n_dropped) == (97, 2, 1)
    assert book.levels(True)[0].tolist() == [105]
    assert book.levels(False)[0].tolist() == [106, 107, 110]
    book.apply(True, 90, 4)  # still outside a mid-centred window: dropped, window stays put
    assert (int(book.meta[M_BASE]), book.n_recentres, book.n_dropped) == (97, 2, 2)
    book.apply(False, 500, 0)  # deleting outside the window: absent level, no-op, not counted
    book.apply(True, 0, 5)  # non-positive price with a size: dropped
    book.apply(True, -3, 0)  # ... but a delete there is a no-op
    assert book.n_dropped == 3
    assert book.n_levels() == (1, 3)


def test_recentre_on_one_sided_and_empty_books() -> None:
    book = OrderBook(16)
    book.apply(False, 200, 1)
    book.apply(False, 205, 1)
    book.apply(False, 215, 1)  # outside [192, 208): centre on best ask 200 -> same base, cannot fit: dropped
    assert (int(book.meta[M_BASE]), book.n_dropped) == (192, 1)
    book.apply(False, 200, 0)
    book.apply(False, 212, 1)  # centre on best ask 205 -> base 197 fits 212; nothing falls out
    assert (int(book.meta[M_BASE]), book.n_dropped, book.levels(False)[0].tolist()) == (197, 1, [205, 212])
    book.apply(False, 205, 0)
    book.apply(False, 212, 0)
    book.apply(True, 5_000, 7)  # empty book: the window centres on the new price, whatever the distance
    assert (int(book.meta[M_BASE]), book.best_bid(), book.n_dropped) == (4_992, (5_000, 7), 1)


def test_window_never_starts_below_tick_one() -> None:
    book = OrderBook(16)
    assert int(book.meta[M_BASE]) == 1  # a new book's window is [1, 17)
    book.apply(True, 3, 1)  # fits: no move
    book.apply(False, 30, 1)  # centre on the best bid 3 -> base max(3 - 8, 1) = 1 cannot hold 30: dropped
    assert (int(book.meta[M_BASE]), book.n_recentres, book.n_dropped) == (1, 0, 1)
    book.apply(False, 12, 1)
    book.apply(True, 20, 1)  # mid (3 + 12) // 2 = 7 -> base max(7 - 8, 1) = 1 again: dropped, nothing moved
    assert (book.n_recentres, book.n_dropped, book.levels(True)[0].tolist()) == (0, 2, [3])


def test_crossed_book_is_kept_and_reported() -> None:
    book = OrderBook(64)
    book.apply(True, 100, 1)
    book.apply(False, 101, 1)
    assert not book.is_crossed()
    book.apply(True, 101, 2)  # locked counts as crossed: best bid >= best ask
    assert book.is_crossed()
    book.apply(True, 104, 3)
    assert book.best_bid() == (104, 3) and book.best_ask() == (101, 1) and book.is_crossed()
    book.apply(False, 101, 0)
    assert book.best_ask() == (0, 0) and not book.is_crossed()  # one side empty: not crossed


def test_empty_book_and_top_padding() -> None:
    book = OrderBook(32)
    assert book.best_bid() == (0, 0) and book.best_ask() == (0, 0) and not book.is_crossed()
    book.apply(True, 50, 3)
    book.apply(True, 47, 1)
    bid_px, bid_sz, ask_px, ask_sz = book.top(4)
    assert (bid_px.tolist(), bid_sz.tolist()) == ([50, 47, 0, 0], [3, 1, 0, 0])
    assert (ask_px.tolist(), ask_sz.tolist()) == ([0] * 4, [0] * 4)


def test_load_snapshot_replaces_everything_and_ignores_padding() -> None:
    book = OrderBook(1024)
    for price in range(900, 1000, 7):  # deep pre-existing levels must vanish
        book.apply(True, price, 9)
    book.apply(False, 1001, 9)
    book.apply(True, 0, 4)  # one drop, counted before the snapshot
    book.load_snapshot(
        np.array([1000, 998, 0, 997, 996]), np.array([5, 0, 8, 2, 0]),  # 998 size 0 and price-0 entry ignored
        np.array([1002, 1003, 1002]), np.array([1, 4, 0]),  # a later size-0 duplicate is ignored, not a delete
    )
    assert book.levels(True)[0].tolist() == [1000, 997]
    assert book.levels(True)[1].tolist() == [5, 2]
    assert book.levels(False)[0].tolist() == [1002, 1003]
    assert book.n_levels() == (2, 2) and book.n_dropped == 1  # counters survive the clear inside the load


def test_clear_keeps_window_and_counters() -> None:
    book = OrderBook(16)
    book.apply(True, 100, 1)
    book.apply(True, 300, 1)  # dropped: one-sided centre 100 cannot hold 300
    base = int(book.meta[M_BASE])
    book.clear()
    assert book.n_levels() == (0, 0) and book.best_bid() == (0, 0)
    assert (int(book.meta[M_BASE]), book.n_dropped, book.n_recentres) == (base, 1, 1)
    assert not book.bid.any() and not book.ask.any()


def test_size_at_and_levels() -> None:
    book = OrderBook(64)
    book.apply_levels(True, np.array([100, 98, 99, 98]), np.array([1, 2, 3, 0]))
    book.apply_levels(False, np.array([103, 0, 101]), np.array([4, 9, 5]))  # price 0 is padding: skipped
    assert book.size_at(True, 99) == 3 and book.size_at(True, 98) == 0 and book.size_at(False, 99) == 0
    assert book.size_at(True, 10**9) == 0 and book.size_at(False, -5) == 0  # outside the window
    assert [a.tolist() for a in book.levels(True)] == [[100, 99], [1, 3]]
    assert [a.tolist() for a in book.levels(False)] == [[101, 103], [5, 4]]
    assert book.n_dropped == 0


def test_kernels_refuse_out_arrays_too_short_instead_of_writing_past_them() -> None:
    bid, ask, meta = book_new(64)
    for price in (100, 99, 98):
        book_apply(bid, ask, meta, True, price, 1)
    short, ok = np.zeros(2, dtype=np.int64), np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="book_top: every out array must hold at least n levels"):
        book_top(bid, ask, meta, 3, ok, ok.copy(), ok.copy(), short)
    with pytest.raises(ValueError, match="book_levels: the out arrays are shorter"):
        book_levels(bid, ask, meta, True, ok, short)
    assert book_levels(bid, ask, meta, True, ok, ok.copy()) == 3 and ok.tolist() == [100, 99, 98]


def test_negative_sizes_and_mismatched_arrays_are_rejected_with_the_field() -> None:
    book = OrderBook(64)
    with pytest.raises(BookStateError, match="size -1 at price 100"):
        book.apply(True, 100, -1)
    with pytest.raises(BookStateError, match="ask levels sizes holds a negative size"):
        book.apply_levels(False, np.array([100, 101]), np.array([1, -2]))
    with pytest.raises(BookStateError, match="snapshot bids: 2 prices but 1 sizes"):
        book.load_snapshot(np.array([1, 2]), np.array([1]), np.array([3]), np.array([1]))
    with pytest.raises(ValueError, match="at least 2 ticks"):
        OrderBook(1)


@settings(max_examples=40, deadline=None)
@given(window=st.sampled_from([8, 64]), before=_stream(), after=_stream())
def test_checkpoint_restore_round_trip_behaves_identically(window: int, before: list[tuple],
                                                          after: list[tuple]) -> None:
    book, ref = _replay(window, before)
    buf = io.BytesIO()
    np.savez(buf, **book.checkpoint())  # the WAL stores it as arrays on disk
    buf.seek(0)
    with np.load(buf) as loaded:
        restored = OrderBook.restore(dict(loaded))
    assert np.array_equal(restored.bid, book.bid) and np.array_equal(restored.ask, book.ask)
    assert np.array_equal(restored.meta, book.meta)
    twin = copy.deepcopy(ref)
    mid = START_MID
    for step in after:  # the restored book must behave exactly like the one that kept running
        _run_step(book, twin, mid, step)
        mid, touched = _run_step(restored, ref, mid, step)
        assert_same(restored, ref, touched)
        assert np.array_equal(restored.meta, book.meta)
    assert np.array_equal(restored.bid, book.bid) and np.array_equal(restored.ask, book.ask)


def test_checkpoint_is_compact_and_restore_rejects_inconsistent_state() -> None:
    book = OrderBook()
    book.apply(True, 6_000_000, 2)
    book.apply(False, 6_000_010, 3)
    state = book.checkpoint()
    assert sum(a.nbytes for a in state.values()) < 200  # levels only, not the 2 x 16 MiB window
    with pytest.raises(BookStateError, match="lacks ask_sz"):
        OrderBook.restore({k: v for k, v in state.items() if k != "ask_sz"})
    bad = dict(state, meta=state["meta"].copy())
    bad["meta"][1] += 1
    with pytest.raises(BookStateError, match="meta best_bid is"):
        OrderBook.restore(bad)
    bad = dict(state, bid_px=np.array([6_000_000, 6_000_000]), bid_sz=np.array([2, 2]))
    with pytest.raises(BookStateError, match="checkpoint bids: 2 levels .1 distinct. but meta n_bid is 1"):
        OrderBook.restore(bad)
    bad = dict(state, version=np.array([99]))
    with pytest.raises(BookStateError, match="version 99"):
        OrderBook.restore(bad)


def _random_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    is_bid = rng.random(n) < 0.5
    price = START_MID + rng.integers(-40, 40, n) + np.cumsum(rng.integers(-3, 4, n))  # crosses and drifts
    size = np.where(rng.random(n) < 0.45, 0, rng.integers(1, 50, n))
    return is_bid, price.astype(np.int64), size.astype(np.int64)


def test_apply_rows_equals_per_row_calls_and_checks_its_range() -> None:
    is_bid, price, size = _random_rows(5_000, seed=5)
    bid, ask, meta = book_new(128)
    book = OrderBook(128)
    for lo, hi in ((0, 1), (1, 1), (1, 2_345), (2_345, 5_000)):  # message-sized and large slices, one empty
        book_apply_rows(bid, ask, meta, is_bid, price, size, lo, hi)
        for r in range(lo, hi):
            book.apply(bool(is_bid[r]), int(price[r]), int(size[r]))
        assert np.array_equal(meta, book.meta) and np.array_equal(bid, book.bid) and np.array_equal(ask, book.ask)
    assert book.n_recentres > 1 and book.n_dropped > 0
    for lo, hi in ((-1, 3), (4, 3), (0, 5_001)):
        with pytest.raises(ValueError, match="need 0 <= lo <= hi"):
            book_apply_rows(bid, ask, meta, is_bid, price, size, lo, hi)


def test_apply_batch_equals_per_row_calls() -> None:
    is_bid, price, size = _random_rows(5_000, seed=7)
    bid, ask, meta = book_new(128)  # narrow: the drift forces re-centring inside the batch
    out = np.zeros((4, is_bid.shape[0]), dtype=np.int64)
    apply_batch(bid, ask, meta, is_bid, price, size, out[0], out[1], out[2], out[3])
    book = OrderBook(128)
    for r in range(is_bid.shape[0]):
        book.apply(bool(is_bid[r]), int(price[r]), int(size[r]))
        assert (book.best_bid(), book.best_ask()) == ((out[0, r], out[1, r]), (out[2, r], out[3, r]))
    assert np.array_equal(meta, book.meta) and book.n_recentres > 1 and book.n_dropped > 0
    with pytest.raises(ValueError, match="at least as long"):
        apply_batch(bid, ask, meta, is_bid, price, size, out[0, :10], out[1], out[2], out[3])
    with pytest.raises(ValueError, match="same length"):
        apply_batch(bid, ask, meta, is_bid, price[:-1], size, out[0], out[1], out[2], out[3])


@njit
def _foreign_kernel(bid, ask, meta, is_bid, price, size, out):  # noqa: ANN001, ANN202 - a caller's own numba loop
    crossed = 0
    for r in range(is_bid.shape[0]):
        book_apply(bid, ask, meta, is_bid[r], price[r], size[r])
        crossed += book_is_crossed(bid, ask, meta)
    book_top(bid, ask, meta, 5, out[0], out[1], out[2], out[3])
    return crossed, book_best_bid(bid, ask, meta)[0], book_best_ask(bid, ask, meta)[0]


def test_primitives_compose_inside_another_numba_kernel() -> None:
    is_bid, price, size = _random_rows(2_000, seed=11)
    bid, ask, meta = book_new(4096)
    out = np.zeros((4, 5), dtype=np.int64)
    crossed, bb, ba = _foreign_kernel(bid, ask, meta, is_bid, price, size, out)
    ref = ReferenceBook(4096)
    n_crossed = 0
    for r in range(is_bid.shape[0]):
        ref.apply(bool(is_bid[r]), int(price[r]), int(size[r]))
        n_crossed += ref.is_crossed()
    assert (crossed, bb, ba) == (n_crossed, ref.best_bid()[0], ref.best_ask()[0])
    assert crossed > 0  # the stream really exercised crossing
    assert tuple(row.tolist() for row in out) == ref.top(5)
