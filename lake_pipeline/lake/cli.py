"""`lake-pipeline lake-from-capture`: derive lake-format tables from a real golden capture."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lake-from-capture",
        help="derive Crypto-Lake-format trades/book/book_delta_v2 from golden capture files",
        description="Converts one continuous capture session (files in order) into lake/ready/{table}/"
        "exchange=E/symbol=S/dt=D partitions by the UTC date of the exchange time.",
    )
    p.add_argument("--capture", nargs="+", required=True, metavar="FILE", help="capture files, in session order")
    p.add_argument("--data-root", required=True, help="data root (lake/ready/... is written under it)")
    p.add_argument("--symbol", required=True, help="e.g. BTC-USDT")
    p.add_argument("--exchange", default="BINANCE")
    p.add_argument("--tick", help="price tick (default: symbol config)")
    p.add_argument("--lot", help="size lot (default: symbol config)")
    p.set_defaults(func=_lake_from_capture)


def _lake_from_capture(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lake_pipeline.lake.from_capture import lake_from_capture, resolve_spec

    spec = resolve_spec(args.symbol, args.tick, args.lot)
    with tqdm(unit=" frames", desc="lake-from-capture", disable=None) as bar:
        report = lake_from_capture(args.capture, args.data_root, args.symbol, args.exchange, spec,
                                   progress=bar.update)
    print(json.dumps(report.to_dict(), indent=2))
    return 0
