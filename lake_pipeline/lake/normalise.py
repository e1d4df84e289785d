"""One lake file -> a lazy normalised frame (`schemas.NORMALISED[table]`), validating values as they stream.

Validation choice: every checked column is produced by an element-wise numpy UDF (`pl.map_batches(...,
is_elementwise=True)`) that converts a batch AND raises a `BadValueError` / `OffGridError` naming file, column,
file row and value. So nothing is read when the frame is built; checks run on whatever batches a query pulls
(streaming or in-memory), before any value reaches the caller. A query that does not project a column (e.g.
`select(pl.len())`) neither reads nor validates it. Each file gets its own frame (the caller concatenates them),
which is how errors know their file.

Times: int64 ns, Arrow timestamps (any unit, naive = UTC, or tz-aware) and float seconds all become ns since
the UTC epoch ROUNDED TO THE MICROSECOND. Crypto Lake's times went through cryptofeed's float64 seconds (research
cryptolake.md §4.1: `…00.032999936` is the float image of .033), whose spacing near 2024 is 0.24 µs; no venue
stamps finer than 1 µs, so the nearest µs is the exchange's own value (1664582400.033 -> …400033000000 ns) and
joins on the exchange's ms/µs times match. Values <= 0 / null / NaN are missing: null origin_time, an error for
received_time. Positive values outside 2000-01-01..2100-01-01 are errors (a ms or µs integer taken for ns), and so
are times outside the partition's day (`dt=` in the path) +- `values.TIME_MARGIN_S` (lake/values.py).
Prices and sizes follow the same policy module: prices > 0 (book levels: 0 = absent), sizes >= 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from lake_pipeline.config import SymbolSpec
from lake_pipeline.lake.columns import PRICE_COLUMNS, SIZE_COLUMNS
from lake_pipeline.lake.errors import BadValueError, OffGridError
from lake_pipeline.lake.files import LakeFile
from lake_pipeline.lake import values
from lake_pipeline.lake.grid import round_to_grid
from lake_pipeline.schemas import N_LEVELS, NORMALISED

PLAUSIBLE_NS = (946_684_800 * 10**9, 4_102_444_800 * 10**9)
"""[2000-01-01, 2100-01-01) UTC in ns: anything positive outside is a unit mistake, not a time."""
PLAUSIBLE_S = (PLAUSIBLE_NS[0] / 1e9, PLAUSIBLE_NS[1] / 1e9)

ROW = "__lake_row"


@dataclass(frozen=True)
class _Site:
    """Where a batch comes from, for error messages."""

    file: LakeFile
    column: str  # physical column name

    def fail(self, rows: pl.Series, index: int, value: object, problem: str, error: type = BadValueError):
        raise error.at(self.file.path, self.column, int(rows[index]) - self.file.offset, value, problem)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _checked(site: _Site, source: pl.Expr, check: Callable, dtype: pl.DataType) -> pl.Expr:
    """`check(site, rows, values) -> Series` applied batch by batch, with the row index alongside for errors."""
    return pl.map_batches(
        [pl.col(ROW), source],
        lambda batch: check(site, batch[0], batch[1]),
        return_dtype=dtype,
        is_elementwise=True,
    )


def _with_nulls(values: np.ndarray, missing: np.ndarray) -> pl.Series:
    if not missing.any():
        return pl.Series(values=values, dtype=pl.Int64)
    return pl.Series(values=pa.array(values, mask=missing), dtype=pl.Int64)


# ---- times ------------------------------------------------------------------------------------------------------


def round_to_us(ns: np.ndarray) -> np.ndarray:
    """int64 ns -> nearest whole µs (half up), in ns: removes float-second artefacts (…032999936 -> …033000000)."""
    return (ns + 500) // 1000 * 1000


def _check_times(unit: str, required: bool, date: str | None, site: _Site, rows: pl.Series,
                 raw: pl.Series) -> pl.Series:
    if unit == "s":
        seconds = raw.to_numpy()
        with np.errstate(invalid="ignore"):
            present = seconds > 0  # NaN -> False
            ok = (seconds >= PLAUSIBLE_S[0]) & (seconds < PLAUSIBLE_S[1])
        ns = np.zeros(len(seconds), dtype=np.int64)
        ns[ok] = np.round(seconds[ok] * 1e6).astype(np.int64) * 1000
        found = seconds
    else:
        ns = raw.fill_null(0).to_numpy()
        present = ns > 0
        ok = (ns >= PLAUSIBLE_NS[0]) & (ns < PLAUSIBLE_NS[1])
        ns = np.where(ok, round_to_us(ns), ns)
        found = raw.fill_null(0).to_numpy()
    implausible = present & ~ok
    if implausible.any():
        i = _first(implausible)
        site.fail(rows, i, found[i].item(),
                  f"is outside the plausible time range 2000-01-01..2100-01-01 when read as {'seconds' if unit == 's' else 'ns'} "
                  "(a ms/µs integer stored as ns?)")
    if required and not present.all():
        i = _first(~present)
        site.fail(rows, i, raw[i], "is missing (null, NaN or <= 0): received_time is required on every row")
    if date is not None:
        bad = values.check_times(site.column, np.where(present, ns, 0), date)
        if bad is not None:
            site.fail(rows, bad.row, found[bad.row].item(), bad.problem)
    return _with_nulls(ns, ~present)


def partition_date(path: Path) -> str | None:
    """The `dt=YYYY-MM-DD` of a hive path, if it has one (times are then checked against that day)."""
    for part in reversed(Path(path).parts[:-1]):
        if part.startswith("dt="):
            return part[3:]
    return None


def time_expr(f: LakeFile, canonical: str) -> pl.Expr:
    name, dtype = f.columns[canonical], f.dtype(canonical)
    if pa.types.is_timestamp(dtype):
        raw, unit = pl.col(name).dt.epoch("ns"), "ns"
    elif pa.types.is_floating(dtype):
        raw, unit = pl.col(name).cast(pl.Float64), "s"
    else:
        raw, unit = pl.col(name).cast(pl.Int64), "ns"
    check = partial(_check_times, unit, canonical == "received_time", partition_date(f.path))
    return _checked(_Site(f, name), raw, check, pl.Int64).alias(canonical)


# ---- prices and sizes -------------------------------------------------------------------------------------------


def _check_grid(step: Decimal, grid: str, absent_is_zero: bool, site: _Site, rows: pl.Series, raw: pl.Series) -> pl.Series:
    x = raw.to_numpy()  # float64, null -> NaN
    ticks, off = round_to_grid(x, step)
    nan = np.isnan(x)
    if absent_is_zero:  # a book level that is not there: 0.0 / NaN / null price or size
        absent = nan | (x == 0)
        off &= ~absent
    elif nan.any():
        site.fail(rows, _first(nan), raw[_first(nan)], "is missing (null or NaN)")
    is_price = site.column.endswith("price")
    bad = (values.check_prices(site.column, x, absent_is_zero=absent_is_zero) if is_price
           else values.check_sizes(site.column, x))
    if bad is not None:
        site.fail(rows, bad.row, bad.value, bad.problem)
    if off.any():
        i = _first(off)
        site.fail(rows, i, x[i].item(), f"is not on the {grid} (value / step = {x[i] / float(step)!r})", OffGridError)
    return pl.Series(values=ticks, dtype=pl.Int64)


def grid_expr(f: LakeFile, canonical: str, step: Decimal, grid: str, absent_is_zero: bool = False) -> pl.Expr:
    name = f.columns[canonical]
    check = partial(_check_grid, Decimal(step), grid, absent_is_zero)
    return _checked(_Site(f, name), pl.col(name).cast(pl.Float64), check, pl.Int64).alias(canonical)


# ---- other typed columns ----------------------------------------------------------------------------------------


def _check_side(site: _Site, rows: pl.Series, side: pl.Series) -> pl.Series:
    is_buy = side == "buy"
    ok = (is_buy | (side == "sell")).fill_null(False)
    if not ok.all():
        i = int(ok.arg_min())
        site.fail(rows, i, side[i], "is not a trade side (expected 'buy' or 'sell')")
    return is_buy


def _check_present(site: _Site, rows: pl.Series, values: pl.Series) -> pl.Series:
    if values.null_count():
        site.fail(rows, int(values.is_null().arg_max()), None, "is missing (null)")
    return values


def _check_integral(site: _Site, rows: pl.Series, values: pl.Series) -> pl.Series:
    """Float or string ids -> int64; a non-integer value is an error (nulls stay null)."""
    as_int = values.cast(pl.Int64, strict=False)
    if values.dtype.is_float():
        bad = (values != as_int.cast(pl.Float64)) | as_int.is_null()
    else:
        bad = as_int.is_null()
    bad = (bad & values.is_not_null()).fill_null(False)
    if bad.any():
        i = int(bad.arg_max())
        site.fail(rows, i, values[i], "is not an integer id")
    return as_int


def id_expr(f: LakeFile, canonical: str) -> pl.Expr:
    name, dtype = f.columns[canonical], f.dtype(canonical)
    if pa.types.is_integer(dtype):
        return pl.col(name).cast(pl.Int64).alias(canonical)
    source = pl.col(name) if pa.types.is_floating(dtype) else pl.col(name).cast(pl.String)
    return _checked(_Site(f, name), source, _check_integral, pl.Int64).alias(canonical)


def side_expr(f: LakeFile) -> pl.Expr:
    name = f.columns["side"]
    return _checked(_Site(f, name), pl.col(name).cast(pl.String), _check_side, pl.Boolean).alias("side_is_buy")


def side_is_bid_expr(f: LakeFile) -> pl.Expr:
    name = f.columns["side_is_bid"]
    return _checked(_Site(f, name), pl.col(name), _check_present, pl.Boolean).alias("side_is_bid")


# ---- whole file -------------------------------------------------------------------------------------------------


def _grid_builder(f: LakeFile, name: str, kind: str, spec: SymbolSpec | None) -> Callable[[], pl.Expr]:
    def build() -> pl.Expr:
        if spec is None:
            raise ValueError(f"{f.path}: a SymbolSpec is needed to convert {name} to {kind}s")
        step = spec.tick if kind == "tick" else spec.lot
        label = f"{kind} grid {step:f} of {spec.symbol} ({spec.source})"
        return grid_expr(f, name, step, label, absent_is_zero=f.table == "book")

    return build


def column_exprs(f: LakeFile, spec: SymbolSpec | None) -> dict[str, Callable[[], pl.Expr]]:
    """Output column -> builder of its expression (builders, so unrequested columns cost nothing)."""
    exprs: dict[str, Callable[[], pl.Expr]] = {
        "origin_time": lambda: time_expr(f, "origin_time"),
        "received_time": lambda: time_expr(f, "received_time"),
        "sequence_number": lambda: id_expr(f, "sequence_number"),
        "trade_id": lambda: id_expr(f, "trade_id"),
        "side_is_buy": lambda: side_expr(f),
        "side_is_bid": lambda: side_is_bid_expr(f),
        "row": lambda: pl.col(ROW).cast(pl.Int64).alias("row"),
    }
    for name in PRICE_COLUMNS[f.table]:
        exprs[name] = _grid_builder(f, name, "tick", spec)
    for name in SIZE_COLUMNS[f.table]:
        exprs[name] = _grid_builder(f, name, "lot", spec)
    return exprs


def _blank_absent_levels(names: Sequence[str]) -> list[pl.Expr]:
    """A book level missing its price or its size is absent: both become 0 (consistent for the engine)."""
    out = []
    for side in ("bid", "ask"):
        for i in range(N_LEVELS):
            price, size = f"{side}_{i}_price", f"{side}_{i}_size"
            if price in names and size in names:
                absent = (pl.col(price) == 0) | (pl.col(size) == 0)
                out += [pl.when(absent).then(0).otherwise(pl.col(c)).alias(c) for c in (price, size)]
    return out


def scan_file(f: LakeFile, spec: SymbolSpec | None, columns: Sequence[str] | None = None) -> pl.LazyFrame:
    """Lazy normalised frame of one file: `columns` (default: all of NORMALISED[table], in that order)."""
    wanted = list(columns) if columns is not None else NORMALISED[f.table].names
    builders = column_exprs(f, spec)
    unknown = [c for c in wanted if c not in builders or c not in NORMALISED[f.table].names]
    if unknown:
        raise ValueError(f"{f.path}: `{f.table}` has no normalised column(s) {unknown}")
    physical = sorted(set(f.columns.values()))
    lf = (
        pl.scan_parquet(f.path, hive_partitioning=False, row_index_name=ROW, row_index_offset=f.offset)
        .select([ROW, *physical])
        .select([builders[c]() for c in wanted])
    )
    if f.table == "book":
        lf = lf.with_columns(_blank_absent_levels(wanted))
    return lf
