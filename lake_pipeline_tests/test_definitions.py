"""The Dagster code location loads, validates from the CLI, and materialises the raw lake assets for a partition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from lake_pipeline.definitions import defs
from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.partitions import partition_key
from lake_pipeline.resources import DataRoot

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_definitions_validate_cli(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "lake_pipeline.definitions"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_raw_lake_assets_materialise_for_simulated_partition(data_root: Path) -> None:
    from lake_pipeline.sim import simulate

    summary = simulate(data_root, Instrument.parse("BTC-USDT").on("2024-08-08"), hours=0.02, seed=3)
    raw = [a for a in defs.assets if a.key.path[0] == "lake"]
    assert sorted(a.key.path[-1] for a in raw) == ["book", "book_delta_v2", "trades"]
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            raw,
            partition_key=partition_key(Partition("BINANCE", "BTC-USDT", "2024-08-08")),
            resources={"data_root": DataRoot(path=str(data_root))},
            instance=instance,
        )
    assert result.success
    for table in ("trades", "book", "book_delta_v2"):
        (mat,) = result.asset_materializations_for_node(f"lake__{table}")
        assert mat.metadata["dagster/row_count"].value == summary.rows[table] > 0
        assert mat.metadata["bytes"].value > 0
        assert mat.metadata["schema_variant"].value == "stored"
