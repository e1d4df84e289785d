"""Hive-style zone layout under the data root (DESIGN §2). Every stage builds paths here, nowhere else.

Every function takes the data root and the `Partition` (venue, symbol, date) first, then anything else (`table`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lake_pipeline.instrument import Partition


def lake_ready(root: Path, part: Partition, table: str) -> Path:
    return part.dir(root, f"lake/ready/{table}")


def lake_staging(root: Path, part: Partition, table: str) -> Path:
    return part.dir(root, f"lake/staging/{table}")


def _zone(zone: str, why: str = "") -> Callable[[Path, Partition], Path]:
    """`f(root, part)` -> `<root>/<zone>/exchange=E/symbol=S/dt=D`: one function per fixed zone."""

    def directory(root: Path, part: Partition) -> Path:
        return part.dir(root, zone)

    directory.__doc__ = f"`<root>/{zone}/exchange=E/symbol=S/dt=D`{why}"
    return directory


assessment_dir = _zone("reports/assessment")
golden_dir = _zone("golden")
unified_dir = _zone("unified")
book_states_dir = _zone("book_states")
fidelity_dir = _zone("reports/fidelity")
truth_dir = _zone("sim_truth", ": simulator ground truth (BBO of the true market), for tests and the demo's reference")


# The zones each step reads and writes for one partition. An object-store data root stages exactly these in and
# out (remote.py); the Dagster assets and the CLI commands of the same step share them.
ASSESS_ZONES = {"optional_reads": ["lake/ready/trades", "lake/ready/book", "lake/ready/book_delta_v2"],
                "writes": ["reports/assessment"]}
RECONSTRUCT_ZONES = {"reads": ["lake/ready/trades", "lake/ready/book"],
                     "optional_reads": ["lake/ready/book_delta_v2", "reports/assessment"],
                     "writes": ["unified", "book_states"]}


def parse_partition_path(path: Path) -> Partition:
    """`…/exchange=E/symbol=S/dt=D/…` -> its Partition; raises ValueError naming the path."""
    found: dict[str, str] = {}
    for part in Path(path).parts:
        if "=" in part:
            key, _, value = part.partition("=")
            if key in ("exchange", "symbol", "dt"):
                found["date" if key == "dt" else key] = value
    missing = {"exchange", "symbol", "date"} - found.keys()
    if missing:
        raise ValueError(f"{path}: not a hive partition path, missing {sorted(missing)} (expected exchange=/symbol=/dt=)")
    try:
        return Partition(found["exchange"], found["symbol"], found["date"])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
