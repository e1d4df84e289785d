"""Float lake values -> integer ticks/lots on a decimal grid, and the inference of that grid.

Why this exists: the lake stores prices and sizes as float64 (cryptofeed parsed the exchange's decimal strings),
the engine works in int64 ticks/lots. The conversion must ROUND to the nearest grid point, never truncate
(`int(0.29 * 1e8) == 28999999`, research peer_lessons.md trap 1), and a value that is not within float precision
of a grid point is an error, never something to round away silently.

Tolerance: a value `x` is on the grid of `step` when `q = x / step` is within `max(GRID_ABS_TOL,
GRID_REL_TOL * |q|)` of an integer. A float parsed from a decimal string is within ½ ulp of the decimal, and the
scaling adds at most another ulp, so on-grid values deviate by ~2e-16 relative; 1e-13 leaves a ~500× margin while
still catching a half-tick (or even a 1 %-of-a-tick) deviation for every realistic magnitude (q < 1e11).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import polars as pl

GRID_ABS_TOL = 1e-9
"""Absolute tolerance, in steps, for values near zero."""
GRID_REL_TOL = 1e-13
"""Relative tolerance (of the value): float64 noise is ~2e-16."""
MAX_EXACT_STEPS = float(2**53)
"""Beyond this many steps float64 cannot tell neighbouring grid points apart: treated as off the grid."""
MAX_DECIMALS = 12
"""Finest decimal grid `decimals_needed` tries (1e-12)."""


def step_scaler(step: Decimal) -> tuple[bool, float]:
    """(multiply?, factor): multiply by 1/step when that is an integer (exact for 10^-k), else divide by step."""
    step = Decimal(step)
    if step <= 0:
        raise ValueError(f"grid step must be positive, got {step}")
    inverse = Decimal(1) / step
    if inverse == inverse.to_integral_value():
        return True, float(inverse)
    return False, float(step)


def in_steps(values: np.ndarray, step: Decimal) -> np.ndarray:
    """`values / step` as float64, computed the exact way round (x * 100 rather than x / 0.01)."""
    multiply, factor = step_scaler(step)
    values = np.asarray(values, dtype=np.float64)
    return values * factor if multiply else values / factor


def off_grid_mask(q: np.ndarray) -> np.ndarray:
    """True where `q` (a value in steps) is not within tolerance of an integer; NaN and ±inf count as off."""
    with np.errstate(invalid="ignore"):
        tolerance = np.maximum(GRID_ABS_TOL, GRID_REL_TOL * np.abs(q))
        on = (np.abs(q - np.rint(q)) <= tolerance) & (np.abs(q) <= MAX_EXACT_STEPS)
    return ~on


def round_to_grid(values: np.ndarray, step: Decimal) -> tuple[np.ndarray, np.ndarray]:
    """(int64 steps rounded to nearest, off-grid mask). Off-grid / NaN positions hold 0 in the int64 array."""
    q = in_steps(values, step)
    off = off_grid_mask(q)
    ticks = np.rint(np.where(off, 0.0, q)).astype(np.int64)
    return ticks, off


def to_ticks(values: pl.Expr | pl.Series | np.ndarray, step: Decimal) -> pl.Expr | np.ndarray:
    """Float values -> int64 counts of `step` (ticks for prices, lots for sizes), rounded to the nearest.

    * `pl.Expr` -> an expression that rounds (no grid check: use it where values are known to be on the grid,
      e.g. writers converting back and forth).
    * `pl.Series` / numpy array -> int64 numpy array; raises ValueError naming the first off-grid index and value.
    """
    if isinstance(values, pl.Expr):
        multiply, factor = step_scaler(step)
        scaled = values.cast(pl.Float64) * factor if multiply else values.cast(pl.Float64) / factor
        return scaled.round(0).cast(pl.Int64)
    array = values.to_numpy() if isinstance(values, pl.Series) else np.asarray(values, dtype=np.float64)
    ticks, off = round_to_grid(array, step)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"value {array[i].item()!r} at index {i} is not on the grid of step {step}")
    return ticks


def decimals_needed(values: np.ndarray) -> int:
    """The smallest k such that every finite non-zero value lies on the grid 10^-k (0 when there is none).

    Raises ValueError naming a value that lies on no decimal grid down to 10^-MAX_DECIMALS.
    """
    x = np.asarray(values, dtype=np.float64)
    x = np.unique(np.abs(x[np.isfinite(x) & (x != 0)]))
    needed = 0
    for k in range(MAX_DECIMALS + 1):
        if x.size == 0:
            return needed
        x = x[off_grid_mask(x * 10.0**k)]
        needed = k + 1 if x.size else k
    if x.size:
        raise ValueError(f"value {x[0]!r} lies on no decimal grid down to 1e-{MAX_DECIMALS}")
    return needed


def decimal_step(decimals: int) -> Decimal:
    """10^-decimals as an exact Decimal (2 -> Decimal('0.01'))."""
    return Decimal(1).scaleb(-decimals)
