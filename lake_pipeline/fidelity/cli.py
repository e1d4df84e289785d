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
    inner = p.add_subparsers(dest="fidelity_command", metavar="[calibrate | power]")
    c = inner.add_parser("calibrate", help="calibrate Tier B tolerances from golden-vs-golden variability",
                         description="Split each golden session into halves and quarters, measure every Tier B "
                                     "distance between same-length windows, and write p95 × margin as tolerances.")
    c.add_argument("--golden-session", nargs="+", required=True,
                   help="golden session directories (capture files inside), each optionally [VENUE.]SYMBOL@DIR")
    c.add_argument("--exchange", default=None, help="venue (default: from the session path's exchange=…, else "
                                                    "the symbol's venue)")
    c.add_argument("--symbol", default=None, help="symbol (default: from the session path's symbol=…)")
    c.add_argument("--base", type=Path, default=None,
                   help="config to start from (declared tolerances, critical flags; default: the shipped one)")
    c.add_argument("--margin", type=float, default=None, help="tolerance = p95 × margin (default 1.5)")
    c.add_argument("--out", type=Path, default=Path("tolerances.yaml"), help="where to write the new config")
    c.add_argument("--note", action="append", default=[],
                   help="recorded in the config's calibration block (e.g. a recording left out and why)")
    c.set_defaults(func=_run_calibrate)
    w = inner.add_parser("power", help="defect-injection benchmark: how well the report catches broken data",
                         description="Reconstruct a real recording correctly, inject realistic defects into the "
                                     "reconstruction and into its lake inputs, run the report on each and print a "
                                     "confusion table (exit 1 when a defect is missed or the correct one fails).")
    w.add_argument("--capture", nargs="+", type=Path, required=True, help="capture files of one session, in order")
    add_instrument_args(w, symbol_default="BTC-USDT")
    w.add_argument("--date", required=True, help="partition of the recording to test, YYYY-MM-DD")
    w.add_argument("--work", type=Path, default=None, help="working directory (default: <data root>/power)")
    w.add_argument("--data-root", type=Path, default=None, help="data root (default: $LAKE_DATA_ROOT or ./data)")
    w.add_argument("--defects", nargs="+", default=None, help="defect names (default: all; see --list)")
    w.add_argument("--quick", action="store_true", help="the reduced table the test suite runs")
    w.add_argument("--seed", type=int, default=1, help="seed of the rows and phases the defects hit")
    w.add_argument("--reps", type=int, default=None, help="bootstrap replicates (default: the tolerance file's)")
    w.add_argument("--keep", action="store_true", help="keep every variant's data root under --work")
    w.add_argument("--out", type=Path, default=None, help="also write the table (Markdown) to this file")
    w.add_argument("--list", action="store_true", help="list the defects and exit")
    w.set_defaults(func=_run_power)


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
    for entry in args.golden_session:
        named, _, where = str(entry).rpartition("@")
        session = Path(where)
        if named or args.symbol is not None:
            instrument = instrument_arg(args, named or None)
        else:
            try:
                instrument = paths.parse_partition_path(session).instrument
            except ValueError:
                raise ValueError(f"{session}: give its instrument ([VENUE.]SYMBOL@{session} or --symbol; the path "
                                 f"has no exchange=…/symbol=…/dt=… segments)") from None
        symbol = instrument.symbol
        spec = symbol_spec(instrument)
        if spec is None:
            raise ValueError(f"instrument {instrument} has no configured tick/lot (lake_pipeline/symbols.yaml or "
                             f"$LAKE_SYMBOLS_FILE); calibration needs exact units")
        files = adapters.golden_session_files(session)
        view = adapters.read_golden_session(files, spec, label=str(session), rebuild_book=False)
        views.append(view)
        sources.append({"session": str(session), "exchange": instrument.exchange, "symbol": symbol,
                        "seconds": round(view.duration_s, 3),
                        "trades": view.trades.height, "bbo_rows": view.bbo.height,
                        "files": [{"path": f.path, "sha256": f.sha256, "bytes": f.bytes} for f in view.inputs]})
    kwargs = {} if args.margin is None else {"margin": args.margin}
    new = calibrate.calibrate(views, base, sources=sources, notes=args.note, **kwargs)
    tolerances.dump(new, args.out)
    print(f"wrote {args.out} (version {new.version}, from {len(views)} session(s))")
    for name, entry in new.metrics.items():
        if entry.get("source") == "calibrated":
            print(f"  {name:28s} tolerance {entry.get('tolerance')}  "
                  f"(p95 {entry.get('p95')} from {entry.get('p95_from')}, {entry.get('pairs')} pairs)")
    return 0


def _run_power(args: argparse.Namespace) -> int:
    from lake_pipeline.atomic import write_text_atomic
    from lake_pipeline.config import default_data_root
    from lake_pipeline.fidelity import defects, power

    if args.list:
        for d in defects.CATALOG:
            print(f"{d.name:44s} {d.stage:6s} {d.severity:6s} {'quick ' if d.quick else '      '}{d.description}")
        return 0
    for f in args.capture:
        if not f.is_file():
            raise FileNotFoundError(f"capture file not found: {f}")
    chosen = defects.get(args.defects, quick=args.quick)
    work = args.work or (args.data_root or default_data_root()) / "power"
    target = power.Target(tuple(args.capture), partition_arg(args))

    def show(row: power.Row) -> None:
        print(f"  {row.defect:44s} {row.status:5s} ({row.seconds:.1f} s)", flush=True)

    rows = power.run(target, work, chosen, seed=args.seed, reps=args.reps, keep=args.keep, progress=show)
    text = power.table(rows)
    print(text)
    if args.out:
        write_text_atomic(args.out, text)
    return 0 if all(r.caught for r in rows) else 1
