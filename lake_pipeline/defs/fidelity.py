"""Fidelity in Dagster: the `fidelity_report` asset, one asset check per metric family on `unified_events`, and
a schedule that runs those checks for each new date partition (checks-only job launched by tag).

Thin wrappers: all statistics live in `lake_pipeline.fidelity`. The checks read the report's JSON through the
data-root resource; a missing or stale report fails the check with a clear description instead of guessing.
Check outcome per family: PASS → passed; WARN or N/A → failed with severity WARN; FAIL → failed with severity
ERROR when the family holds a critical metric (tolerance config), WARN otherwise.
No `from __future__ import annotations` here: dagster validates the `context` annotation as a class, not a string.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
from dagster import AssetCheckExecutionContext, AssetExecutionContext, ScheduleEvaluationContext

from lake_pipeline import paths
from lake_pipeline.defs.automation import GOLDEN, report_condition
from lake_pipeline.fidelity import catalog
from lake_pipeline.partitions import INSTRUMENTS, instrument_date_partitions, partition_of
from lake_pipeline.resources import DataRoot

UNIFIED_EVENTS = dg.AssetKey("unified_events")
FIDELITY_REPORT = dg.AssetKey("fidelity_report")


def _critical_families() -> set[str]:
    from lake_pipeline.fidelity import tolerances

    tol = tolerances.load()
    return {m.family for m in catalog.METRICS if tol.critical(m.name)}


CRITICAL_FAMILIES = _critical_families()


@dg.asset(
    key=FIDELITY_REPORT,
    group_name="fidelity",
    partitions_def=instrument_date_partitions,
    deps=[UNIFIED_EVENTS, GOLDEN],
    automation_condition=report_condition(),
    kinds={"html"},
    description="Two-tier fidelity report (paired replay accuracy vs golden samples; distributional realism with "
                "block-bootstrap intervals and calibrated tolerances) as HTML, Markdown and JSON.",
)
def fidelity_report(context: AssetExecutionContext, data_root: DataRoot) -> dg.MaterializeResult:
    from lake_pipeline.fidelity.report import write_report
    from lake_pipeline.fidelity.runner import run_fidelity

    part = partition_of(context)
    with data_root.staged(part, reads=["unified"], optional_reads=["book_states", "golden"],
                          writes=["reports/fidelity"]) as root:
        report = run_fidelity(root, part)
        written = write_report(report, paths.fidelity_dir(root, part))
    doc = report.to_json()
    counts: dict[str, int] = {}
    for m in doc["metrics"]:
        counts[m["status"]] = counts.get(m["status"], 0) + 1
    return dg.MaterializeResult(metadata=data_root.for_ui({
        "status": doc["status"],
        "headline_score": dg.MetadataValue.float(float(doc["score"])) if doc["score"] is not None else "n/a",
        "status_reason": doc["status_reason"],
        "html": dg.MetadataValue.path(str(written["html"])),
        "json": dg.MetadataValue.path(str(written["json"])),
        "tier_a_available": bool(doc["comparison"].get("tier_a_available")),
        "metric_counts": dg.MetadataValue.json(counts),
        "families": dg.MetadataValue.json(doc["families"]),
        "summary": dg.MetadataValue.md(_table(doc)),
        "timings_s": dg.MetadataValue.json(doc["timings"]),
    }, root))


def _table(doc: dict) -> str:
    rows = ["| metric | value | interval | tolerance | status |", "|---|---|---|---|---|"]
    for m in doc["metrics"]:
        ci = f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]" if m["ci_low"] is not None else "—"
        val = "—" if m["value"] is None else f"{m['value']:.5g}"
        tol = "—" if m["tolerance"] is None else f"{m['tolerance']:.4g}"
        rows.append(f"| {m['name']}{' ★' if m['critical'] else ''} | {val} | {ci} | {tol} | {m['status']} |")
    return "\n".join(rows)


def _check_name(family: str) -> str:
    return f"fidelity_{family}"


CHECK_SPECS = [
    dg.AssetCheckSpec(
        _check_name(family), asset=UNIFIED_EVENTS, additional_deps=[FIDELITY_REPORT],
        partitions_def=instrument_date_partitions,
        description=f"Fidelity metrics of family '{family}' "
                    f"({'critical' if family in CRITICAL_FAMILIES else 'not critical'})"
                    f": {', '.join(m.name for m in catalog.METRICS if m.family == family)}",
    )
    for family in catalog.FAMILIES
]


def family_check_results(doc: dict | None, why_missing: str, html: str) -> Iterator[dg.AssetCheckResult]:
    """One AssetCheckResult per family from a fidelity JSON (or failed results saying why there is none)."""
    for family in catalog.FAMILIES:
        name = _check_name(family)
        critical = family in CRITICAL_FAMILIES
        if doc is None:
            yield dg.AssetCheckResult(check_name=name, asset_key=UNIFIED_EVENTS, passed=False,
                                      severity=dg.AssetCheckSeverity.WARN, description=why_missing)
            continue
        rows = [m for m in doc["metrics"] if m["family"] == family]
        status = doc["families"].get(family, "N/A")
        failing = [m["name"] for m in rows if m["status"] not in ("PASS",)]
        # a critical family is an ERROR gate; a WARN (point estimate inside, interval not) or missing evidence is a WARN
        severity = (dg.AssetCheckSeverity.ERROR if critical and status in ("PASS", "FAIL")
                    else dg.AssetCheckSeverity.WARN)
        yield dg.AssetCheckResult(
            check_name=name, asset_key=UNIFIED_EVENTS, passed=status == "PASS", severity=severity,
            description=f"{family}: {status}" + (f" (not passing: {', '.join(failing)})" if failing else ""),
            metadata={
                "status": status,
                "overall_status": doc["status"],
                "headline_score": dg.MetadataValue.float(float(doc["score"])) if doc["score"] is not None else "n/a",
                "html": dg.MetadataValue.path(html),
                "metrics": dg.MetadataValue.json({m["name"]: {k: m[k] for k in ("value", "ci_low", "ci_high",
                                                                                  "tolerance", "status")}
                                                  for m in rows}),
            },
        )


@dg.multi_asset_check(specs=CHECK_SPECS, can_subset=False, name="fidelity_checks")
def fidelity_checks(context: AssetCheckExecutionContext, data_root: DataRoot) -> Iterator[dg.AssetCheckResult]:
    from lake_pipeline.fidelity.report import read_report_json

    part = partition_of(context)
    # remote data root: only the report JSON and the unified _SUCCESS marker (its remote write time) are staged in
    with data_root.staged(part, file_reads={"reports/fidelity": ["fidelity.json"], "unified": ["_SUCCESS"]}) as root:
        out = paths.fidelity_dir(root, part)
        success = paths.unified_dir(root, part) / "_SUCCESS"
        doc, why = None, ""
        try:
            doc = read_report_json(out / "fidelity.json")
            if success.exists() and success.stat().st_mtime > (out / "fidelity.json").stat().st_mtime:
                doc, why = None, (f"fidelity report {out / 'fidelity.json'} is older than the unified events "
                                  f"({success}); materialize fidelity_report for {part.key}")
        except FileNotFoundError as exc:
            why = f"{exc}; materialize fidelity_report for {part.key}"
    yield from family_check_results(doc, why, str(out / "fidelity.html"))


fidelity_checks_job = dg.define_asset_job(
    "fidelity_checks_job", selection=dg.AssetSelection.checks(fidelity_checks),
    partitions_def=instrument_date_partitions,
    description="Runs the fidelity asset checks for one partition "
                "(launch with tag dagster/partition=<date>|<VENUE.SYMBOL>).",
)


@dg.schedule(job=fidelity_checks_job, cron_schedule="30 3 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def fidelity_checks_schedule(context: ScheduleEvaluationContext):
    """Every day: the checks of yesterday's partition for each instrument.

    A checks-only job loses its partitions_def (research dagster.md §1.7 pitfall 4), so the partition goes in the
    `dagster/partition` TAG, not `partition_key`.
    """
    day = (context.scheduled_execution_time - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    for instrument in INSTRUMENTS:
        key = instrument.on(day).key
        yield dg.RunRequest(run_key=f"fidelity-checks-{key}", tags={"dagster/partition": key})


assets = [fidelity_report]
checks = [fidelity_checks]
jobs = [fidelity_checks_job]
schedules = [fidelity_checks_schedule]
