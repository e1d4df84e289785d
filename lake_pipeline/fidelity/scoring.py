"""Per-metric status and score, and the overall verdict (research fidelity.md §3.1, §3.4).

PASS when the whole confidence interval is on the good side of the tolerance, WARN when only the point estimate
is, FAIL otherwise. Overall = the worst *critical* metric — never a mean, never a p-value. A critical metric
that could not be computed (no golden capture, too little data) is "N/A": it can never make the run PASS.
Score s = clip(1 − d/(2τ), 0, 1) on the distance scale (for rates d = 1 − value, τ = 1 − tolerance): 1 for a
perfect match, 0.5 at the tolerance, 0 at twice the tolerance; the headline is the minimum over metrics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from lake_pipeline.fidelity.catalog import MetricDef

PASS, WARN, FAIL, NA = "PASS", "WARN", "FAIL", "N/A"
NOT_AVAILABLE = "NOT_AVAILABLE"
_RANK = {PASS: 0, WARN: 1, NA: 2, FAIL: 3}


@dataclass
class MetricResult:
    """One row of the report: the metric's definition (name, tier, family, direction, unit, description — read
    through attribute access) and its outcome. `details` holds what is shown but not gated (moments, p-values)."""

    defn: MetricDef
    value: float | None
    ci_low: float | None
    ci_high: float | None
    tolerance: float | None
    critical: bool
    status: str = NA
    score: float | None = None
    ci_method: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, item: str) -> Any:
        if item == "defn":  # not yet set (e.g. during copy): avoid recursing
            raise AttributeError(item)
        return getattr(self.defn, item)

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self.defn).items() if k != "calibrated"}
        d.update((k, v) for k, v in asdict(self).items() if k != "defn")
        for k in ("value", "ci_low", "ci_high", "tolerance", "score"):
            d[k] = _finite_or_none(d[k])
        return d


def _finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def status_of(direction: str, value: float, ci_low: float, ci_high: float, tolerance: float) -> str:
    if direction == "max":
        return PASS if ci_high <= tolerance else (WARN if value <= tolerance else FAIL)
    return PASS if ci_low >= tolerance else (WARN if value >= tolerance else FAIL)


def score_of(direction: str, value: float, tolerance: float) -> float:
    d, tau = (value, tolerance) if direction == "max" else (1.0 - value, 1.0 - tolerance)
    if tau <= 0:
        return 1.0 if d <= 0 else 0.0
    return float(min(1.0, max(0.0, 1.0 - d / (2.0 * tau))))


def judge(defn: MetricDef, value: float | None, ci_low: float | None, ci_high: float | None,
          tolerance: float | None, critical: bool, *, ci_method: str = "", reason: str = "",
          details: dict[str, Any] | None = None) -> MetricResult:
    """Build the row for `defn`: N/A when the value or tolerance is missing (with the reason), else status + score."""
    r = MetricResult(defn, _finite_or_none(value), _finite_or_none(ci_low), _finite_or_none(ci_high), tolerance,
                     critical, ci_method=ci_method, reason=reason, details=details or {})
    if r.value is None:
        r.reason = reason or "not computable from these inputs"
        return r
    if tolerance is None:
        r.reason = reason or "no tolerance configured"
        return r
    lo = r.value if r.ci_low is None else r.ci_low
    hi = r.value if r.ci_high is None else r.ci_high
    r.status = status_of(defn.direction, r.value, lo, hi, tolerance)
    r.score = score_of(defn.direction, r.value, tolerance)
    return r


def not_available(defn: MetricDef, tolerance: float | None, critical: bool, reason: str) -> MetricResult:
    return judge(defn, None, None, None, tolerance, critical, reason=reason)


@dataclass(frozen=True)
class Verdict:
    status: str
    score: float | None
    reason: str


def overall(results: list[MetricResult]) -> Verdict:
    """Worst critical metric; N/A criticals cap the verdict at WARN (incomplete evidence is never a PASS)."""
    critical = [r for r in results if r.critical]
    available = [r for r in critical if r.status != NA]
    scores = [r.score for r in results if r.score is not None]
    score = min(scores) if scores else None
    if not available:
        return Verdict(NOT_AVAILABLE, score, "no critical metric could be computed")
    worst = max(available, key=lambda r: _RANK[r.status])
    missing = [r.name for r in critical if r.status == NA]
    status = worst.status
    reasons = []
    if status != PASS:
        bad = [r.name for r in available if r.status == status]
        reasons.append(f"{status}: {', '.join(bad)}")
    if missing:
        reasons.append(f"not available: {', '.join(missing)}")
        if status == PASS:
            status = WARN
    return Verdict(status, score, "; ".join(reasons) or "every critical metric passed")


def family_status(results: list[MetricResult], family: str) -> str:
    """Worst status over a family's available metrics (N/A when none is available)."""
    rows = [r for r in results if r.family == family and r.status != NA]
    if not rows:
        return NA
    return max(rows, key=lambda r: _RANK[r.status]).status
