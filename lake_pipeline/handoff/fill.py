"""The one hot loop of the hftbacktest export: unified rows -> hftbacktest event records, in one pass.

Written field by field with numpy, each field of a 64-byte record is a strided scatter over the whole array (five
passes over ~70 MB per part, measured 0.15 s CPU a part, 5 s a day); one numba loop writes each record once, into
a buffer reused from part to part (fresh pages for every part cost as much again in page faults). The arithmetic is
numpy's: int64 units -> float64 (round to nearest), then an IEEE division by 10^d, so the floats are bit-identical
to `units.astype(float64) / 10**d`. Compiled once per machine (`cache=True`).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def fill_rows(out, start, count, ev, exch, local, px, px_null, qty, qty_null, px_scale, qty_scale):  # pragma: no cover
    """out[start[i]] = (ev, exch_ts, local_ts, px units / px_scale or NaN, qty units / qty_scale or 0, 0, 0, 0) of
    row i; the count[i] - 1 records behind it (a snapshot's levels, filled by the caller) get order_id/ival/fval 0."""
    for i in range(len(start)):
        j = start[i]
        out[j].ev = ev[i]
        out[j].exch_ts = exch[i]
        out[j].local_ts = local[i]
        out[j].px = np.nan if px_null[i] else np.float64(px[i]) / px_scale
        out[j].qty = 0.0 if qty_null[i] else np.float64(qty[i]) / qty_scale
        for k in range(j, j + count[i]):
            out[k].order_id = 0
            out[k].ival = 0
            out[k].fval = 0.0
