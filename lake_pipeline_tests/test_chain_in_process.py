"""The whole chain for one simulated partition, through Dagster, on a temporary SQLite instance; then the README's
demo command itself, as a user runs it.

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
from lake_pipeline.config import DEFAULT_EXCHANGE
from lake_pipeline.definitions import defs
from lake_pipeline.fidelity import catalog
from lake_pipeline.schemas import UNIFIED_EVENT

REPO_ROOT = Path(__file__).resolve().parent.parent
SYMBOL, DATE = "BTC-USDT", "2024-08-08"
KEY = f"{DATE}|{SYMBOL}"
ALL_ASSETS = {"lake/trades", "lake/book", "lake/book_delta_v2", "data_assessment", "unified_events",
              "fidelity_report", "golden_samples"}


def _run_chain(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(partition_key=KEY, instance=instance)


def test_whole_chain_materialises_and_checks_run(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lake_pipeline.sim import simulate

    sim = simulate(data_root, SYMBOL, DATE, hours=0.05, seed=5)
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
        out = paths.unified_dir(data_root, DEFAULT_EXCHANGE, SYMBOL, DATE)
        assert (out / "_SUCCESS").exists()
        assert pl.scan_parquet(out / "part-*.parquet").select(pl.len()).collect().item() == rows
        span = pl.scan_parquet(out / "part-*.parquet").select(pl.col("event_time").min().alias("a"),
                                                               pl.col("event_time").max().alias("b")).collect()
        assert unified["first_event_time"].value == span["a"][0].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert unified["last_event_time"].value == span["b"][0].strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

        report = result.asset_materializations_for_node("fidelity_report")[0].metadata
        doc = json.loads((paths.fidelity_dir(data_root, DEFAULT_EXCHANGE, SYMBOL, DATE) / "fidelity.json").read_text())
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
    """`lake-pipeline demo` (what `make demo` runs), on a shorter partition: it ends with the fidelity status and
    the path of an HTML report that exists."""
    exe = Path(sys.executable).with_name("lake-pipeline")
    env = {**os.environ, "LAKE_DATA_ROOT": str(tmp_path)}
    proc = subprocess.run([str(exe), "demo", "--data-root", str(tmp_path), "--hours", "0.03", "--seed", "3"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    tail = proc.stdout.strip().splitlines()[-2:]
    assert tail[0].startswith("Fidelity: PASS (headline score "), proc.stdout[-2000:]
    html = Path(tail[1].split("report", 1)[1].strip())
    assert html == paths.fidelity_dir(tmp_path, DEFAULT_EXCHANGE, SYMBOL, DATE) / "fidelity.html"
    assert html.stat().st_size > 100_000  # self-contained: plotly embedded
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()


def test_partition_without_golden_samples_still_gets_its_report(data_root: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Real lake data usually has no capture for its date: the chain still ends with a report (Tier B only)."""
    from lake_pipeline.sim import simulate

    simulate(data_root, SYMBOL, DATE, hours=0.03, seed=8, golden_hours=0)
    monkeypatch.setenv("LAKE_DATA_ROOT", str(data_root))
    with dg.instance_for_test() as instance:
        result = _run_chain(instance)
        assert result.success
        golden = result.asset_materializations_for_node("golden_samples")[0].metadata
        assert golden["sessions"].value == 0
        doc = json.loads((paths.fidelity_dir(data_root, DEFAULT_EXCHANGE, SYMBOL, DATE) / "fidelity.json").read_text())
        assert doc["comparison"]["tier_a_available"] is False
        report = result.asset_materializations_for_node("fidelity_report")[0].metadata
        assert report["status"].value == doc["status"] and report["tier_a_available"].value is False
