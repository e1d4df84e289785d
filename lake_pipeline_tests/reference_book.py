"""An independent pure-Python L2 book (a dict and a sorted price list per side), used only by tests and benchmarks.

It models the engine's documented rules from the prose, not from the engine's code: absolute sizes, 0 deletes,
deleting an absent level is a no-op, crosses are kept; a positive-size update outside the price window moves the
window so the mid (or the only side's best, or the price itself on an empty book) sits at `window // 2` (but the
window never starts below tick 1; a new book's starts at 1), unless
even the moved window would not hold the price, in which case the update is dropped and counted; levels left
outside a moved window are dropped and counted; non-positive prices are dropped and counted.
"""

from __future__ import annotations

from bisect import bisect_left, insort


class _Side:
    def __init__(self, descending: bool) -> None:
        self.sizes: dict[int, int] = {}
        self.prices: list[int] = []  # ascending
        self.descending = descending

    def set(self, price: int, size: int) -> None:
        if price not in self.sizes:
            insort(self.prices, price)
        self.sizes[price] = size

    def delete(self, price: int) -> None:
        if self.sizes.pop(price, None) is not None:
            del self.prices[bisect_left(self.prices, price)]

    def best(self) -> tuple[int, int]:
        if not self.prices:
            return 0, 0
        price = self.prices[-1] if self.descending else self.prices[0]
        return price, self.sizes[price]

    def ordered(self, n: int | None = None) -> list[int]:
        """Prices best first; only the first n when given (a slice, not a walk of the whole side)."""
        if n is None:
            return self.prices[::-1] if self.descending else list(self.prices)
        return self.prices[: -n - 1 : -1] if self.descending else self.prices[:n]

    def keep_only(self, lo: int, hi: int) -> int:
        """Drop levels outside [lo, hi); return how many went."""
        gone = [p for p in self.prices if not lo <= p < hi]
        for p in gone:
            self.delete(p)
        return len(gone)


class ReferenceBook:
    def __init__(self, window: int) -> None:
        self.window = window
        self.base = 1
        self.dropped = 0
        self.dropped_levels = 0  # the part of `dropped` that re-centring threw out
        self.recentres = 0
        self.bids = _Side(descending=True)
        self.asks = _Side(descending=False)

    def _side(self, is_bid: bool) -> _Side:
        return self.bids if is_bid else self.asks

    def _centre(self, price: int) -> int:
        (bb, _), (ba, _) = self.bids.best(), self.asks.best()
        if bb and ba:
            return (bb + ba) // 2
        return bb or ba or price

    def _fits(self, price: int) -> bool:
        """True when `price` is inside the window, moving the window (and dropping what falls out) if needed."""
        if self.base <= price < self.base + self.window:
            return True
        new_base = max(self._centre(price) - self.window // 2, 1)
        if not new_base <= price < new_base + self.window:
            return False
        self.base = new_base
        self.recentres += 1
        for side in (self.bids, self.asks):
            lost = side.keep_only(new_base, new_base + self.window)
            self.dropped += lost
            self.dropped_levels += lost
        return True

    def apply(self, is_bid: bool, price: int, size: int) -> None:
        if size == 0:
            self._side(is_bid).delete(price)
        elif price > 0 and self._fits(price):
            self._side(is_bid).set(price, size)
        else:
            self.dropped += 1

    def clear(self) -> None:
        self.bids = _Side(descending=True)
        self.asks = _Side(descending=False)

    def load_snapshot(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        self.clear()
        for is_bid, levels in ((True, bids), (False, asks)):
            for price, size in levels:
                if price != 0 and size != 0:
                    self.apply(is_bid, price, size)

    def best_bid(self) -> tuple[int, int]:
        return self.bids.best()

    def best_ask(self) -> tuple[int, int]:
        return self.asks.best()

    def is_crossed(self) -> bool:
        (bb, _), (ba, _) = self.bids.best(), self.asks.best()
        return bool(bb and ba and bb >= ba)

    def levels(self, is_bid: bool, n: int | None = None) -> list[tuple[int, int]]:
        side = self._side(is_bid)
        return [(p, side.sizes[p]) for p in side.ordered(n)]

    def top(self, n: int) -> tuple[list[int], list[int], list[int], list[int]]:
        """Best-first prices and sizes per side, zero-padded to n (the engine's `top` layout)."""
        out: list[list[int]] = []
        for is_bid in (True, False):
            lv = self.levels(is_bid, n) + [(0, 0)] * n
            out += [[p for p, _ in lv[:n]], [s for _, s in lv[:n]]]
        return out[0], out[1], out[2], out[3]

    def n_levels(self) -> tuple[int, int]:
        return len(self.bids.sizes), len(self.asks.sizes)
