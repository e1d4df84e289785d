"""The whole chain for a simulated spot partition and a simulated USD-M futures partition, through Dagster, on a
temporary SQLite instance; then the README's demo command itself, as a user runs it.

The in-process run goes through the code location's own Definitions (the implicit asset job): raw lake tables ->
data_assessment -> unified_events (+ book states) -> fidelity_report, golden_samples, and the 11 fidelity checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lake_pipeline import paths
from lake_pipeline.definitions import defs
from lake_pipeline.fidelity import catalog
from lake_pipeline.instrument import Partition
from lake_pipeline.schemas import UNIFIED_EVENT

REPO_ROOT = Path(__file__).resolve().parent.parent
SPOT = Partition("BINANCE", "BTC-USDT", "2024-08-08")
PERP = Partition("BINANCE_FUTURES", "BTC-USDT-PERP", "2024-08-08")
ALL_ASSETS = {"lake/trades", "lake/book", "lake/book_delta_v2", "data_assessment", "unified_events",
              "fidelity_report", "golden_samples", "hftbacktest_export"}


def _run_chain(instance: dg.DagsterInstance, part: Partition = SPOT) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(partition_key=part.key, instance=instance)


def test_whole_chain_materialises_and_checks_run(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lake_pipeline.sim import simulate

    sim = simulate(data_root, SPOT, hours=0.05, seed=5)
    monkeypatch.setenv("LAKE_DATA_ROOT", str(data_root))  # the Definitions' DataRoot() resource reads it
    with dg.instance_for_test() as instance:
        result = _run_chain(instance)
        assert result.success
        done = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
        assert set(done) == ALL_ASSETS

        unified = result.asset_materializations_for_node("unified_events")[0].metadata
        rows = sim.rows["trades"] + sim.rows["book"] + sim.rows["book_delta_v2"]
        assert unified["dagster/row_count"].value == rows  # one unified row per input row
        assert [c.name for c in unified["dagster/column_schema"].value.columns] == UNIFIED_EVENT.names
        assert unified["gaps_total"].value == 0  # a fault-free simulation replays without a gap
        out = paths.unified_dir(data_root, SPOT)
        assert (out / "_SUCCESS").exists()
        assert pl.scan_parquet(out / "part-*.parquet").select(pl.len()).collect().item() == rows
        span = pl.scan_parquet(out / "part-*.parquet").select(pl.col("event_time").min().alias("a"),
                                                               pl.col("event_time").max().alias("b")).collect()
        assert unified["first_event_time"].value == span["a"][0].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert unified["last_event_time"].value == span["b"][0].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

        report = result.asset_materializations_for_node("fidelity_report")[0].metadata
        doc = json.loads((paths.fidelity_dir(data_root, SPOT) / "fidelity.json").read_text())
        assert report["status"].value == doc["status"] == "PASS"
        assert doc["comparison"]["tier_a_available"]  # the simulated golden session was paired
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert set(checks) == {f"fidelity_{f}" for f in catalog.FAMILIES}
        assert all(checks[f"fidelity_{f}"].passed == (doc["families"][f] == "PASS") for f in catalog.FAMILIES)
        assert checks["fidelity_bbo"].passed and checks["fidelity_integrity"].passed

        # re-materialising replaces: same files, same rows, a second materialisation event in the instance
        parts = sorted(p.name for p in out.glob("part-*.parquet"))
        again = _run_chain(instance)
        assert again.success
        assert sorted(p.name for p in out.glob("part-*.parquet")) == parts
        assert pl.scan_parquet(out / "part-*.parquet").select(pl.len()).collect().item() == rows
        history = instance.fetch_materializations(dg.AssetKey("unified_events"), limit=10).records
        assert len(history) == 2


def test_readme_demo_command(tmp_path: Path) -> None:
    """`lake-pipeline demo` (what `make demo` runs), on shorter partitions: a spot and a futures partition, each
    ending with its fidelity status and the path of an HTML report that exists."""
    exe = Path(sys.executable).with_name("lake-pipeline")
    env = {**os.environ, "LAKE_DATA_ROOT": str(tmp_path)}
    proc = subprocess.run([str(exe), "demo", "--data-root", str(tmp_path), "--hours", "0.03", "--seed", "3"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    reports = {}
    for part in (SPOT, PERP):
        at = lines.index(f"partition {part.key}:")
        [line] = [x for x in lines[at + 1:] if x.strip().startswith("fidelity ")][:1]
        status, html = line.split()[1], Path(line.split()[-1])
        assert html == paths.fidelity_dir(tmp_path, part) / "fidelity.html"
        assert html.stat().st_size > 100_000  # self-contained: plotly embedded
        reports[part.exchange] = status
    assert reports["BINANCE"] == "PASS", proc.stdout[-2000:]  # paired with the simulated golden session
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()


def test_futures_partition_without_golden_samples_gets_its_chain_and_report(
        data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A USD-M futures partition beside a spot one of the same date and coin: the chain reads and writes only
    `exchange=BINANCE_FUTURES` with the futures tick/lot, and (no capture for its date, as for most real lake data)
    still ends with a report, Tier B only."""
    from lake_pipeline.sim import simulate

    simulate(data_root, SPOT, hours=0.02, seed=8, golden_hours=0)
    spot_files = sorted(p for p in data_root.rglob("*") if p.is_file() and "exchange=BINANCE/" in p.as_posix())
    sim = simulate(data_root, PERP, hours=0.03, seed=8, golden_hours=0)
    monkeypatch.setenv("LAKE_DATA_ROOT", str(data_root))
    with dg.instance_for_test() as instance:
        result = _run_chain(instance, PERP)
        assert result.success
        golden = result.asset_materializations_for_node("golden_samples")[0].metadata
        assert golden["sessions"].value == 0
        trades = result.asset_materializations_for_node("lake__trades")[0].metadata
        assert "exchange=BINANCE_FUTURES/symbol=BTC-USDT-PERP/dt=2024-08-08" in trades["path"].value
        assert trades["symbol_spec"].value == {"symbol": "BTC-USDT-PERP", "tick": "0.1", "lot": "0.001",
                                               "source": "config"}
        unified = result.asset_materializations_for_node("unified_events")[0].metadata
        assert unified["dagster/row_count"].value == sum(sim.rows[t] for t in ("trades", "book", "book_delta_v2"))
        assert unified["gaps_total"].value == 0
        events = pl.read_parquet(paths.unified_dir(data_root, PERP) / "part-*.parquet")
        assert events["exchange"].unique().to_list() == ["BINANCE_FUTURES"]
        assert events["symbol"].unique().to_list() == ["BTC-USDT-PERP"]
        doc = json.loads((paths.fidelity_dir(data_root, PERP) / "fidelity.json").read_text())
        assert doc["partition"] == {"exchange": "BINANCE_FUTURES", "symbol": "BTC-USDT-PERP", "date": "2024-08-08"}
        assert doc["comparison"]["tier_a_available"] is False
        report = result.asset_materializations_for_node("fidelity_report")[0].metadata
        assert report["status"].value == doc["status"] and report["tier_a_available"].value is False
    # the spot partition of the same date was neither read nor touched, nor given outputs
    assert sorted(p for p in data_root.rglob("*") if p.is_file() and "exchange=BINANCE/" in p.as_posix()) == spot_files
