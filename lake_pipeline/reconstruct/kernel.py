"""The replay kernel: one numba loop that merges the three sorted inputs of a chunk and replays them.

Inputs are flat arrays per stream, each already sorted by its own key (see `order.py`); the kernel walks three
cursors and always takes the event that comes first under the ordering below, so no merged copy of the inputs is
ever built. Outputs go straight into the chunk's column buffers (`buffers.py`).

Ordering at equal event time (DESIGN §4 "stable on (event time, sequence_number, input order)"):
1. trades before book events: a trade at T is part of the depth diff with E >= T, so the diff that reports the
   level's new absolute size must come after the trade that changed it;
2. book events by sequence_number (null sorts last): a snapshot with the same sequence_number as a delta message
   describes the book after that message, so the message comes first;
3. then input order within each table.

Per event the kernel writes the book state AFTER the event. A delta message (consecutive rows with equal event
time, sequence_number and received_time) is applied as a whole before any of its rows is written, so every row
of the message carries the post-message best bid/ask.

Strategies (DESIGN §5) share the loop and differ in what deltas, trades and snapshots do to the book:

* full_event_replay: deltas are applied (absolute size, 0 deletes); trades reduce the opposite level at the trade
  price provisionally until the next delta message: if the message reports the level, its absolute size wins (so
  nothing is double counted); if it does not, the level had not changed as of that message (a Binance diff lists
  every level that changed) and the reduction is undone - the trade belongs to a later message;
  the first valid snapshot seeds the book, every later one measures drift and resynchronises the price range it
  covers (deeper levels are kept). A snapshot whose sequence_number is older than the last applied message gets
  the newer messages re-applied on top (from a ring of recent rows), so a late-stamped snapshot cannot roll the
  book back. A book crossed for longer than the re-seed threshold is cleared and re-seeded (stranded levels).
* snapshot_anchored: each valid snapshot replaces the book; trades consume provisionally in between.
* origin_time_sort: the book is the last snapshot as given; nothing else changes it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lake_pipeline.book import (
    M_BASE,
    M_BEST_ASK,
    M_BEST_BID,
    M_N_ASK,
    M_N_BID,
    book_apply,
    book_best_ask,
    book_best_bid,
    book_clear,
    book_is_crossed,
    book_size_at,
    book_top,
)
from lake_pipeline.reconstruct.buffers import (
    NULL_I32,
    NULL_I64,
    SIDE_ASK,
    SIDE_BID,
    SIDE_BUY,
    SIDE_SELL,
    TYPE_DELTA,
    TYPE_SNAPSHOT,
    TYPE_TRADE,
)
from lake_pipeline.reconstruct.state import (
    C_DELTA_MSGS,
    C_DELTA_ROWS,
    C_DRIFT_MAX,
    C_DRIFT_SUM,
    C_GAP_CROSSED,
    C_GAP_DRIFT,
    C_GAP_HOLE,
    C_GAP_INVALID,
    C_GAP_SEQ,
    C_GRID_ROWS,
    C_MSGS_APPLIED,
    C_MSGS_PRESEED,
    C_PROV_FULL,
    C_PROV_REVERTED,
    C_REAPPLIED,
    C_RECOVERIES,
    C_RESEEDS,
    C_RESYNCS,
    C_RING_SHORT,
    C_ROWS_CROSSED,
    C_ROWS_GAP,
    C_SEEDS,
    C_SNAP_COMPARED,
    C_SNAP_DRIFT,
    C_SNAP_INVALID,
    C_SNAP_ROWS,
    C_SNAPSHOTS,
    C_TRADES,
    C_TRADES_CONSUMED,
    DRIFT_BINS,
    PROV_CAP,
    RING_ROWS,
    ST_CROSSED_SINCE,
    ST_DAY_END,
    ST_DAY_START,
    ST_DIRTY,
    ST_GAP_PENDING,
    ST_GRID_NS,
    ST_HOLE_NS,
    ST_INIT,
    ST_LAST_MSG_TIME,
    ST_LAST_SEQ,
    ST_LAST_SNAP_TIME,
    ST_LAST_TIME,
    ST_NEXT_GRID,
    ST_PROV_N,
    ST_RESEED_NS,
    ST_RESEED_PENDING,
    ST_RING_N,
    ST_SNAP_SEQ,
    ST_STRATEGY,
)
from lake_pipeline.schemas import FLAG_CROSSED, FLAG_GAP, FLAG_TRADE_CONSUMED, FLAG_UNINITIALISED, N_LEVELS

FULL, ANCHORED, ORIGIN = 0, 1, 2  # == strategies.STRATEGIES order
SEQ_LAST = np.iinfo(np.int64).max
DIRTY_IS_SNAPSHOT = 2
"""ST_DIRTY value: the book's top 20 is exactly the snapshot just loaded or resynced (copy it, no scan)."""
SCRATCH_LEVELS = 4096
"""Levels one resync can compare per side before the rest are only counted (a sane book has ~20 in range)."""


@njit(cache=True, inline="always")
def _seq_key(seq: int) -> int:
    return SEQ_LAST if seq == NULL_I64 else seq


# ---- provisional trade consumption -------------------------------------------------------------------------------


@njit(cache=True)
def _prov_add(prov, st, is_bid, price, size_before) -> None:
    """Remember a level a trade reduced, with its size before the first such trade (to revert to)."""
    n = st[ST_PROV_N]
    for k in range(n):
        if prov[k, 0] == is_bid and prov[k, 1] == price:
            return
    prov[n, 0] = is_bid
    prov[n, 1] = price
    prov[n, 2] = size_before
    st[ST_PROV_N] = n + 1


@njit(cache=True)
def _prov_forget(prov, st, is_bid, price) -> None:
    """An absolute update of this level arrived: its provisional reduction is settled (order is irrelevant)."""
    n = st[ST_PROV_N]
    for k in range(n):
        if prov[k, 1] == price and prov[k, 0] == is_bid:
            prov[k, :] = prov[n - 1, :]
            st[ST_PROV_N] = n - 1
            return


@njit(cache=True)
def _prov_revert(bid, ask, meta, prov, st) -> None:
    """After a delta message: levels it did not report were not changed as of that message; undo the trades'
    reductions there (the trades belong to a later message, which will report the level's new size)."""
    n = st[ST_PROV_N]
    for k in range(n):
        book_apply(bid, ask, meta, prov[k, 0] == 1, prov[k, 1], prov[k, 2])
    st[C_PROV_REVERTED] += n
    st[ST_PROV_N] = 0


@njit(cache=True)
def _prov_drop(prov, st, is_bid, lo, hi) -> None:
    """Forget provisional levels of one side with lo <= price <= hi (an absolute update has arrived)."""
    n = st[ST_PROV_N]
    w = 0
    for k in range(n):
        if prov[k, 0] == is_bid and lo <= prov[k, 1] <= hi:
            continue
        prov[w, :] = prov[k, :]
        w += 1
    st[ST_PROV_N] = w


# ---- book helpers ------------------------------------------------------------------------------------------------


@njit(cache=True)
def _collect(bid, ask, meta, is_bid, limit, out_px, out_sz) -> int:
    """Levels of one side from the best down to `limit` (inclusive; NULL_I64 = the whole side), best first.

    Returns how many levels lie in range; only the first `out_px.shape[0]` are stored.
    """
    base = meta[M_BASE]
    if is_bid:
        side, i, step, left = bid, meta[M_BEST_BID], -1, meta[M_N_BID]
    else:
        side, i, step, left = ask, meta[M_BEST_ASK], 1, meta[M_N_ASK]
    cap = out_px.shape[0]
    w = side.shape[0]
    n = 0
    while left > 0 and 0 <= i < w:
        if limit != NULL_I64 and ((is_bid and base + i < limit) or (not is_bid and base + i > limit)):
            break
        size = side[i]
        if size != 0:
            if n < cap:
                out_px[n] = base + i
                out_sz[n] = size
            n += 1
            left -= 1
        i += step
    return n


@njit(cache=True, inline="always")
def _better(is_bid, a, b) -> bool:
    return a > b if is_bid else a < b


@njit(cache=True)
def _count_diff(is_bid, a_px, a_sz, na, b_px, b_sz, nb) -> int:
    """Price levels where two best-first level lists disagree (absent on one side counts)."""
    i = 0
    j = 0
    diff = 0
    while i < na or j < nb:
        if j >= nb or (i < na and _better(is_bid, a_px[i], b_px[j])):
            diff += 1
            i += 1
        elif i >= na or _better(is_bid, b_px[j], a_px[i]):
            diff += 1
            j += 1
        else:
            if a_sz[i] != b_sz[j]:
                diff += 1
            i += 1
            j += 1
    return diff


@njit(cache=True)
def _snapshot_side(lv, is_bid, out_px, out_sz) -> int:
    """Present levels of one side of a lake snapshot row (best first); absent levels have price 0."""
    off = 0 if is_bid else 2 * N_LEVELS
    n = 0
    for k in range(N_LEVELS):
        px = lv[off + 2 * k]
        if px > 0 and lv[off + 2 * k + 1] > 0:
            out_px[n] = px
            out_sz[n] = lv[off + 2 * k + 1]
            n += 1
    return n


@njit(cache=True)
def _snapshot_valid(s_px, s_sz, nb, a_px, a_sz, na) -> bool:
    """Two-sided, uncrossed, strictly ordered best first: the only snapshots we seed or resync from."""
    if nb == 0 or na == 0 or s_px[0] >= a_px[0]:
        return False
    for k in range(1, nb):
        if s_px[k] >= s_px[k - 1]:
            return False
    for k in range(1, na):
        if a_px[k] <= a_px[k - 1]:
            return False
    return True


@njit(cache=True)
def _load(bid, ask, meta, prov, st, s_px, s_sz, nb, a_px, a_sz, na) -> None:
    """Clear the book and load both sides of a snapshot."""
    book_clear(bid, ask, meta)
    for k in range(nb):
        book_apply(bid, ask, meta, True, s_px[k], s_sz[k])
    for k in range(na):
        book_apply(bid, ask, meta, False, a_px[k], a_sz[k])
    st[ST_PROV_N] = 0
    st[ST_DIRTY] = DIRTY_IS_SNAPSHOT


@njit(cache=True)
def _replace_side(bid, ask, meta, is_bid, old_px, old_sz, n_old, new_px, new_sz, n_new) -> None:
    """Make the levels in range equal `new` (the old ones were collected before): delete, change, insert."""
    i = 0
    j = 0
    while i < n_old or j < n_new:
        if j >= n_new or (i < n_old and _better(is_bid, old_px[i], new_px[j])):
            book_apply(bid, ask, meta, is_bid, old_px[i], 0)
            i += 1
        elif i >= n_old or _better(is_bid, new_px[j], old_px[i]):
            book_apply(bid, ask, meta, is_bid, new_px[j], new_sz[j])
            j += 1
        else:
            if old_sz[i] != new_sz[j]:
                book_apply(bid, ask, meta, is_bid, new_px[j], new_sz[j])
            i += 1
            j += 1


@njit(cache=True)
def _ring_push(ring, st, seq, is_bid, price, size) -> None:
    r = st[ST_RING_N] % RING_ROWS
    ring[r, 0] = seq
    ring[r, 1] = is_bid
    ring[r, 2] = price
    ring[r, 3] = size
    st[ST_RING_N] += 1


@njit(cache=True)
def _newer_rows(ring, st, seq) -> int:
    """How many of the ring's newest rows have a sequence_number above `seq`; -1 when the ring holds no row at
    or below `seq` (the snapshot is older than the history, or from another id space: nothing to re-apply)."""
    total = st[ST_RING_N]
    kept = min(total, RING_ROWS)
    back = 0
    while back < kept and ring[(total - 1 - back) % RING_ROWS, 0] > seq:
        back += 1
    return -1 if back == kept else back


@njit(cache=True)
def _reapply(bid, ask, meta, prov, st, ring, back) -> None:
    """Re-apply the ring's `back` newest rows, oldest first."""
    total = st[ST_RING_N]
    for k in range(total - back, total):
        r = k % RING_ROWS
        book_apply(bid, ask, meta, ring[r, 1] == 1, ring[r, 2], ring[r, 3])
        if st[ST_PROV_N] > 0:
            _prov_forget(prov, st, ring[r, 1], ring[r, 2])
    st[C_REAPPLIED] += back


# scratch rows (int64[N_SCRATCH_ROWS, SCRATCH_LEVELS]): snapshot sides, the book's old levels per side, new levels
R_SB_PX, R_SB_SZ, R_SA_PX, R_SA_SZ, R_OB_PX, R_OB_SZ, R_OA_PX, R_OA_SZ, R_N_PX, R_N_SZ = range(10)
N_SCRATCH_ROWS = 10


@njit(cache=True)
def _side_limit(s_px, ns) -> int:
    """Deepest price a snapshot side covers; with fewer than 20 levels it shows the whole side (NULL_I64)."""
    return s_px[ns - 1] if ns == N_LEVELS else NULL_I64


@njit(cache=True)
def _wipe_range(bid, ask, meta, is_bid, limit) -> None:
    """Delete every level of one side from the best down to `limit` (for ranges too deep for the scratch)."""
    while True:
        px, sz = book_best_bid(bid, ask, meta) if is_bid else book_best_ask(bid, ask, meta)
        if sz == 0 or (limit != NULL_I64 and ((is_bid and px < limit) or (not is_bid and px > limit))):
            return
        book_apply(bid, ask, meta, is_bid, px, 0)


@njit(cache=True)
def _resync_side(bid, ask, meta, prov, st, is_bid, s_px, s_sz, ns, o_px, o_sz) -> int:
    """Replace one side's levels over the snapshot's range by the snapshot's (the old ones land in o_px/o_sz);
    returns how many old levels were in range."""
    limit = _side_limit(s_px, ns)
    n = _collect(bid, ask, meta, is_bid, limit, o_px, o_sz)
    if n <= o_px.shape[0]:
        _replace_side(bid, ask, meta, is_bid, o_px, o_sz, n, s_px, s_sz, ns)
    else:  # absurdly many levels in range: replace wholesale
        _wipe_range(bid, ask, meta, is_bid, limit)
        for k in range(ns):
            book_apply(bid, ask, meta, is_bid, s_px[k], s_sz[k])
    if st[ST_PROV_N] > 0:
        side = 1 if is_bid else 0
        if limit == NULL_I64:
            _prov_drop(prov, st, side, np.iinfo(np.int64).min, np.iinfo(np.int64).max)
        elif is_bid:
            _prov_drop(prov, st, side, limit, np.iinfo(np.int64).max)
        else:
            _prov_drop(prov, st, side, np.iinfo(np.int64).min, limit)
    return n


@njit(cache=True)
def _side_drift(is_bid, o_px, o_sz, n_old, s_px, s_sz, ns, cap) -> int:
    """Levels where the old book side (n_old levels in range) and the snapshot side disagree."""
    if n_old > cap:  # every one of them counts (the scratch could not hold them)
        return n_old + ns
    return _count_diff(is_bid, o_px, o_sz, n_old, s_px, s_sz, ns)


@njit(cache=True)
def _resync(bid, ask, meta, prov, st, ring, seq, scr, nb, na) -> int:
    """Synchronise the book to the snapshot held in scratch over the price range it covers; return the drift.

    Levels deeper than the snapshot's 20th are kept. When the snapshot's sequence_number is older than the last
    applied message, the newer rows are re-applied on top and drift compares the book before and after.
    """
    back = 0
    if seq != NULL_I64 and st[ST_LAST_SEQ] != NULL_I64 and seq < st[ST_LAST_SEQ]:
        back = _newer_rows(ring, st, seq)
        if back < 0:
            st[C_RING_SHORT] += 1
            back = 0
    reapply = back > 0
    cap = scr.shape[1]
    drift = 0
    n_bid = _resync_side(bid, ask, meta, prov, st, True, scr[R_SB_PX], scr[R_SB_SZ], nb, scr[R_OB_PX], scr[R_OB_SZ])
    n_ask = _resync_side(bid, ask, meta, prov, st, False, scr[R_SA_PX], scr[R_SA_SZ], na, scr[R_OA_PX], scr[R_OA_SZ])
    st[ST_DIRTY] = DIRTY_IS_SNAPSHOT
    if not reapply:
        drift += _side_drift(True, scr[R_OB_PX], scr[R_OB_SZ], n_bid, scr[R_SB_PX], scr[R_SB_SZ], nb, cap)
        drift += _side_drift(False, scr[R_OA_PX], scr[R_OA_SZ], n_ask, scr[R_SA_PX], scr[R_SA_SZ], na, cap)
        return drift
    st[ST_DIRTY] = 1
    _reapply(bid, ask, meta, prov, st, ring, back)
    # drift: how the snapshot brought forward to the book's sequence disagrees with the replayed book
    for side in range(2):
        is_bid = side == 0
        n_old = n_bid if is_bid else n_ask
        if n_old > cap:
            drift += n_old + (nb if is_bid else na)
            continue
        s_px = scr[R_SB_PX] if is_bid else scr[R_SA_PX]
        o_px, o_sz = (scr[R_OB_PX], scr[R_OB_SZ]) if is_bid else (scr[R_OA_PX], scr[R_OA_SZ])
        limit = _side_limit(s_px, nb if is_bid else na)
        n_new = min(_collect(bid, ask, meta, is_bid, limit, scr[R_N_PX], scr[R_N_SZ]), cap)
        drift += _count_diff(is_bid, o_px, o_sz, n_old, scr[R_N_PX], scr[R_N_SZ], n_new)
    return drift


@njit(cache=True)
def _measure(bid, ask, meta, scr, nb, na) -> int:
    """Drift of the book against the snapshot held in scratch, without changing the book."""
    drift = 0
    cap = scr.shape[1]
    for side in range(2):
        is_bid = side == 0
        s_px, s_sz = (scr[R_SB_PX], scr[R_SB_SZ]) if is_bid else (scr[R_SA_PX], scr[R_SA_SZ])
        ns = nb if is_bid else na
        n = _collect(bid, ask, meta, is_bid, _side_limit(s_px, ns), scr[R_N_PX], scr[R_N_SZ])
        if n > cap:
            drift += n + ns
        else:
            drift += _count_diff(is_bid, scr[R_N_PX], scr[R_N_SZ], n, s_px, s_sz, ns)
    return drift


# ---- row writing -------------------------------------------------------------------------------------------------


@njit(cache=True)
def _flags(bid, ask, meta, st, gap) -> int:
    f = 0
    if st[ST_INIT] == 0:
        f |= FLAG_UNINITIALISED
    if book_is_crossed(bid, ask, meta):
        f |= FLAG_CROSSED
        st[C_ROWS_CROSSED] += 1
    if gap:
        f |= FLAG_GAP
    if st[ST_PROV_N] > 0:
        f |= FLAG_TRADE_CONSUMED
    return f


@njit(cache=True)
def _track_cross(bid, ask, meta, st, t) -> bool:
    """Update the crossed-since clock; True when the book has just become crossed (a gap)."""
    if book_is_crossed(bid, ask, meta):
        if st[ST_CROSSED_SINCE] == NULL_I64:
            st[ST_CROSSED_SINCE] = t
            if st[ST_INIT] == 1 and st[ST_STRATEGY] == FULL:
                st[C_GAP_CROSSED] += 1
                st[ST_GAP_PENDING] = 1
                return True
        return False
    st[ST_CROSSED_SINCE] = NULL_I64
    return False


@njit(cache=True)
def _walk_top(bid, ask, meta, top, last) -> None:
    """The book's top 20 per side, in lake column order, into `last` (a scan of the price window)."""
    book_top(bid, ask, meta, N_LEVELS, top[0], top[1], top[2], top[3])
    for k in range(N_LEVELS):
        last[2 * k] = top[0, k]
        last[2 * k + 1] = top[1, k]
        last[2 * N_LEVELS + 2 * k] = top[2, k]
        last[2 * N_LEVELS + 2 * k + 1] = top[3, k]


@njit(cache=True)
def _snapshot_top(scr, nb, na, last) -> None:
    """`last` = the snapshot's levels (what the book's top 20 is right after loading or resyncing it): no scan."""
    for k in range(N_LEVELS):
        present = k < nb
        last[2 * k] = scr[R_SB_PX, k] if present else 0
        last[2 * k + 1] = scr[R_SB_SZ, k] if present else 0
        present = k < na
        last[2 * N_LEVELS + 2 * k] = scr[R_SA_PX, k] if present else 0
        last[2 * N_LEVELS + 2 * k + 1] = scr[R_SA_SZ, k] if present else 0


@njit(cache=True)
def _state_row(bid, ask, meta, st, t, bs_time, bs_lv, m, top, last) -> None:
    """Book-state row m at time t: the top 20, rescanned only when the book changed since the last row."""
    if m >= bs_time.shape[0]:
        raise IndexError("book-state buffer too small for this chunk")  # the driver sizes it; never expected
    if st[ST_DIRTY] != 0:
        _walk_top(bid, ask, meta, top, last)
        st[ST_DIRTY] = 0
    bs_time[m] = t
    bs_lv[:, m] = last


@njit(cache=True)
def _emit_grid(bid, ask, meta, st, until, bs_time, bs_lv, m, top, last) -> int:
    """Book-state rows for grid times g < `until` (state after every event with time <= g); returns new m."""
    step = st[ST_GRID_NS]
    g = st[ST_NEXT_GRID]
    end = min(until, st[ST_DAY_END])
    if g >= end:
        return m
    if st[ST_INIT] == 0:  # nothing to describe yet: jump to the first grid time >= until
        st[ST_NEXT_GRID] = g + ((end - g + step - 1) // step) * step
        return m
    first = m
    while g < end:
        _state_row(bid, ask, meta, st, g, bs_time, bs_lv, m, top, last)
        m += 1
        g += step
    st[ST_NEXT_GRID] = g
    st[C_GRID_ROWS] += m - first
    return m


@njit(cache=True, inline="always")
def _write_row(out, o, t, recv, etype, seq, tid, side, px, qty, bbo, flags, drift) -> None:
    """Unified row o: the event's own fields, the book state after it (bbo = bid px, bid qty, ask px, ask qty)."""
    out[0][o] = t
    out[1][o] = recv
    out[2][o] = etype
    out[3][o] = seq
    out[4][o] = tid
    out[5][o] = side
    out[6][o] = px
    out[7][o] = qty
    out[8][o] = bbo[0]
    out[9][o] = bbo[1]
    out[10][o] = bbo[2]
    out[11][o] = bbo[3]
    out[12][o] = flags
    out[13][o] = drift


@njit(cache=True, inline="always")
def _bbo(bid, ask, meta) -> tuple[int, int, int, int]:
    bbp, bbq = book_best_bid(bid, ask, meta)
    bap, baq = book_best_ask(bid, ask, meta)
    return bbp, bbq, bap, baq


# ---- the loop ----------------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def replay_chunk(trades, deltas, snaps, grid_until, bid, ask, meta, st, prov, ring, hist, last, scr, top, out,
                 states):
    """Replay one chunk; returns (unified rows written, book-state rows written).

    trades = (time, recv, trade_id, is_buy, price, qty); deltas = (time, recv, seq, is_bid, price, size);
    snaps = (time, recv, seq, levels[n, 80]); out = the 14 unified columns (buffers.UnifiedBuffers order);
    states = (time, levels[80, rows]). `grid_until`: emit grid rows for g < grid_until at the end (NULL_I64: final
    chunk, up to and including the last event time).
    """
    t_time, t_recv, t_tid, t_buy, t_px, t_qty = trades
    d_time, d_recv, d_seq, d_bid, d_px, d_sz = deltas
    s_time, s_recv, s_seq, s_lv = snaps
    bs_time, bs_lv = states
    nt = t_time.shape[0]
    nd = d_time.shape[0]
    ns = s_time.shape[0]
    strategy = st[ST_STRATEGY]
    it = 0
    id_ = 0
    is_ = 0
    o = 0
    m = 0
    while True:
        k = -1
        t = 0
        if it < nt:
            k = 0
            t = t_time[it]
        if id_ < nd and (k == -1 or d_time[id_] < t):
            k = 1
            t = d_time[id_]
        if is_ < ns:
            ts = s_time[is_]
            if k == -1 or ts < t or (ts == t and k == 1 and _seq_key(s_seq[is_]) < _seq_key(d_seq[id_])):
                k = 2
                t = ts
        if k == -1:
            break
        if t > st[ST_NEXT_GRID]:
            m = _emit_grid(bid, ask, meta, st, t, bs_time, bs_lv, m, top, last)
        st[ST_LAST_TIME] = t
        if k == 0:
            # ---- trade ----
            st[C_TRADES] += 1
            is_buy = t_buy[it]
            if st[ST_INIT] == 1 and strategy != ORIGIN:
                consumed_bid = not is_buy  # a taker sell hits the bids, a taker buy lifts the asks
                cur = book_size_at(bid, ask, meta, consumed_bid, t_px[it])
                if cur > 0 and st[ST_PROV_N] == PROV_CAP:
                    st[C_PROV_FULL] += 1  # too many levels outstanding: leave this one as reported
                elif cur > 0:
                    book_apply(bid, ask, meta, consumed_bid, t_px[it], max(cur - t_qty[it], 0))
                    _prov_add(prov, st, 1 if consumed_bid else 0, t_px[it], cur)
                    st[ST_DIRTY] = 1
                    st[C_TRADES_CONSUMED] += 1
                    _track_cross(bid, ask, meta, st, t)  # a consumed level can only uncross the book
            _write_row(out, o, t, t_recv[it], TYPE_TRADE, NULL_I64, t_tid[it], SIDE_BUY if is_buy else SIDE_SELL,
                       t_px[it], t_qty[it], _bbo(bid, ask, meta), _flags(bid, ask, meta, st, False), NULL_I32)
            o += 1
            it += 1
        elif k == 1:
            # ---- one delta message: rows id_..j-1 ----
            seq = d_seq[id_]
            recv = d_recv[id_]
            j = id_ + 1
            while j < nd and d_time[j] == t and d_seq[j] == seq and d_recv[j] == recv:
                j += 1
            st[C_DELTA_ROWS] += j - id_
            st[C_DELTA_MSGS] += 1
            gap = False
            if strategy == FULL:
                if st[ST_INIT] == 1:
                    last_t = st[ST_LAST_MSG_TIME]
                    if last_t != NULL_I64 and t - last_t > st[ST_HOLE_NS]:
                        st[C_GAP_HOLE] += 1
                        st[ST_RESEED_PENDING] = 1  # messages are missing: deeper levels are unreliable
                        gap = True
                    if seq != NULL_I64 and st[ST_LAST_SEQ] != NULL_I64 and seq < st[ST_LAST_SEQ]:
                        st[C_GAP_SEQ] += 1
                        st[ST_RESEED_PENDING] = 1
                        gap = True
                    for r in range(id_, j):
                        is_bid = d_bid[r]
                        book_apply(bid, ask, meta, is_bid, d_px[r], d_sz[r])
                        if st[ST_PROV_N] > 0:
                            _prov_forget(prov, st, 1 if is_bid else 0, d_px[r])
                        _ring_push(ring, st, seq, 1 if is_bid else 0, d_px[r], d_sz[r])
                    st[ST_DIRTY] = 1
                    if st[ST_PROV_N] > 0:
                        _prov_revert(bid, ask, meta, prov, st)
                    if seq != NULL_I64:
                        st[ST_LAST_SEQ] = seq
                    st[C_MSGS_APPLIED] += 1
                    if _track_cross(bid, ask, meta, st, t):
                        gap = True
                    if gap:
                        st[ST_GAP_PENDING] = 1
                else:
                    st[C_MSGS_PRESEED] += 1
                st[ST_LAST_MSG_TIME] = t
            bbo = _bbo(bid, ask, meta)
            flags = _flags(bid, ask, meta, st, gap)
            if gap:
                st[C_ROWS_GAP] += 1
            for r in range(id_, j):
                _write_row(out, o, t, recv, TYPE_DELTA, seq, NULL_I64, SIDE_BID if d_bid[r] else SIDE_ASK, d_px[r],
                           d_sz[r], bbo, flags, NULL_I32)
                o += 1
            id_ = j
        else:
            # ---- snapshot ----
            st[C_SNAPSHOTS] += 1
            lv = s_lv[is_]
            seq = s_seq[is_]
            gap = False
            drift = NULL_I32
            s_bpx, s_bsz, s_apx, s_asz = scr[R_SB_PX], scr[R_SB_SZ], scr[R_SA_PX], scr[R_SA_SZ]
            nb = _snapshot_side(lv, True, s_bpx, s_bsz)
            na = _snapshot_side(lv, False, s_apx, s_asz)
            valid = _snapshot_valid(s_bpx, s_bsz, nb, s_apx, s_asz, na)
            if strategy != FULL and st[ST_LAST_SNAP_TIME] != NULL_I64 and st[ST_INIT] == 1 \
                    and t - st[ST_LAST_SNAP_TIME] > st[ST_HOLE_NS]:
                st[C_GAP_HOLE] += 1
                gap = True
            st[ST_LAST_SNAP_TIME] = t
            if not valid:
                st[C_SNAP_INVALID] += 1
            if strategy == FULL:
                if st[ST_INIT] == 0:
                    if valid:
                        _load(bid, ask, meta, prov, st, s_bpx, s_bsz, nb, s_apx, s_asz, na)
                        st[ST_INIT] = 1
                        st[C_SEEDS] += 1
                        st[ST_SNAP_SEQ] = seq
                        st[ST_CROSSED_SINCE] = NULL_I64
                elif not valid:
                    st[C_GAP_INVALID] += 1
                    st[ST_GAP_PENDING] = 1
                    gap = True
                else:
                    crossed_for = t - st[ST_CROSSED_SINCE] if st[ST_CROSSED_SINCE] != NULL_I64 else 0
                    if crossed_for > st[ST_RESEED_NS] or st[ST_RESEED_PENDING] == 1:
                        drift = _measure(bid, ask, meta, scr, nb, na)
                        _load(bid, ask, meta, prov, st, s_bpx, s_bsz, nb, s_apx, s_asz, na)
                        st[C_RESEEDS] += 1
                        st[ST_RESEED_PENDING] = 0
                        gap = True
                    else:
                        drift = _resync(bid, ask, meta, prov, st, ring, seq, scr, nb, na)
                        st[C_RESYNCS] += 1
                    st[ST_SNAP_SEQ] = seq
                    if drift > 0:
                        st[C_GAP_DRIFT] += 1
                        gap = True
                    if st[ST_GAP_PENDING] == 1:
                        st[C_RECOVERIES] += 1
                        st[ST_GAP_PENDING] = 0
                        gap = True
            elif strategy == ANCHORED:
                if valid:
                    if st[ST_INIT] == 1:
                        drift = _measure(bid, ask, meta, scr, nb, na)
                    _load(bid, ask, meta, prov, st, s_bpx, s_bsz, nb, s_apx, s_asz, na)
                    st[ST_INIT] = 1
                    st[ST_SNAP_SEQ] = seq
                elif st[ST_INIT] == 1:
                    st[C_GAP_INVALID] += 1
                    gap = True
            else:
                if nb + na > 0:
                    if st[ST_INIT] == 1:
                        drift = _measure(bid, ask, meta, scr, nb, na)
                    _load(bid, ask, meta, prov, st, s_bpx, s_bsz, nb, s_apx, s_asz, na)
                    st[ST_INIT] = 1
                    st[ST_SNAP_SEQ] = seq
            if drift != NULL_I32:
                st[C_SNAP_COMPARED] += 1
                st[C_DRIFT_SUM] += drift
                st[C_DRIFT_MAX] = max(st[C_DRIFT_MAX], drift)
                if drift > 0:
                    st[C_SNAP_DRIFT] += 1
                hist[min(drift, DRIFT_BINS - 1)] += 1
            if _track_cross(bid, ask, meta, st, t):
                gap = True
            if gap:
                st[C_ROWS_GAP] += 1
            _write_row(out, o, t, s_recv[is_], TYPE_SNAPSHOT, seq, NULL_I64, NULL_I32, NULL_I64, NULL_I64,
                       _bbo(bid, ask, meta), _flags(bid, ask, meta, st, gap), drift)
            o += 1
            if st[ST_INIT] == 1:
                if st[ST_DIRTY] == DIRTY_IS_SNAPSHOT:
                    _snapshot_top(scr, nb, na, last)
                    st[ST_DIRTY] = 0
                _state_row(bid, ask, meta, st, t, bs_time, bs_lv, m, top, last)
                m += 1
                st[C_SNAP_ROWS] += 1
            is_ += 1
    until = grid_until
    if until == NULL_I64:
        until = st[ST_LAST_TIME] + 1 if st[ST_LAST_TIME] != NULL_I64 else st[ST_DAY_START]
    m = _emit_grid(bid, ask, meta, st, until, bs_time, bs_lv, m, top, last)
    return o, m


def new_scratch() -> tuple[np.ndarray, np.ndarray]:
    """(resync scratch int64[N_SCRATCH_ROWS, SCRATCH_LEVELS], top-20 scratch int64[4, 20])."""
    return np.zeros((N_SCRATCH_ROWS, SCRATCH_LEVELS), np.int64), np.zeros((4, N_LEVELS), np.int64)
