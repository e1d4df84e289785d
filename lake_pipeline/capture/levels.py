"""Live-path conversion of Binance decimal strings to int64 ticks/lots, one frame at a time.

The golden reader converts whole batches in numba (`units.strings_to_units`); the capture sees one diff of ~16
levels at a time, where a plain-Python digit split is cheaper than building an Arrow array. Same rule: fraction
digits beyond the unit's decimals must be zeros and the scaled value must divide exactly, else ValueError.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import numpy as np

from lake_pipeline.capture.units import unit_scale


def unit_parser(unit: Decimal, what: str) -> Callable[[str], int]:
    """`parse("61837.63000000") -> 6183763` for unit 0.01; raises ValueError naming `what` off the grid."""
    decimals, scaled = unit_scale(unit)
    zeros = "0" * decimals

    def parse(text: str) -> int:
        whole, _, frac = text.partition(".")
        if len(frac) > decimals:
            if frac[decimals:].strip("0"):
                raise ValueError(f"{what} {text!r} is off the grid of {unit}")
            frac = frac[:decimals]
        value = int(whole + frac + zeros[len(frac):]) if decimals else int(whole)
        units, rest = divmod(value, scaled)
        if rest or value < 0:
            raise ValueError(f"{what} {text!r} is off the grid of {unit}")
        return units

    return parse


class LevelParser:
    """Prices with the tick, sizes with the lot: `[[p, q], …]` → (int64 prices, int64 sizes)."""

    def __init__(self, tick: Decimal, lot: Decimal) -> None:
        self.price = unit_parser(tick, "price")
        self.size = unit_parser(lot, "size")

    def arrays(self, levels: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        px = np.fromiter((self.price(lv[0]) for lv in levels), dtype=np.int64, count=len(levels))
        sz = np.fromiter((self.size(lv[1]) for lv in levels), dtype=np.int64, count=len(levels))
        return px, sz
