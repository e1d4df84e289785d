"""`OrderBook`: the Python handle over one book state, for callers outside numba (capture, converter, fidelity).

The handle owns the same `(bid, ask, meta)` arrays the kernels use, so a caller can mix handle calls with its own
numba kernels on `book.bid, book.ask, book.meta`.
"""

from __future__ import annotations

import numpy as np

from lake_pipeline.book.engine import (
    apply_side,
    book_apply,
    book_best_ask,
    book_best_bid,
    book_clear,
    book_is_crossed,
    book_levels,
    book_load_snapshot,
    book_new,
    book_size_at,
    book_top,
)
from lake_pipeline.book.layout import (
    DEFAULT_WINDOW,
    M_BASE,
    M_BEST_ASK,
    M_BEST_BID,
    M_DROPPED,
    M_N_ASK,
    M_N_BID,
    M_RECENTRES,
    M_WINDOW,
    META_LEN,
    META_NAMES,
)

CHECKPOINT_VERSION = 1


class BookStateError(ValueError):
    """A checkpoint or input that cannot describe a valid book (names the offending field)."""


def _int_array(values: object, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(values, dtype=np.int64)
    if arr.ndim != 1:
        raise BookStateError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def require_non_negative(sizes: np.ndarray, name: str) -> None:
    """BookStateError naming `name` when a size is negative (sizes are absolute lots)."""
    if sizes.size and sizes.min() < 0:
        raise BookStateError(f"{name} holds a negative size ({int(sizes.min())}); sizes are absolute lots, 0 deletes")


def _pair(prices: object, sizes: object, what: str) -> tuple[np.ndarray, np.ndarray]:
    px = _int_array(prices, f"{what} prices")
    sz = _int_array(sizes, f"{what} sizes")
    if px.shape != sz.shape:
        raise BookStateError(f"{what}: {px.shape[0]} prices but {sz.shape[0]} sizes")
    require_non_negative(sz, f"{what} sizes")
    return px, sz


class OrderBook:
    """An L2 book over int64 price ticks and size lots in a re-centring price window of `window_ticks` per side."""

    def __init__(self, window_ticks: int = DEFAULT_WINDOW) -> None:
        self.bid, self.ask, self.meta = book_new(window_ticks)

    @classmethod
    def from_arrays(cls, bid: np.ndarray, ask: np.ndarray, meta: np.ndarray) -> OrderBook:
        """Wrap existing state arrays (no copy), e.g. ones a numba kernel has been updating."""
        book = cls.__new__(cls)
        book.bid, book.ask, book.meta = bid, ask, meta
        return book

    def __repr__(self) -> str:
        nb, na = self.n_levels()
        return (f"OrderBook(window={self.window}, bid={self.best_bid()}, ask={self.best_ask()}, levels=({nb}, {na}), "
                f"dropped={self.n_dropped})")

    @property
    def window(self) -> int:
        return int(self.meta[M_WINDOW])

    @property
    def n_dropped(self) -> int:
        """Levels lost to re-centring plus updates dropped for not fitting the window; cumulative across clear()."""
        return int(self.meta[M_DROPPED])

    @property
    def n_recentres(self) -> int:
        return int(self.meta[M_RECENTRES])

    def clear(self) -> None:
        book_clear(self.bid, self.ask, self.meta)

    def apply(self, is_bid: bool, price: int, size: int) -> None:
        """Set one level to an absolute size (0 deletes)."""
        if size < 0:
            raise BookStateError(f"size {size} at price {price} is negative; sizes are absolute lots, 0 deletes")
        book_apply(self.bid, self.ask, self.meta, bool(is_bid), int(price), int(size))

    def apply_levels(self, is_bid: bool, prices: np.ndarray, sizes: np.ndarray) -> None:
        """Apply one side of one depth message in order (entries with price 0 are padding and skipped)."""
        px, sz = _pair(prices, sizes, "bid levels" if is_bid else "ask levels")
        apply_side(self.bid, self.ask, self.meta, bool(is_bid), px, sz)

    def load_snapshot(self, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray) -> None:
        """Replace the book by a snapshot; entries with price 0 or size 0 are ignored."""
        bpx, bsz = _pair(bid_px, bid_sz, "snapshot bids")
        apx, asz = _pair(ask_px, ask_sz, "snapshot asks")
        book_load_snapshot(self.bid, self.ask, self.meta, bpx, bsz, apx, asz)

    def best_bid(self) -> tuple[int, int]:
        px, sz = book_best_bid(self.bid, self.ask, self.meta)
        return int(px), int(sz)

    def best_ask(self) -> tuple[int, int]:
        px, sz = book_best_ask(self.bid, self.ask, self.meta)
        return int(px), int(sz)

    def top(self, n: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bid_px, bid_sz, ask_px, ask_sz), each of length n, best first, zero-padded."""
        out = np.empty((4, n), dtype=np.int64)
        book_top(self.bid, self.ask, self.meta, n, out[0], out[1], out[2], out[3])
        return out[0], out[1], out[2], out[3]

    def size_at(self, is_bid: bool, price: int) -> int:
        return int(book_size_at(self.bid, self.ask, self.meta, bool(is_bid), int(price)))

    def is_crossed(self) -> bool:
        return bool(book_is_crossed(self.bid, self.ask, self.meta))

    def n_levels(self) -> tuple[int, int]:
        return int(self.meta[M_N_BID]), int(self.meta[M_N_ASK])

    def levels(self, is_bid: bool) -> tuple[np.ndarray, np.ndarray]:
        """Every level of one side, best first: (prices, sizes)."""
        n = int(self.meta[M_N_BID] if is_bid else self.meta[M_N_ASK])
        px = np.empty(n, dtype=np.int64)
        sz = np.empty(n, dtype=np.int64)
        book_levels(self.bid, self.ask, self.meta, bool(is_bid), px, sz)
        return px, sz

    def checkpoint(self) -> dict[str, np.ndarray]:
        """Compact exact state: meta plus the occupied levels (KB, not the window's MB) for the WAL."""
        bid_px, bid_sz = self.levels(True)
        ask_px, ask_sz = self.levels(False)
        return {
            "version": np.array([CHECKPOINT_VERSION], dtype=np.int64),
            "meta": self.meta.copy(),
            "bid_px": bid_px,
            "bid_sz": bid_sz,
            "ask_px": ask_px,
            "ask_sz": ask_sz,
        }

    @classmethod
    def restore(cls, state: dict[str, np.ndarray]) -> OrderBook:
        """Rebuild the exact book a `checkpoint()` described; BookStateError names any inconsistent field."""
        missing = sorted({"version", "meta", "bid_px", "bid_sz", "ask_px", "ask_sz"} - set(state))
        if missing:
            raise BookStateError(f"book checkpoint lacks {', '.join(missing)}")
        version = int(np.asarray(state["version"]).reshape(-1)[0])
        if version != CHECKPOINT_VERSION:
            raise BookStateError(f"book checkpoint version {version} is not {CHECKPOINT_VERSION}")
        meta = _int_array(state["meta"], "meta")
        if meta.shape[0] != META_LEN:
            raise BookStateError(f"book checkpoint meta has {meta.shape[0]} fields, expected {META_LEN}")
        book = cls(int(meta[M_WINDOW]))
        sides = ((True, book.bid, M_N_BID, M_BEST_BID), (False, book.ask, M_N_ASK, M_BEST_ASK))
        for is_bid, side, n_field, best_field in sides:
            name = "bid" if is_bid else "ask"
            px, sz = _pair(state[f"{name}_px"], state[f"{name}_sz"], f"checkpoint {name}s")
            idx = px - meta[M_BASE]
            if not px.shape[0] == np.unique(idx).shape[0] == meta[n_field]:
                raise BookStateError(f"checkpoint {name}s: {px.shape[0]} levels ({np.unique(idx).shape[0]} distinct) "
                                     f"but meta {META_NAMES[n_field]} is {meta[n_field]}")
            if px.shape[0] and (idx.min() < 0 or idx.max() >= side.shape[0] or sz.min() <= 0):
                raise BookStateError(f"checkpoint {name}s hold a level outside the window or with size 0")
            best = (idx.max() if is_bid else idx.min()) if idx.shape[0] else (-1 if is_bid else side.shape[0])
            if meta[best_field] != best:
                raise BookStateError(f"checkpoint meta {META_NAMES[best_field]} is {meta[best_field]}, "
                                     f"its levels say {best}")
            side[idx] = sz
        book.meta[:] = meta
        return book
