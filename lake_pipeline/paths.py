"""Hive-style zone layout under the data root (DESIGN §2). Every stage builds paths here, nowhere else."""

from __future__ import annotations

from pathlib import Path


def partition_dir(root: Path, zone: str, exchange: str, symbol: str, date: str) -> Path:
    """`<root>/<zone>/exchange=E/symbol=S/dt=D` — `zone` may contain slashes (e.g. `lake/ready/trades`)."""
    return Path(root) / zone / f"exchange={exchange}" / f"symbol={symbol}" / f"dt={date}"


def lake_ready(root: Path, table: str, exchange: str, symbol: str, date: str) -> Path:
    return partition_dir(root, f"lake/ready/{table}", exchange, symbol, date)


def lake_staging(root: Path, table: str, exchange: str, symbol: str, date: str) -> Path:
    return partition_dir(root, f"lake/staging/{table}", exchange, symbol, date)


def assessment_dir(root: Path, exchange: str, symbol: str, date: str) -> Path:
    return partition_dir(root, "reports/assessment", exchange, symbol, date)


def golden_dir(root: Path, exchange: str, symbol: str, date: str) -> Path:
    return partition_dir(root, "golden", exchange, symbol, date)


def unified_dir(root: Path, exchange: str, symbol: str, date: str) -> Path:
    return partition_dir(root, "unified", exchange, symbol, date)


def book_states_dir(root: Path, exchange: str, symbol: str, date: str) -> Path:
    return partition_dir(root, "book_states", exchange, symbol, date)


def fidelity_dir(root: Path, exchange: str, symbol: str, date: str) -> Path:
    return partition_dir(root, "reports/fidelity", exchange, symbol, date)


def truth_dir(root: Path, exchange: str, symbol: str, date: str) -> Path:
    """Simulator ground truth (BBO of the true market), for tests and the demo's fidelity reference."""
    return partition_dir(root, "sim_truth", exchange, symbol, date)


# The zones each step reads and writes for one partition. An object-store data root stages exactly these in and
# out (remote.py); the Dagster assets and the CLI commands of the same step share them.
ASSESS_ZONES = {"optional_reads": ["lake/ready/trades", "lake/ready/book", "lake/ready/book_delta_v2"],
                "writes": ["reports/assessment"]}
RECONSTRUCT_ZONES = {"reads": ["lake/ready/trades", "lake/ready/book"],
                     "optional_reads": ["lake/ready/book_delta_v2", "reports/assessment"],
                     "writes": ["unified", "book_states"]}


def parse_partition_path(path: Path) -> dict[str, str]:
    """`…/exchange=E/symbol=S/dt=D/…` -> {"exchange": E, "symbol": S, "date": D}; raises ValueError naming the path."""
    found: dict[str, str] = {}
    for part in Path(path).parts:
        if "=" in part:
            key, _, value = part.partition("=")
            if key in ("exchange", "symbol", "dt"):
                found["date" if key == "dt" else key] = value
    missing = {"exchange", "symbol", "date"} - found.keys()
    if missing:
        raise ValueError(f"{path}: not a hive partition path, missing {sorted(missing)} (expected exchange=/symbol=/dt=)")
    return found
