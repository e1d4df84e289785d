"""Seeded, book-consistent synthetic L2 delta streams for engine tests and benchmarks.

The generator keeps its own book, so every delete hits a level that exists and no update leaves the book crossed:
a "fair price" random-walks (optionally trending); updates land at a geometric distance from it (most near the
top, a share uniformly deep); before a level is set on the wrong side of the opposite best, the crossed opposite
levels are deleted first, as an exchange would report them. Every profile price is about 55 % occupied at 45 %
deletes, so the book holds ~0.55 x `deep_range` levels per side and a dense top, like a liquid spot book.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SPAN = 1 << 22  # the generator's own price array; the fair price is kept well inside it


@njit(cache=True)
def _offset(deep_share: float, mean_offset: float, deep_range: int) -> int:
    """Ticks away from the fair price: geometric near the top, a share uniform deep."""
    if np.random.random() < deep_share:
        return np.random.randint(0, deep_range)
    return np.random.geometric(1.0 / mean_offset) - 1


@njit(cache=True)
def _best_after_delete(side: np.ndarray, i: int, step: int, count: int, empty: int) -> int:
    if count == 0:
        return empty
    while side[i] == 0:
        i += step
    return i


@njit(cache=True)
def _generate(n: int, seed: int, start: int, delete_share: float, deep_share: float, mean_offset: float,
              deep_range: int, move_prob: float, up_prob: float, is_bid: np.ndarray, price: np.ndarray,
              size: np.ndarray) -> None:
    np.random.seed(seed)
    # Each price of the depth profile is hit alike; an occupied one is deleted with p_delete, else (re)set. At
    # equilibrium a price is occupied with 1 / (1 + p_delete), so deletes are p_delete / (1 + p_delete) of the rows.
    p_delete = delete_share / (1.0 - delete_share)
    books = np.zeros((2, _SPAN), dtype=np.int64)  # row 0 bids, row 1 asks
    base = start - _SPAN // 2
    best = np.array([-1, _SPAN])  # best bid index, best ask index
    count = np.zeros(2, dtype=np.int64)
    steps = np.array([-1, 1])  # direction away from the top
    fair = _SPAN // 2
    r = 0
    while r < n:
        if np.random.random() < move_prob:
            fair += 1 if np.random.random() < up_prob else -1
            fair = min(max(fair, deep_range + 8), _SPAN - deep_range - 8)
        s = 0 if np.random.random() < 0.5 else 1
        off = _offset(deep_share, mean_offset, deep_range)
        i = fair - 1 - off if s == 0 else fair + 1 + off
        if books[s, i] != 0 and np.random.random() < p_delete:
            q = 0
        else:
            q = 1 + np.random.randint(0, 1000)
            o = 1 - s  # first delete opposite levels this level would cross (at or beyond i)
            while r < n and count[o] > 0 and (best[o] <= i if s == 0 else best[o] >= i):
                j = best[o]
                books[o, j] = 0
                count[o] -= 1
                best[o] = _best_after_delete(books[o], j, steps[o], count[o], _SPAN if o == 1 else -1)
                is_bid[r], price[r], size[r] = o == 0, base + j, 0
                r += 1
            if r == n:
                break
        old = books[s, i]
        books[s, i] = q
        if q > 0 and old == 0:
            count[s] += 1
            if i > best[s] if s == 0 else i < best[s]:
                best[s] = i
        elif q == 0:
            count[s] -= 1
            if i == best[s]:
                best[s] = _best_after_delete(books[s], i, steps[s], count[s], _SPAN if s == 1 else -1)
        is_bid[r], price[r], size[r] = s == 0, base + i, q
        r += 1


def delta_stream(n: int, seed: int = 0, *, start: int = 6_000_000, delete_share: float = 0.45,
                 deep_share: float = 0.1, mean_offset: float = 8.0, deep_range: int = 3_000, move_prob: float = 0.02,
                 up_prob: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`n` rows (is_bid, price ticks, size lots; size 0 deletes) around `start`; `up_prob` > 0.5 makes a trend."""
    is_bid = np.empty(n, dtype=np.bool_)
    price = np.empty(n, dtype=np.int64)
    size = np.empty(n, dtype=np.int64)
    _generate(n, seed, start, delete_share, deep_share, mean_offset, deep_range, move_prob, up_prob, is_bid, price,
              size)
    return is_bid, price, size
