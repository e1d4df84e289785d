"""Per-metric status and score, and the overall verdict (research fidelity.md §3.1, §3.4).

PASS when the whole confidence interval is on the good side of the tolerance, WARN when only the point estimate
is, FAIL otherwise. Score s = clip(1 − d/(2τ), 0, 1) on the distance scale (for rates d = 1 − value, τ = 1 −
tolerance): 1 for a perfect match, 0.5 at the tolerance, 0 at twice the tolerance.

The one headline rule (HEADLINE_RULE, printed in every report so a reader can recompute it from the table):
the headline is the minimum score over the GATING metrics — critical and computed. Because a metric's point
estimate is within its tolerance exactly when its score is >= 0.5, the status follows from the same rows:
FAIL ⇔ a gating metric is beyond its tolerance ⇔ headline < 0.5 (it names that metric); WARN when no gating
metric fails but one's interval crosses its tolerance, a critical metric is N/A, or an informational (non-
critical) metric is beyond its tolerance (named); PASS otherwise — so a PASS always shows a headline >= 0.5.
Never a mean, never a p-value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from lake_pipeline.fidelity.catalog import SELF_CHECKS, MetricDef

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


HEADLINE_RULE = (
    "Each metric scores s = clip(1 - d/(2*tolerance), 0, 1) on its distance scale (rates: d = 1 - value, "
    "tolerance = 1 - bound), so s >= 0.5 exactly when the value is within its tolerance. Headline = the lowest "
    "score among the critical (*) metrics that could be computed. FAIL when one of them is beyond its tolerance "
    "(headline < 0.5; named); WARN when none is but an interval crosses a tolerance, a critical metric is N/A, or "
    "a non-critical metric is beyond its tolerance (named); PASS otherwise (headline >= 0.5). Non-critical rows "
    "and expected integrity events (details) are reported for information. NOT_AVAILABLE when only the "
    "reconstruction's own checks could be computed and none failed.")


@dataclass(frozen=True)
class Verdict:
    status: str
    score: float | None
    reason: str
    deciding: tuple[str, ...] = ()


def _named(rows: list[MetricResult]) -> str:
    return ", ".join(f"{r.name} = {r.value:.6g} (tolerance {'>=' if r.direction == 'min' else '<='} "
                     f"{r.tolerance:.6g}, score {r.score:.3f})" for r in rows)


def overall(results: list[MetricResult]) -> Verdict:
    """The headline rule (module doc / HEADLINE_RULE): status and headline from the same gating rows."""
    critical = [r for r in results if r.critical]
    gating = [r for r in critical if r.status != NA and r.score is not None]
    if not gating:
        return Verdict(NOT_AVAILABLE, None, "no critical metric could be computed")
    score = min(r.score for r in gating)
    failed = sorted((r for r in gating if r.status == FAIL), key=lambda r: r.score)
    if failed:
        return Verdict(FAIL, score, f"FAIL decided by {_named(failed)}", tuple(r.name for r in failed))
    if all(r.name in SELF_CHECKS for r in gating):
        return Verdict(NOT_AVAILABLE, score, "nothing to compare against: no critical metric needing a golden "
                                             "capture or reference could be computed (the reconstruction's own "
                                             "checks passed)")
    warned = [r for r in gating if r.status == WARN]
    missing = [r for r in critical if r.status == NA]
    beyond = [r for r in results if not r.critical and r.status == FAIL]
    reasons = []
    if warned:
        reasons.append(f"interval crosses the tolerance: {_named(warned)}")
    if missing:
        reasons.append(f"critical metric not available: {', '.join(r.name for r in missing)}")
    if beyond:
        reasons.append(f"informational metric beyond its tolerance: {_named(beyond)}")
    if reasons:
        return Verdict(WARN, score, "WARN — " + "; ".join(reasons),
                       tuple(r.name for r in (*warned, *missing, *beyond)))
    lowest = min(gating, key=lambda r: r.score)
    return Verdict(PASS, score, f"every critical metric passed; lowest score {lowest.name} {lowest.score:.3f}",
                   (lowest.name,))


def family_status(results: list[MetricResult], family: str) -> str:
    """Worst status over a family's available metrics (N/A when none is available)."""
    rows = [r for r in results if r.family == family and r.status != NA]
    if not rows:
        return NA
    return max(rows, key=lambda r: _RANK[r.status]).status
