"""Tier B: distributional realism — one effect-size distance per stylised fact, each with a block-bootstrap
interval and a calibrated tolerance (research fidelity.md §3.1–§3.2).

Every family function takes a `Comparison` and a `plots` dict it fills with compact, JSON-ready curves for the
report (histograms on fixed bins, Q-Q quantiles, ACF vectors). Moments and i.i.d. K-S p-values go into each
metric's `details` as information only — they are never gated on (research §2).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps

from lake_pipeline.fidelity import features as fx
from lake_pipeline.fidelity import hawkes, stats
from lake_pipeline.fidelity.compare import Comparison
from lake_pipeline.fidelity.scoring import MetricResult

ROUND_LOTS = (0.0001, 0.001, 0.01, 0.1, 1.0)
SPREAD_CATEGORIES = ("≤0", "1", "2", "3", "4", "5+")
IMBALANCE_EDGES = np.linspace(-1.0, 1.0, 11)
QQ_PROBS = np.linspace(0.005, 0.995, 100)


def _hist(xg: np.ndarray, xr: np.ndarray, edges: np.ndarray, wg=None, wr=None) -> dict[str, Any]:
    hg, _ = np.histogram(xg, edges, weights=wg)
    hr, _ = np.histogram(xr, edges, weights=wr)
    return {"edges": edges.tolist(), "golden": (hg / max(hg.sum(), 1e-300)).tolist(),
            "recon": (hr / max(hr.sum(), 1e-300)).tolist()}


def _qq(xg: np.ndarray, xr: np.ndarray) -> dict[str, Any]:
    return {"probs": QQ_PROBS.tolist(), "golden": np.quantile(xg, QQ_PROBS).tolist(),
            "recon": np.quantile(xr, QQ_PROBS).tolist()}


def _common_edges(xg: np.ndarray, xr: np.ndarray, bins: int = 60) -> np.ndarray:
    both = np.concatenate([xg, xr])
    lo, hi = np.quantile(both, [0.001, 0.999]) if both.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def _info(xg: np.ndarray, xr: np.ndarray, wg=None, wr=None) -> dict[str, Any]:
    """Moments and the i.i.d. two-sample K-S test: shown with the sample sizes, never gated."""
    return {"moments_golden": stats.moments(xg, wg), "moments_recon": stats.moments(xr, wr),
            **stats.ks_information(xg, xr)}


def _slot_hist(cmp: Comparison, values_g, slots_g, values_r, slots_r, edges):
    return (stats.SlotHistogram.binned(values_g, slots_g, cmp.axis_g.n_slots, edges),
            stats.SlotHistogram.binned(values_r, slots_r, cmp.axis_r.n_slots, edges))


def _ecdf(cmp: Comparison, g: stats.Sample, r: stats.Sample) -> stats.PooledECDF:
    return stats.PooledECDF(g, r, cmp.axis_g.n_slots, cmp.axis_r.n_slots)


def _identity(cmp: Comparison) -> tuple[stats.Resample, stats.Resample]:
    return stats.Resample.identity(cmp.axis_g.n_slots), stats.Resample.identity(cmp.axis_r.n_slots)


def _shares(h: stats.SlotHistogram, r: stats.Resample) -> list[float]:
    v = h(r)
    return (v / max(v.sum(), 1e-300)).tolist()


# ---------------------------------------------------------------------------------------------------------------


def trade_size(cmp: Comparison, plots: dict) -> list[MetricResult]:
    sg, sr = fx.trade_log_sizes(cmp.g, cmp.axis_g), fx.trade_log_sizes(cmp.r, cmp.axis_r)
    names = ["trade_size_ks", "trade_size_w1_iqr", "trade_size_pointmass_tv"]

    def run() -> list[MetricResult]:
        ecdf = _ecdf(cmp, sg, sr)
        q75, q25 = np.percentile(sg.values, [75, 25])
        iqr = float(q75 - q25) or float(np.std(sg.values)) or 1.0
        info = _info(sg.values, sr.values)
        lots = [v for v in ROUND_LOTS if v >= float(cmp.g.lot)]
        cat_g, cat_r = _round_lot_category(sg.values, lots), _round_lot_category(sr.values, lots)
        edges = np.arange(len(lots) + 2, dtype=np.float64)
        hg, hr = _slot_hist(cmp, cat_g, sg.slots, cat_r, sr.slots, edges)
        ident = _identity(cmp)
        plots["trade_size"] = {"hist": _hist(sg.values, sr.values, _common_edges(sg.values, sr.values)),
                               "qq": _qq(sg.values, sr.values), "xlabel": "log10 trade size (base units)",
                               "pointmass": {"labels": [f"{v:g}" for v in lots] + ["other"],
                                             "golden": _shares(hg, ident[0]), "recon": _shares(hr, ident[1])}}
        return cmp.gate_many(
            {"trade_size_ks": ecdf.ks, "trade_size_w1_iqr": lambda a, b: ecdf.w1(a, b) / iqr,
             "trade_size_pointmass_tv": lambda a, b: stats.total_variation(hg(a), hr(b))},
            {"trade_size_ks": {**info, "ecdf_exact": ecdf.exact}, "trade_size_w1_iqr": {"golden_iqr": iqr},
             "trade_size_pointmass_tv": {"round_lots": lots}})

    return cmp.guarded(names, run, {"golden trades": len(sg), "recon trades": len(sr)})


def _round_lot_category(log10_sizes: np.ndarray, lots: list[float]) -> np.ndarray:
    """Index of the round lot each size equals (to 1e-9 relative), else len(lots) for "other"."""
    cat = np.full(log10_sizes.size, float(len(lots)))
    for i, v in enumerate(lots):
        cat[np.abs(log10_sizes - np.log10(v)) < 1e-9] = i
    return cat


# ---------------------------------------------------------------------------------------------------------------


def inter_event(cmp: Comparison, plots: dict) -> list[MetricResult]:
    fg, fr = fx.taker_flow(cmp.g, cmp.axis_g), fx.taker_flow(cmp.r, cmp.axis_r)
    dg, dr = fg.durations_ms, fr.durations_ms
    names = ["taker_interval_ks", "taker_zero_gap_diff"]

    def run() -> list[MetricResult]:
        ecdf = _ecdf(cmp, dg, dr)
        zg = stats.SlotRatio(dg.values == 0, np.ones(len(dg)), dg.slots, cmp.axis_g.n_slots)
        zr = stats.SlotRatio(dr.values == 0, np.ones(len(dr)), dr.slots, cmp.axis_r.n_slots)

        def zero_diff(a: stats.Resample, b: stats.Resample) -> float:
            return abs(zg(a) - zr(b))

        lg, lr = np.log10(dg.values[dg.values > 0]), np.log10(dr.values[dr.values > 0])
        info = _info(lg, lr)
        info.update(fills_per_order_golden=fg.fills_per_order, fills_per_order_recon=fr.fills_per_order,
                    zero_gap_share_golden=float(np.mean(dg.values == 0)),
                    zero_gap_share_recon=float(np.mean(dr.values == 0)))
        plots["taker_interval"] = {"hist": _hist(lg, lr, _common_edges(lg, lr)), "qq": _qq(lg, lr),
                                   "xlabel": "log10 ms between taker orders (positive gaps)"}
        return cmp.gate_many({"taker_interval_ks": ecdf.ks, "taker_zero_gap_diff": zero_diff},
                             {"taker_interval_ks": info})

    out = cmp.guarded(names, run, {"golden taker orders": len(dg), "recon taker orders": len(dr)})
    return out + _hawkes(cmp, fg, fr, plots)


def _hawkes(cmp: Comparison, fg: fx.TakerFlow, fr: fx.TakerFlow, plots: dict) -> list[MetricResult]:
    names = ["hawkes_branching_diff", "hawkes_log_beta_diff", "hawkes_residual_ks"]
    seed = int(cmp.tol.setting("hawkes_seed"))

    def run() -> list[MetricResult]:
        tg = hawkes.jittered_times(fg.times_ns, cmp.g.start_ns, seed)
        tr = hawkes.jittered_times(fr.times_ns, cmp.r.start_ns, seed)
        try:
            fit_g = hawkes.fit(tg, max(cmp.g.duration_s, float(tg[-1])))
            fit_r = hawkes.fit(tr, max(cmp.r.duration_s, float(tr[-1])))
        except (ValueError, FloatingPointError) as exc:
            return [cmp.na(n, f"Hawkes fit failed: {exc}") for n in names]
        z = float(sps.norm.ppf(0.5 + float(cmp.tol.bootstrap["level"]) / 2))
        method = ("asymptotic: |Δ| ± z·√(se_g² + se_r²) from the observed information of each fit "
                  "(conservative when paired)")
        fits = {"golden": fit_g.as_dict(), "recon": fit_r.as_dict()}
        out = []
        for name, dv, se in (
            ("hawkes_branching_diff", abs(fit_r.n - fit_g.n), np.hypot(fit_g.se_n, fit_r.se_n)),
            ("hawkes_log_beta_diff", abs(np.log(fit_r.beta) - np.log(fit_g.beta)),
             np.hypot(fit_g.se_log_beta, fit_r.se_log_beta)),
        ):
            lo, hi = (max(0.0, dv - z * se), dv + z * se) if np.isfinite(se) else (None, None)
            out.append(cmp.result(name, dv, lo, hi, ci_method=method, details={"fits": fits}))
        # time-rescaling residuals of both sides under the GOLDEN fit (research §4.2)
        res_g = hawkes.residuals(tg, fit_g.mu, fit_g.n, fit_g.beta)
        res_r = hawkes.residuals(tr, fit_g.mu, fit_g.n, fit_g.beta)
        sg = stats.Sample(res_g, cmp.axis_g.slot_of(cmp.g.start_ns + (tg[1:] * 1e9).astype(np.int64)))
        sr = stats.Sample(res_r, cmp.axis_r.slot_of(cmp.r.start_ns + (tr[1:] * 1e9).astype(np.int64)))
        ecdf = _ecdf(cmp, sg, sr)
        one_sample = {"golden_vs_exp1_D": float(sps.kstest(res_g, "expon").statistic),
                      "recon_vs_exp1_D": float(sps.kstest(res_r, "expon").statistic)}
        out.append(cmp.gate("hawkes_residual_ks", ecdf.ks, {"fits": fits, **one_sample}))
        probs = QQ_PROBS
        plots["hawkes"] = {"fits": fits, "qq_exp": {"probs": probs.tolist(), "theory": sps.expon.ppf(probs).tolist(),
                                                    "golden": np.quantile(res_g, probs).tolist(),
                                                    "recon": np.quantile(res_r, probs).tolist()}}
        return out

    return cmp.guarded(names, run, {"golden taker orders": len(fg.times_ns), "recon taker orders": len(fr.times_ns)})


# ---------------------------------------------------------------------------------------------------------------


def book_shape(cmp: Comparison, plots: dict) -> list[MetricResult]:
    """Time-weighted spread, top-of-book depth and imbalance on the Tier B grid; imbalance's predictive power."""
    step = float(cmp.tol.setting("tier_b_grid_ms"))
    bg, br = fx.grid_bbo(cmp.g, step), fx.grid_bbo(cmp.r, step)
    slg, slr = cmp.axis_g.slot_of(bg.times), cmp.axis_r.slot_of(br.times)
    need = {"golden grid points": len(bg.times), "recon grid points": len(br.times)}
    out = cmp.guarded(["spread_tv", "spread_p1_diff"], lambda: _spread(cmp, bg, br, slg, slr, plots), need)
    out += cmp.guarded(["tob_depth_ks"], lambda: _tob_depth(cmp, bg, br, slg, slr, plots), need)
    out += cmp.guarded(["imbalance_tv"], lambda: _imbalance(cmp, bg, br, slg, slr, plots), need)
    mg, mr = fx.mid_moves(cmp.g, cmp.axis_g), fx.mid_moves(cmp.r, cmp.axis_r)
    out += cmp.guarded(["imbalance_auc_diff"], lambda: _imbalance_auc(cmp, mg, mr, plots),
                       {"golden mid moves": len(mg.up), "recon mid moves": len(mr.up)})
    return out


def _spread(cmp, bg, br, slg, slr, plots) -> list[MetricResult]:
    cg = np.clip(fx.spread_ticks(bg), 0, 5).astype(np.float64)
    cr = np.clip(fx.spread_ticks(br), 0, 5).astype(np.float64)
    edges = np.arange(7, dtype=np.float64)
    hg, hr = _slot_hist(cmp, cg, slg, cr, slr, edges)

    def p1(h: stats.SlotHistogram, r: stats.Resample) -> float:
        v = h(r)
        return float(v[1] / max(v.sum(), 1e-300))

    ident = _identity(cmp)
    plots["spread"] = {"labels": list(SPREAD_CATEGORIES), "golden": _shares(hg, ident[0]),
                       "recon": _shares(hr, ident[1])}
    info = _info(fx.spread_ticks(bg).astype(float), fx.spread_ticks(br).astype(float))
    return cmp.gate_many({"spread_tv": lambda a, b: stats.total_variation(hg(a), hr(b)),
                          "spread_p1_diff": lambda a, b: abs(p1(hg, a) - p1(hr, b))}, {"spread_tv": info})


def _tob_depth(cmp, bg, br, slg, slr, plots) -> list[MetricResult]:
    lot_g, lot_r = float(cmp.g.lot), float(cmp.r.lot)
    sides = {}
    for side in ("bid", "ask"):
        xg = np.log1p(getattr(bg, f"{side}_sz") * lot_g)
        xr = np.log1p(getattr(br, f"{side}_sz") * lot_r)
        sides[side] = (_ecdf(cmp, stats.Sample(xg, slg), stats.Sample(xr, slr)), xg, xr)
    details: dict[str, Any] = {}
    plots["tob_depth"] = {}
    for side, (ecdf, xg, xr) in sides.items():
        q75, q25 = np.percentile(xg, [75, 25])
        iqr = float(q75 - q25) or 1.0
        ident = _identity(cmp)
        details[side] = {"ks": ecdf.ks(*ident), "w1_iqr": ecdf.w1(*ident) / iqr, **_info(xg, xr)}
        plots["tob_depth"][side] = {"hist": _hist(xg, xr, _common_edges(xg, xr)), "qq": _qq(xg, xr)}
    return [cmp.gate("tob_depth_ks", lambda a, b: max(e.ks(a, b) for e, _, _ in sides.values()), details)]


def _imbalance(cmp, bg, br, slg, slr, plots) -> list[MetricResult]:
    ig, ir = fx.imbalance(bg.bid_sz, bg.ask_sz), fx.imbalance(br.bid_sz, br.ask_sz)
    edges = IMBALANCE_EDGES.copy()
    edges[-1] += 1e-9
    hg, hr = _slot_hist(cmp, ig, slg, ir, slr, edges)
    ident = _identity(cmp)
    plots["imbalance"] = {"edges": IMBALANCE_EDGES.tolist(), "golden": _shares(hg, ident[0]),
                          "recon": _shares(hr, ident[1])}
    return [cmp.gate("imbalance_tv", lambda a, b: stats.total_variation(hg(a), hr(b)),
                     _info(ig, ir))]


def _imbalance_auc(cmp, mg: fx.MidMoves, mr: fx.MidMoves, plots) -> list[MetricResult]:
    auc_g, auc_r = stats.SlotAUC(mg.imbalance, mg.up, mg.slots), stats.SlotAUC(mr.imbalance, mr.up, mr.slots)

    buckets = np.linspace(-1.0, 1.0, 6)
    buckets[-1] += 1e-9

    def p_up(m: fx.MidMoves) -> list[float]:
        b = np.clip(np.searchsorted(buckets, m.imbalance, side="right") - 1, 0, 4)
        n = np.bincount(b, minlength=5)
        u = np.bincount(b, weights=m.up.astype(float), minlength=5)
        return [float(u[i] / n[i]) if n[i] else float("nan") for i in range(5)]

    ident_g, ident_r = _identity(cmp)
    pg, pr = p_up(mg), p_up(mr)
    diffs = [abs(a - b) for a, b in zip(pg, pr, strict=True) if np.isfinite(a) and np.isfinite(b)]
    details = {"auc_golden": auc_g(ident_g), "auc_recon": auc_r(ident_r), "p_up_golden": pg, "p_up_recon": pr,
               "max_bucket_p_up_diff": max(diffs) if diffs else None, "mid_moves_golden": int(mg.up.size),
               "mid_moves_recon": int(mr.up.size)}
    plots["imbalance_auc"] = {"buckets": ["[-1,-.6)", "[-.6,-.2)", "[-.2,.2)", "[.2,.6)", "[.6,1]"],
                              "golden": pg, "recon": pr, "auc_golden": details["auc_golden"],
                              "auc_recon": details["auc_recon"]}
    return [cmp.gate("imbalance_auc_diff", lambda a, b: abs(auc_g(a) - auc_r(b)), details)]


# ---------------------------------------------------------------------------------------------------------------


def volatility_and_tails(cmp: Comparison, plots: dict) -> list[MetricResult]:
    rg, rr = fx.slot_returns(cmp.g, cmp.axis_g), fx.slot_returns(cmp.r, cmp.axis_r)
    lags = int(cmp.tol.setting("acf_lags"))
    frac = float(cmp.tol.setting("hill_tail_fraction"))
    need = {"golden returns": int(np.isfinite(rg).sum()), "recon returns": int(np.isfinite(rr).sum())}
    out = cmp.guarded(["vol_acf_abs_l2", "vol_acf_sq_l2"], lambda: _acf_metrics(cmp, rg, rr, lags, plots),
                      {**need, "needed for the lags": min(need.values()) - 2 * lags + cmp.min_events})
    nz_g = np.flatnonzero(np.isfinite(rg) & (rg != 0))
    nz_r = np.flatnonzero(np.isfinite(rr) & (rr != 0))
    out += cmp.guarded(["return_hill_diff", "return_quantile_ratio_diff"],
                       lambda: _return_tails(cmp, rg, rr, nz_g, nz_r, frac),
                       {"golden non-zero returns": nz_g.size, "recon non-zero returns": nz_r.size})
    sg, sr = fx.trade_log_sizes(cmp.g, cmp.axis_g), fx.trade_log_sizes(cmp.r, cmp.axis_r)

    def size_tail() -> list[MetricResult]:
        xg, xr = 10.0**sg.values, 10.0**sr.values
        hg = stats.SlotHill(xg, sg.slots, cmp.axis_g.n_slots, frac)
        hr = stats.SlotHill(xr, sr.slots, cmp.axis_r.n_slots, frac)
        ag, ar = hg(_identity(cmp)[0]), hr(_identity(cmp)[1])
        return [cmp.gate("trade_size_hill_diff", lambda a, b: abs(hg(a) - hr(b)),
                         {"hill_golden": ag, "hill_recon": ar, "tail_fraction": frac,
                          "kurtosis_golden": stats.moments(xg)["kurtosis"],
                          "kurtosis_recon": stats.moments(xr)["kurtosis"]})]

    out += cmp.guarded(["trade_size_hill_diff"], size_tail, {"golden trades": len(sg), "recon trades": len(sr)})
    return out


def _acf_metrics(cmp, rg, rr, lags, plots) -> list[MetricResult]:
    def acfs(r: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = r[idx]
        x = x[np.isfinite(x)]
        return stats.acf(np.abs(x), lags), stats.acf(x * x, lags)

    def l2(kind: int):
        return lambda a, b: float(np.sqrt(np.sum((acfs(rg, a.idx)[kind] - acfs(rr, b.idx)[kind]) ** 2)))

    ag, ar = acfs(rg, np.arange(rg.size)), acfs(rr, np.arange(rr.size))
    ng, nr = int(np.isfinite(rg).sum()), int(np.isfinite(rr).sum())
    plots["acf"] = {"lags": list(range(1, lags + 1)), "abs_golden": ag[0].tolist(), "abs_recon": ar[0].tolist(),
                    "sq_golden": ag[1].tolist(), "sq_recon": ar[1].tolist(),
                    "band_golden": 2 / np.sqrt(ng), "band_recon": 2 / np.sqrt(nr)}
    k10 = int(round(10 / float(cmp.tol.setting("slot_seconds")))) or 1
    fin = lambda r: r[np.isfinite(r)]  # noqa: E731
    info = {"n_returns_golden": ng, "n_returns_recon": nr, "noise_band_golden": 2 / np.sqrt(ng),
            "moments_1s_golden": stats.moments(fin(rg)), "moments_1s_recon": stats.moments(fin(rr)),
            "kurtosis_10s_golden": stats.moments(fin(fx.aggregate_returns(rg, k10)))["kurtosis"],
            "kurtosis_10s_recon": stats.moments(fin(fx.aggregate_returns(rr, k10)))["kurtosis"]}
    return cmp.gate_many({"vol_acf_abs_l2": l2(0), "vol_acf_sq_l2": l2(1)}, {"vol_acf_abs_l2": info})


def _return_tails(cmp, rg, rr, nz_g, nz_r, frac) -> list[MetricResult]:
    ag_abs, ar_abs = np.abs(rg[nz_g]), np.abs(rr[nz_r])

    qg = stats.SlotQuantile(stats.Sample(ag_abs, nz_g), cmp.axis_g.n_slots)
    qr_ = stats.SlotQuantile(stats.Sample(ar_abs, nz_r), cmp.axis_r.n_slots)

    def qratio(q: stats.SlotQuantile, r: stats.Resample) -> float:
        q50, q99 = q(r, 0.5), q(r, 0.99)
        return float(np.log(q99 / q50)) if q50 > 0 else float("nan")

    hill_g = stats.SlotHill(ag_abs, nz_g, cmp.axis_g.n_slots, frac)
    hill_r = stats.SlotHill(ar_abs, nz_r, cmp.axis_r.n_slots, frac)

    def hill(a, b):
        return abs(hill_g(a) - hill_r(b))

    def qr(a, b):
        return abs(qratio(qg, a) - qratio(qr_, b))

    ig, ir = _identity(cmp)
    details = {"hill_golden": hill_g(ig), "hill_recon": hill_r(ir),
               "log_q99_q50_golden": qratio(qg, ig), "log_q99_q50_recon": qratio(qr_, ir)}
    return cmp.gate_many({"return_hill_diff": hill, "return_quantile_ratio_diff": qr}, {"return_hill_diff": details})


FAMILY_FUNCTIONS = (trade_size, inter_event, book_shape, volatility_and_tails)


def run(cmp: Comparison) -> tuple[list[MetricResult], dict[str, Any]]:
    """All Tier B metrics for one comparison, plus the curves the report draws."""
    plots: dict[str, Any] = {"paired": cmp.paired}
    results: list[MetricResult] = []
    for fn in FAMILY_FUNCTIONS:
        results += fn(cmp, plots)
    return results, plots
