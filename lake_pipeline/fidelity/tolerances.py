"""The versioned tolerance config: per-metric tolerance and critical flag, bootstrap and sampling settings.

Tolerances are frozen before a run (research §2.9). Tier B ones come from golden-vs-golden variability
(`fidelity calibrate`, p95 × margin); Tier A ones and counts are declared (documented in the YAML). Every report
records the config's version and sha256 so a verdict can always be traced to the exact thresholds used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lake_pipeline.config import read_yaml_mapping
from lake_pipeline.fidelity import catalog

DEFAULT_PATH = Path(__file__).with_name("tolerances.yaml")

DEFAULT_SETTINGS: dict[str, Any] = {
    "grid_ms": 10,  # Tier A BBO comparison grid
    "lag_scan_ms": 500,
    "lag_step_ms": 10,
    "lag_scan_points": 50_000,  # grid points used by the lag scan (evenly spaced subset)
    "tier_b_grid_ms": 100,  # time-weighting grid for spread / depth / imbalance
    "slot_seconds": 1,  # bootstrap slot and return horizon
    "acf_lags": 20,
    "hill_tail_fraction": 0.02,
    "min_events": 30,  # fewer observations on a side -> metric N/A
    "hawkes_seed": 7,  # jitter of millisecond ties (same on both sides)
    "min_overlap_s": 10,
    "drift_trend_min_minutes": 30,  # a drift trend (levels per hour) over a shorter span is noise  # a golden session of the partition overlapping it for less is an input error
}
DEFAULT_BOOTSTRAP: dict[str, Any] = {"reps": 200, "block_seconds": 60, "level": 0.90, "seed": 20240808}


@dataclass
class Tolerances:
    version: int
    metrics: dict[str, dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    bootstrap: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_BOOTSTRAP))
    calibration: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    sha256: str = ""

    def tolerance(self, name: str) -> float | None:
        v = self.metrics.get(name, {}).get("tolerance")
        return None if v is None else float(v)

    def critical(self, name: str) -> bool:
        return bool(self.metrics.get(name, {}).get("critical", False))

    def setting(self, key: str) -> Any:
        return self.settings.get(key, DEFAULT_SETTINGS[key])

    def to_yaml_dict(self) -> dict[str, Any]:
        return {"version": self.version, "calibration": self.calibration, "bootstrap": self.bootstrap,
                "settings": self.settings, "metrics": self.metrics}


def _number(value: Any, path: Path, metric: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: metric {metric!r} has a tolerance {value!r} that is not a number") from None


def load(path: str | Path | None = None) -> Tolerances:
    """Read and validate a tolerance config; unknown metric names and bad fields are errors naming the file."""
    p = Path(path) if path else DEFAULT_PATH
    if not p.is_file():
        raise FileNotFoundError(f"tolerance config not found: {p}")
    raw = p.read_bytes()
    doc = read_yaml_mapping(p, "the tolerance config")
    if not isinstance(doc.get("version"), int):
        raise ValueError(f"{p}: 'version' must be an integer")
    metrics = doc.get("metrics") or {}
    for key in ("metrics", "settings", "bootstrap", "calibration"):
        if not isinstance(doc.get(key) or {}, dict):
            raise ValueError(f"{p}: {key!r} must be a mapping")
    for name, entry in metrics.items():
        try:
            catalog.get(name)
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None
        if not isinstance(entry, dict) or "tolerance" not in entry:
            raise ValueError(f"{p}: metric {name!r} needs a 'tolerance' field")
        if entry["tolerance"] is not None and _number(entry["tolerance"], p, name) < 0:
            raise ValueError(f"{p}: metric {name!r} has a negative tolerance")
    unknown = set(doc.get("settings") or {}) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ValueError(f"{p}: unknown settings {sorted(unknown)}; known: {sorted(DEFAULT_SETTINGS)}")
    return Tolerances(
        version=int(doc["version"]),
        metrics={k: dict(v) for k, v in metrics.items()},
        settings={**DEFAULT_SETTINGS, **(doc.get("settings") or {})},
        bootstrap={**DEFAULT_BOOTSTRAP, **(doc.get("bootstrap") or {})},
        calibration=dict(doc.get("calibration") or {}),
        path=str(p),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


HEADER = """\
# lake_pipeline fidelity tolerances — versioned; every report records this file's version and sha256.
# Status per metric: PASS if the whole bootstrap interval is within the tolerance, WARN if only the point estimate is,
# FAIL otherwise. Overall and headline: scoring.HEADLINE_RULE (lowest score of the computed critical metrics). Tier B
# tolerances ("source: calibrated") come from `lake-pipeline fidelity calibrate` (golden-vs-golden halves/quarters
# of every session listed below; largest per-session p95 x margin); the others are declared, with a note.
"""


def dump(tol: Tolerances, path: str | Path) -> None:
    """Write the config atomically (header comment + YAML)."""
    from lake_pipeline.atomic import write_text_atomic

    body = yaml.safe_dump(tol.to_yaml_dict(), sort_keys=False, default_flow_style=False, width=120)
    write_text_atomic(Path(path), HEADER + body)
