"""The true market: an L2 book in int64 ticks/lots driven by self-exciting order flow (numba, chunk by chunk).

One millisecond per step. In each step the number of events is Poisson with the current total intensity and
each event's type is drawn from the intensities at that moment:

* a latent fair price jumps (self-exciting, heavy-tailed sizes) and is pulled towards the book; market makers
  quote around its anchor `floor(fair)`: adds near the touch with a heavy-tailed distance profile, refills while
  the spread is wider than one tick (mostly within the same millisecond), fast cancels of quotes left stale by a
  jump; most adds are post-only (re-priced one tick inside the other side), the others that reach the other side
  trade first (marketable limit) and rest the remainder;
* taker orders (two-sided Hawkes, a fast and a slow kernel) sweep levels; each level consumed gives 1..8 fills
  (Binance `@trade`) and one aggregate row (lake `trades`);
* a deep book far from the touch: adds, and cancels with a per-level hazard.

Every individual level change takes the next exchange update id. The millisecond clock is cut into depth ticks
(100 ms, sometimes 101 like the real `E` spacing); a tick with changes becomes one message: the final absolute
size of each level touched (bids best first, then asks best first), the top-20 book after it, its first and last
update id. Nothing here knows about files: `Market.run` hands back numpy arrays.

Start-of-file scheme (documented contract for exact replays): the book starts with at most `init_levels` levels
per side and no side may hold more than 20 levels until the first message is emitted, so the first lake `book`
row describes every level that exists; everything deeper is created later and therefore carried by deltas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numba import njit

from lake_pipeline.sim.params import SIZE_ADD, SIZE_DEEP, SIZE_TAKER, MarketParams
from lake_pipeline.sim.rng import exponential, new_state, normal, poisson_small, uniform

WINDOW = 1 << 22
"""Price window in ticks held in flat arrays (±21k USDT around the start for BTC)."""
EDGE = 64
"""Ticks kept free at both window edges."""
N_LEVELS = 20
ASK0_COL = 2 * N_LEVELS
"""Column of ask_0_price in a top-20 book row (the bid block comes first, like the lake `book` table)."""
SNAPSHOT_LEVELS = 1000
TOUCH_CAP = 1 << 17
BT_FIELDS = 6  # update_id, ms, bid_px, bid_qty, ask_px, ask_qty

# int64 state slots
S_BEST_BID, S_BEST_ASK, S_NLEV_BID, S_NLEV_ASK = 0, 1, 2, 3
S_UID, S_TRADE_ID, S_AGG_ID = 4, 5, 6
S_MS, S_NEXT_BOUNDARY, S_MSGS, S_FIRST_PENDING = 7, 8, 9, 10
S_TICK_FIRST_UID, S_TICK_UPDATES, S_NTOUCH_BID, S_NTOUCH_ASK = 11, 12, 13, 14
S_SNAP_STATE, S_SNAP_L, S_SNAP_MSG = 15, 16, 17
S_BT_BPX, S_BT_BQ, S_BT_APX, S_BT_AQ = 18, 19, 20, 21
S_TICK_NO, S_BASE, S_STATUS = 22, 23, 24
N_INT_STATE = 32

# float64 state slots
G_FAIR, G_EXC_BUY, G_EXC_SELL, G_EXC_SLOW, G_EXC_ACT, G_EXC_JUMP, G_LOGVOL, G_ACT = 0, 1, 2, 3, 4, 5, 6, 7
N_FLOAT_STATE = 8

# counters in `counts`
C_MSG, C_ROW, C_FILL, C_AGG, C_BT = 0, 1, 2, 3, 4
N_COUNTS = 8

# event types
EV_TAKER_BUY, EV_TAKER_SELL, EV_ADD_BID, EV_ADD_ASK, EV_CANCEL_BID, EV_CANCEL_ASK = 0, 1, 2, 3, 4, 5
EV_REFILL, EV_STALE_ASK, EV_STALE_BID, EV_DEEP_ADD_BID, EV_DEEP_ADD_ASK = 6, 7, 8, 9, 10
EV_DEEP_CANCEL_BID, EV_DEEP_CANCEL_ASK, EV_JUMP = 11, 12, 13
N_EVENTS = 14

STATUS_OK, STATUS_OVERFLOW = 0, 1


# ---------------------------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------------------------
@njit(cache=True)
def _sample_size(sizes, kind, rng) -> int:
    u = uniform(rng)
    cum = 0.0
    for r in range(5):
        cum += sizes[kind, 6 + 2 * r]
        if u < cum:
            return int(sizes[kind, 5 + 2 * r])
    if uniform(rng) < sizes[kind, 2]:
        x = sizes[kind, 3] * uniform(rng) ** (-1.0 / sizes[kind, 4])
    else:
        x = math.exp(sizes[kind, 0] + sizes[kind, 1] * normal(rng))
    q = int(x + 0.5)
    if q < 1:
        q = 1
    if q > 1_000_000_000:
        q = 1_000_000_000
    return q


@njit(cache=True)
def _sample_distance(p_zero, p_small, log_median, log_sd, rng) -> int:
    u = uniform(rng)
    if u < p_zero:
        return 0
    if u < p_zero + p_small:
        return 1 + int(uniform(rng) * 5.0)
    return 1 + int(math.exp(log_median + log_sd * normal(rng)))


# ---------------------------------------------------------------------------------------------------------------
# book primitives
# ---------------------------------------------------------------------------------------------------------------
@njit(cache=True)
def _insert_level(side, i, st, pos, lst):
    n = st[S_NLEV_BID + side]
    lst[side, n] = i
    pos[side, i] = n
    st[S_NLEV_BID + side] = n + 1


@njit(cache=True)
def _remove_level(side, i, st, pos, lst):
    n = st[S_NLEV_BID + side] - 1
    k = pos[side, i]
    last = lst[side, n]
    lst[side, k] = last
    pos[side, last] = k
    pos[side, i] = -1
    st[S_NLEV_BID + side] = n


@njit(cache=True)
def _next_level(side, j, st, qty):
    """Best remaining level at or behind index `j` (bids scan down, asks up); -1 / WINDOW when the side is empty."""
    if side == 0:
        if st[S_NLEV_BID] == 0:
            return -1
        while qty[0, j] == 0:
            j -= 1
        return j
    if st[S_NLEV_ASK] == 0:
        return WINDOW
    while qty[1, j] == 0:
        j += 1
    return j


@njit(cache=True)
def _capture_snapshot(st, qty, snap):
    """REST depth snapshot (top 1000 per side) of the book as of update id st[S_UID]."""
    for side in range(2):
        j = st[S_BEST_BID] if side == 0 else st[S_BEST_ASK]
        n_total = st[S_NLEV_BID + side]
        k = 0
        while k < SNAPSHOT_LEVELS and k < n_total and 0 <= j < WINDOW:
            if qty[side, j] > 0:
                snap[side, k, 0] = st[S_BASE] + j
                snap[side, k, 1] = qty[side, j]
                k += 1
            j = j - 1 if side == 0 else j + 1
        for r in range(k, SNAPSHOT_LEVELS):
            snap[side, r, 0] = 0
            snap[side, r, 1] = 0
    st[S_SNAP_L] = st[S_UID]
    st[S_SNAP_MSG] = st[S_MSGS]
    st[S_SNAP_STATE] = 2


@njit(cache=True)
def _record_bbo(st, qty, bt_out, counts, record_bt):
    """Append a bookTicker row when the best bid/ask price or size changed (u = the current update id)."""
    bb = st[S_BEST_BID]
    ba = st[S_BEST_ASK]
    bpx = st[S_BASE] + bb if bb >= 0 else 0
    bq = qty[0, bb] if bb >= 0 else 0
    apx = st[S_BASE] + ba if ba < WINDOW else 0
    aq = qty[1, ba] if ba < WINDOW else 0
    if bpx == st[S_BT_BPX] and bq == st[S_BT_BQ] and apx == st[S_BT_APX] and aq == st[S_BT_AQ]:
        return
    st[S_BT_BPX] = bpx
    st[S_BT_BQ] = bq
    st[S_BT_APX] = apx
    st[S_BT_AQ] = aq
    if record_bt:
        n = counts[C_BT]
        if n >= bt_out.shape[0]:
            st[S_STATUS] = STATUS_OVERFLOW
            return
        bt_out[n, 0] = st[S_UID]
        bt_out[n, 1] = st[S_MS]
        bt_out[n, 2] = bpx
        bt_out[n, 3] = bq
        bt_out[n, 4] = apx
        bt_out[n, 5] = aq
        counts[C_BT] = n + 1


@njit(cache=True)
def _set_level(side, i, newq, st, qty, pos, lst, tmark, touch, rng_aux, snap, bt_out, counts, record_bt) -> bool:
    """Set the absolute size of one level: one exchange update id, touched-list and best-price bookkeeping."""
    oldq = qty[side, i]
    if newq == oldq or i < EDGE or i >= WINDOW - EDGE:
        return False
    if oldq == 0 and st[S_FIRST_PENDING] == 1 and st[S_NLEV_BID + side] >= N_LEVELS:
        return False  # start-of-file scheme: the first book row must describe every level
    # the REST snapshot is taken strictly inside the 3rd (or a later) diff: U < L < u; the book is still as of L
    if st[S_SNAP_STATE] == 1 and st[S_MSGS] >= 2 and st[S_TICK_UPDATES] >= 2 and uniform(rng_aux) < 0.25:
        _capture_snapshot(st, qty, snap)
    if oldq == 0:
        _insert_level(side, i, st, pos, lst)
    elif newq == 0:
        _remove_level(side, i, st, pos, lst)
    st[S_UID] += 1
    if st[S_TICK_UPDATES] == 0:
        st[S_TICK_FIRST_UID] = st[S_UID]
    st[S_TICK_UPDATES] += 1
    qty[side, i] = newq
    if tmark[side, i] != st[S_TICK_NO]:
        tmark[side, i] = st[S_TICK_NO]
        nt = st[S_NTOUCH_BID + side]
        if nt >= touch.shape[1]:
            st[S_STATUS] = STATUS_OVERFLOW
        else:
            touch[side, nt] = i
            st[S_NTOUCH_BID + side] = nt + 1
    if side == 0:
        if newq > 0:
            if i > st[S_BEST_BID]:
                st[S_BEST_BID] = i
        elif i == st[S_BEST_BID]:
            st[S_BEST_BID] = _next_level(0, i - 1, st, qty)
    else:
        if newq > 0:
            if i < st[S_BEST_ASK]:
                st[S_BEST_ASK] = i
        elif i == st[S_BEST_ASK]:
            st[S_BEST_ASK] = _next_level(1, i + 1, st, qty)
    _record_bbo(st, qty, bt_out, counts, record_bt)
    return True


# ---------------------------------------------------------------------------------------------------------------
# order flow
# ---------------------------------------------------------------------------------------------------------------
@njit(cache=True)
def _sweep(is_buy, size, limit_i, p, st, rng, rng_aux, bk, out, record_bt) -> int:
    """A taker order of `size` lots up to index `limit_i`: fills level by level; returns the unfilled rest."""
    qty, pos, lst, tmark, touch = bk
    fill_out, agg_out, bt_out, snap, counts = out[3], out[4], out[5], out[6], out[7]
    side = 1 if is_buy else 0
    rem = size
    levels = 0
    while rem > 0 and levels < p.sweep_max_levels:
        best = st[S_BEST_ASK] if is_buy else st[S_BEST_BID]
        if is_buy and (best >= WINDOW or best > limit_i):
            break
        if (not is_buy) and (best < 0 or best < limit_i):
            break
        if counts[C_FILL] + 8 > fill_out.shape[0] or counts[C_AGG] + 1 > agg_out.shape[0]:
            st[S_STATUS] = STATUS_OVERFLOW
            return 0
        c = min(rem, qty[side, best])
        k = 1
        while k < 8 and uniform(rng) < p.fill_more_prob:
            k += 1
        if k > c:
            k = c
        agg_id = st[S_AGG_ID]
        st[S_AGG_ID] = agg_id + 1
        first_tid = st[S_TRADE_ID]
        left = c
        for f in range(k):
            if f == k - 1:
                part = left
            else:
                part = 1 + int(uniform(rng) * (left - (k - f - 1)))
            left -= part
            _set_level(side, best, qty[side, best] - part, st, qty, pos, lst, tmark, touch, rng_aux, snap,
                       bt_out, counts, record_bt)
            n = counts[C_FILL]
            fill_out[n, 0] = st[S_MS]
            fill_out[n, 1] = st[S_BASE] + best
            fill_out[n, 2] = part
            fill_out[n, 3] = 1 if is_buy else 0
            fill_out[n, 4] = st[S_TRADE_ID]
            fill_out[n, 5] = agg_id
            counts[C_FILL] = n + 1
            st[S_TRADE_ID] += 1
        n = counts[C_AGG]
        agg_out[n, 0] = st[S_MS]
        agg_out[n, 1] = st[S_BASE] + best
        agg_out[n, 2] = c
        agg_out[n, 3] = 1 if is_buy else 0
        agg_out[n, 4] = agg_id
        agg_out[n, 5] = first_tid
        agg_out[n, 6] = k
        counts[C_AGG] = n + 1
        rem -= c
        levels += 1
    return rem


@njit(cache=True)
def _taker_excite(is_buy, p, fs):
    if is_buy:
        fs[G_EXC_BUY] += p.taker_alpha_self
        fs[G_EXC_SELL] += p.taker_alpha_cross
    else:
        fs[G_EXC_SELL] += p.taker_alpha_self
        fs[G_EXC_BUY] += p.taker_alpha_cross
    fs[G_EXC_SLOW] += p.taker_alpha_slow
    fs[G_EXC_ACT] += p.act_alpha


@njit(cache=True)
def _order(side, price_i, size, post_only, rest, p, st, fs, rng, rng_aux, bk, out, record_bt):
    """An order of `side` (0 buys): trades first when it reaches the other side, then rests if `rest`."""
    qty, pos, lst, tmark, touch = bk
    if rest and (price_i < EDGE or price_i >= WINDOW - EDGE):
        return
    if post_only:  # market makers' post-only orders re-price one tick inside the opposite side
        if side == 0 and price_i >= st[S_BEST_ASK]:
            price_i = st[S_BEST_ASK] - 1
        elif side == 1 and price_i <= st[S_BEST_BID]:
            price_i = st[S_BEST_BID] + 1
    is_buy = side == 0
    rem = size
    if (is_buy and price_i >= st[S_BEST_ASK]) or ((not is_buy) and price_i <= st[S_BEST_BID]):
        rem = _sweep(is_buy, size, price_i, p, st, rng, rng_aux, bk, out, record_bt)
        _taker_excite(is_buy, p, fs)
        if (is_buy and price_i >= st[S_BEST_ASK]) or ((not is_buy) and price_i <= st[S_BEST_BID]):
            return  # sweep stopped at its level limit: the rest is dropped
    if rest and rem > 0:
        _set_level(side, price_i, qty[side, price_i] + rem, st, qty, pos, lst, tmark, touch, rng_aux, out[6],
                   out[5], out[7], record_bt)


@njit(cache=True)
def _cancel(side, i, full_prob, st, rng, rng_aux, bk, out, record_bt):
    qty, pos, lst, tmark, touch = bk
    q = qty[side, i]
    if q <= 0:
        return
    newq = 0
    if uniform(rng) >= full_prob:
        newq = int(q * uniform(rng))
    _set_level(side, i, newq, st, qty, pos, lst, tmark, touch, rng_aux, out[6], out[5], out[7], record_bt)


@njit(cache=True)
def _event(ev, p, sizes, st, fs, rng, rng_aux, bk, out, record_bt):
    """Decide what one event does, then do it (one order and one cancel call site keep the compiled code small)."""
    qty, lst = bk[0], bk[2]
    anchor = int(math.floor(fs[G_FAIR]))
    bb = st[S_BEST_BID]
    ba = st[S_BEST_ASK]
    order_side = -1  # 0 buy / bid, 1 sell / ask
    price_i = 0
    size = 0
    post_only = True
    rest = True
    cancel_side = -1
    cancel_i = 0
    full_prob = 1.0
    if ev == EV_TAKER_BUY or ev == EV_TAKER_SELL:
        order_side = 0 if ev == EV_TAKER_BUY else 1
        price_i = WINDOW if order_side == 0 else -1
        size = _sample_size(sizes, SIZE_TAKER, rng)
        post_only = False
        rest = False
    elif ev == EV_ADD_BID or ev == EV_ADD_ASK:
        d = _sample_distance(p.add_p_join, p.add_p_small, p.add_log_median, p.add_log_sd, rng)
        order_side = 0 if ev == EV_ADD_BID else 1
        price_i = anchor - d if order_side == 0 else anchor + 1 + d
        size = _sample_size(sizes, SIZE_ADD, rng)
        post_only = uniform(rng) < p.post_only_prob
    elif ev == EV_CANCEL_BID or ev == EV_CANCEL_ASK:
        side = 0 if ev == EV_CANCEL_BID else 1
        best = bb if side == 0 else ba
        if 0 <= best < WINDOW:
            d = _sample_distance(p.cancel_p_best, p.add_p_small, p.add_log_median, p.add_log_sd, rng)
            j = best - d if side == 0 else best + d
            for _ in range(64):  # the nearest level at or behind the drawn distance
                if j < EDGE or j >= WINDOW - EDGE:
                    break
                if qty[side, j] > 0:
                    cancel_side, cancel_i, full_prob = side, j, p.cancel_full_prob
                    break
                j = j - 1 if side == 0 else j + 1
    elif ev == EV_REFILL:
        size = _sample_size(sizes, SIZE_ADD, rng)
        bid_px = min(anchor, ba - 1)
        ask_px = max(anchor + 1, bb + 1)
        bid_ok = bb < 0 or (bid_px > bb and ba < WINDOW)
        ask_ok = ba >= WINDOW or (ask_px < ba and bb >= 0)
        if bid_ok and (not ask_ok or uniform(rng) < 0.5):
            order_side, price_i = 0, bid_px
        elif ask_ok:
            order_side, price_i = 1, ask_px
    elif ev == EV_STALE_ASK or ev == EV_STALE_BID:
        side = 1 if ev == EV_STALE_ASK else 0
        best = ba if side == 1 else bb
        if 0 <= best < WINDOW:
            cancel_side, cancel_i = side, best
    elif ev == EV_DEEP_ADD_BID or ev == EV_DEEP_ADD_ASK:
        order_side = 0 if ev == EV_DEEP_ADD_BID else 1
        dist = int(p.deep_min_ticks + math.exp(p.deep_log_median + p.deep_log_sd * normal(rng)))
        price_i = anchor - dist if order_side == 0 else anchor + 1 + dist
        size = _sample_size(sizes, SIZE_DEEP, rng)
    elif ev == EV_DEEP_CANCEL_BID or ev == EV_DEEP_CANCEL_ASK:
        side = 0 if ev == EV_DEEP_CANCEL_BID else 1
        n = st[S_NLEV_BID + side]
        if n > 0:
            cancel_side, cancel_i, full_prob = side, lst[side, int(uniform(rng) * n)], p.deep_full_prob
    elif ev == EV_JUMP:
        up = uniform(rng) < 0.5
        jump = math.exp(p.jump_log_median + p.jump_log_sd * normal(rng))
        fs[G_FAIR] += jump if up else -jump
        fs[G_EXC_JUMP] += p.jump_alpha
        if up:
            fs[G_EXC_BUY] += p.jump_to_taker
        else:
            fs[G_EXC_SELL] += p.jump_to_taker
        fs[G_FAIR] = min(max(fs[G_FAIR], float(EDGE + 4096)), float(WINDOW - EDGE - 4096))
    if order_side >= 0:
        _order(order_side, price_i, size, post_only, rest, p, st, fs, rng, rng_aux, bk, out, record_bt)
    if cancel_side >= 0:
        _cancel(cancel_side, cancel_i, full_prob, st, rng, rng_aux, bk, out, record_bt)


@njit(cache=True)
def _intensities(p, st, fs, lam) -> float:
    """Current intensity (per second) of every event type; returns their sum."""
    act = fs[G_ACT]
    bb = st[S_BEST_BID]
    ba = st[S_BEST_ASK]
    anchor = int(math.floor(fs[G_FAIR]))
    slow = 0.5 * fs[G_EXC_SLOW]
    lam[EV_TAKER_BUY] = p.taker_mu * act + fs[G_EXC_BUY] + slow
    lam[EV_TAKER_SELL] = p.taker_mu * act + fs[G_EXC_SELL] + slow
    add = p.add_mu * act + p.add_act_gain * fs[G_EXC_ACT]
    lam[EV_ADD_BID] = add
    lam[EV_ADD_ASK] = add
    can = p.cancel_mu * act + p.cancel_act_gain * fs[G_EXC_ACT]
    lam[EV_CANCEL_BID] = can
    lam[EV_CANCEL_ASK] = can
    wide = bb < 0 or ba >= WINDOW or ba - bb > 1
    lam[EV_REFILL] = p.refill_rate if wide else 0.0
    lam[EV_STALE_ASK] = p.stale_rate if (ba < WINDOW and ba <= anchor) else 0.0
    lam[EV_STALE_BID] = p.stale_rate if (bb >= 0 and bb >= anchor + 1) else 0.0
    lam[EV_DEEP_ADD_BID] = p.deep_add_mu * act
    lam[EV_DEEP_ADD_ASK] = p.deep_add_mu * act
    lam[EV_DEEP_CANCEL_BID] = p.deep_hazard * act * st[S_NLEV_BID]
    lam[EV_DEEP_CANCEL_ASK] = p.deep_hazard * act * st[S_NLEV_ASK]
    lam[EV_JUMP] = p.jump_mu * act + fs[G_EXC_JUMP]
    total = 0.0
    for k in range(N_EVENTS):
        if lam[k] > p.intensity_cap:
            lam[k] = p.intensity_cap
        total += lam[k]
    return total


@njit(cache=True)
def _close_tick(e_ms, st, bk, out):
    """End of a depth tick: one message (rows, top-20 book, ids) when anything changed."""
    qty, touch = bk[0], bk[4]
    msg_out, row_out, book_out, counts = out[0], out[1], out[2], out[7]
    nb = st[S_NTOUCH_BID]
    na = st[S_NTOUCH_ASK]
    if nb + na > 0:
        m = counts[C_MSG]
        r = counts[C_ROW]
        base = st[S_BASE]
        bids = np.sort(touch[0, :nb])[::-1]
        asks = np.sort(touch[1, :na])
        for k in range(nb):
            row_out[r, 0] = 0
            row_out[r, 1] = base + bids[k]
            row_out[r, 2] = qty[0, bids[k]]
            r += 1
        for k in range(na):
            row_out[r, 0] = 1
            row_out[r, 1] = base + asks[k]
            row_out[r, 2] = qty[1, asks[k]]
            r += 1
        counts[C_ROW] = r
        msg_out[m, 0] = e_ms
        msg_out[m, 1] = st[S_TICK_FIRST_UID]
        msg_out[m, 2] = st[S_UID]
        msg_out[m, 3] = r
        for side in range(2):
            j = st[S_BEST_BID] if side == 0 else st[S_BEST_ASK]
            n_total = st[S_NLEV_BID + side]
            col = 0 if side == 0 else 2 * N_LEVELS
            k = 0
            while k < N_LEVELS and k < n_total and 0 <= j < WINDOW:
                if qty[side, j] > 0:
                    book_out[m, col + 2 * k] = base + j
                    book_out[m, col + 2 * k + 1] = qty[side, j]
                    k += 1
                j = j - 1 if side == 0 else j + 1
            for z in range(k, N_LEVELS):
                book_out[m, col + 2 * z] = 0
                book_out[m, col + 2 * z + 1] = 0
        counts[C_MSG] = m + 1
        st[S_MSGS] += 1
        st[S_FIRST_PENDING] = 0
    st[S_NTOUCH_BID] = 0
    st[S_NTOUCH_ASK] = 0
    st[S_TICK_UPDATES] = 0
    st[S_TICK_NO] += 1


@njit(cache=True)
def _room(out, counts, record_bt, row_margin) -> bool:
    if counts[C_MSG] + 2 > out[0].shape[0]:
        return False
    if counts[C_ROW] + row_margin > out[1].shape[0]:
        return False
    if counts[C_FILL] + row_margin // 4 > out[3].shape[0] or counts[C_AGG] + row_margin // 8 > out[4].shape[0]:
        return False
    if record_bt and counts[C_BT] + row_margin > out[5].shape[0]:
        return False
    return True


@njit(cache=True)
def run_market(p, sizes, st, fs, rng, rng_aux, bk, out, ms_end, record_bt, day_start_ms, row_margin):
    """Advance the market until the tick boundary at or after `ms_end`, or until an output buffer runs low.

    Returns with st[S_MS] at a tick boundary (the next call resumes there); outputs are appended to `out`.
    """
    counts = out[7]
    lam = np.zeros(N_EVENTS, dtype=np.float64)
    dt = 0.001
    dec_fast = math.exp(-p.taker_beta_fast * dt)
    dec_slow = math.exp(-p.taker_beta_slow * dt)
    dec_act = math.exp(-p.act_beta * dt)
    dec_jump = math.exp(-p.jump_beta * dt)
    pull = 1.0 - math.exp(-p.fair_pull_per_s * dt)
    ou_dec = math.exp(-0.1 / p.logvol_tau_s)
    ou_sd = p.logvol_sd * math.sqrt(1.0 - ou_dec * ou_dec)
    ms = st[S_MS]
    while True:
        if ms == st[S_NEXT_BOUNDARY]:
            _close_tick(ms, st, bk, out)
            st[S_NEXT_BOUNDARY] = ms + 100 + (1 if uniform(rng) < p.tick_stretch_prob else 0)
            fs[G_LOGVOL] = fs[G_LOGVOL] * ou_dec + ou_sd * normal(rng)
            hour = ((ms - day_start_ms) % 86_400_000) / 3_600_000.0
            diurnal = 1.0 + p.diurnal_amp * math.cos(2.0 * math.pi * (hour - 14.5) / 24.0)
            fs[G_ACT] = math.exp(fs[G_LOGVOL] - 0.5 * p.logvol_sd * p.logvol_sd) * diurnal
            if ms >= ms_end or st[S_STATUS] != STATUS_OK or not _room(out, counts, record_bt, row_margin):
                st[S_MS] = ms
                return
        st[S_MS] = ms
        fs[G_EXC_BUY] *= dec_fast
        fs[G_EXC_SELL] *= dec_fast
        fs[G_EXC_SLOW] *= dec_slow
        fs[G_EXC_ACT] *= dec_act
        fs[G_EXC_JUMP] *= dec_jump
        bb = st[S_BEST_BID]
        ba = st[S_BEST_ASK]
        if bb >= 0 and ba < WINDOW:
            fs[G_FAIR] += (0.5 * (bb + ba + 1) - fs[G_FAIR]) * pull
        total = _intensities(p, st, fs, lam)
        n = poisson_small(rng, total * dt)
        for _ in range(n):
            total = _intensities(p, st, fs, lam)
            if total <= 0.0:
                break
            u = uniform(rng) * total
            ev = 0
            acc = lam[0]
            while acc < u and ev < N_EVENTS - 1:
                ev += 1
                acc += lam[ev]
            _event(ev, p, sizes, st, fs, rng, rng_aux, bk, out, record_bt)
            # market makers usually re-quote within the same millisecond when the spread opens
            if ev != EV_REFILL and st[S_BEST_ASK] - st[S_BEST_BID] > 1 and uniform(rng) < p.refill_same_ms_prob:
                _event(EV_REFILL, p, sizes, st, fs, rng, rng_aux, bk, out, record_bt)
            if st[S_STATUS] != STATUS_OK:
                return
        ms += 1


@njit(cache=True)
def init_market(p, sizes, st, fs, rng, bk, fair):
    """Initial book: `init_levels` levels per side around the anchor with the near-touch distance profile."""
    qty, pos, lst = bk[0], bk[1], bk[2]
    fs[G_FAIR] = fair
    fs[G_ACT] = 1.0
    anchor = int(math.floor(fair))
    for side in range(2):
        j = anchor if side == 0 else anchor + 1
        for _ in range(int(p.init_levels)):
            qty[side, j] = _sample_size(sizes, SIZE_ADD, rng)
            _insert_level(side, j, st, pos, lst)
            step = 1 + int(exponential(rng) * 3.0)
            j = j - step if side == 0 else j + step
    st[S_BEST_BID] = anchor
    st[S_BEST_ASK] = anchor + 1


# ---------------------------------------------------------------------------------------------------------------
# Python side
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class ChunkOutput:
    """One `Market.run` call: depth messages (with their rows and top-20 book), fills, aggregate trades, BBO changes.

    Prices are absolute int64 ticks, sizes int64 lots, times int64 exchange milliseconds.
    """

    msg_e_ms: np.ndarray  # exchange (emit) time of each message
    msg_first_uid: np.ndarray  # U
    msg_last_uid: np.ndarray  # u
    msg_row_end: np.ndarray  # end offset of the message's rows in `row_*` (chunk-local)
    row_is_bid: np.ndarray
    row_price: np.ndarray
    row_size: np.ndarray
    book: np.ndarray  # (n_msg, 80): bid_0_price, bid_0_size, …, ask_19_size (0 = absent level)
    fills: np.ndarray  # (n, 6): T ms, price, qty, is_buy, trade_id, agg_id
    aggs: np.ndarray  # (n, 7): T ms, price, qty, is_buy, agg_id, first_trade_id, n_fills
    bookticker: np.ndarray  # (n, 6): update_id, ms, bid_px, bid_qty, ask_px, ask_qty (empty unless recorded)
    end_ms: int  # the tick boundary this chunk stopped at

    @property
    def n_messages(self) -> int:
        return len(self.msg_e_ms)

    @property
    def msg_row_start(self) -> np.ndarray:
        return np.concatenate(([0], self.msg_row_end[:-1])).astype(np.int64)


@dataclass
class RestSnapshot:
    last_update_id: int
    message_index: int  # global index of the diff message that contains lastUpdateId (U < L < u)
    bids: np.ndarray  # (n, 2) price ticks, qty lots, best first
    asks: np.ndarray


class Market:
    """The seeded true market; `run(ms_end)` advances it and returns what happened as arrays."""

    def __init__(self, params: MarketParams, sizes: np.ndarray, seed: int, start_ms: int, day_start_ms: int,
                 start_price: float, tick: Decimal, *, buffer_rows: int = 1_500_000, buffer_msgs: int = 8_000):
        self.p = params
        self.sizes = sizes
        self.day_start_ms = int(day_start_ms)
        self.rng = new_state(seed, 1)
        self.rng_aux = new_state(seed, 2)
        meta = np.random.default_rng([int(seed), 77])
        self.st = np.zeros(N_INT_STATE, dtype=np.int64)
        self.fs = np.zeros(N_FLOAT_STATE, dtype=np.float64)
        fair_ticks = int(round(start_price * (1.0 + meta.uniform(-0.001, 0.001)) / float(tick)))
        base = max(1, fair_ticks - WINDOW // 2)
        self.st[S_BASE] = base
        self.st[S_BEST_ASK] = WINDOW
        self.st[S_BEST_BID] = -1
        self.st[S_UID] = int(50_093_000_000 + meta.integers(0, 1_000_000))
        self.st[S_TRADE_ID] = int(3_735_000_000 + meta.integers(0, 1_000_000))
        self.st[S_AGG_ID] = int(1_640_000_000 + meta.integers(0, 1_000_000))
        self.st[S_MS] = int(start_ms)
        self.st[S_NEXT_BOUNDARY] = int(start_ms) + int(meta.integers(1, 100))
        self.st[S_FIRST_PENDING] = 1
        self.st[S_SNAP_STATE] = 1
        self.bk = (
            np.zeros((2, WINDOW), dtype=np.int64),  # qty
            np.full((2, WINDOW), -1, dtype=np.int32),  # pos in level list
            np.zeros((2, WINDOW), dtype=np.int32),  # level list
            np.full((2, WINDOW), -1, dtype=np.int32),  # tick number of the last touch
            np.zeros((2, TOUCH_CAP), dtype=np.int32),  # levels touched in the current tick
        )
        self.snap = np.zeros((2, SNAPSHOT_LEVELS, 2), dtype=np.int64)
        init_market(self.p, self.sizes, self.st, self.fs, self.rng, self.bk, float(fair_ticks - base) + 0.5)
        self._bufs = (
            np.zeros((buffer_msgs, 4), dtype=np.int64),
            np.zeros((buffer_rows, 3), dtype=np.int64),
            np.zeros((buffer_msgs, 4 * N_LEVELS), dtype=np.int64),
            np.zeros((buffer_rows // 4, 6), dtype=np.int64),
            np.zeros((buffer_rows // 8, 7), dtype=np.int64),
            np.zeros((buffer_rows, BT_FIELDS), dtype=np.int64),
            self.snap,
            np.zeros(N_COUNTS, dtype=np.int64),
        )
        self.row_margin = 200_000

    @property
    def base(self) -> int:
        """Absolute tick of array index 0."""
        return int(self.st[S_BASE])

    @property
    def now_ms(self) -> int:
        return int(self.st[S_MS])

    def run(self, ms_end: int, *, record_bookticker: bool) -> ChunkOutput:
        counts = self._bufs[7]
        counts[:] = 0
        run_market(self.p, self.sizes, self.st, self.fs, self.rng, self.rng_aux, self.bk, self._bufs, int(ms_end),
                   bool(record_bookticker), self.day_start_ms, self.row_margin)
        if self.st[S_STATUS] != STATUS_OK:
            raise RuntimeError(f"simulator: an output buffer overflowed at exchange ms {self.now_ms}; "
                               "increase Market(buffer_rows=…)")
        msg, rows, book, fills, aggs, bt = self._bufs[:6]
        n_msg, n_row, n_fill, n_agg, n_bt = (int(x) for x in counts[:5])
        return ChunkOutput(
            msg_e_ms=msg[:n_msg, 0].copy(),
            msg_first_uid=msg[:n_msg, 1].copy(),
            msg_last_uid=msg[:n_msg, 2].copy(),
            msg_row_end=msg[:n_msg, 3].copy(),
            row_is_bid=rows[:n_row, 0] == 0,
            row_price=rows[:n_row, 1].copy(),
            row_size=rows[:n_row, 2].copy(),
            book=book[:n_msg].copy(),
            fills=fills[:n_fill].copy(),
            aggs=aggs[:n_agg].copy(),
            bookticker=bt[:n_bt].copy(),
            end_ms=self.now_ms,
        )

    def rest_snapshot(self) -> RestSnapshot | None:
        """The REST depth snapshot taken inside the 3rd (or a later) diff, once it exists."""
        if self.st[S_SNAP_STATE] != 2:
            return None
        nb = int(np.count_nonzero(self.snap[0, :, 0]))
        na = int(np.count_nonzero(self.snap[1, :, 0]))
        return RestSnapshot(int(self.st[S_SNAP_L]), int(self.st[S_SNAP_MSG]), self.snap[0, :nb].copy(),
                            self.snap[1, :na].copy())
