"""`lake-pipeline assess`: DataAssessor report (assessment.json + assessment.md) for one partition."""

from __future__ import annotations

import argparse
import sys

from lake_pipeline import paths
from lake_pipeline.argtypes import positive_float, positive_int
from lake_pipeline.cli_args import add_instrument_args, partition_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assess", help="assess one partition's lake tables and recommend a reconstruction strategy")
    p.add_argument("--data-root", required=True,
                   help="local directory, or s3://bucket/prefix (staged; endpoint: $LAKE_S3_ENDPOINT_URL)")
    add_instrument_args(p)
    p.add_argument("--date", required=True)
    p.add_argument("--chunk-rows", type=positive_int, default=1_000_000, help="reconstruction chunk size for the memory estimate")
    p.add_argument("--hole-threshold-s", type=positive_float, default=None,
                   help="report time holes longer than this (default: the gap threshold reconstruct uses, 5 s)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from lake_pipeline.assess.report import DEFAULT_HOLE_THRESHOLD_S, assess_partition, write_assessment
    from lake_pipeline.remote import local_or_staged

    part = partition_arg(args)
    with local_or_staged(args.data_root, part, **paths.ASSESS_ZONES) as root:
        report = assess_partition(root, part, chunk_rows=args.chunk_rows,
                                  hole_threshold_s=args.hole_threshold_s or DEFAULT_HOLE_THRESHOLD_S)
        json_path, md_path = write_assessment(report, root)
    print(f"recommended_strategy: {report['recommended_strategy']}")
    for reason in report["strategy_reasons"]:
        print(f"  - {reason}")
    if not report["value_checks"]["ok"]:
        print(f"WARNING: reconstruct will refuse this partition: {report['value_checks']['error']}", file=sys.stderr)
    print(f"wrote {json_path}\n      {md_path}")
    return 0
