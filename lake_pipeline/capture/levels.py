"""Live-path conversion of Binance decimal strings to int64 ticks/lots, one frame at a time.

Same digit rule and the same compiled kernel as the golden reader (`units._parse_units`): fraction digits beyond the
unit's decimals must be zeros and the scaled value must divide exactly, else ValueError. The recorded path feeds the
kernel an Arrow string buffer per block (a polars Series per side would cost ~140 µs for 16 levels); a live diff is
small, so this joins its strings into one buffer for the kernel (~30 µs), which matters
when a replay runs the capture at thousands of diffs per second.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np

from lake_pipeline.capture.units import _parse_units as parse_units_kernel
from lake_pipeline.capture.units import unit_scale


def units_of_strings(strings: Sequence[str], decimals: int, unit_scaled: int, what: str) -> np.ndarray:
    """Decimal strings -> int64 units in one compiled pass over their joined bytes."""
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

    def arrays(self, levels: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        px = units_of_strings([lv[0] for lv in levels], *self._px, f"price (tick {self.tick})")
        sz = units_of_strings([lv[1] for lv in levels], *self._sz, f"size (lot {self.lot})")
        return px, sz
