"""`lake-pipeline demo`: simulate one partition, materialise every asset for it through Dagster's CLI, print outputs.

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

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_SYMBOL = "BTC-USDT"
DEMO_DATE = "2024-08-08"


def prepare_dagster_home(data_root: Path) -> Path:
    """Create <data root>/dagster_home holding the repo's dagster.yaml (SQLite storage lands beside it)."""
    home = Path(data_root) / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    src = REPO_ROOT / "dagster.yaml"
    if src.exists():
        shutil.copyfile(src, home / "dagster.yaml")
    return home


def _run_demo(args: argparse.Namespace) -> int:
    from lake_pipeline.cli import main as cli_main

    data_root = Path(args.data_root).resolve()
    t0 = time.perf_counter()
    rc = cli_main(
        ["simulate", "--data-root", str(data_root), "--symbol", args.symbol, "--date", args.date,
         "--hours", str(args.hours), "--seed", str(args.seed)]
    )
    if rc:
        return rc
    home = prepare_dagster_home(data_root)
    env = {**os.environ, "DAGSTER_HOME": str(home), "LAKE_DATA_ROOT": str(data_root)}
    key = f"{args.date}|{args.symbol}"
    cmd = [str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "-m", "lake_pipeline.definitions",
           "--select", "*", "--partition", key,
           # one process: the multiprocess executor costs ~5 s of start-up per step on 2 cores
           "--config-json", '{"execution": {"config": {"in_process": {}}}}']
    print(f"$ {' '.join(cmd)}", flush=True)
    proc = subprocess.run(cmd, env=env, cwd=REPO_ROOT)
    if proc.returncode:
        print(f"demo: dagster materialisation of {key} failed (exit {proc.returncode})", file=sys.stderr)
        return proc.returncode
    print(f"\nDemo finished in {time.perf_counter() - t0:.1f} s. Outputs for partition {key} under {data_root}:")
    for sub in ("lake/ready", "reports", "golden", "unified", "book_states", "sim_truth"):
        p = data_root / sub
        if p.exists():
            files = [f for f in p.rglob("*") if f.is_file() and f"symbol={args.symbol}" in str(f) and f"dt={args.date}" in str(f)]
            if files:
                print(f"  {sub:<12} {len(files):>3} files  {p}")
    print(f"  dagster home {home}  (make ui to browse runs)")
    _print_fidelity(data_root, args.symbol, args.date)
    return 0


def _print_fidelity(data_root: Path, symbol: str, date: str) -> None:
    import json

    from lake_pipeline.config import DEFAULT_EXCHANGE
    from lake_pipeline.paths import fidelity_dir

    out = fidelity_dir(data_root, DEFAULT_EXCHANGE, symbol, date)
    report = out / "fidelity.json"
    if not report.exists():
        print("  fidelity     no report was written")
        return
    doc = json.loads(report.read_text())
    print(f"\nFidelity: {doc['status']} (headline score {doc['score']:.3f})")
    print(f"  report       {out / 'fidelity.html'}")


def _run_home(args: argparse.Namespace) -> int:
    print(prepare_dagster_home(Path(args.data_root).resolve()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from lake_pipeline.config import default_data_root

    p = sub.add_parser("demo", help="simulate one partition and materialise every asset through Dagster")
    p.add_argument("--data-root", default=str(default_data_root()))
    p.add_argument("--symbol", default=DEMO_SYMBOL)
    p.add_argument("--date", default=DEMO_DATE)
    p.add_argument("--hours", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=_run_demo)
    h = sub.add_parser("dagster-home", help="prepare $DAGSTER_HOME under the data root with the repo's dagster.yaml")
    h.add_argument("--data-root", default=str(default_data_root()))
    h.set_defaults(func=_run_home)
