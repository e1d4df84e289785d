"""Feature extraction from canonical frames — one function per feature, applied identically to both sides.

Each function fixes its sampling convention (research §2.8): time-weighted features are read on a regular grid of
exchange time; event features keep one value per event; returns are taken on the bootstrap slot grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from lake_pipeline.fidelity.frames import MarketView
from lake_pipeline.fidelity.hawkes import MS, taker_orders
from lake_pipeline.fidelity.stats import Sample, SlotAxis
from lake_pipeline.fidelity.trade_conventions import taker_price_runs


@dataclass(frozen=True)
class BboSamples:
    """Best bid/ask read at given times (state in force at each time); `valid` is False before the first quote."""

    times: np.ndarray
    valid: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray


def sample_bbo(bbo: pl.DataFrame, times: np.ndarray) -> BboSamples:
    """As-of (backward) lookup of the BBO step function at `times` (the last row at or before each time)."""
    t = bbo["time_ns"].to_numpy()
    idx = np.searchsorted(t, times, side="right") - 1
    valid = idx >= 0
    j = np.clip(idx, 0, max(len(t) - 1, 0))
    cols = [bbo[c].to_numpy()[j] if len(t) else np.zeros(len(times), np.int64)
            for c in ("bid_px", "bid_sz", "ask_px", "ask_sz")]
    return BboSamples(np.asarray(times), valid & (len(t) > 0), *cols)


def grid_times(start_ns: int, end_ns: int, step_ms: float) -> np.ndarray:
    return np.arange(int(start_ns), int(end_ns), int(step_ms * MS), dtype=np.int64)


def grid_bbo(view: MarketView, step_ms: float) -> BboSamples:
    """Time-weighted view of the book: the BBO on a regular grid over the view's window, valid points only."""
    s = sample_bbo(view.bbo, grid_times(view.start_ns, view.end_ns, step_ms))
    v = s.valid
    return BboSamples(s.times[v], v[v], s.bid_px[v], s.bid_sz[v], s.ask_px[v], s.ask_sz[v])


def trade_log_sizes(view: MarketView, axis: SlotAxis) -> Sample:
    """log10 size of each taker-order×price run: fills and aggregates compare like with like (trade_conventions)."""
    runs = taker_price_runs(view.trades)
    q = runs["qty"].to_numpy()
    keep = q > 0
    return Sample(np.log10(q[keep] * float(view.lot)), axis.slot_of(runs["time_ns"].to_numpy()[keep]))


@dataclass(frozen=True)
class TakerFlow:
    """Taker orders (same-ms same-side fills collapsed): their times and the durations between them."""

    times_ns: np.ndarray
    durations_ms: Sample
    fills_per_order: float


def taker_flow(view: MarketView, axis: SlotAxis) -> TakerFlow:
    orders = taker_orders(view.trades)
    t = orders["time_ns"].to_numpy()
    d = np.diff(t) / MS
    fills = float(orders["fills"].mean()) if orders.height else float("nan")
    return TakerFlow(t, Sample(d.astype(np.float64), axis.slot_of(t[1:])), fills)


def spread_ticks(s: BboSamples) -> np.ndarray:
    return s.ask_px - s.bid_px


def imbalance(bid_sz: np.ndarray, ask_sz: np.ndarray) -> np.ndarray:
    """I = (Qb − Qa)/(Qb + Qa) in [−1, 1]; 0 where both queues are empty."""
    tot = (bid_sz + ask_sz).astype(np.float64)
    return np.divide((bid_sz - ask_sz).astype(np.float64), tot, out=np.zeros_like(tot), where=tot > 0)


@dataclass(frozen=True)
class MidMoves:
    """Each mid-price change: the L1 imbalance just before it, whether it went up, and its slot."""

    imbalance: np.ndarray
    up: np.ndarray
    slots: np.ndarray


def mid_moves(view: MarketView, axis: SlotAxis) -> MidMoves:
    b = view.bbo
    mid2 = (b["bid_px"] + b["ask_px"]).to_numpy()
    imb = imbalance(b["bid_sz"].to_numpy(), b["ask_sz"].to_numpy())
    ch = np.flatnonzero(np.diff(mid2) != 0) + 1
    return MidMoves(imb[ch - 1], mid2[ch] > mid2[ch - 1], axis.slot_of(b["time_ns"].to_numpy()[ch]))


def slot_returns(view: MarketView, axis: SlotAxis) -> np.ndarray:
    """Mid log-return over each slot (length n_slots; NaN where the book is not yet defined)."""
    edges = axis.t0_ns + np.arange(axis.n_slots + 1, dtype=np.int64) * axis.slot_ns
    s = sample_bbo(view.bbo, edges)
    mid = np.where(s.valid & (s.bid_px > 0) & (s.ask_px > 0), (s.bid_px + s.ask_px) / 2.0, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diff(np.log(mid))


def aggregate_returns(r: np.ndarray, k: int) -> np.ndarray:
    """Sum of k consecutive slot returns (for the 10 s kurtosis shown as information)."""
    n = (r.size // k) * k
    return r[:n].reshape(-1, k).sum(axis=1)
