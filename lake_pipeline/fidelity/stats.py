"""Effect-size distances and the time-block bootstrap that gives them honest intervals (research fidelity.md §2–§3).

Why this shape: market features are serially dependent, so an i.i.d. resample understates uncertainty (research
§2.2). We resample *time*: the common time axis is cut into slots (1 s by default) and a stationary bootstrap
(Politis & Romano 1994) draws runs of consecutive slots with mean length `block_slots`. A replicate is described by
the sequence of slot indices it drew (`Resample.idx`) and how often each slot appears (`Resample.counts`); every
statistic below takes one `Resample` per side, so the same code serves the point estimate (identity resample),
paired replicates (the same draw on both sides) and unpaired ones (independent draws).
Event-level samples (trade sizes, durations) keep every event of a drawn slot: their weight is `counts[slot]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

# ---------------------------------------------------------------------------------------------------------------
# Time slots and resamples
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotAxis:
    """A time axis cut into `n_slots` slots of `slot_ns` starting at `t0_ns`."""

    t0_ns: int
    slot_ns: int
    n_slots: int

    @classmethod
    def spanning(cls, t0_ns: int, t1_ns: int, slot_ns: int) -> SlotAxis:
        return cls(int(t0_ns), int(slot_ns), max(1, int(-(-(int(t1_ns) - int(t0_ns)) // int(slot_ns)))))

    def slot_of(self, times_ns: np.ndarray) -> np.ndarray:
        """Slot index of each time, clipped into [0, n_slots)."""
        s = (np.asarray(times_ns, dtype=np.int64) - self.t0_ns) // self.slot_ns
        return np.clip(s, 0, self.n_slots - 1).astype(np.int64)


@dataclass(frozen=True)
class Resample:
    """One draw of slots: `idx` in drawing order (for series statistics), `counts[s]` = times slot s was drawn."""

    idx: np.ndarray
    counts: np.ndarray

    @classmethod
    def identity(cls, n_slots: int) -> Resample:
        return cls(np.arange(n_slots, dtype=np.int64), np.ones(n_slots, dtype=np.float64))

    @classmethod
    def from_idx(cls, idx: np.ndarray, n_slots: int) -> Resample:
        return cls(idx, np.bincount(idx, minlength=n_slots).astype(np.float64))


def stationary_indices(n: int, mean_block: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary bootstrap: runs of consecutive (circular) indices with geometric lengths of mean `mean_block`."""
    if n <= 1:
        return np.zeros(max(n, 1), dtype=np.int64)
    p = 1.0 / max(1.0, float(mean_block))
    n_blocks = int(n * p * 1.5) + 8
    out: list[np.ndarray] = []
    total = 0
    while total < n:
        starts = rng.integers(0, n, n_blocks)
        lengths = rng.geometric(p, n_blocks)
        ends = np.cumsum(lengths)
        k = int(np.searchsorted(ends, n - total)) + 1
        starts, lengths = starts[:k], lengths[:k]
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out.append((np.repeat(starts, lengths) + offsets) % n)
        total += int(lengths.sum())
    return np.concatenate(out)[:n].astype(np.int64)


Statistic = Callable[[Resample, Resample], float]


@dataclass(frozen=True)
class BootstrapResult:
    value: float
    ci_low: float
    ci_high: float
    reps: int


def block_bootstrap(
    stat: Statistic,
    n_slots_g: int,
    n_slots_r: int,
    *,
    paired: bool,
    reps: int,
    block_slots: float,
    level: float,
    seed: int,
) -> BootstrapResult:
    """Point value and the (1-level)/2, (1+level)/2 percentile bounds of `stat` under the time-block bootstrap.

    Paired (same period): ONE slot draw is applied to both sides, so a shared market episode is kept or dropped on
    both at once. Unpaired: each side is resampled on its own axis. A replicate that yields NaN is skipped.
    """
    value = float(stat(Resample.identity(n_slots_g), Resample.identity(n_slots_r)))
    if reps <= 0 or not np.isfinite(value):
        return BootstrapResult(value, value, value, 0)
    if paired and n_slots_g != n_slots_r:
        raise ValueError(f"paired bootstrap needs one time axis, got {n_slots_g} and {n_slots_r} slots")
    rng = np.random.default_rng(seed)
    draws = np.empty(reps)
    for b in range(reps):
        rg = Resample.from_idx(stationary_indices(n_slots_g, block_slots, rng), n_slots_g)
        rr = rg if paired else Resample.from_idx(stationary_indices(n_slots_r, block_slots, rng), n_slots_r)
        draws[b] = stat(rg, rr)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return BootstrapResult(value, value, value, 0)
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(draws, [a, 1.0 - a])
    return BootstrapResult(value, float(min(lo, value)), float(max(hi, value)), int(draws.size))


# ---------------------------------------------------------------------------------------------------------------
# Samples with a slot per observation, and distances between two of them under given resamples
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """Observed values, the time slot of each, and a base weight (1 for events; durations for time-weighting)."""

    values: np.ndarray
    slots: np.ndarray
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.values.size)

    def w(self, r: Resample) -> np.ndarray:
        w = r.counts[self.slots]
        return w if self.weights is None else w * self.weights


class PooledECDF:
    """Two samples on their pooled distinct values: weighted K-S D and W1 for any resample in O(n).

    Sorting happens once; a replicate is two `bincount`s and a cumulative sum. Ties (discrete data: lots, ticks,
    milliseconds) are handled exactly because the ECDFs are compared only at distinct values.
    """

    def __init__(self, g: Sample, r: Sample):
        self.g, self.r = g, r
        pooled = np.concatenate([g.values, r.values]).astype(np.float64)
        self.grid, inv = np.unique(pooled, return_inverse=True)
        self.ig, self.ir = inv[: len(g)], inv[len(g) :]
        self.gaps = np.diff(self.grid)

    def _cdfs(self, rg: Resample, rr: Resample) -> tuple[np.ndarray, np.ndarray] | None:
        m = self.grid.size
        hg = np.bincount(self.ig, weights=self.g.w(rg), minlength=m)
        hr = np.bincount(self.ir, weights=self.r.w(rr), minlength=m)
        sg, sr = hg.sum(), hr.sum()
        if sg <= 0 or sr <= 0:
            return None
        return np.cumsum(hg) / sg, np.cumsum(hr) / sr

    def ks(self, rg: Resample, rr: Resample) -> float:
        c = self._cdfs(rg, rr)
        return float(np.max(np.abs(c[0] - c[1]))) if c is not None else float("nan")

    def w1(self, rg: Resample, rr: Resample) -> float:
        c = self._cdfs(rg, rr)
        return float(np.sum(self.gaps * np.abs(c[0] - c[1])[:-1])) if c is not None else float("nan")


def histogram_by_slot(values: np.ndarray, slots: np.ndarray, n_slots: int, edges: np.ndarray,
                      weights: np.ndarray | None = None) -> np.ndarray:
    """(n_slots × bins) matrix of (weighted) counts; a replicate's histogram is `counts @ H`."""
    nb = len(edges) - 1
    b = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, nb - 1)
    flat = np.bincount(slots * nb + b, weights=weights, minlength=n_slots * nb)
    return flat.reshape(n_slots, nb)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """½ Σ |p − q| of two histograms after normalising each; in [0, 1]."""
    sp, sq = p.sum(), q.sum()
    if sp <= 0 or sq <= 0:
        return float("nan")
    return float(0.5 * np.abs(p / sp - q / sq).sum())


def ratio_by_slot(num: np.ndarray, den: np.ndarray, slots: np.ndarray, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-slot sums of a numerator and denominator (e.g. matches and checks) for ratio statistics."""
    return (np.bincount(slots, weights=num, minlength=n_slots), np.bincount(slots, weights=den, minlength=n_slots))


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float | np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cw = np.cumsum(w)
    if cw.size == 0 or cw[-1] <= 0:
        return np.full(np.shape(q), np.nan)
    idx = np.searchsorted(cw, np.asarray(q) * cw[-1], side="left")
    return v[np.clip(idx, 0, v.size - 1)]


# ---------------------------------------------------------------------------------------------------------------
# Stylised-fact statistics
# ---------------------------------------------------------------------------------------------------------------


def acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation at lags 1..max_lag (biased normalisation, like statsmodels' default)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    out = np.full(max_lag, np.nan)
    if n < max_lag + 2:
        return out
    d = x - x.mean()
    var = float(d @ d)
    if var <= 0:
        return np.zeros(max_lag)
    for k in range(1, max_lag + 1):
        out[k - 1] = float(d[:-k] @ d[k:]) / var
    return out


def hill_alpha(values: np.ndarray, weights: np.ndarray | None = None, tail_fraction: float = 0.02,
               min_k: int = 10) -> float:
    """Hill tail index of positive values from the top `tail_fraction` of the (weighted) sample.

    α = 1 / mean(log(x_i / x_(k))) over the k largest values; NaN when fewer than `min_k` exceed the threshold.
    """
    x = np.asarray(values, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = (x > 0) & (w > 0)
    x, w = x[keep], w[keep]
    if x.size == 0:
        return float("nan")
    order = np.argsort(-x, kind="stable")
    x, w = x[order], w[order]
    cw = np.cumsum(w)
    j = int(np.searchsorted(cw, max(float(min_k), tail_fraction * cw[-1]), side="left"))
    if j + 1 >= x.size:
        return float("nan")
    mean_log = float(np.sum(w[: j + 1] * np.log(x[: j + 1] / x[j + 1])) / cw[j])
    return 1.0 / mean_log if mean_log > 0 else float("nan")


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney with weights; ties count ½), NaN without both classes."""
    order = np.argsort(scores, kind="stable")
    s, y, w = scores[order], labels[order].astype(bool), weights[order]
    wp, wn = np.where(y, w, 0.0), np.where(~y, w, 0.0)
    tp, tn = wp.sum(), wn.sum()
    if tp <= 0 or tn <= 0:
        return float("nan")
    # group ties: negatives strictly below + ½ of tied negatives, per positive
    uniq, start = np.unique(s, return_index=True)
    gp = np.add.reduceat(wp, start)
    gn = np.add.reduceat(wn, start)
    below = np.cumsum(gn) - gn
    return float(np.sum(gp * (below + 0.5 * gn)) / (tp * tn))


def moments(x: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """Mean, variance, skewness and excess kurtosis — reported as information only (research §2.7)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return {"n": 0, "mean": float("nan"), "variance": float("nan"), "skew": float("nan"), "kurtosis": float("nan")}
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    sw = w.sum()
    mean = float(np.sum(w * x) / sw)
    d = x - mean
    var = float(np.sum(w * d * d) / sw)
    if var <= 0:
        return {"n": int(x.size), "mean": mean, "variance": var, "skew": 0.0, "kurtosis": 0.0}
    skew = float(np.sum(w * d**3) / sw / var**1.5)
    kurt = float(np.sum(w * d**4) / sw / var**2 - 3.0)
    return {"n": int(x.size), "mean": mean, "variance": var, "skew": skew, "kurtosis": kurt}


def ks_information(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Two-sample K-S statistic and its i.i.d. p-value with the sample sizes — information, never a gate (§2)."""
    if len(x) == 0 or len(y) == 0:
        return {"ks_statistic": float("nan"), "ks_pvalue": float("nan"), "n_golden": int(len(x)), "n_recon": int(len(y))}
    res = sps.ks_2samp(x, y, method="asymp")
    return {"ks_statistic": float(res.statistic), "ks_pvalue": float(res.pvalue), "n_golden": int(len(x)),
            "n_recon": int(len(y))}


def ols_slope(t: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Weighted least-squares slope of y on t (NaN with fewer than two distinct t)."""
    w = np.ones_like(t, dtype=np.float64) if w is None else w
    sw = w.sum()
    if sw <= 0:
        return float("nan")
    tm, ym = np.sum(w * t) / sw, np.sum(w * y) / sw
    den = np.sum(w * (t - tm) ** 2)
    return float(np.sum(w * (t - tm) * (y - ym)) / den) if den > 0 else float("nan")


class SlotQuantile:
    """Weighted quantiles of a fixed sample under many resamples: distinct values found once, O(n) per replicate."""

    def __init__(self, s: Sample):
        self.s = s
        self.grid, self.inv = np.unique(s.values, return_inverse=True)

    def __call__(self, r: Resample, q: float) -> float:
        h = np.bincount(self.inv, weights=self.s.w(r), minlength=self.grid.size)
        c = np.cumsum(h)
        if c.size == 0 or c[-1] <= 0:
            return float("nan")
        return float(self.grid[min(int(np.searchsorted(c, q * c[-1], side="left")), self.grid.size - 1)])


class SlotCorrelation:
    """Pearson correlation of (x, y) pairs under any resample from per-slot sums: O(slots) per replicate.

    Fed with ranks it is the Spearman correlation of the resampled pairs (ranks fixed from the full sample).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, slots: np.ndarray, n_slots: int):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        x, y = x - x.mean(), y - y.mean()  # centring keeps the sums well conditioned
        self.sums = np.stack([np.bincount(slots, weights=v, minlength=n_slots)
                              for v in (np.ones_like(x), x, y, x * x, y * y, x * y)])

    def __call__(self, r: Resample) -> float:
        n, sx, sy, sxx, syy, sxy = self.sums @ r.counts
        if n <= 0:
            return float("nan")
        vx, vy = sxx - sx * sx / n, syy - sy * sy / n
        return float((sxy - sx * sy / n) / np.sqrt(vx * vy)) if vx > 0 and vy > 0 else float("nan")


def longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True values."""
    if not mask.any():
        return 0
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return int((np.flatnonzero(d == -1) - np.flatnonzero(d == 1)).max())
