"""Plotly figures for the HTML report, built from the compact curves the metric code stored in `plots`.

Figures are returned as plain dicts (`fig.to_plotly_json()`), rendered by one script in the page: the plotly
library is embedded once, no figure carries its own copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

GOLD, RECON = "#1f77b4", "#d62728"
# No per-figure template: resolving "plotly_white" deep-copies the whole template into every figure (most of the
# report's rendering time, and a copy per figure in the page). The page applies it once (`template_json`).
LAYOUT = {"height": 320, "margin": {"l": 55, "r": 20, "t": 40, "b": 45}, "template": {},
          "legend": {"orientation": "h", "y": -0.25}}
TEMPLATE = "plotly_white"


def template_json() -> str:
    """The layout template every figure of the page shares, as JSON (embedded once)."""
    import plotly.io as pio

    return pio.to_json(pio.templates[TEMPLATE].layout, validate=False)


def _blank() -> go.Figure:
    """An empty figure without a template (make_subplots would deep-copy the default one)."""
    return go.Figure(layout={"template": {}})


def _times(ns: list[int]) -> list[str]:
    return [np.datetime64(int(t), "ns").astype("datetime64[ms]").astype(str) for t in ns]


def _centers(edges: list[float]) -> list[float]:
    e = np.asarray(edges, dtype=float)
    return ((e[1:] + e[:-1]) / 2).tolist()


def _pair_bars(title: str, x: list, g: list, r: list, labels: tuple[str, str], xlabel: str = "") -> go.Figure:
    fig = go.Figure([go.Bar(x=x, y=g, name=labels[0], marker_color=GOLD, opacity=0.7),
                     go.Bar(x=x, y=r, name=labels[1], marker_color=RECON, opacity=0.7)])
    fig.update_layout(title=title, barmode="group", xaxis_title=xlabel, yaxis_title="share", **LAYOUT)
    return fig


def _hist_fig(title: str, h: dict, labels: tuple[str, str], xlabel: str) -> go.Figure:
    x = _centers(h["edges"])
    fig = go.Figure([go.Scatter(x=x, y=h["golden"], name=labels[0], line={"color": GOLD, "shape": "hvh"}),
                     go.Scatter(x=x, y=h["recon"], name=labels[1], line={"color": RECON, "shape": "hvh"})])
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title="share", **LAYOUT)
    return fig


def _qq_fig(title: str, q: dict, labels: tuple[str, str], xkey: str = "golden", ykey: str = "recon") -> go.Figure:
    x, y = q[xkey], q[ykey]
    lo, hi = float(min(min(x), min(y))), float(max(max(x), max(y)))
    fig = go.Figure([go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", line={"color": "#999"}),
                     go.Scatter(x=x, y=y, mode="markers", name=f"{labels[1]} vs {labels[0]}",
                                marker={"color": RECON, "size": 5})])
    fig.update_layout(title=title, xaxis_title=f"{labels[0]} quantiles", yaxis_title=f"{labels[1]} quantiles",
                      **LAYOUT)
    return fig


def distributions(p: dict, labels: tuple[str, str]) -> dict[str, go.Figure]:
    figs: dict[str, go.Figure] = {}
    if "trade_size" in p:
        figs["dist_trade_size"] = _hist_fig("Trade size", p["trade_size"]["hist"], labels, p["trade_size"]["xlabel"])
        pm = p["trade_size"]["pointmass"]
        figs["dist_pointmass"] = _pair_bars("Round-lot point masses", pm["labels"], pm["golden"], pm["recon"], labels,
                                            "trade size (base units)")
    if "taker_interval" in p:
        figs["dist_taker_interval"] = _hist_fig("Time between taker orders", p["taker_interval"]["hist"], labels,
                                                p["taker_interval"]["xlabel"])
    if "spread" in p:
        s = p["spread"]
        figs["dist_spread"] = _pair_bars("Spread (time-weighted)", s["labels"], s["golden"], s["recon"], labels,
                                         "ticks")
    for side in ("bid", "ask"):
        if side in p.get("tob_depth", {}):
            figs[f"dist_tob_{side}"] = _hist_fig(f"Top-of-book {side} size (time-weighted)",
                                                 p["tob_depth"][side]["hist"], labels, "log1p(size, base units)")
    if "imbalance" in p:
        im = p["imbalance"]
        figs["dist_imbalance"] = _pair_bars("L1 imbalance (time-weighted)", [f"{c:.1f}" for c in _centers(im["edges"])],
                                            im["golden"], im["recon"], labels, "(Qb − Qa)/(Qb + Qa)")
    if "imbalance_auc" in p:
        a = p["imbalance_auc"]
        figs["imbalance_pup"] = _pair_bars(
            f"P(next mid move up | imbalance) — AUC {labels[0]} {_fmt(a['auc_golden'])}, {labels[1]} "
            f"{_fmt(a['auc_recon'])}", a["buckets"], a["golden"], a["recon"], labels, "imbalance bucket")
    return figs


def qq_plots(p: dict, labels: tuple[str, str]) -> dict[str, go.Figure]:
    figs: dict[str, go.Figure] = {}
    if "trade_size" in p:
        figs["qq_trade_size"] = _qq_fig("Q-Q: log10 trade size", p["trade_size"]["qq"], labels)
    if "taker_interval" in p:
        figs["qq_taker_interval"] = _qq_fig("Q-Q: log10 ms between taker orders", p["taker_interval"]["qq"], labels)
    if "bid" in p.get("tob_depth", {}):
        figs["qq_tob_bid"] = _qq_fig("Q-Q: log1p top-of-book bid size", p["tob_depth"]["bid"]["qq"], labels)
    if "hawkes" in p:
        q = p["hawkes"]["qq_exp"]
        fig = go.Figure([go.Scatter(x=q["theory"], y=q["theory"], mode="lines", name="Exp(1)", line={"color": "#999"}),
                         go.Scatter(x=q["theory"], y=q["golden"], mode="markers", name=labels[0],
                                    marker={"color": GOLD, "size": 5}),
                         go.Scatter(x=q["theory"], y=q["recon"], mode="markers", name=labels[1],
                                    marker={"color": RECON, "size": 5})])
        fig.update_layout(title="Hawkes time-rescaling residuals (golden fit) vs Exp(1)",
                          xaxis_title="Exp(1) quantiles", yaxis_title="residual quantiles", **LAYOUT)
        figs["qq_hawkes"] = fig
    return figs


def acf_plots(p: dict, labels: tuple[str, str]) -> dict[str, go.Figure]:
    if "acf" not in p:
        return {}
    a = p["acf"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("ACF of |r| (1 s mid returns)", "ACF of r²"),
                        figure=_blank())
    band = float(a["band_golden"])
    for col, key in ((1, "abs"), (2, "sq")):
        fig.add_trace(go.Bar(x=a["lags"], y=a[f"{key}_golden"], name=labels[0], marker_color=GOLD, opacity=0.7,
                             showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Bar(x=a["lags"], y=a[f"{key}_recon"], name=labels[1], marker_color=RECON, opacity=0.7,
                             showlegend=col == 1), row=1, col=col)
        for sgn in (1, -1):
            fig.add_trace(go.Scatter(x=[a["lags"][0], a["lags"][-1]], y=[sgn * band] * 2, mode="lines",
                                     line={"color": "#999", "dash": "dash"}, name="±2/√n noise band",
                                     showlegend=col == 1 and sgn == 1), row=1, col=col)
    fig.update_layout(barmode="group", **LAYOUT)
    return {"acf": fig}


def tier_a_plots(p: dict) -> dict[str, go.Figure]:
    figs: dict[str, go.Figure] = {}
    if "bbo_error" in p:
        e = p["bbo_error"]
        t = _times(e["time_ns"])
        fig = make_subplots(specs=[[{"secondary_y": True}]], figure=_blank())
        fig.add_trace(go.Scatter(x=t, y=e["max_err_ticks"], name="max |error| (ticks)", line={"color": RECON}))
        fig.add_trace(go.Scatter(x=t, y=e["mismatch_share"], name="mismatch share", line={"color": GOLD}),
                      secondary_y=True)
        fig.update_layout(title="BBO error over time (10 ms grid)", **LAYOUT)
        fig.update_yaxes(title_text="ticks", secondary_y=False)
        fig.update_yaxes(title_text="share", range=[0, 1], secondary_y=True)
        figs["bbo_error"] = fig
    if "lag_scan" in p:
        ls = p["lag_scan"]
        fig = go.Figure(go.Scatter(x=ls["lag_ms"], y=ls["match_rate"], mode="lines+markers", line={"color": GOLD}))
        fig.update_layout(title="Lag scan: grid match rate vs reconstruction shift",
                          xaxis_title="lag (ms; positive = reconstruction late)",
                          yaxis_title="match rate", **LAYOUT)
        figs["lag_scan"] = fig
    if "depth" in p:
        d = p["depth"]
        if d.get("heat_time_ns"):
            finite = [v for row in d["heat_rel_l1"] for v in row if v is not None]
            zmax = max([0.05, *finite])  # a fixed floor: a perfect match stays white instead of a flat colour
            fig = go.Figure(go.Heatmap(x=_times(d["heat_time_ns"]), y=list(range(1, 21)), z=d["heat_rel_l1"],
                                       colorscale="Reds", zmin=0, zmax=zmax, colorbar={"title": "rel. L1"}))
            fig.update_layout(title="Per-level depth error by price (relative L1, bid+ask)",
                              yaxis_title="level", **{**LAYOUT, "height": 380})
            figs["depth_heatmap"] = fig
        pl_ = d["per_level"]
        fig = go.Figure()
        curves = (("ladder_match", "ladder match share", GOLD), ("spearman", "Spearman log1p", "#2ca02c"),
                  ("pearson", "Pearson ρ (raw sizes)", "#9467bd"), ("rel_l1", "relative L1 error", RECON))
        for key, name, color in curves:
            fig.add_trace(go.Scatter(x=pl_["level"], y=pl_[key], mode="lines+markers", name=name,
                                     line={"color": color}))
        fig.update_layout(title="Per-level depth agreement", xaxis_title="level", **LAYOUT)
        figs["depth_levels"] = fig
    if "drift" in p or "ladder_mismatch" in p:
        fig = go.Figure()
        if "drift" in p:
            fig.add_trace(go.Scatter(x=_times(p["drift"]["time_ns"]), y=p["drift"]["value"], mode="lines+markers",
                                     name="drift levels at lake snapshots", line={"color": RECON}))
        if "ladder_mismatch" in p:
            fig.add_trace(go.Scatter(x=_times(p["ladder_mismatch"]["time_ns"]), y=p["ladder_mismatch"]["value"],
                                     mode="lines", name="mismatched levels vs golden", line={"color": GOLD}))
        fig.update_layout(title="Drift over time", yaxis_title="price levels (of 40)", **LAYOUT)
        figs["drift"] = fig
    return figs


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.3f}"


def all_figures(plots: dict, labels: tuple[str, str]) -> dict[str, dict[str, go.Figure]]:
    """Sections of the report → figures (empty sections are left out by the template)."""
    return {"Paired replay accuracy (Tier A)": tier_a_plots(plots),
            "Distributions": distributions(plots, labels),
            "Q-Q plots": qq_plots(plots, labels),
            "Volatility clustering": acf_plots(plots, labels)}
