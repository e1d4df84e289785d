"""deploy/postgres/dagster.yaml against a real PostgreSQL server: the whole chain of a simulated partition runs on an
instance built from that file, and Postgres itself holds the run, its events, the asset-check executions and the
schedule state (nothing lands in $DAGSTER_HOME).

The server comes from the `postgres_server` fixture (lake_pipeline_tests/pg_server.py): skipped with the reason where
PostgreSQL is not installed, a failure under CI=true.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from lake_pipeline.instrument import Instrument
from lake_pipeline.partitions import partition_key
from lake_pipeline.resources import DataRoot
from lake_pipeline_tests.conftest import REPO_ROOT

PG_YAML = REPO_ROOT / "deploy" / "postgres" / "dagster.yaml"
SYMBOL, DATE = "BTC-USDT", "2024-08-08"
KEY = partition_key(Instrument.parse(SYMBOL).on(DATE))
LIVE_ONLY: set[dg.AssetKey] = set()
"""Assets that need a live exchange for this partition: none, since DATE is in the past (golden_samples then describes
the sessions the simulator wrote, as in `lake-pipeline demo`; it records live only for today's partition)."""


def _home(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    home.mkdir()
    shutil.copyfile(PG_YAML, home / "dagster.yaml")
    return home


@pytest.fixture
def pg_instance(postgres_server, tmp_path, monkeypatch):
    """A DagsterInstance loaded the way every Dagster process loads it: $DAGSTER_HOME/dagster.yaml + DAGSTER_PG_*."""
    for name, value in postgres_server.env.items():
        monkeypatch.setenv(name, value)
    home = _home(tmp_path, "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        yield instance


def _query(server, sql: str, *args) -> list[tuple]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


def test_instance_storage_is_postgres(pg_instance):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)
    assert type(pg_instance.run_coordinator).__name__ == "QueuedRunCoordinator"


def test_whole_chain_runs_on_postgres_instance(postgres_server, pg_instance, tmp_path, monkeypatch):
    from lake_pipeline.definitions import defs
    from lake_pipeline.sim import simulate

    data_root = tmp_path / "data"
    data_root.mkdir()
    monkeypatch.setenv("LAKE_DATA_ROOT", str(data_root))
    simulate(data_root, Instrument.parse(SYMBOL).on(DATE), hours=0.02, seed=7)
    assets = [a for a in defs.assets if a.key not in LIVE_ONLY]
    t0 = time.perf_counter()
    result = dg.materialize([*assets, *defs.asset_checks], partition_key=KEY, instance=pg_instance,
                            resources={"data_root": DataRoot(path=str(data_root))})
    materialise_s = time.perf_counter() - t0
    assert result.success
    run_id = result.run_id
    expected_keys = {a.key for a in assets}
    check_names = {e.check_name for e in result.get_asset_check_evaluations()}
    assert check_names and all(name.startswith("fidelity_") for name in check_names)

    # -- run storage: the `runs` table
    runs = _query(postgres_server, "SELECT run_id, status FROM runs")
    assert (run_id, "SUCCESS") in runs

    # -- event-log storage: one materialisation per asset key of the chain, for this partition
    mats = _query(postgres_server,
                  "SELECT asset_key, partition FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
                  run_id, "ASSET_MATERIALIZATION")
    assert {dg.AssetKey.from_db_string(k) for k, _ in mats} == expected_keys
    assert len(mats) == len(expected_keys) and {p for _, p in mats} == {KEY}
    (events,) = _query(postgres_server, "SELECT count(*) FROM event_logs WHERE run_id = %s", run_id)[0]
    asset_rows = {dg.AssetKey.from_db_string(k) for (k,) in _query(postgres_server, "SELECT asset_key FROM asset_keys")}
    assert expected_keys <= asset_rows

    # -- asset-check executions
    checks = _query(postgres_server,
                    "SELECT check_name, execution_status, partition FROM asset_check_executions WHERE run_id = %s",
                    run_id)
    assert {name for name, _, _ in checks} == check_names
    expected_status = {(e.check_name, "SUCCEEDED" if e.passed else "FAILED") for e in result.get_asset_check_evaluations()}
    assert {(name, status) for name, status, _ in checks} == expected_status  # what each check decided
    assert {p for _, _, p in checks} == {KEY}

    # -- the instance API reads it back, and so does a second instance with its own empty DAGSTER_HOME
    assert run_id in {r.dagster_run.run_id for r in pg_instance.get_run_records()}
    other = _home(tmp_path, "other_home")
    with dg.DagsterInstance.from_config(str(other)) as second:
        record = second.get_run_record_by_id(run_id)
        assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        mat = second.get_latest_materialization_event(dg.AssetKey("unified_events"))
        assert mat is not None and mat.run_id == run_id
    leftovers = [p.relative_to(p.parents[1]) for p in (tmp_path / "dagster_home").rglob("*.db")]
    assert leftovers == [], f"SQLite files under DAGSTER_HOME: {leftovers}"
    print(f"\nPostgres at 127.0.0.1:{postgres_server.port} started in {postgres_server.startup_seconds:.2f} s; "
          f"chain materialised in {materialise_s:.1f} s; rows for run {run_id[:8]}: runs {len(runs)}, "
          f"event_logs {events} ({len(mats)} materialisations), asset_check_executions {len(checks)}")


def test_schedule_state_lives_in_postgres(postgres_server, pg_instance):
    """Starting a schedule records its instigator state in the schedule storage (tables `jobs` and `instigators`)."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.scheduler.instigation import InstigatorStatus
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name="lake_pipeline.definitions",
                             working_directory=str(REPO_ROOT)),
        location_name="lake_pipeline")
    with origin.create_location(pg_instance) as location:
        (repo,) = location.get_repositories().values()
        schedule = repo.get_schedule("fidelity_checks_schedule")
        state = pg_instance.start_schedule(schedule)
        assert state.status == InstigatorStatus.RUNNING
        origin_id, selector_id = schedule.get_remote_origin_id(), schedule.selector_id
        stored = pg_instance.get_instigator_state(origin_id, selector_id)
        assert stored is not None and stored.status == InstigatorStatus.RUNNING

        rows = _query(postgres_server, "SELECT job_origin_id, status, job_type FROM jobs")
        assert (origin_id, "RUNNING", "SCHEDULE") in rows
        inst_rows = _query(postgres_server, "SELECT selector_id, status, instigator_type FROM instigators")
        assert (selector_id, "RUNNING", "SCHEDULE") in inst_rows

        pg_instance.stop_schedule(origin_id, selector_id, schedule)
        assert _query(postgres_server, "SELECT status FROM jobs WHERE job_origin_id = %s", origin_id) == [("STOPPED",)]
    print(f"\nschedule storage rows: jobs {len(rows)}, instigators {len(inst_rows)}")
