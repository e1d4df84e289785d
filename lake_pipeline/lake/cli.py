"""Lake sub-commands.

`lake-pipeline acquire`: Crypto Lake partitions (S3 or a local directory) -> validated ready zone. Exit codes:
0 every partition acquired or already up to date; 3 some partitions are missing at the source (and none failed);
2 a partition failed validation or the source could not be read; 5 disk full (the partial download is removed).

`lake-pipeline lake-from-capture`: derive lake-format tables from a real golden capture.
"""

from __future__ import annotations

import argparse
import json
import sys

from lake_pipeline import exits
from lake_pipeline.argtypes import non_negative_float, positive_decimal, positive_float, positive_int
from lake_pipeline.cli_args import add_instrument_args, instrument_arg, partition_arg


def register(sub: argparse._SubParsersAction) -> None:
    _register_acquire(sub)
    _register_from_capture(sub)


def _register_acquire(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("acquire", help="download Crypto Lake partitions, validate them, publish to lake/ready",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="s3://bucket/prefix in Crypto Lake layout, or a local directory")
    p.add_argument("--table", default="trades,book,book_delta_v2", help="comma-separated tables (default: all three)")
    add_instrument_args(p)
    p.add_argument("--date", required=True, help="YYYY-MM-DD or an inclusive range YYYY-MM-DD..YYYY-MM-DD")
    p.add_argument("--data-root", required=True)
    p.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint (default: AWS)")
    p.add_argument("--anonymous", action="store_true", help="unsigned requests (public buckets, e.g. the sample)")
    p.add_argument("--concurrency", type=positive_int, default=4, help="ranged GETs in flight (default 4)")
    p.add_argument("--chunk-mib", type=positive_float, default=8.0, help="ranged GET size in MiB (default 8)")
    p.add_argument("--time-tolerance-s", type=non_negative_float, default=300.0,
                   help="allowed distance of row times outside the partition's UTC date (default 300)")
    p.add_argument("--no-etag-check", action="store_true", help="skip ETag/MD5 comparison (SSE-KMS buckets)")
    p.add_argument("--force", action="store_true", help="re-acquire even when ready matches the source")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lake_pipeline.lake.acquire import MISSING, acquire_partition, date_range
    from lake_pipeline.lake.source import open_source
    from lake_pipeline.lake.validate import ValidationError
    from lake_pipeline.schemas import LAKE_TABLES

    tables = [t.strip() for t in args.table.split(",") if t.strip()]
    unknown = sorted(set(tables) - set(LAKE_TABLES))
    if unknown:
        raise ValueError(f"unknown --table {unknown}: expected some of {list(LAKE_TABLES)}")
    dates = date_range(args.date)
    source = open_source(args.source, endpoint_url=args.endpoint_url, anonymous=args.anonymous,
                         max_connections=args.concurrency)
    missing, failed, done = [], [], 0
    for date in dates:
        for table in tables:
            try:
                result = acquire_partition(
                    source, partition_arg(args, date), table, Path(args.data_root),
                    concurrency=args.concurrency, chunk_bytes=int(args.chunk_mib * (1 << 20)),
                    tolerance_s=args.time_tolerance_s, verify_etag=not args.no_etag_check, force=args.force,
                    progress=not args.no_progress,
                )
            except ValidationError as exc:
                failed.append(str(exc))
                print(f"INVALID {exc}", file=sys.stderr)
                continue
            print(result.summary())
            if result.status == MISSING:
                missing.append(result)
            else:
                done += 1
    print(f"summary: {done} ready, {len(missing)} missing, {len(failed)} invalid "
          f"({len(dates)} date(s) x {len(tables)} table(s))")
    for r in missing:
        print(f"missing: {r.table} {r.part.hive}")
    if failed:
        return exits.BAD_INPUT
    return exits.MISSING if missing else exits.OK


def _register_from_capture(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lake-from-capture",
        help="derive Crypto-Lake-format trades/book/book_delta_v2 from golden capture files",
        description="Converts one continuous capture session (files in order) into lake/ready/{table}/"
        "exchange=E/symbol=S/dt=D partitions by the UTC date of the exchange time.",
    )
    p.add_argument("--capture", nargs="+", required=True, metavar="FILE", help="capture files, in session order")
    p.add_argument("--data-root", required=True, help="data root (lake/ready/... is written under it)")
    add_instrument_args(p)
    p.add_argument("--tick", type=positive_decimal, help="price tick (default: symbol config)")
    p.add_argument("--lot", type=positive_decimal, help="size lot (default: symbol config)")
    p.add_argument("--replace", action="store_true",
                   help="replace dates already converted from a different capture (default: refuse to mix)")
    p.set_defaults(func=_lake_from_capture)


def _lake_from_capture(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lake_pipeline.lake.from_capture import lake_from_capture, resolve_spec

    instrument = instrument_arg(args)
    spec = resolve_spec(instrument, args.tick, args.lot)
    with tqdm(unit=" frames", desc="lake-from-capture", disable=None) as bar:
        report = lake_from_capture(args.capture, args.data_root, instrument, spec,
                                   progress=bar.update, replace=args.replace)
    print(json.dumps(report.to_dict(), indent=2))
    return 0
