"""Render and publish a fidelity report: `fidelity.json` (stable keys), `fidelity.md`, and a self-contained,
offline `fidelity.html` (plotly.js embedded once, every figure drawn by one script; no network access needed).

JSON contract (stable): top-level `status`, `score`, `metrics` — a list of objects with `name`, `tier`, `value`,
`ci_low`, `ci_high`, `tolerance`, `status` (plus descriptive extras). Non-finite numbers are written as null.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from lake_pipeline.atomic import write_text_atomic
from lake_pipeline.fidelity import plots as plot_mod
from lake_pipeline.fidelity.runner import FidelityReport

TEMPLATE_DIR = Path(__file__).with_name("templates")
HEADLINE_METRICS = ("bbo_update_match_rate", "bbo_grid_match_rate", "depth_rel_l1_error", "trade_match_rate")
OUTPUT_NAMES = ("fidelity.html", "fidelity.md", "fidelity.json")


def clean(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if isinstance(x, (int, np.integer)) or float(x).is_integer() and abs(float(x)) >= 1:
        return f"{int(x):,}"
    if abs(float(x)) < 1e-3 and x != 0:
        return f"{float(x):.{digits}g}"
    return f"{float(x):.{digits}f}".rstrip("0").rstrip(".")


def _sci(x: Any) -> str:
    return "—" if x is None else f"{float(x):.2e}"


def iso_ts(ns: Any) -> str:
    return "—" if ns is None else str(np.datetime64(int(ns), "ns").astype("datetime64[ms]")) + "Z"


def _css(status: str) -> str:
    return "NA" if status == "N/A" else status


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=True, undefined=StrictUndefined)
    env.filters.update(num=_num, sci=_sci, ts=iso_ts, css=_css)
    return env


def _figures_json(figures: dict[str, dict[str, Any]]) -> tuple[str, list[tuple[str, list[str]]]]:
    """One JSON object {div id: figure} (with `</` escaped for the script tag) and the section → ids layout."""
    import plotly.io as pio

    parts, sections = [], []
    for section, figs in figures.items():
        ids = []
        for key, fig in figs.items():
            div_id = f"fig-{key}"
            parts.append(f"{json.dumps(div_id)}: {pio.to_json(fig, validate=False)}")
            ids.append(div_id)
        if ids:
            sections.append((section, ids))
    return "{" + ",\n".join(parts).replace("</", "<\\/") + "}", sections


def render_html(doc: dict[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    labels = ((doc["provenance"].get("golden") or {}).get("label", "golden"),
              doc["provenance"]["reconstruction"]["label"])
    figures_json, sections = _figures_json(plot_mod.all_figures(doc["plots"], labels))
    by_name = {m["name"]: m for m in doc["metrics"]}
    info_rows = [(m["name"], m["details"]) for m in doc["metrics"] if "ks_statistic" in m.get("details", {})]
    sides = [s for s in (doc["provenance"].get("golden"), doc["provenance"]["reconstruction"]) if s]
    return _env().get_template("fidelity.html.j2").render(
        r=doc, plotly_js=get_plotlyjs(), figures_json=figures_json, template_json=plot_mod.template_json(),
        sections=sections,
        counts=dict(Counter(m["status"] for m in doc["metrics"])),
        headline=[by_name[n] for n in HEADLINE_METRICS if n in by_name], info_rows=info_rows, sides=sides)


def _tier_lines(comparison: dict[str, Any]) -> list[str]:
    a = "available" if comparison.get("tier_a_available") else f"not available — {comparison.get('tier_a_reason')}"
    ref = comparison.get("tier_b_reference")
    b = "not available"
    if ref:
        b = f"against {ref} ({'paired' if comparison.get('tier_b_paired') else 'unpaired'})"
    return [f"- Tier A (paired replay accuracy): {a}", f"- Tier B (distributional realism): {b}"]


def render_markdown(doc: dict[str, Any]) -> str:
    p = doc["partition"]
    lines = [f"# Fidelity report — {p['exchange']} / {p['symbol']} / {p['date']}", "",
             f"**Status: {doc['status']}** ({doc['status_reason']}) · headline score {_num(doc['score'], 3)}", "",
             *_tier_lines(doc["comparison"]),
             f"- Calibration: {doc['calibration']}", "",
             "Per metric, PASS: the whole bootstrap interval is within the tolerance; WARN: only the point estimate "
             "is; FAIL: not even the point estimate. K-S p-values are information only.", "",
             f"Headline rule: {doc['headline_rule']}", "",
             "| metric | tier | value | interval | tolerance | status | score |", "|---|---|---|---|---|---|---|"]
    for m in doc["metrics"]:
        ci = f"[{_num(m['ci_low'])}, {_num(m['ci_high'])}]" if m["ci_low"] is not None else "—"
        bound = "≥ " if m["direction"] == "min" else "≤ "
        tol = "—" if m["tolerance"] is None else bound + _num(m["tolerance"])
        star = " ★" if m["critical"] else ""
        status = m["status"] + (f" ({m['reason']})" if m["status"] == "N/A" else "")
        lines.append(f"| `{m['name']}`{star} | {m['tier']} | {_num(m['value'], 5)} | {ci} | {tol} | {status} | "
                     f"{_num(m['score'], 3)} |")
    lines += ["", "## Provenance", ""]
    for side in (doc["provenance"].get("golden"), doc["provenance"]["reconstruction"]):
        if not side:
            continue
        lines.append(f"- **{side['label']}**: {iso_ts(side['start_ns'])} → {iso_ts(side['end_ns'])} ({side['seconds']} s), "
                     f"{side['trades']} trades, BBO: {side['bbo_convention']}")
        lines += [f"  - `{f['path']}` rows={f['rows']} sha256={f['sha256'] or 'not read'}" for f in side["inputs"]]
    lines.append(f"- strategy: {doc['provenance']['strategy'] or 'not recorded'}")
    lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in doc["provenance"]["versions"].items()))
    return "\n".join(lines) + "\n"


def write_report(report: FidelityReport, out_dir: Path) -> dict[str, Path]:
    """Write fidelity.json, .md and .html atomically into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    doc = clean(report.to_json())
    outputs = {"json": out_dir / "fidelity.json", "md": out_dir / "fidelity.md", "html": out_dir / "fidelity.html"}
    html = render_html(doc)
    write_text_atomic(outputs["json"], json.dumps(doc, indent=1, allow_nan=False) + "\n")
    write_text_atomic(outputs["md"], render_markdown(doc))
    write_text_atomic(outputs["html"], html)
    return outputs


def read_report_json(path: Path) -> dict[str, Any]:
    """Load a written fidelity.json (for checks and tests); a missing file is a FileNotFoundError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fidelity report not found: {path}")
    return json.loads(path.read_text())
