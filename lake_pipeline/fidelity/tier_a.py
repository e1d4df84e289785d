"""Tier A: paired replay accuracy — the golden capture and the reconstruction cover the same period, so compare
them event by event and state by state (research fidelity.md §3.1).

* integrity: trade ids reproduced with identical price/qty/side; the reconstruction's own id and sequence gaps;
* BBO aligned by update id (golden bookTicker with the largest u' ≤ u of each reconstructed message) and on a
  10 ms grid of exchange time, with a ±500 ms lag scan that exposes clock offsets;
* per-level depth compared BY PRICE (one missing level must not smear errors over every deeper index);
* drift at snapshots and its trend (also computable from the reconstruction alone).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import polars as pl
from scipy import stats as sps

from lake_pipeline.fidelity import features as fx
from lake_pipeline.fidelity import stats
from lake_pipeline.fidelity.compare import Comparison
from lake_pipeline.fidelity.frames import BBO_COLS, ladder_arrays, snap_ms
from lake_pipeline.fidelity.hawkes import MS
from lake_pipeline.fidelity.scoring import MetricResult
from lake_pipeline.fidelity.trade_conventions import match_trades
from lake_pipeline.schemas import N_LEVELS

MAX_PLOT_POINTS = 2000
MAX_EXAMPLES = 10


def _rate(cmp: Comparison, hits: np.ndarray, slots: np.ndarray, weights: np.ndarray | None = None):
    """Statistic Σ hits / Σ weights (default: one per check) over the golden-side (paired) slot draws."""
    ratio = stats.SlotRatio(hits, np.ones(hits.size) if weights is None else weights, slots, cmp.axis_g.n_slots)
    return lambda a, b: ratio(a)


def _count(cmp: Comparison, name: str, value: int, details: dict | None = None) -> MetricResult:
    return cmp.result(name, float(value), ci_method="exact count (no sampling uncertainty)", details=details)


# ---------------------------------------------------------------------------------------------------------------
# Integrity
# ---------------------------------------------------------------------------------------------------------------


SEED_WINDOW_S = 10  # resyncs this soon after the partition's first book message are "after seeding"


def recon_integrity(cmp: Comparison) -> list[MetricResult]:
    """Checks the reconstruction can fail on its own: trade-id holes and repeats, real sequence breaks.

    Expected events are reported in the details, not counted: the partition's first message (the seed: a
    partition edge) and snapshot resyncs with measured drift — with 20-level lake snapshots, levels deeper than
    the seed appear as the price moves and are resynchronised; the drift family gates how much drift there is.
    Real breaks: update ids going backwards, and gap/resync flags that no snapshot drift explains (time holes,
    crossed books, invalid snapshots)."""
    r = cmp.r
    ids = np.sort(r.trades["trade_id"].drop_nulls().to_numpy())
    d = np.diff(ids)
    repeats = int((d == 0).sum()) if d.size else 0
    missing = int(np.clip(d - 1, 0, None).sum()) if d.size else 0
    out = [_count(cmp, "trade_id_gaps", missing,
                  {"trades": int(ids.size),
                   "first_gaps": [[int(ids[i]), int(ids[i + 1])] for i in np.flatnonzero(d > 1)[:MAX_EXAMPLES]]}),
           _count(cmp, "trade_duplicates", repeats,
                  {"trades": int(ids.size), "distinct_ids": int(ids.size - repeats),
                   "first_repeated_ids": [int(ids[i]) for i in np.flatnonzero(d == 0)[:MAX_EXAMPLES]]})]
    empty = {"trades": r.trades.height == 0, "two-sided book": r.bbo.height == 0}
    out.append(_count(cmp, "missing_streams", sum(empty.values()),
                      {"missing": [k for k, v in empty.items() if v], "trades": r.trades.height,
                       "two_sided_book_messages": r.bbo.height,
                       "book_messages": 0 if r.messages is None else r.messages.height}))
    if r.messages is None or r.messages.height == 0:
        return out + [cmp.na("recon_sequence_breaks", "the reconstruction has no book messages")]
    m = r.messages.sort("time_ns", maintain_order=True)
    last = m["last_id"].to_numpy()
    back = int((np.diff(last) < 0).sum())
    gap = m["gap"].to_numpy().copy()
    resync = m["snapshot_resync"].to_numpy() if "snapshot_resync" in m.columns else np.zeros(gap.size, bool)
    edge = np.zeros(gap.size, bool)
    edge[0] = True
    t = m["time_ns"].to_numpy()
    seeded = (t - t[0]) < SEED_WINDOW_S * 1_000_000_000
    real = gap & ~resync & ~edge
    expected = gap & (resync | edge)
    details = {"messages": int(last.size), "backwards": back, "gap_flagged_unexplained": int(real.sum()),
               "expected_events": {"partition_edge_seed": int((gap & edge).sum()),
                                   "snapshot_resyncs": int((gap & resync & ~edge).sum()),
                                   f"snapshot_resyncs_first_{SEED_WINDOW_S}s_after_seed":
                                       int((gap & resync & ~edge & seeded).sum())},
               "expected_total": int(expected.sum()),
               "first_real_breaks_ns": [int(x) for x in t[real][:MAX_EXAMPLES]],
               "rule": "expected events are reported, not gated: the seed at the partition edge, and snapshot "
                       "resyncs with measured drift (gated by the drift family)"}
    return out + [_count(cmp, "recon_sequence_breaks", back + int(real.sum()), details)]


def paired_integrity(cmp: Comparison) -> list[MetricResult]:
    g, r = cmp.g, cmp.r
    out: list[MetricResult] = []
    if g.messages is not None and g.messages.height > 1:
        m = g.messages
        gaps = m.filter(pl.col("gap"))  # the venue's continuity rule, decided by the adapter
        out.append(_count(cmp, "golden_sequence_gaps", gaps.height,
                          {"diffs": m.height, "first_gaps": gaps.head(MAX_EXAMPLES).to_dicts()}))
    else:
        out.append(cmp.na("golden_sequence_gaps", "the golden capture has no depth diffs in the window"))
    gt = g.trades
    if gt.height < cmp.min_events:
        return out + [cmp.na("trade_match_rate", f"only {gt.height} golden trades in the window")]
    m, rates = match_trades(gt, g.agg_trades, r.trades)
    joined = m.joined
    dt_ms = ((joined["time_r"] - joined["time_ns"]) / MS).drop_nulls().to_numpy()
    bad = joined.filter(~pl.Series(m.hit)).head(MAX_EXAMPLES)
    details = {"convention": m.convention, "convention_match_rates": rates, "golden_trades": gt.height,
               "golden_rows_compared": m.golden.height, "missing_in_recon": int((~m.present).sum()),
               "different_in_recon": int((m.present & ~m.hit).sum()),
               "time_offset_ms_p50": float(np.median(np.abs(dt_ms))) if dt_ms.size else None,
               "time_offset_ms_max": float(np.abs(dt_ms).max()) if dt_ms.size else None,
               "examples": bad.to_dicts()}
    out.append(cmp.gate("trade_match_rate",
                        _rate(cmp, m.hit, cmp.axis_g.slot_of(m.golden["time_ns"].to_numpy())), details))
    return out


# ---------------------------------------------------------------------------------------------------------------
# BBO
# ---------------------------------------------------------------------------------------------------------------


def bbo_update_aligned(cmp: Comparison) -> list[MetricResult]:
    q = cmp.g.quotes
    if q is None or q.height == 0:
        return [cmp.na("bbo_update_match_rate", "the golden capture has no bookTicker stream")]
    q = q.sort("update_id")
    lo, hi = int(q["update_id"][0]), int(q["update_id"][-1])
    rec = cmp.r.bbo.filter(pl.col("update_id").is_between(lo, hi)).sort("update_id")
    if rec.height < cmp.min_events:
        return [cmp.na("bbo_update_match_rate",
                       f"only {rec.height} reconstructed book messages inside the golden update-id range [{lo}, {hi}]")]
    j = rec.join_asof(q, on="update_id", strategy="backward", suffix="_g")
    eq = {c: (j[c] == j[f"{c}_g"]).fill_null(False).to_numpy() for c in BBO_COLS}
    hit = eq["bid_px"] & eq["bid_sz"] & eq["ask_px"] & eq["ask_sz"]
    price_hit = eq["bid_px"] & eq["ask_px"]
    bad = j.filter(~pl.Series(hit)).head(MAX_EXAMPLES)
    details = {"checkpoints": int(hit.size), "price_only_match_rate": float(price_hit.mean()),
               "golden_quotes": q.height, "update_id_range": [lo, hi], "first_mismatches": bad.to_dicts()}
    return [cmp.gate("bbo_update_match_rate", _rate(cmp, hit, cmp.axis_g.slot_of(j["time_ns"].to_numpy())), details)]


def bbo_grid(cmp: Comparison, plots: dict) -> list[MetricResult]:
    names = ["bbo_grid_match_rate", "bbo_grid_err_p99_ticks", "bbo_grid_rms_ticks", "bbo_longest_mismatch_ms",
             "bbo_lag_ms"]
    gb, rb = cmp.g.bbo, cmp.r.bbo
    if gb.height == 0 or rb.height == 0:
        return [cmp.na(n, "a side has no BBO in the common window") for n in names]
    step = float(cmp.tol.setting("grid_ms"))
    start = max(int(gb["time_ns"][0]), int(rb["time_ns"][0]), cmp.g.start_ns)
    times = fx.grid_times(start, cmp.g.end_ns, step)
    if times.size < cmp.min_events:
        return [cmp.na(n, f"only {times.size} grid points where both sides have a book") for n in names]
    sg, sr = fx.sample_bbo(gb, times), fx.sample_bbo(rb, times)
    eb, ea = np.abs(sr.bid_px - sg.bid_px), np.abs(sr.ask_px - sg.ask_px)
    err = np.maximum(eb, ea).astype(np.float64)
    hit = (eb == 0) & (ea == 0) & (sr.bid_sz == sg.bid_sz) & (sr.ask_sz == sg.ask_sz)
    slots = cmp.axis_g.slot_of(times)
    mean_sq = stats.SlotRatio((eb.astype(np.float64) ** 2 + ea.astype(np.float64) ** 2) / 2.0, np.ones(eb.size),
                              slots, cmp.axis_g.n_slots)
    p99 = stats.SlotQuantile(stats.Sample(err, slots), cmp.axis_g.n_slots)
    run = stats.longest_run(~hit)
    lags, rates = _lag_scan(cmp, times, gb, rb)
    best = int(np.argmax(rates + 1e-12 * (-np.abs(lags))))  # ties -> smallest |lag|
    details = {"grid_ms": step, "points": int(times.size),
               "price_only_match_rate": float(((eb == 0) & (ea == 0)).mean()),
               "err_p50_ticks": float(np.median(err)), "err_max_ticks": float(err.max())}
    plots["bbo_error"] = _error_timeline(times, err, hit)
    plots["lag_scan"] = {"lag_ms": lags.tolist(), "match_rate": rates.tolist()}
    return [
        *cmp.gate_many({"bbo_grid_match_rate": _rate(cmp, hit, slots),
                        "bbo_grid_err_p99_ticks": lambda a, b: p99(a, 0.99),
                        "bbo_grid_rms_ticks": lambda a, b: float(np.sqrt(mean_sq(a)))},
                       {"bbo_grid_match_rate": details}),
        _count(cmp, "bbo_longest_mismatch_ms", int(run * step), {"grid_ms": step}),
        cmp.result("bbo_lag_ms", float(abs(lags[best])), ci_method="argmax of the lag scan",
                   details={"best_lag_ms": float(lags[best]), "match_rate_at_best": float(rates[best]),
                            "match_rate_at_zero": float(rates[lags.size // 2])}),
    ]


def _lag_scan(cmp: Comparison, times: np.ndarray, gb: pl.DataFrame, rb: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Grid match rate per lag: reconstruction state at t + lag vs golden at t (positive lag = reconstruction late)."""
    span, step = int(cmp.tol.setting("lag_scan_ms")), int(cmp.tol.setting("lag_step_ms"))
    n = int(cmp.tol.setting("lag_scan_points"))
    sub = times[:: max(1, times.size // n)]
    sg = fx.sample_bbo(gb, sub)
    lags = np.arange(-span, span + step, step, dtype=np.int64)
    rates = np.empty(lags.size)
    for i, lag in enumerate(lags):
        sr = fx.sample_bbo(rb, sub + lag * MS)
        rates[i] = float(((sr.bid_px == sg.bid_px) & (sr.ask_px == sg.ask_px) & (sr.bid_sz == sg.bid_sz)
                          & (sr.ask_sz == sg.ask_sz) & sr.valid).mean())
    return lags, rates


def _error_timeline(times: np.ndarray, err: np.ndarray, hit: np.ndarray) -> dict[str, Any]:
    """Max |error| and mismatch share per time bucket (≤ MAX_PLOT_POINTS buckets) for the report."""
    n_b = min(MAX_PLOT_POINTS, times.size)
    b = np.minimum(((times - times[0]) * n_b) // max(int(times[-1] - times[0]) + 1, 1), n_b - 1)
    mx = np.zeros(n_b)
    np.maximum.at(mx, b, err)
    cnt = np.bincount(b, minlength=n_b)
    mis = np.bincount(b, weights=(~hit).astype(float), minlength=n_b)
    first = np.full(n_b, -1, dtype=np.int64)
    first[b[::-1]] = times[::-1]
    keep = cnt > 0
    return {"time_ns": first[keep].tolist(), "max_err_ticks": mx[keep].tolist(),
            "mismatch_share": (mis[keep] / cnt[keep]).tolist()}


# ---------------------------------------------------------------------------------------------------------------
# Depth by price
# ---------------------------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _sizes_at_prices(g_px: np.ndarray, r_px: np.ndarray, r_sz: np.ndarray) -> np.ndarray:
    """For each golden level price, the reconstruction's size at that same price (0 when absent from its top 20)."""
    t_n, l_n = g_px.shape
    out = np.zeros((t_n, l_n), np.int64)
    for t in range(t_n):
        for k in range(l_n):
            p = g_px[t, k]
            if p < 0:
                continue
            for j in range(l_n):
                if r_px[t, j] == p:
                    out[t, k] = r_sz[t, j]
                    break
    return out


def depth(cmp: Comparison, plots: dict) -> list[MetricResult]:
    names = ["depth_ladder_match_rate", "depth_rel_l1_error", "depth_spearman_log1p"]
    gl, rl = cmp.g.ladder, cmp.r.ladder
    if gl is None or gl.height == 0:
        return [cmp.na(n, "no golden depth ladder (golden book not rebuilt)") for n in names]
    if rl is None or rl.height == 0:
        return [cmp.na(n, "no reconstructed book states in the window") for n in names]
    gl, rl = gl.sort("time_ns"), rl.sort("time_ns")
    lookup, between = _ladder_alignment(cmp.r, rl["time_ns"].to_numpy())
    gi = np.searchsorted(gl["time_ns"].to_numpy(), lookup, side="right") - 1
    after_start = gi >= 0
    keep = after_start & ~between
    if keep.sum() < cmp.min_events:
        return [cmp.na(n, f"only {int(keep.sum())} book states after the golden book starts and not between a "
                          f"trade and the next book message") for n in names]
    skipped = _between_rows_info(gl[gi[after_start & between]], rl.filter(pl.Series(after_start & between)))
    rl = rl.filter(pl.Series(keep))
    gl = gl[gi[keep]]
    times = rl["time_ns"].to_numpy()
    slots = cmp.axis_g.slot_of(times)
    parts = {}
    for side in ("bid", "ask"):
        g_px, g_sz = ladder_arrays(gl, side)
        r_px, r_sz = ladder_arrays(rl, side)
        parts[side] = (g_px, g_sz, _sizes_at_prices(g_px, r_px, r_sz), r_px == g_px)
    present = np.concatenate([(parts[s][0] >= 0) for s in parts], axis=1)
    g_sz = np.concatenate([parts[s][1] for s in parts], axis=1).astype(np.float64)
    q_r = np.concatenate([parts[s][2] for s in parts], axis=1).astype(np.float64)
    ladder_ok = np.concatenate([parts[s][3] for s in parts], axis=1) & present
    abs_err = np.abs(q_r - g_sz) * present
    per_level = _per_level(parts, _evenly_spaced(times.size, 20_000))
    spearman, sp_details = _spearman(cmp, times, slots, g_sz, q_r, present, per_level)
    out = cmp.gate_many(
        {"depth_ladder_match_rate": _rate(cmp, ladder_ok.sum(1), slots, present.sum(1).astype(float)),
         "depth_rel_l1_error": _rate(cmp, abs_err.sum(1), slots, (g_sz * present).sum(1)),
         "depth_spearman_log1p": spearman},
        {"depth_ladder_match_rate": {"book_states": int(times.size), "alignment": LADDER_ALIGNMENT, **skipped},
         "depth_spearman_log1p": sp_details})
    plots["depth"] = {"per_level": per_level, **_depth_heatmap(times, abs_err, g_sz * present)}
    mism = (~ladder_ok & present).sum(1)
    plots["ladder_mismatch"] = _bucket_mean(times, mism.astype(float))
    return out


LADDER_ALIGNMENT = ("each book-state row vs the golden book after the last diff with E <= the row's time, both on "
                    "the exchange's millisecond; rows between a trade and the next book message are not gated")


def _snap_ms(t: np.ndarray) -> np.ndarray:
    """`frames.snap_ms` on a numpy array."""
    return pl.DataFrame({"t": t}).select(snap_ms(pl.col("t")))["t"].to_numpy()


def _ladder_alignment(r, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Golden lookup time per book-state row, and which rows lie between a trade and the next book message.

    * The golden ladder is stamped with each diff's E (ms); a row is compared with the golden book after the last
      diff with E <= the row's ms. A book message of that same ms whose float-noisy lake time fell just after the
      row (…000128 vs a grid time …000000) was not applied yet, so the row is looked up just before that ms.
    * Between a trade and the next book message the reconstruction holds a provisional trade-consumed level (its
      estimate of the book between diffs) while the golden diff book is stale by construction, so neither side is
      the truth there; those rows are reported (`between_*` details), not gated. Rows at every other instant are
      message-aligned states both sides define identically.
    """
    snapped = _snap_ms(times)
    msgs = r.messages
    if msgs is None or msgs.height == 0:
        return snapped, np.zeros(times.size, bool)
    mt = np.sort(msgs["time_ns"].to_numpy())
    nxt = np.searchsorted(mt, times, side="right")
    next_ms = _snap_ms(mt[np.minimum(nxt, mt.size - 1)])
    lookup = np.where((nxt < mt.size) & (next_ms == snapped), snapped - 1, snapped)
    prev = np.searchsorted(mt, times, side="right") - 1
    last_msg = np.where(prev >= 0, mt[np.maximum(prev, 0)], np.iinfo(np.int64).min)
    tt = np.sort(r.trades["time_ns"].to_numpy())
    trades_since = np.searchsorted(tt, times, side="right") - np.searchsorted(tt, last_msg, side="right")
    return lookup, trades_since > 0


def _between_rows_info(gl: pl.DataFrame, rl: pl.DataFrame) -> dict[str, Any]:
    """Information only: how rows between a trade and the next book message compare (price and size per level)."""
    if rl.height == 0:
        return {"between_trade_and_message_rows": 0}
    ok, present = 0, 0
    for side in ("bid", "ask"):
        g_px, g_sz = ladder_arrays(gl, side)
        r_px, r_sz = ladder_arrays(rl, side)
        ok += int(((g_px == r_px) & (g_sz == r_sz) & (g_px >= 0)).sum())
        present += int((g_px >= 0).sum())
    return {"between_trade_and_message_rows": rl.height,
            "between_level_match_rate": ok / present if present else None}


def _evenly_spaced(n: int, at_most: int) -> np.ndarray:
    """At most `at_most` evenly spaced indices of range(n) (all of them when n is small)."""
    return np.arange(0, n, max(1, -(-n // at_most)))


def _per_level(parts: dict, sel: np.ndarray) -> dict[str, list]:
    """Per level 1..20 (bid and ask pooled): ladder match share, relative L1 error, Spearman and Pearson ρ
    (the correlations on the book states `sel`, ≤ 20k evenly spaced, so a full day stays cheap)."""
    res: dict[str, list] = {"level": list(range(1, N_LEVELS + 1)), "ladder_match": [], "rel_l1": [], "spearman": [],
                            "pearson": []}
    in_sel = np.concatenate([np.isin(np.arange(parts[s][0].shape[0]), sel) for s in parts])
    for k in range(N_LEVELS):
        pres = np.concatenate([parts[s][0][:, k] >= 0 for s in parts])
        g = np.concatenate([parts[s][1][:, k] for s in parts]).astype(np.float64)[pres]
        r = np.concatenate([parts[s][2][:, k] for s in parts]).astype(np.float64)[pres]
        ok = np.concatenate([parts[s][3][:, k] for s in parts])[pres]
        res["ladder_match"].append(float(ok.mean()) if ok.size else None)
        res["rel_l1"].append(float(np.abs(r - g).sum() / g.sum()) if g.sum() > 0 else None)
        sub = in_sel[pres]
        res["spearman"].append(_corr_or_none(sps.spearmanr, np.log1p(g[sub]), np.log1p(r[sub])))
        res["pearson"].append(_corr_or_none(sps.pearsonr, g[sub], r[sub]))
    return res


def _corr_or_none(fn, x: np.ndarray, y: np.ndarray) -> float | None:
    if x.size < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return 1.0 if x.size and np.array_equal(x, y) else None
    v = float(fn(x, y)[0])
    return v if np.isfinite(v) else None


def _spearman(cmp, times, slots, g_sz, q_r, present, per_level):
    """Pooled Spearman of log1p sizes at the golden prices: ranks once (on ≤ 50k evenly spaced book states, so a
    full day stays cheap), replicates re-weight per-slot sums."""
    sel = _evenly_spaced(times.size, 50_000)
    pres = present[sel]
    g = np.log1p(g_sz[sel][pres])
    r = np.log1p(q_r[sel][pres])
    sl = np.repeat(slots[sel], pres.sum(1))
    rg = sps.rankdata(g)
    rr = rg if np.array_equal(g, r) else sps.rankdata(r)
    corr = stats.SlotCorrelation(rg, rr, sl, cmp.axis_g.n_slots)
    details = {"pairs": int(g.size), "book_states_used": int(sel.size), "per_level_spearman": per_level["spearman"],
               "per_level_pearson": per_level["pearson"]}
    return (lambda a, b: corr(a)), details


def _depth_heatmap(times: np.ndarray, abs_err: np.ndarray, g_sz: np.ndarray, buckets: int = 120) -> dict[str, Any]:
    """Relative L1 size error per level (bid and ask pooled) per time bucket."""
    n_b = min(buckets, times.size)
    b = np.minimum(((times - times[0]) * n_b) // max(int(times[-1] - times[0]) + 1, 1), n_b - 1)
    half = abs_err.shape[1] // 2
    err = abs_err[:, :half] + abs_err[:, half:]
    tot = g_sz[:, :half] + g_sz[:, half:]
    z = np.full((N_LEVELS, n_b), np.nan)
    for k in range(N_LEVELS):
        e = np.bincount(b, weights=err[:, k], minlength=n_b)
        t = np.bincount(b, weights=tot[:, k], minlength=n_b)
        z[k] = np.where(t > 0, e / np.where(t > 0, t, 1), np.nan)
    first = np.full(n_b, -1, dtype=np.int64)
    first[b[::-1]] = times[::-1]
    keep = first >= 0
    return {"heat_time_ns": first[keep].tolist(), "heat_rel_l1": [[None if not np.isfinite(v) else float(v)
                                                                   for v in row[keep]] for row in z]}


def _bucket_mean(times: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    n_b = min(MAX_PLOT_POINTS, times.size)
    b = np.minimum(((times - times[0]) * n_b) // max(int(times[-1] - times[0]) + 1, 1), n_b - 1)
    cnt = np.bincount(b, minlength=n_b)
    s = np.bincount(b, weights=y, minlength=n_b)
    first = np.full(n_b, -1, dtype=np.int64)
    first[b[::-1]] = times[::-1]
    keep = cnt > 0
    return {"time_ns": first[keep].tolist(), "value": (s[keep] / cnt[keep]).tolist()}


# ---------------------------------------------------------------------------------------------------------------
# Drift at snapshots
# ---------------------------------------------------------------------------------------------------------------


def drift(cmp: Comparison, plots: dict) -> list[MetricResult]:
    """Drift measured by the reconstructor at each lake snapshot, its mean and its trend (levels per hour)."""
    d = cmp.r.drift
    names = ["drift_levels_mean", "drift_slope_per_hour"]
    if d is None or d.height == 0:
        return [cmp.na(n, "the reconstruction has no snapshots with drift measurements in the window") for n in names]
    t = d["time_ns"].to_numpy()
    y = d["drift_levels"].fill_null(0).to_numpy().astype(np.float64)
    slots = cmp.axis_r.slot_of(t)
    hours = (t - t[0]) / 3.6e12
    plots["drift"] = _bucket_mean(t, y)
    mean_levels = stats.SlotRatio(y, np.ones(y.size), slots, cmp.axis_r.n_slots)
    info = {"snapshots": int(y.size), "snapshots_with_drift": int((y > 0).sum()), "max_levels": float(y.max())}
    min_minutes = float(cmp.tol.setting("drift_trend_min_minutes"))
    if hours[-1] * 60 < min_minutes or np.unique(hours).size < 2:
        return [cmp.gate("drift_levels_mean", lambda a, b: mean_levels(b), info),
                cmp.na("drift_slope_per_hour", f"snapshots span {hours[-1] * 60:.1f} min; a trend in levels per "
                                               f"hour needs at least {min_minutes:g} min")]
    # only a RISING trend is accumulating drift; drift that fades (resyncs after seeding) is not
    slope = stats.SlotSlope(hours, y, slots, cmp.axis_r.n_slots)
    return cmp.gate_many({"drift_levels_mean": lambda a, b: mean_levels(b),
                          "drift_slope_per_hour": lambda a, b: max(0.0, slope(b))},
                         {"drift_levels_mean": info,
                          "drift_slope_per_hour": {"signed_slope_per_hour": stats.ols_slope(hours, y)}})


def run_paired(cmp: Comparison) -> tuple[list[MetricResult], dict[str, Any]]:
    """All Tier A metrics that need the golden capture."""
    plots: dict[str, Any] = {}
    results = paired_integrity(cmp) + bbo_update_aligned(cmp) + bbo_grid(cmp, plots) + depth(cmp, plots)
    return results, plots


def run_recon_only(cmp: Comparison) -> tuple[list[MetricResult], dict[str, Any]]:
    """Tier A metrics the reconstruction can fail on its own (integrity holes, drift)."""
    plots: dict[str, Any] = {}
    return recon_integrity(cmp) + drift(cmp, plots), plots
