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
from scipy import sparse
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


def block_bootstrap_many(
    statistics: dict[str, Statistic],
    n_slots_g: int,
    n_slots_r: int,
    *,
    paired: bool,
    reps: int,
    block_slots: float,
    level: float,
    seed: int,
) -> dict[str, BootstrapResult]:
    """Point values and (1-level)/2, (1+level)/2 percentile bounds of several statistics under ONE set of
    time-block bootstrap draws (statistics of the same feature share the draws and any cached work).

    Paired (same period): one slot draw is applied to both sides, so a shared market episode is kept or dropped on
    both at once. Unpaired: each side is resampled on its own axis. A replicate that yields NaN is skipped.
    """
    ident = (Resample.identity(n_slots_g), Resample.identity(n_slots_r))
    values = {k: float(f(*ident)) for k, f in statistics.items()}
    live = {k: f for k, f in statistics.items() if np.isfinite(values[k])}
    if reps <= 0 or not live:
        return {k: BootstrapResult(v, v, v, 0) for k, v in values.items()}
    if paired and n_slots_g != n_slots_r:
        raise ValueError(f"paired bootstrap needs one time axis, got {n_slots_g} and {n_slots_r} slots")
    rng = np.random.default_rng(seed)
    draws = {k: np.empty(reps) for k in live}
    for b in range(reps):
        rg = Resample.from_idx(stationary_indices(n_slots_g, block_slots, rng), n_slots_g)
        rr = rg if paired else Resample.from_idx(stationary_indices(n_slots_r, block_slots, rng), n_slots_r)
        for k, f in live.items():
            draws[k][b] = f(rg, rr)
    out = {}
    a = (1.0 - level) / 2.0
    for k, v in values.items():
        d = draws[k][np.isfinite(draws[k])] if k in draws else np.empty(0)
        if d.size == 0:
            out[k] = BootstrapResult(v, v, v, 0)
            continue
        lo, hi = np.quantile(d, [a, 1.0 - a])
        out[k] = BootstrapResult(v, float(min(lo, v)), float(max(hi, v)), int(d.size))
    return out


def block_bootstrap(stat: Statistic, n_slots_g: int, n_slots_r: int, **kwargs) -> BootstrapResult:
    """`block_bootstrap_many` for a single statistic."""
    return block_bootstrap_many({"stat": stat}, n_slots_g, n_slots_r, **kwargs)["stat"]


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


class SlotHistogram:
    """Counts of integer codes per slot, stored sparse (codes × slots): a replicate's histogram is ONE sparse
    mat-vec with the slot counts — O(distinct (slot, code) pairs), no per-event gather, whatever the sample size."""

    def __init__(self, codes: np.ndarray, slots: np.ndarray, n_slots: int, n_codes: int,
                 weights: np.ndarray | None = None):
        w = np.ones(codes.size) if weights is None else np.asarray(weights, dtype=np.float64)
        self.m = sparse.csr_matrix((w, (np.asarray(codes, np.int64), np.asarray(slots, np.int64))),
                                   shape=(n_codes, n_slots))
        self.m.sum_duplicates()

    def __call__(self, r: Resample) -> np.ndarray:
        return self.m @ r.counts

    @classmethod
    def binned(cls, values: np.ndarray, slots: np.ndarray, n_slots: int, edges: np.ndarray,
               weights: np.ndarray | None = None) -> SlotHistogram:
        """Histogram over `edges` (values outside go to the first / last bin)."""
        nb = len(edges) - 1
        b = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, nb - 1)
        return cls(b, slots, n_slots, nb, weights)


MAX_ECDF_GROUPS = 20_000


class PooledECDF:
    """Two samples on their pooled distinct values: weighted K-S D and W1 for any resample.

    Distinct values are found once; a replicate is two sparse mat-vecs and a cumulative sum, cached so that K-S
    and W1 of the same draw share it. Ties (discrete data: lots, ticks, milliseconds) are exact because the ECDFs
    are compared only at distinct values. Continuous samples with more than `MAX_ECDF_GROUPS` distinct values are
    compared at that many pooled quantiles instead (consecutive values merged into groups of equal pooled mass): D
    is then exact up to one group's mass (≤ 1/20,000 of the pooled sample), and the bootstrap stays O(slots +
    groups) per replicate on a full day.
    """

    def __init__(self, g: Sample, r: Sample, n_slots_g: int, n_slots_r: int, max_groups: int = MAX_ECDF_GROUPS):
        pooled = np.concatenate([g.values, r.values]).astype(np.float64)
        grid, inv = np.unique(pooled, return_inverse=True)
        self.exact = grid.size <= max_groups
        if not self.exact:
            cum = np.cumsum(np.bincount(inv, minlength=grid.size))
            group = np.minimum((cum - 1) * max_groups // cum[-1], max_groups - 1)  # equal-mass groups
            last = np.flatnonzero(np.diff(group, append=max_groups))  # the last distinct value of each group
            group = np.searchsorted(last, np.arange(grid.size))
            grid, inv = grid[last], group[inv]
        self.grid = grid
        m = grid.size
        self.hg = SlotHistogram(inv[: len(g)], g.slots, n_slots_g, m, g.weights)
        self.hr = SlotHistogram(inv[len(g):], r.slots, n_slots_r, m, r.weights)
        self.gaps = np.diff(grid)
        self._cache: tuple[Resample, Resample, tuple | None] | None = None

    def _cdfs(self, rg: Resample, rr: Resample) -> tuple[np.ndarray, np.ndarray] | None:
        # the cache holds the resample objects themselves, so an identity check cannot be fooled by a reused id
        if self._cache is not None and self._cache[0] is rg and self._cache[1] is rr:
            return self._cache[2]
        hg, hr = self.hg(rg), self.hr(rr)
        sg, sr = hg.sum(), hr.sum()
        c = None if sg <= 0 or sr <= 0 else (np.cumsum(hg) / sg, np.cumsum(hr) / sr)
        self._cache = (rg, rr, c)
        return c

    def ks(self, rg: Resample, rr: Resample) -> float:
        c = self._cdfs(rg, rr)
        return float(np.max(np.abs(c[0] - c[1]))) if c is not None else float("nan")

    def w1(self, rg: Resample, rr: Resample) -> float:
        c = self._cdfs(rg, rr)
        return float(np.sum(self.gaps * np.abs(c[0] - c[1])[:-1])) if c is not None else float("nan")


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """½ Σ |p − q| of two histograms after normalising each; in [0, 1]."""
    sp, sq = p.sum(), q.sum()
    if sp <= 0 or sq <= 0:
        return float("nan")
    return float(0.5 * np.abs(p / sp - q / sq).sum())


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """1-D dot product kept off BLAS: between bursts of work, multi-threaded OpenBLAS spends milliseconds waking
    its threads for each tiny call (measured 3.4 ms vs 3 µs for 21k elements), which dominated the bootstrap."""
    return float(np.multiply(a, b).sum())


class SlotRatio:
    """Σ num / Σ den over resampled slots (match rates, mean drift, RMS²): per-slot sums, O(slots) per replicate."""

    def __init__(self, num: np.ndarray, den: np.ndarray, slots: np.ndarray, n_slots: int):
        self.num = np.bincount(slots, weights=np.asarray(num, np.float64), minlength=n_slots)
        self.den = np.bincount(slots, weights=np.asarray(den, np.float64), minlength=n_slots)

    def __call__(self, r: Resample) -> float:
        return dot(r.counts, self.num) / max(dot(r.counts, self.den), 1e-300)


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
    var = dot(d, d)
    if var <= 0:
        return np.zeros(max_lag)
    for k in range(1, max_lag + 1):
        out[k - 1] = dot(d[:-k], d[k:]) / var
    return out


class SlotHill:
    """Hill tail index of positive values under resamples: α = 1 / mean(log(x_i / x_(k+1))) over the top k, where
    the top k carry `tail_fraction` of the (resampled) weight. Values are sorted once; a replicate scans only the
    largest values (the top 10 × tail_fraction), falling back to the whole sample if that is not enough."""

    def __init__(self, values: np.ndarray, slots: np.ndarray, n_slots: int, tail_fraction: float = 0.02,
                 min_k: int = 10):
        x = np.asarray(values, dtype=np.float64)
        keep = x > 0
        order = np.argsort(-x[keep], kind="stable")
        self.logx = np.log(x[keep][order])
        self.slots = np.asarray(slots)[keep][order]
        self.per_slot = np.bincount(self.slots, minlength=n_slots).astype(np.float64)
        self.frac, self.min_k = float(tail_fraction), int(min_k)
        self.head = min(self.logx.size, int(10 * self.frac * self.logx.size) + 10 * self.min_k)

    def __call__(self, r: Resample) -> float:
        target = max(float(self.min_k), self.frac * dot(self.per_slot, r.counts))
        for lim in (self.head, self.logx.size):
            w = r.counts[self.slots[:lim]]
            cw = np.cumsum(w)
            j = int(np.searchsorted(cw, target, side="left"))
            if j + 1 < lim:
                mean_log = dot(w[: j + 1], self.logx[: j + 1]) / cw[j] - self.logx[j + 1]
                return 1.0 / mean_log if mean_log > 0 else float("nan")
        return float("nan")


def hill_alpha(values: np.ndarray, tail_fraction: float = 0.02, min_k: int = 10) -> float:
    """Hill tail index of the unweighted sample (point estimate of `SlotHill`)."""
    h = SlotHill(values, np.zeros(np.size(values), np.int64), 1, tail_fraction, min_k)
    return h(Resample.identity(1))


class SlotAUC:
    """Area under the ROC curve of `scores` for binary `labels` under resamples (Mann–Whitney; ties count ½).

    Sorted and tie-grouped once; a replicate is a gather of slot counts and two segment sums."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray, slots: np.ndarray):
        order = np.argsort(scores, kind="stable")
        self.y = np.asarray(labels, bool)[order]
        self.slots = np.asarray(slots)[order]
        _, self.start = np.unique(np.asarray(scores)[order], return_index=True)

    def weighted(self, w: np.ndarray) -> float:
        wp = np.where(self.y, w, 0.0)
        wn = w - wp
        tp, tn = wp.sum(), wn.sum()
        if tp <= 0 or tn <= 0 or self.start.size == 0:
            return float("nan")
        gp, gn = np.add.reduceat(wp, self.start), np.add.reduceat(wn, self.start)
        return float(np.sum(gp * (np.cumsum(gn) - 0.5 * gn)) / (tp * tn))

    def __call__(self, r: Resample) -> float:
        return self.weighted(r.counts[self.slots])


def weighted_auc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """AUC with per-observation weights (the weights are given in the input order)."""
    order = np.argsort(scores, kind="stable")
    return SlotAUC(scores, labels, np.zeros(len(scores), np.int64)).weighted(np.asarray(weights, float)[order])


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
    d2 = d * d
    skew = float(np.sum(w * d2 * d) / sw / var**1.5)
    kurt = float(np.sum(w * d2 * d2) / sw / var**2 - 3.0)
    return {"n": int(x.size), "mean": mean, "variance": var, "skew": skew, "kurtosis": kurt}


def ks_information(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Two-sample K-S statistic and its i.i.d. p-value with the sample sizes — information, never a gate (§2)."""
    if len(x) == 0 or len(y) == 0:
        return {"ks_statistic": float("nan"), "ks_pvalue": float("nan"), "n_golden": int(len(x)),
                "n_recon": int(len(y))}
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


class SlotSlope:
    """Least-squares slope of y on t under many resamples: per-slot sums of 1, t, y, t², t·y are taken once, so a
    replicate costs O(slots), not O(observations) (a day has ~860k snapshots in 86,400 slots)."""

    def __init__(self, t: np.ndarray, y: np.ndarray, slots: np.ndarray, n_slots: int):
        t = np.asarray(t, np.float64)
        y = np.asarray(y, np.float64)
        self.t0 = float(t.mean()) if t.size else 0.0  # centred for numerical stability
        tc = t - self.t0
        self.sums = np.stack([np.bincount(slots, weights=v, minlength=n_slots)
                              for v in (np.ones_like(tc), tc, y, tc * tc, tc * y)])

    def __call__(self, r: Resample) -> float:
        n, st, sy, stt, sty = self.sums @ r.counts
        if n <= 0:
            return float("nan")
        den = stt - st * st / n
        return float((sty - st * sy / n) / den) if den > 0 else float("nan")


class SlotQuantile:
    """Weighted quantiles of a fixed sample under many resamples (distinct values found once)."""

    def __init__(self, s: Sample, n_slots: int):
        self.grid, inv = np.unique(s.values, return_inverse=True)
        self.h = SlotHistogram(inv, s.slots, n_slots, self.grid.size, s.weights)

    def __call__(self, r: Resample, q: float) -> float:
        c = np.cumsum(self.h(r))
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
        n, sx, sy, sxx, syy, sxy = np.multiply(self.sums, r.counts).sum(axis=1)
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
