"""The `data_assessment` asset: one partition's DataAssessor report, after the three raw lake tables."""

import dagster as dg

from lake_pipeline.lake.values import TIME_HOLE_S

from lake_pipeline import paths
from lake_pipeline.defs.automation import downstream_of_new_data
from lake_pipeline.partitions import instrument_date_partitions, partition_of
from lake_pipeline.resources import DataRoot
from lake_pipeline.schemas import LAKE_TABLES

RAW_KEYS = [dg.AssetKey(["lake", t]) for t in LAKE_TABLES]


class AssessmentConfig(dg.Config):
    chunk_rows: int = 1_000_000
    hole_threshold_s: float = TIME_HOLE_S


@dg.asset(
    partitions_def=instrument_date_partitions,
    deps=RAW_KEYS,
    group_name="assessment",
    automation_condition=downstream_of_new_data(),
    kinds={"json", "markdown"},
    description="DataAssessor: availability, validity, completeness and sequence analysis of the raw tables, and the "
    "recommended reconstruction strategy (reports/assessment/…/assessment.json + .md).",
)
def data_assessment(context: dg.AssetExecutionContext, config: AssessmentConfig,
                    data_root: DataRoot) -> dg.MaterializeResult:
    from lake_pipeline.assess.render import render_markdown
    from lake_pipeline.assess.report import assess_partition, write_assessment

    part = partition_of(context)
    with data_root.staged(part, **paths.ASSESS_ZONES) as root:
        report = assess_partition(root, part, chunk_rows=config.chunk_rows, hole_threshold_s=config.hole_threshold_s)
        json_path, md_path = write_assessment(report, root)
    deltas, book = report.get("book_delta_v2") or {}, report.get("book") or {}
    snap = report["cross_table"].get("snapshot_vs_deltas", {})
    return dg.MaterializeResult(metadata=data_root.for_ui({
        "recommended_strategy": report["recommended_strategy"],
        "reconstructable": report["value_checks"]["ok"],
        "value_repairs": report["value_checks"]["repairs"],
        "summary": dg.MetadataValue.md(render_markdown(report)),
        "report_json": dg.MetadataValue.path(str(json_path)),
        "report_md": dg.MetadataValue.path(str(md_path)),
        "delta_messages": int(deltas.get("messages", 0)),
        "delta_coverage_of_day": float(deltas.get("coverage_of_day", 0.0)),
        "delta_time_holes": int(deltas.get("time_holes", {}).get("count", 0)),
        "sequence_backwards_steps": int(deltas.get("sequence", {}).get("backwards", 0)),
        "crossed_snapshot_rows": int(book.get("crossed", {}).get("crossed_rows", 0)),
        "snapshots_without_delta_message": int(snap.get("unmatched_outside_delta_holes", 0)),
        "estimated_chunk_gib": float(report["memory"].get("estimated_chunk_gib", 0.0)),
        "assessment_seconds": float(report["seconds"]),
    }, root))


assets = [data_assessment]
