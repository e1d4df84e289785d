"""A comparison between a golden (or reference) view and the reconstruction: windows, time axes, bootstrap, gating.

Same period → paired: both views are cut to their overlap and share one slot axis, so every bootstrap replicate
keeps or drops the same stretch of market on both sides (research §3.1 step 3). Different periods → unpaired:
each side gets its own axis and is resampled independently.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lake_pipeline.fidelity import catalog, stats
from lake_pipeline.fidelity.frames import MarketView
from lake_pipeline.fidelity.scoring import MetricResult, judge, not_available
from lake_pipeline.fidelity.tolerances import Tolerances


@dataclass
class Comparison:
    g: MarketView
    r: MarketView
    paired: bool
    tol: Tolerances
    axis_g: stats.SlotAxis
    axis_r: stats.SlotAxis

    @classmethod
    def build(cls, golden: MarketView, recon: MarketView, tol: Tolerances, *, paired: bool) -> Comparison:
        slot_ns = int(tol.setting("slot_seconds") * 1e9)
        if paired:
            t0, t1 = max(golden.start_ns, recon.start_ns), min(golden.end_ns, recon.end_ns)
            if t1 <= t0:
                raise ValueError(
                    f"paired comparison needs overlapping windows: {golden.label} [{golden.start_ns}, {golden.end_ns})"
                    f" vs {recon.label} [{recon.start_ns}, {recon.end_ns})")
            g, r = golden.restrict(t0, t1), recon.restrict(t0, t1)
            axis = stats.SlotAxis.spanning(t0, t1, slot_ns)
            return cls(g, r, True, tol, axis, axis)
        return cls(golden, recon, False, tol, stats.SlotAxis.spanning(golden.start_ns, golden.end_ns, slot_ns),
                   stats.SlotAxis.spanning(recon.start_ns, recon.end_ns, slot_ns))

    @property
    def min_events(self) -> int:
        return int(self.tol.setting("min_events"))

    def seed(self, name: str) -> int:
        """Per-metric seed: independent streams, but identical inputs always give identical intervals."""
        return (int(self.tol.bootstrap["seed"]) + zlib.crc32(name.encode())) % (2**32)

    def bootstrap(self, statistics: dict[str, stats.Statistic]) -> dict[str, stats.BootstrapResult]:
        """One set of block-bootstrap draws for the given statistics (seeded by their names)."""
        b = self.tol.bootstrap
        block_slots = float(b["block_seconds"]) / float(self.tol.setting("slot_seconds"))
        return stats.block_bootstrap_many(statistics, self.axis_g.n_slots, self.axis_r.n_slots, paired=self.paired,
                                          reps=int(b["reps"]), block_slots=block_slots, level=float(b["level"]),
                                          seed=self.seed("+".join(statistics)))

    @property
    def ci_method(self) -> str:
        b = self.tol.bootstrap
        kind = "paired" if self.paired else "unpaired"
        return (f"{kind} stationary block bootstrap, mean block {b['block_seconds']} s, {b['reps']} reps, "
                f"{int(round(100 * float(b['level'])))}% percentile interval")

    def gate(self, name: str, stat: stats.Statistic, details: dict[str, Any] | None = None) -> MetricResult:
        """Point estimate + block-bootstrap interval of `stat`, judged against the configured tolerance."""
        return self.gate_many({name: stat}, {name: details or {}})[0]

    def gate_many(self, statistics: dict[str, stats.Statistic],
                  details: dict[str, dict[str, Any]] | None = None) -> list[MetricResult]:
        """Several metrics of one feature under shared bootstrap draws (their cached work is reused)."""
        res = self.bootstrap(statistics)
        return [self.result(n, r.value, r.ci_low, r.ci_high, ci_method=self.ci_method,
                            details=(details or {}).get(n)) for n, r in res.items()]

    def result(self, name: str, value: float | None, ci_low: float | None = None, ci_high: float | None = None, *,
               ci_method: str = "", reason: str = "", details: dict[str, Any] | None = None) -> MetricResult:
        return judge(catalog.get(name), value, ci_low, ci_high, self.tol.tolerance(name), self.tol.critical(name),
                     ci_method=ci_method, reason=reason, details=details)

    def na(self, name: str, reason: str) -> MetricResult:
        return not_available(catalog.get(name), self.tol.tolerance(name), self.tol.critical(name), reason)

    def guarded(self, names: list[str], fn: Callable[[], list[MetricResult]],
                need: dict[str, int]) -> list[MetricResult]:
        """Run `fn` unless a side has fewer observations than `min_events` (then every name is N/A, with counts)."""
        short = {k: v for k, v in need.items() if v < self.min_events}
        if short:
            why = "too little data: " + ", ".join(f"{k}={v}" for k, v in short.items()) + f" (< {self.min_events})"
            return [self.na(n, why) for n in names]
        return fn()
