"""`lake-pipeline export --format hftbacktest`: published unified events -> a backtester's input files."""

from __future__ import annotations

import argparse
import json

from lake_pipeline.cli_args import add_instrument_args, instrument_arg

FORMATS = ("hftbacktest",)


def register(sub: argparse._SubParsersAction) -> None:
    from lake_pipeline.config import default_data_root

    p = sub.add_parser(
        "export",
        help="write published unified events in a backtester's format (hftbacktest .npz)",
        description="Export the published unified events of one instrument over a date or a date range into "
        "hftbacktest's event array (.npz, plus <out>_snapshot.npz: the initial snapshot). Refuses partitions that "
        "are absent, unpublished (no _SUCCESS) or older than their lake inputs. Needs the optional extra: "
        "pip install 'lake_pipeline[hftbacktest]'.",
    )
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--data-root", default=str(default_data_root()), help="local data root")
    add_instrument_args(p)
    p.add_argument("--date", required=True, help="UTC date YYYY-MM-DD or an inclusive range YYYY-MM-DD..YYYY-MM-DD")
    p.add_argument("--out", required=True, help="output file, e.g. btcusdt_20240808.npz")
    p.add_argument("--base-latency-ns", type=int, default=0,
                   help="added to local timestamps when some precede their exchange time (hftbacktest's "
                   "correct_local_timestamp rule)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from lake_pipeline.handoff.hftbacktest import export_hftbacktest
    from lake_pipeline.handoff.readable import date_range

    instrument = instrument_arg(args)
    if not args.out.endswith(".npz"):
        raise ValueError(f"--out {args.out}: hftbacktest reads .npz files; name it *.npz")
    summary = export_hftbacktest(args.data_root, instrument, date_range(args.date), args.out,
                                 base_latency_ns=args.base_latency_ns)
    print(json.dumps(summary.to_dict(), indent=2))
    return 0
