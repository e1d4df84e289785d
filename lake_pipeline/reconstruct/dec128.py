"""int64 ticks/lots -> Arrow decimal128(38,18) buffers, without ever building a Python `Decimal`.

Why: the output contract is decimal128(38,18) but the engine works in int64 ticks. A value is `ticks * step`;
as a decimal128 with scale 18 its unscaled integer is `ticks * (step * 10^18)` — one exact 64x64 -> 128-bit
multiply per value. Doing that in numba straight into the little-endian 16-byte layout Arrow uses, and handing the
buffer to `pa.Array.from_buffers`, costs a few ns per value (a polars/pyarrow cast from Int64 costs ~20 ns and a
`to_numpy()` on decimals ~1 µs; research performance.md).

Nulls are derived from a "presence" array and a sentinel (e.g. BBO price 0 = empty side -> price and size null),
so the replay kernel never has to produce separate masks.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa
from numba import njit

from lake_pipeline.schemas import DECIMAL

SCALE = 18
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)


def scale_factor(step: Decimal) -> int:
    """`step * 10^18` as an exact int64 (0.01 -> 10^16); ValueError if the step is finer than 1e-18 or too large."""
    scaled = Decimal(step).scaleb(SCALE)
    if scaled != scaled.to_integral_value() or scaled <= 0:
        raise ValueError(f"grid step {step} cannot be represented at decimal scale {SCALE}")
    factor = int(scaled)
    if factor >= 2**63:
        raise ValueError(f"grid step {step} is too large for an int64 scale factor")
    return factor


@njit(nogil=True, cache=True, inline="always")
def _mul_128(v: int, factor: np.uint64) -> tuple[np.int64, np.int64]:
    """Signed int64 `v` times unsigned `factor` (< 2^63) as a two's-complement 128-bit (lo, hi) pair."""
    neg = v < 0
    a = np.uint64(-v) if neg else np.uint64(v)
    a_lo = a & _MASK32
    a_hi = a >> _S32
    f_lo = factor & _MASK32
    f_hi = factor >> _S32
    ll = a_lo * f_lo
    lh = a_lo * f_hi
    hl = a_hi * f_lo
    hh = a_hi * f_hi
    mid = (ll >> _S32) + (lh & _MASK32) + (hl & _MASK32)
    lo = (ll & _MASK32) | (mid << _S32)
    hi = hh + (lh >> _S32) + (hl >> _S32) + (mid >> _S32)
    if neg:
        lo = ~lo + _ONE
        hi = ~hi + (_ONE if lo == _ZERO else _ZERO)
    return np.int64(lo), np.int64(hi)


@njit(nogil=True, cache=True)
def fill_validity(presence: np.ndarray, sentinel: int, validity: np.ndarray) -> int:
    """Validity bitmap of `presence != sentinel` (`validity` needs (n + 7) // 8 bytes); returns the null count."""
    n = presence.shape[0]
    nulls = 0
    for b in range((n + 7) // 8):
        validity[b] = 0
    for i in range(n):
        if presence[i] == sentinel:
            nulls += 1
        else:
            validity[i >> 3] |= np.uint8(1 << (i & 7))
    return nulls


@njit(nogil=True, cache=True)
def fill_decimal(values: np.ndarray, factor: int, presence: np.ndarray, sentinel: int, words: np.ndarray,
                 validity: np.ndarray) -> int:
    """Write `values[i] * factor` as 128-bit words (`words[2i]` low, `words[2i+1]` high) and the validity bitmap.

    Row i is null (words 0) where `presence[i] == sentinel`. Returns the null count.
    """
    f = np.uint64(factor)
    for i in range(values.shape[0]):
        lo, hi = _mul_128(values[i], f) if presence[i] != sentinel else (np.int64(0), np.int64(0))
        words[2 * i] = lo
        words[2 * i + 1] = hi
    return fill_validity(presence, sentinel, validity)


class Scratch:
    """Reusable byte buffers, grown on demand: fresh memory costs ~1 s/GB to first-touch on this VM class.

    A writer owns one Scratch; buffers handed to Arrow stay valid until the next `take` of the same slot, so a
    caller must finish writing a table before building the next one (the writer thread does).
    """

    def __init__(self) -> None:
        self._slots: dict[str, np.ndarray] = {}

    def take(self, slot: str, nbytes: int) -> np.ndarray:
        buf = self._slots.get(slot)
        if buf is None or buf.nbytes < nbytes:
            buf = np.empty(max(nbytes, 1) + nbytes // 4, dtype=np.uint8)  # headroom: chunks vary a little
            self._slots[slot] = buf
        return buf[:nbytes]


def _validity_buffer(validity: np.ndarray, nulls: int) -> pa.Buffer | None:
    return pa.py_buffer(validity) if nulls else None


def decimal_array(values: np.ndarray, factor: int, presence: np.ndarray, sentinel: int, scratch: Scratch,
                  slot: str) -> pa.Array:
    """decimal128(38,18) Arrow array of `values * step` (null where `presence == sentinel`), zero-copy over scratch."""
    n = values.shape[0]
    words = scratch.take(slot + ".words", 16 * n).view(np.int64)
    validity = scratch.take(slot + ".valid", (n + 7) // 8)
    nulls = fill_decimal(values, factor, presence, sentinel, words, validity)
    return pa.Array.from_buffers(DECIMAL, n, [_validity_buffer(validity, nulls), pa.py_buffer(words)], null_count=nulls)


def primitive_array(values: np.ndarray, dtype: pa.DataType, sentinel: int | None, scratch: Scratch,
                    slot: str) -> pa.Array:
    """Arrow int/timestamp array over `values` (no copy), null where `values == sentinel` (None: never null)."""
    n = values.shape[0]
    values = np.ascontiguousarray(values)
    if sentinel is None:
        return pa.Array.from_buffers(dtype, n, [None, pa.py_buffer(values)], null_count=0)
    validity = scratch.take(slot + ".valid", (n + 7) // 8)
    nulls = fill_validity(values, sentinel, validity)
    return pa.Array.from_buffers(dtype, n, [_validity_buffer(validity, nulls), pa.py_buffer(values)], null_count=nulls)


def dictionary_array(indices: np.ndarray, dictionary: pa.Array, nullable: bool, scratch: Scratch,
                     slot: str) -> pa.DictionaryArray:
    """dictionary<int32, string> over int32 `indices` (-1 = null when `nullable`)."""
    idx = primitive_array(indices, pa.int32(), -1 if nullable else None, scratch, slot)
    return pa.DictionaryArray.from_arrays(idx, dictionary, safe=False)
