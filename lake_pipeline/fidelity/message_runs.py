"""Book messages of a unified part in one pass: the rows of a message are consecutive book rows with the same
sequence number; the report needs, per message, its last row (the BBO after it) and its gap / snapshot / drift
flags.

A full day is ~30 M delta rows and ~1 M messages. One numba pass over the integer columns (event-type dictionary
codes, no strings) replaces a dozen numpy passes and their temporaries; trades keep their row order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class MessageRuns:
    """Per book message (in row order): its last row, first sequence number and flags; plus the trade rows."""

    last_row: np.ndarray  # int64 row index of the message's last row in the part
    update_id: np.ndarray  # int64 sequence number of the message (its first row's)
    gap: np.ndarray  # bool: a row of the message carries the gap flag
    snapshot: np.ndarray  # bool: a row of the message is a book snapshot
    drift_levels: np.ndarray  # int32 largest drift_levels of its rows, -1 where none is recorded
    trade_rows: np.ndarray  # int64 row indices of the trades


@functools.cache
def _kernel():
    """numba kernel (compiled once, cached on disk); numba is imported lazily like the other report kernels."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def runs(codes, trade_code, snapshot_code, seq, flags, gap_flag, drift,
             last_row, update_id, gap, snapshot, drift_max, trade_rows):
        n_msg = 0
        n_trade = 0
        previous = np.int64(0)
        for i in range(codes.size):
            code = codes[i]
            if code == trade_code:
                trade_rows[n_trade] = i
                n_trade += 1
                continue
            if n_msg == 0 or seq[i] != previous:
                update_id[n_msg] = seq[i]
                gap[n_msg] = False
                snapshot[n_msg] = False
                drift_max[n_msg] = -1
                n_msg += 1
                previous = seq[i]
            m = n_msg - 1
            last_row[m] = i
            if flags[i] & gap_flag:
                gap[m] = True
            if code == snapshot_code:
                snapshot[m] = True
            if drift[i] > drift_max[m]:
                drift_max[m] = drift[i]
        return n_msg, n_trade

    return runs


def message_runs(codes: np.ndarray, trade_code: int, snapshot_code: int, seq: np.ndarray, flags: np.ndarray,
                 gap_flag: int, drift: np.ndarray) -> MessageRuns:
    """Group a part's rows into book messages (see module doc). `codes` are the event-type dictionary indices
    (-1 for a null type), `seq` the sequence numbers (any value on trade rows), `drift` the drift levels with
    -1 where none is recorded."""
    n = codes.size
    last_row = np.empty(n, np.int64)
    update_id = np.empty(n, np.int64)
    gap = np.empty(n, np.bool_)
    snapshot = np.empty(n, np.bool_)
    drift_max = np.empty(n, np.int32)
    trade_rows = np.empty(n, np.int64)
    n_msg, n_trade = _kernel()(codes.astype(np.int32, copy=False), np.int32(trade_code), np.int32(snapshot_code),
                               seq, flags, np.int32(gap_flag), drift,
                               last_row, update_id, gap, snapshot, drift_max, trade_rows)
    # copies, not views: a frame built on a view would keep the whole row-sized buffer alive
    return MessageRuns(last_row[:n_msg].copy(), update_id[:n_msg].copy(), gap[:n_msg].copy(),
                       snapshot[:n_msg].copy(), drift_max[:n_msg].copy(), trade_rows[:n_trade].copy())
