"""The celery executor for real, without an external broker: `LAKE_EXECUTOR=celery` + deploy/celery/celery.yaml, with
kombu's SQLAlchemy transport (`sqla+postgresql+psycopg2://`) as broker and celery's database result backend
(`db+postgresql+psycopg2://`) both on the session's PostgreSQL, the instance on deploy/postgres/dagster.yaml, and a
`dagster-celery worker start` subprocess executing every step of the simulated partition's chain.

Skips with the reason where dagster-celery (the `celery` extra, also in `test`) or PostgreSQL is missing; under
CI=true both are failures.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from lake_pipeline.instrument import Instrument
from lake_pipeline.partitions import partition_key
from lake_pipeline_tests.conftest import REPO_ROOT
from lake_pipeline_tests.requires import unavailable

CELERY_YAML = REPO_ROOT / "deploy" / "celery" / "celery.yaml"
PG_YAML = REPO_ROOT / "deploy" / "postgres" / "dagster.yaml"
SYMBOL, DATE = "BTC-USDT", "2024-08-08"
KEY = partition_key(Instrument.parse(SYMBOL).on(DATE))
BIN = Path(sys.executable).parent


def _need_celery() -> None:
    if importlib.util.find_spec("dagster_celery") is None:
        unavailable("dagster-celery is not installed (pip install -e '.[celery]'; it is in the test extra)")


def _run_ids(server) -> set[str]:
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('runs') IS NOT NULL")
            if not cur.fetchone()[0]:
                return set()
            cur.execute("SELECT run_id FROM runs")
            return {r for (r,) in cur.fetchall()}
    finally:
        conn.close()


def _wait_ready(worker: subprocess.Popen, log_path: Path, timeout: float = 180) -> None:
    """Wait for the worker's "ready." line: it has then created kombu's tables. A run started while they do not exist
    yet races the worker's `CREATE TABLE kombu_queue` (kombu's SQLAlchemy transport guards it per process only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in log_path.read_text():
            return
        if worker.poll() is not None:
            pytest.fail(f"celery worker exited with {worker.returncode}:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.2)
    pytest.fail(f"celery worker not ready after {timeout:.0f} s:\n{log_path.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the worker we started (its own session: the dagster-celery CLI and the celery process under it)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_whole_chain_runs_on_a_celery_worker(postgres_server, tmp_path, monkeypatch):
    _need_celery()
    from lake_pipeline.sim import simulate

    broker_db = "celery_broker"
    conn = postgres_server.connect("postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {broker_db}")
    conn.close()
    before = _run_ids(postgres_server)  # the session's Postgres may already hold other tests' runs
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PG_YAML, home / "dagster.yaml")
    data_root = tmp_path / "data"
    simulate(data_root, Instrument.parse(SYMBOL).on(DATE), hours=0.02, seed=7)
    env = {**os.environ, **postgres_server.env, "DAGSTER_HOME": str(home), "LAKE_DATA_ROOT": str(data_root),
           "LAKE_EXECUTOR": "celery",  # the worker reloads the code location: it must pick the same executor
           "LAKE_CELERY_BROKER": postgres_server.url("sqla+postgresql+psycopg2", broker_db),
           "LAKE_CELERY_BACKEND": postgres_server.url("db+postgresql+psycopg2", broker_db),
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # dagster-celery runs `celery` from PATH
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(CELERY_YAML),
             "-n", "lake-test", "--", "--pool=solo"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(worker, log_path)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "lake_pipeline.definitions", "--select", "*",
             "--partition", KEY, "-c", str(CELERY_YAML)],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=420)
        run_s = time.perf_counter() - t0
        worker_log = log_path.read_text()
        assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n--- worker ---\n{worker_log[-4000:]}"
    finally:
        _stop(worker)

    # Read the run back through a fresh instance on the same Postgres (the yaml's {env: ...} fields need DAGSTER_PG_*).
    for name, value in postgres_server.env.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (new_run_id,) = _run_ids(postgres_server) - before
        run = instance.get_run_record_by_id(new_run_id).dagster_run
        assert run.status == dg.DagsterRunStatus.SUCCESS
        logs = instance.all_logs(run.run_id)
    events = [e.dagster_event for e in logs if e.dagster_event is not None]
    run_pid = next(e.pid for e in events if e.event_type == dg.DagsterEventType.RUN_START)
    step_starts = {e.step_key: e.pid for e in events if e.event_type == dg.DagsterEventType.STEP_START}
    submitted = {e.step_key for e in events if e.event_type == dg.DagsterEventType.ENGINE_EVENT
                 and "Submitting celery task" in (e.message or "")}
    assert step_starts and submitted == set(step_starts)
    assert run_pid not in set(step_starts.values()), "steps ran in the run process, not on the celery worker"
    assert len(set(step_starts.values())) == 1  # the one solo-pool worker process
    mats = {e.asset_key for e in events if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION}
    assert dg.AssetKey("unified_events") in mats and dg.AssetKey("fidelity_report") in mats
    assert len(mats) == 8  # the 7 assets of the chain + hftbacktest_export (--select "*")

    # broker and result backend really were the Postgres database
    conn = postgres_server.connect(broker_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status, count(*) FROM celery_taskmeta GROUP BY status")
            results = dict(cur.fetchall())
            cur.execute("SELECT name FROM kombu_queue")
            queues = {name for (name,) in cur.fetchall()}
    finally:
        conn.close()
    assert results == {"SUCCESS": len(step_starts)}
    assert "dagster" in queues
    assert worker_log.count("succeeded in") == len(step_starts)
    print(f"\ncelery: {len(step_starts)} steps on worker pid {next(iter(step_starts.values()))} (run pid {run_pid}), "
          f"run took {run_s:.1f} s; celery_taskmeta {results}; kombu queues {sorted(queues)}")
