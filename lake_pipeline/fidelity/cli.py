"""`lake-pipeline fidelity …` (report for one partition) and `lake-pipeline fidelity calibrate …` (tolerances).

Heavy imports (numba, polars, plotly) happen inside the handlers so `lake-pipeline --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lake_pipeline.cli_args import add_instrument_args, instrument_arg, partition_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fidelity", help="fidelity report of a reconstructed partition against golden samples",
                       description="Write reports/fidelity/exchange=E/symbol=S/dt=D/fidelity.{html,md,json}.")
    p.add_argument("--data-root", type=Path, help="data root (default: $LAKE_DATA_ROOT or ./data)")
    add_instrument_args(p, symbol_required=False)
    p.add_argument("--date", help="partition date YYYY-MM-DD")
    p.add_argument("--golden-session", default=None,
                   help="session ID under golden/…/dt=D/ (default: the largest session of the partition)")
    p.add_argument("--reference", type=Path, default=None,
                   help="Tier B reference when the partition has no golden session: a golden session directory "
                        "or a unified partition directory (any period; compared unpaired)")
    p.add_argument("--tolerances", type=Path, default=None, help="tolerance config (default: the shipped one)")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: the partition's report dir)")
    p.add_argument("--fail-on", choices=("never", "fail", "warn"), default="never",
                   help="exit 1 when the overall status is FAIL (or WARN/FAIL with 'warn')")
    p.set_defaults(func=_run_report)
    inner = p.add_subparsers(dest="fidelity_command", metavar="[calibrate]")
    c = inner.add_parser("calibrate", help="calibrate Tier B tolerances from golden-vs-golden variability",
                         description="Split each golden session into halves and quarters, measure every Tier B "
                                     "distance between same-length windows, and write p95 × margin as tolerances.")
    c.add_argument("--golden-session", nargs="+", type=Path, required=True,
                   help="golden session directories (capture files inside)")
    c.add_argument("--exchange", default=None, help="venue (default: from the session path's exchange=…, else "
                                                    "the symbol's venue)")
    c.add_argument("--symbol", default=None, help="symbol (default: from the session path's symbol=…)")
    c.add_argument("--base", type=Path, default=None,
                   help="config to start from (declared tolerances, critical flags; default: the shipped one)")
    c.add_argument("--margin", type=float, default=None, help="tolerance = p95 × margin (default 1.5)")
    c.add_argument("--out", type=Path, default=Path("tolerances.yaml"), help="where to write the new config")
    c.set_defaults(func=_run_calibrate)


def _run_report(args: argparse.Namespace) -> int:
    from lake_pipeline import paths
    from lake_pipeline.config import default_data_root
    from lake_pipeline.fidelity.report import write_report
    from lake_pipeline.fidelity.runner import run_fidelity

    if not (args.symbol and args.date):
        raise ValueError("fidelity needs --symbol and --date (or the 'calibrate' sub-command)")
    root = (args.data_root or default_data_root()).resolve()
    part = partition_arg(args)
    report = run_fidelity(root, part, golden_session=args.golden_session,
                          reference=args.reference, tolerances_path=args.tolerances)
    out = args.out or paths.fidelity_dir(root, part)
    written = write_report(report, out)
    doc = report.to_json()
    score = "n/a" if doc["score"] is None else f"{doc['score']:.3f}"
    print(f"fidelity {part}: {doc['status']} (score {score}) — {doc['status_reason']}")
    for kind, path in written.items():
        print(f"  {kind}: {path}")
    if args.fail_on == "fail" and doc["status"] == "FAIL" or args.fail_on == "warn" and doc["status"] in ("FAIL",
                                                                                                          "WARN"):
        return 1
    return 0


def _run_calibrate(args: argparse.Namespace) -> int:
    from lake_pipeline import paths
    from lake_pipeline.config import symbol_spec
    from lake_pipeline.fidelity import adapters, calibrate, tolerances

    base = tolerances.load(args.base)
    views, sources = [], []
    for session in args.golden_session:
        if args.symbol is not None:
            instrument = instrument_arg(args)
        else:
            try:
                instrument = paths.parse_partition_path(session).instrument
            except ValueError:
                raise ValueError(f"{session}: pass --symbol (the path has no exchange=…/symbol=…/dt=… segments)") \
                    from None
        symbol = instrument.symbol
        spec = symbol_spec(instrument)
        if spec is None:
            raise ValueError(f"instrument {instrument} has no configured tick/lot (lake_pipeline/symbols.yaml or "
                             f"$LAKE_SYMBOLS_FILE); calibration needs exact units")
        files = adapters.golden_session_files(session)
        view = adapters.read_golden_session(files, spec, label=str(session), rebuild_book=False)
        views.append(view)
        sources.append({"session": str(session), "symbol": symbol, "seconds": round(view.duration_s, 3),
                        "files": [{"path": f.path, "sha256": f.sha256, "bytes": f.bytes} for f in view.inputs]})
    kwargs = {} if args.margin is None else {"margin": args.margin}
    new = calibrate.calibrate(views, base, sources=sources, **kwargs)
    tolerances.dump(new, args.out)
    print(f"wrote {args.out} (version {new.version}, from {len(views)} session(s))")
    for name, entry in new.metrics.items():
        if entry.get("source") == "calibrated":
            print(f"  {name:28s} tolerance {entry.get('tolerance')}  "
                  f"(p95 {entry.get('p95')}, {entry.get('pairs')} pairs)")
    return 0
