"""The one value policy for lake tables: what a price, size, time, trade id or delta row may be.

Shared by `acquire` (validating staged files), `lake-from-capture` (before it publishes derived tables),
the lake reader (`normalise.py`, so `assess` and `reconstruct` see the same rules) and `reconstruct`'s prepass.
Every function takes plain numpy arrays (one column, in file order) and returns `None` when the values are fine,
else a `Violation` (the first offending row, its value and what is wrong); callers turn it into an error naming
their file with `Violation.error(path, row_offset)`. No polars/pyarrow here, so any reader can call it.

The policy (README "Values the pipeline refuses or repairs"):

| case | rule | outcome |
|---|---|---|
| trade / delta price | `> 0` (book levels: `0` means "no level", negative is an error) | error |
| any size / quantity | `>= 0` | error |
| price far from the day's prices | within `PRICE_BAND`x of the table's median price (either way) | error |
| origin / received time | inside the partition's UTC day +- `TIME_MARGIN_S` (origin `<= 0`/null = missing) | error |
| trade id | unique within the partition | error (both rows named) |
| delta row identical to the row before it | absolute sizes make it a no-op for the book | counted repair: dropped |

A repeated delta row is the only repair: replaying it again changes nothing (sizes are absolute), so dropping it
loses no information, while a duplicated trade id means two trades or one trade counted twice, which only the data
provider can tell apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TIME_MARGIN_S = 300.0
"""How far outside the partition's UTC day a row time may lie (feeds straddle midnight by a few seconds)."""
PRICE_BAND = 1000.0
"""A price more than this factor above or below the table's median price is a unit or feed error, not a market."""
MAX_DISORDER_S = 1.0
"""Within one table, event times may step back by at most this much (reconstruct's merge absorbs it)."""
TIME_HOLE_S = 5.0
"""A silence longer than this between book messages is a gap (reconstruct flags it; assess reports it)."""
NS = 1_000_000_000
REPAIR_DUPLICATE_DELTA_ROWS = "duplicate_delta_rows_dropped"
"""Key of the counted repair in outputs' metadata and the assessment."""


@dataclass(frozen=True)
class Violation:
    """The first row of a column that breaks the policy: `row` is the index in the array given."""

    column: str
    row: int
    value: object
    problem: str

    def error(self, path: Path | str, row_offset: int = 0) -> ValueError:
        """A `BadValueError` naming file, column, row (0-based in that file) and value."""
        from lake_pipeline.lake.errors import BadValueError

        return BadValueError.at(Path(path), self.column, self.row + row_offset, self.value, self.problem)


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _item(x: np.ndarray, i: int) -> object:
    return x[i].item() if hasattr(x[i], "item") else x[i]


def day_bounds_ns(date: str | dt.date, margin_s: float = TIME_MARGIN_S) -> tuple[int, int]:
    """[start - margin, end + margin) of the UTC day `date`, in ns since the epoch."""
    day = dt.date.fromisoformat(date) if isinstance(date, str) else date
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * NS
    margin = int(margin_s * NS)
    return start - margin, start + 86_400 * NS + margin


def check_prices(column: str, prices: np.ndarray, *, absent_is_zero: bool = False) -> Violation | None:
    """Prices must be > 0 (NaN is left to the reader's "missing" rule). `absent_is_zero`: book levels, where 0
    means no level and only a negative price is wrong."""
    x = np.asarray(prices, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = x < 0 if absent_is_zero else x <= 0
    i = _first(bad)
    if i is None:
        return None
    return Violation(column, i, _item(x, i), "is not a price: prices must be > 0")


def check_sizes(column: str, sizes: np.ndarray) -> Violation | None:
    """Sizes and quantities must be >= 0 (0 deletes a level in book_delta_v2)."""
    x = np.asarray(sizes, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        i = _first(x < 0)
    return None if i is None else Violation(column, i, _item(x, i), "is negative: sizes must be >= 0")


def median_price(prices: np.ndarray) -> float | None:
    """The reference of `check_price_band`: median of the positive prices (None when there are none)."""
    x = np.asarray(prices, dtype=np.float64)
    x = x[x > 0]
    return float(np.median(x)) if len(x) else None


def check_price_band(column: str, prices: np.ndarray, reference: float | None, *,
                     band: float = PRICE_BAND) -> Violation | None:
    """Every positive price within [reference / band, reference * band] (absent levels, price 0, are skipped)."""
    if reference is None or reference <= 0:
        return None
    x = np.asarray(prices, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        i = _first((x > 0) & ((x > reference * band) | (x < reference / band)))
    if i is None:
        return None
    return Violation(column, i, _item(x, i),
                     f"is more than {band:g}x away from the median price {reference:g} of the partition")


def check_times(column: str, ns: np.ndarray, date: str | dt.date, *, margin_s: float = TIME_MARGIN_S,
                missing_allowed: bool = True) -> Violation | None:
    """Times (int64 ns) inside the UTC day `date` +- `margin_s`. Values <= 0 are "missing" (origin_time may be;
    with `missing_allowed=False` they are an error)."""
    t = np.asarray(ns, dtype=np.int64)
    lo, hi = day_bounds_ns(date, margin_s)
    present = t > 0
    if not missing_allowed:
        i = _first(~present)
        if i is not None:
            return Violation(column, i, int(t[i]), "is missing (<= 0)")
    i = _first(present & ((t < lo) | (t >= hi)))
    if i is None:
        return None
    when = np.datetime_as_string(np.datetime64(int(t[i]), "ns"), unit="us")
    return Violation(column, i, int(t[i]),
                     f"({when}Z) is outside the partition's day dt={date} +- {margin_s:g} s")


def find_duplicate_trade_id(ids: np.ndarray, column: str = "trade_id") -> Violation | None:
    """The first trade id seen twice (the later row is named, and the earlier one in the message)."""
    x = np.asarray(ids)
    if len(x) < 2:
        return None
    order = np.argsort(x, kind="stable")
    same = np.flatnonzero(x[order][1:] == x[order][:-1])
    if not len(same):
        return None
    # among all repeated ids, name the repeat that comes first in file order
    later = order[same + 1]
    k = int(np.argmin(later))
    dup, first = int(later[k]), int(order[same[k]])
    return Violation(column, dup, _item(x, dup), f"repeats the trade id of row {first}: trade ids must be unique")


def duplicate_row_mask(columns: Mapping[str, np.ndarray], previous: Mapping[str, object] | None = None) -> np.ndarray:
    """True where a row equals the row before it in every column (`previous`: the row before the first one,
    when reading a slice). Used for book_delta_v2: such a row is dropped and counted."""
    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    mask = np.ones(n, dtype=bool)
    for name in names:
        x = np.asarray(columns[name])
        eq = np.zeros(n, dtype=bool)
        if n > 1:
            eq[1:] = x[1:] == x[:-1]
        if n and previous is not None:
            eq[0] = x[0] == previous[name]
        mask &= eq
    if n and previous is None:
        mask[0] = False
    return mask


def count_duplicate_rows(columns: Mapping[str, np.ndarray]) -> int:
    """How many rows `duplicate_row_mask` would drop."""
    return int(duplicate_row_mask(columns).sum())
