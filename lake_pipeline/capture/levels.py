"""Live-path conversion of Binance decimal strings to int64 ticks/lots, one frame at a time.

The golden reader converts whole batches with a numba digit kernel over an Arrow string buffer; the capture sees one
diff (median 16 levels, up to ~1,000) at a time, so it joins the strings into one buffer and runs the same kernel,
skipping Arrow. Same rule: fraction digits beyond the unit's decimals must be zeros and the scaled value must
divide exactly, else ValueError. A plain-Python twin (`unit_parser`) serves single values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import numpy as np

from lake_pipeline.capture.units import _parse_units as parse_units_kernel
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


def units_of_strings(strings: Sequence[str], decimals: int, unit_scaled: int, what: str) -> np.ndarray:
    """Decimal strings -> int64 units in one compiled pass (the golden reader's digit kernel over a joined buffer)."""
    n = len(strings)
    data = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, strings), dtype=np.int64, count=n), out=offsets[1:])
    out = np.empty(n, dtype=np.int64)
    ok = np.empty(n, dtype=np.bool_)
    parse_units_kernel(data, offsets, decimals, unit_scaled, out, ok)
    if not ok.all():
        raise ValueError(f"{what} {strings[int(np.argmin(ok))]!r} is off the grid or malformed")
    return out


class LevelParser:
    """Prices with the tick, sizes with the lot: `[[p, q], …]` → (int64 prices, int64 sizes)."""

    def __init__(self, tick: Decimal, lot: Decimal) -> None:
        self.tick, self.lot = tick, lot
        self._px = unit_scale(tick)
        self._sz = unit_scale(lot)
        self.price = unit_parser(tick, "price")
        self.size = unit_parser(lot, "size")

    def arrays(self, levels: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        if len(levels) <= 2:  # a compiled call is not worth it for one or two levels
            px = np.fromiter((self.price(lv[0]) for lv in levels), dtype=np.int64, count=len(levels))
            sz = np.fromiter((self.size(lv[1]) for lv in levels), dtype=np.int64, count=len(levels))
            return px, sz
        px = units_of_strings([lv[0] for lv in levels], *self._px, f"price (tick {self.tick})")
        sz = units_of_strings([lv[1] for lv in levels], *self._sz, f"size (lot {self.lot})")
        return px, sz
