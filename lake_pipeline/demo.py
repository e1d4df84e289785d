"""`lake-pipeline demo`: simulate a spot and a futures partition, materialise every asset of each through Dagster's
CLI, print the outputs.

`lake-pipeline dagster-home` prepares `$DAGSTER_HOME` (<data root>/dagster_home) with the repo's dagster.yaml.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from lake_pipeline.instrument import Instrument, Partition

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_INSTRUMENTS = "BINANCE.BTC-USDT,BINANCE_FUTURES.BTC-USDT-PERP"
DEMO_DATE = "2024-08-08"


def prepare_dagster_home(data_root: Path) -> Path:
    """Create <data root>/dagster_home holding the repo's dagster.yaml (SQLite storage lands beside it)."""
    home = Path(data_root) / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    src = REPO_ROOT / "dagster.yaml"
    if src.exists():
        shutil.copyfile(src, home / "dagster.yaml")
    return home


def _demo_partitions(args: argparse.Namespace) -> list[Partition]:
    return [Instrument.parse(text).on(args.date) for text in args.instruments.split(",") if text.strip()]


def _materialise(part: Partition, env: dict[str, str]) -> int:
    """Every asset of one partition in one `dagster asset materialize` process."""
    cmd = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "lake_pipeline.definitions",
           "--select", "*", "--partition", part.key,
           # one process: the multiprocess executor costs ~5 s of start-up per step on 2 cores
           "--config-json", '{"execution": {"config": {"in_process": {}}}}']
    print(f"$ {' '.join(cmd)}", flush=True)
    rc = subprocess.run(cmd, env=env, cwd=REPO_ROOT).returncode
    if rc:
        print(f"demo: dagster materialisation of {part.key} failed (exit {rc})", file=sys.stderr)
    return rc


def _run_demo(args: argparse.Namespace) -> int:
    from lake_pipeline.cli import main as cli_main

    data_root = Path(args.data_root).resolve()
    parts = _demo_partitions(args)
    t0 = time.perf_counter()
    for part in parts:
        rc = cli_main(["simulate", "--data-root", str(data_root), "--exchange", part.exchange, "--symbol", part.symbol,
                       "--date", part.date, "--hours", str(args.hours), "--seed", str(args.seed)])
        if rc:
            return rc
    home = prepare_dagster_home(data_root)
    env = {**os.environ, "DAGSTER_HOME": str(home), "LAKE_DATA_ROOT": str(data_root)}
    for part in parts:
        rc = _materialise(part, env)
        if rc:
            return rc
    print(f"\nDemo finished in {time.perf_counter() - t0:.1f} s. Outputs under {data_root}:")
    for part in parts:
        print(f"partition {part.key}:")
        for sub in ("lake/ready", "reports", "golden", "unified", "book_states", "sim_truth"):
            p = data_root / sub
            files = [f for f in p.rglob("*") if f.is_file() and part.hive in f.as_posix()] if p.exists() else []
            if files:
                print(f"  {sub:<12} {len(files):>3} files  {p}")
        _print_fidelity(data_root, part)
    print(f"dagster home {home}  (make ui to browse runs)")
    return 0


def _print_fidelity(data_root: Path, part: Partition) -> None:
    import json

    from lake_pipeline.paths import fidelity_dir

    out = fidelity_dir(data_root, part)
    report = out / "fidelity.json"
    if not report.exists():
        print("  fidelity     no report was written")
        return
    doc = json.loads(report.read_text())
    score = "n/a" if doc["score"] is None else f"{doc['score']:.3f}"
    print(f"  fidelity     {doc['status']} (headline score {score})  {out / 'fidelity.html'}")


def _run_home(args: argparse.Namespace) -> int:
    print(prepare_dagster_home(Path(args.data_root).resolve()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from lake_pipeline.config import default_data_root

    p = sub.add_parser("demo", help="simulate a spot and a futures partition and materialise every asset through "
                                    "Dagster")
    p.add_argument("--data-root", default=str(default_data_root()))
    p.add_argument("--instruments", default=DEMO_INSTRUMENTS,
                   help=f"comma-separated VENUE.SYMBOL instruments (default {DEMO_INSTRUMENTS})")
    p.add_argument("--date", default=DEMO_DATE)
    p.add_argument("--hours", type=float, default=0.1, help="simulated hours per partition")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_run_demo)
    h = sub.add_parser("dagster-home", help="prepare $DAGSTER_HOME under the data root with the repo's dagster.yaml")
    h.add_argument("--data-root", default=str(default_data_root()))
    h.set_defaults(func=_run_home)
