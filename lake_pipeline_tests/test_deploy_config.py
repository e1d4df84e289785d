"""The instance-config variants under deploy/ stay in step with the repo's dagster.yaml, validate against Dagster's
instance schema, and the executor switch ($LAKE_EXECUTOR) picks what it names."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import dagster as dg
import pytest
import yaml

from lake_pipeline.definitions import EXECUTOR_ENV, executor_from_env
from lake_pipeline_tests.conftest import REPO_ROOT

ROOT_YAML = REPO_ROOT / "dagster.yaml"
VARIANTS = {  # variant -> sections allowed to differ from the root dagster.yaml
    "deploy/postgres/dagster.yaml": {"storage"},
    "deploy/k8s/dagster.yaml": {"storage", "run_launcher"},
}
PG_STORAGE = {"postgres": {"postgres_db": {
    "hostname": {"env": "DAGSTER_PG_HOST"}, "port": {"env": "DAGSTER_PG_PORT"},
    "username": {"env": "DAGSTER_PG_USER"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
    "db_name": {"env": "DAGSTER_PG_DB"}, "scheme": "postgresql+psycopg2"}}}


def _load(rel: str) -> dict:
    return yaml.safe_load((REPO_ROOT / rel).read_text())


@pytest.mark.parametrize("rel", sorted(VARIANTS))
def test_variant_differs_from_root_only_where_it_must(rel):
    root, variant = _load("dagster.yaml"), _load(rel)
    own = VARIANTS[rel]
    assert set(variant) == set(root) | own
    assert {k: v for k, v in variant.items() if k not in own} == {k: v for k, v in root.items() if k not in own}
    assert variant["storage"] == PG_STORAGE


@pytest.mark.parametrize("rel", ["dagster.yaml", *sorted(VARIANTS)])
def test_variant_validates_against_dagster_instance_schema(rel):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config_schema

    result = validate_config(dagster_instance_config_schema(), _load(rel))
    assert result.success, [e.message for e in result.errors]


def test_k8s_variant_names_the_k8s_run_launcher():
    launcher = _load("deploy/k8s/dagster.yaml")["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    assert launcher["config"]["instance_config_map"] and launcher["config"]["postgres_password_secret"]


def test_celery_run_config_matches_the_celery_executor_schema():
    cfg = _load("deploy/celery/celery.yaml")
    assert cfg["execution"]["config"]["broker"] == {"env": "LAKE_CELERY_BROKER"}
    if importlib.util.find_spec("dagster_celery") is None:
        pytest.skip("dagster-celery not installed (celery extra); the key check above still ran")
    from dagster._config import validate_config
    from dagster_celery import celery_executor

    result = validate_config(celery_executor.config_schema.config_type, cfg["execution"]["config"])
    assert result.success, [e.message for e in result.errors]


def test_executor_switch():
    assert executor_from_env("") is None  # Dagster's default multi_or_in_process_executor, unchanged
    assert executor_from_env("multiprocess") is None
    assert executor_from_env("in_process") is dg.in_process_executor
    with pytest.raises(ValueError, match="not one of"):
        executor_from_env("dask")
    if importlib.util.find_spec("dagster_celery") is None:
        with pytest.raises(ImportError, match=r"pip install -e '\.\[celery\]'"):
            executor_from_env("celery")
    else:
        from dagster_celery import celery_executor

        assert executor_from_env("celery") is celery_executor


def test_executor_switch_reaches_the_code_location():
    code = "from lake_pipeline.definitions import defs; print(defs.executor.name if defs.executor else 'default')"
    for value, expected in (("in_process", "in_process"), ("", "default")):
        proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, EXECUTOR_ENV: value}, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == expected
