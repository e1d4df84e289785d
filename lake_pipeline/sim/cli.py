"""`lake-pipeline simulate`: write one simulated partition (lake tables, golden feed, ground truth)."""

from __future__ import annotations

import argparse

from lake_pipeline.cli_args import add_instrument_args, partition_arg


def _faults(text: str) -> list[str]:
    return [f.strip() for f in text.split(",") if f.strip()]


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lake_pipeline.sim import simulate

    s = simulate(Path(args.data_root), partition_arg(args), args.hours, args.seed, start_hour=args.start_hour,
                 faults=args.faults, golden_hours=args.golden_hours,
                 lake_variant=args.lake_variant, progress=not args.quiet)
    t = s.timings
    print(f"simulated {s.exchange} {s.symbol} {s.date} from {s.start_hour:02d}:00 for {s.hours:g} h (seed {s.seed}) "
          f"in {t['total_s']:.1f} s: {s.lake_rows:,} lake rows, {s.rows_per_second:,.0f} rows/s")
    for table in ("book_delta_v2", "book", "trades", "truth_bbo"):
        print(f"  {table:<14} {s.rows.get(table, 0):>12,} rows")
    for stream, n in s.frames.items():
        print(f"  {stream:<26} {n:>10,} frames")
    print(f"  timings: market {t['market_s']:.1f} s, lake {t['lake_s']:.1f} s, golden {t['golden_s']:.1f} s, "
          f"reference replay {t['replay_s']:.1f} s")
    for f in s.faults:
        where = f.get("time_range_ns", "not injected")
        print(f"  fault {f['kind']}: {where}; reference replay mismatches: "
              f"{f.get('reference_replay', {}).get('mismatched_messages', 0)}")
    for name, path in s.paths.items():
        print(f"  {name:<14} {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from lake_pipeline.config import default_data_root

    p = sub.add_parser("simulate", help="simulate a partition: lake tables + golden Binance feed + ground truth")
    p.add_argument("--data-root", default=str(default_data_root()))
    add_instrument_args(p, symbol_default="BTC-USDT")
    p.add_argument("--date", default="2024-08-08", help="UTC date YYYY-MM-DD")
    p.add_argument("--hours", type=float, default=1.0, help="simulated hours (start_hour + hours <= 24)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start-hour", type=int, default=0)
    p.add_argument("--faults", type=_faults, default=[],
                   help="comma list: dropped-delta,time-hole,crossed-snapshot,missing-hour (lake tables only)")
    p.add_argument("--golden-hours", type=float, default=None,
                   help="hours of golden Binance feed, spot or USD-M frames by venue (default: all when "
                        "hours <= 2, else 1; 0 disables)")
    p.add_argument("--lake-variant", choices=("stored", "loaded"), default="stored",
                   help="lake column names: cryptofeed's stored names or lakeapi's loaded ones")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)
