"""`lake-pipeline reconstruct`: one symbol-day of lake tables -> unified events + book states (crash-safe)."""

from __future__ import annotations

import argparse
import json

from lake_pipeline import paths
from lake_pipeline.argtypes import positive_int
from lake_pipeline.cli_args import add_instrument_args, partition_arg


def register(sub: argparse._SubParsersAction) -> None:
    from lake_pipeline.config import default_data_root

    p = sub.add_parser(
        "reconstruct",
        help="replay a partition's trades, book rows and deltas into unified events and book states",
        description="Chronological Event Replay of lake/ready/{trades,book,book_delta_v2}/exchange=E/symbol=S/dt=D "
        "into unified/... and book_states/... (published atomically with _SUCCESS). A killed run resumes from "
        "its last durable chunk when started again with the same arguments.",
    )
    p.add_argument("--data-root", default=str(default_data_root()),
                   help="local directory, or s3://bucket/prefix (staged; endpoint: $LAKE_S3_ENDPOINT_URL)")
    add_instrument_args(p)
    p.add_argument("--date", required=True, help="UTC date YYYY-MM-DD")
    p.add_argument("--strategy", choices=("full_event_replay", "snapshot_anchored", "origin_time_sort"),
                   help="override the assessment's recommendation (default: assessment, else by data)")
    p.add_argument("--chunk-rows", type=positive_int, default=None, help="input rows per chunk (memory ~ chunk size)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lake_pipeline.reconstruct.run import DEFAULT_CHUNK_ROWS, reconstruct_partition
    from lake_pipeline.remote import local_or_staged

    part = partition_arg(args)
    with local_or_staged(args.data_root, part, **paths.RECONSTRUCT_ZONES) as root, \
            tqdm(unit=" rows", unit_scale=True, desc="reconstruct", disable=True if args.quiet else None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        summary = reconstruct_partition(root, part, strategy=args.strategy, chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS,
                                        progress=progress)
    s = summary.to_dict()
    print(json.dumps({k: s[k] for k in ("strategy", "rows", "book_state_rows", "gaps", "throughput", "timings_s",
                                        "cpu_s", "output", "repairs")}, indent=2))
    return 0
