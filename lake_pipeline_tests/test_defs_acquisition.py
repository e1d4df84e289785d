"""Dagster wiring of acquisition and assessment: acquire-on-materialise (S3 and local sources), missing days fail
without retries, the daily schedule, and a real asset backfill over a date range run by the backfill daemon logic."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path

import dagster as dg
import pytest

from lake_pipeline.defs import acquisition as acq
from lake_pipeline.defs.assessment import data_assessment
from lake_pipeline.defs.lake import assets as raw_assets
from lake_pipeline.instrument import Partition
from lake_pipeline.lake.acquire import MANIFEST
from lake_pipeline.partitions import INSTRUMENTS
from lake_pipeline.paths import assessment_dir, lake_ready
from lake_pipeline.resources import DataRoot
from lake_pipeline_tests.lakefiles import lake_key, parquet_bytes, stored_table
from lake_pipeline_tests.s3_support import aws_env, bucket, moto_endpoint, put_object  # noqa: F401 — fixtures

EX, SYM = "BINANCE", "BTC-USDT"
INST = f"{EX}.{SYM}"
TABLES = ("trades", "book", "book_delta_v2")
REPO = Path(__file__).resolve().parent.parent


def _local_source(root: Path, days: list[str]) -> Path:
    for day in days:
        for table in TABLES:
            folder = root / table / f"exchange={EX}" / f"symbol={SYM}" / f"dt={day}"
            folder.mkdir(parents=True)
            (folder / "1.snappy.parquet").write_bytes(parquet_bytes(stored_table(table, day, 400)))
    return root


def _materialize(data_root: Path, source: dict | None, day: str) -> dg.ExecuteInProcessResult:
    """Materialise a partition; `source` is the lake_source run config (None: leave the resource unconfigured)."""
    return dg.materialize(
        [*raw_assets, data_assessment],
        partition_key=f"{day}|{INST}",
        resources={"data_root": DataRoot(path=str(data_root))},
        run_config={"resources": {"lake_source": {"config": source}}} if source else None,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_materialising_a_partition_acquires_it_from_s3_first(bucket, moto_endpoint, data_root):
    day = "2024-03-05"
    for table in TABLES:
        put_object(moto_endpoint, bucket, lake_key("cryptofeed", table, EX, SYM, day, "1.snappy.parquet"),
                   parquet_bytes(stored_table(table, day, 400)))
    result = _materialize(data_root, {"url": f"s3://{bucket}/cryptofeed", "endpoint_url": moto_endpoint}, day)
    assert result.success
    for table in TABLES:
        md = result.asset_materializations_for_node(f"lake__{table}")[0].metadata
        assert md["acquisition"].value == "acquired" and md["dagster/row_count"].value == 400
        assert md["fetched_bytes"].value == (lake_ready(data_root, Partition(EX, SYM, day), table) / "1.snappy.parquet").stat().st_size
        assert (lake_ready(data_root, Partition(EX, SYM, day), table) / MANIFEST).exists()
    md = result.asset_materializations_for_node("data_assessment")[0].metadata
    assert md["recommended_strategy"].value == "full_event_replay"
    assert "Recommended strategy" in md["summary"].value
    assert (assessment_dir(data_root, Partition(EX, SYM, day)) / "assessment.json").exists()


def test_missing_day_at_the_source_fails_the_run_without_retries(tmp_path, data_root):
    result = _materialize(data_root, {"url": str(_local_source(tmp_path / "src", ["2024-03-04"]))}, "2024-03-05")
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert any("missing at source" in e.event_specific_data.error.message for e in failures)
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert retries == []
    assert not (data_root / "lake" / "ready").exists()


def test_absent_ready_data_without_a_source_fails_at_once_without_retries(data_root):
    result = _materialize(data_root, None, "2024-03-04")
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert any("does not exist" in e.event_specific_data.error.message for e in failures)
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]


def test_without_a_source_the_raw_assets_only_describe_the_ready_zone(tmp_path, data_root):
    from lake_pipeline.lake.acquire import acquire_partition

    src = _local_source(tmp_path / "src", ["2024-03-04"])
    for table in TABLES:
        acquire_partition(str(src), Partition(EX, SYM, "2024-03-04"), table, data_root, progress=False)
    result = _materialize(data_root, None, "2024-03-04")
    assert result.success
    md = result.asset_materializations_for_node("lake__trades")[0].metadata
    assert md["acquisition"].value == "none (no LakeSource configured)" and md["dagster/row_count"].value == 400


def test_daily_schedule_requests_yesterday_for_every_instrument():
    from lake_pipeline.definitions import defs

    schedule = defs.get_schedule_def("daily_lake_acquisition")
    ctx = dg.build_schedule_context(repository_def=defs.get_repository_def(),
                                    scheduled_execution_time=dt.datetime(2024, 3, 6, 2, 30, tzinfo=dt.UTC))
    requests = schedule.evaluate_tick(ctx).run_requests
    assert sorted(r.partition_key for r in requests) == sorted(f"2024-03-05|{i.key}" for i in INSTRUMENTS)
    assert all(r.run_key == f"lake-{r.partition_key}" for r in requests)
    assert {"2024-03-05|BINANCE.BTC-USDT", "2024-03-05|BINANCE_FUTURES.BTC-USDT-PERP"} <= {r.partition_key
                                                                                        for r in requests}
    assert defs.resolve_job_def("lake_acquisition_job").partitions_def is not None


def test_source_from_the_environment_when_run_config_leaves_it_empty(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv(acq.SOURCE_ENV, str(_local_source(tmp_path / "src", ["2024-03-04"])))
    result = _materialize(data_root, None, "2024-03-04")
    assert result.success
    md = result.asset_materializations_for_node("lake__book")[0].metadata
    assert md["acquisition"].value == "acquired" and md["acquired_from"].value == str(tmp_path / "src")


def test_acquisition_retry_policy_is_on_every_raw_asset():
    for asset in raw_assets:
        assert asset.op.retry_policy == acq.ACQUIRE_RETRY
        assert asset.op.retry_policy.backoff == dg.Backoff.EXPONENTIAL and asset.op.retry_policy.jitter


def test_asset_backfill_over_a_date_range_acquires_and_assesses_each_partition(tmp_path, monkeypatch):
    """A real asset backfill: the backfill daemon's iteration plans and launches one run per (date, symbol)."""
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    days = ["2024-03-04", "2024-03-05", "2024-03-06"]
    data_root = tmp_path / "data"
    monkeypatch.setenv("LAKE_DATA_ROOT", str(data_root))
    monkeypatch.setenv(acq.SOURCE_ENV, str(_local_source(tmp_path / "src", days)))  # read when each step runs
    overrides = {
        "run_launcher": {"module": "dagster._core.launcher.sync_in_memory_run_launcher",
                         "class": "SyncInMemoryRunLauncher"},
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    }
    target = ModuleTarget(module_name="lake_pipeline.definitions", attribute="defs", working_directory=str(REPO),
                          location_name="lake_pipeline")
    with instance_for_test(overrides=overrides) as instance, \
            create_test_daemon_workspace_context(target, instance) as workspace:
        graph = workspace.create_request_context().asset_graph
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="range", asset_graph=graph, partition_names=[f"{d}|{INST}" for d in days],
            asset_selection=[*(dg.AssetKey(["lake", t]) for t in TABLES), dg.AssetKey("data_assessment")],
            backfill_timestamp=time.time(), tags={}, dynamic_partitions_store=instance, all_partitions=False,
            title="range", description=None, run_config={"execution": {"config": {"in_process": {}}}})
        instance.add_backfill(backfill)
        for _ in range(5):
            list(execute_backfill_iteration(workspace, logging.getLogger("backfill-test")))
            if instance.get_backfill("range").status != BulkActionStatus.REQUESTED:
                break
        assert instance.get_backfill("range").status == BulkActionStatus.COMPLETED_SUCCESS
        runs = instance.get_runs()
        assert len(runs) == len(days) and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        # one run per partition, tagged with its key (no BackfillPolicy on the chain: see partitions.py)
        assert sorted(r.tags["dagster/partition"] for r in runs) == [f"{d}|{INST}" for d in days]
    for day in days:
        for table in TABLES:
            manifest = json.loads((lake_ready(data_root, Partition(EX, SYM, day), table) / MANIFEST).read_text())
            assert manifest["date"] == day and manifest["rows"] == 400
        assert (assessment_dir(data_root, Partition(EX, SYM, day)) / "assessment.md").exists()


@pytest.fixture(autouse=True)
def _quiet_dagster(monkeypatch):
    monkeypatch.setenv("DAGSTER_DISABLE_TELEMETRY", "1")
