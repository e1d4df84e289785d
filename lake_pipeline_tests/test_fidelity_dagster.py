"""Dagster wrappers: the fidelity_report asset, the per-family checks on unified_events (in the same run and in a
checks-only run launched by tag), and the schedule's run requests."""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings

import dagster as dg
import pytest

from lake_pipeline import paths
from lake_pipeline.fidelity import catalog
from lake_pipeline.instrument import Partition
from lake_pipeline.partitions import INSTRUMENTS, instrument_date_partitions
from lake_pipeline.resources import DataRoot
from lake_pipeline_tests import fidelity_fixtures as fxt

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from lake_pipeline.defs import fidelity as fd  # noqa: E402

PART = Partition(fxt.EXCHANGE, fxt.SYMBOL, fxt.DATE)
KEY = PART.key  # 2024-08-08|BINANCE.BTC-USDT


@dg.asset(key=dg.AssetKey("unified_events"), partitions_def=instrument_date_partitions)
def unified_events() -> dg.MaterializeResult:
    """Stand-in for the lead's reconstructor asset (the fixture has written the partition already)."""
    return dg.MaterializeResult()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("data")
    m = fxt.synthetic_market(90, seed=41)
    fxt.write_unified(m, r)
    fxt.write_golden_capture(m, fxt.golden_session_dir(r) / "cap.jsonl.gz")
    return r


def _defs(root) -> dg.Definitions:
    return dg.Definitions(assets=[unified_events, *fd.assets], asset_checks=fd.checks, jobs=fd.jobs,
                          schedules=fd.schedules, resources={"data_root": DataRoot(path=str(root))})


def test_definitions_load_and_name_one_check_per_family(root):
    defs = _defs(root)
    dg.Definitions.validate_loadable(defs)
    names = {spec.name for spec in fd.CHECK_SPECS}
    assert names == {f"fidelity_{f}" for f in catalog.FAMILIES}
    assert all(spec.asset_key == dg.AssetKey("unified_events") for spec in fd.CHECK_SPECS)
    assert {"bbo", "depth", "integrity", "spread", "trade_size"} <= fd.CRITICAL_FAMILIES


def test_materialize_report_and_run_checks(root, monkeypatch):
    monkeypatch.setenv("LAKE_DATA_ROOT", str(root))
    with dg.instance_for_test() as instance:
        res = dg.materialize([unified_events, *fd.assets, *fd.checks], partition_key=KEY, instance=instance,
                             resources={"data_root": DataRoot(path=str(root))})
        assert res.success
        md = res.asset_materializations_for_node("fidelity_report")[0].metadata
        out = paths.fidelity_dir(root, Partition(fxt.EXCHANGE, fxt.SYMBOL, fxt.DATE))
        doc = json.loads((out / "fidelity.json").read_text())
        assert md["status"].value == doc["status"]
        assert md["html"].value == str(out / "fidelity.html")
        assert md["headline_score"].value == pytest.approx(doc["score"])
        evals = {e.check_name: e for e in res.get_asset_check_evaluations()}
        assert set(evals) == {f"fidelity_{f}" for f in catalog.FAMILIES}
        for family in catalog.FAMILIES:
            e = evals[f"fidelity_{family}"]
            assert e.passed == (doc["families"][family] == "PASS"), (family, doc["families"][family])
        assert evals["fidelity_bbo"].passed and evals["fidelity_bbo"].severity == dg.AssetCheckSeverity.ERROR
        assert evals["fidelity_tails"].severity == dg.AssetCheckSeverity.WARN  # not a critical family

        # checks-only job, partition passed as a TAG (research dagster.md §1.7 pitfall 4)
        job = _defs(root).resolve_job_def("fidelity_checks_job")
        run = job.execute_in_process(instance=instance, tags={"dagster/partition": KEY},
                                     resources={"data_root": DataRoot(path=str(root))})
        assert run.success
        assert {e.check_name for e in run.get_asset_check_evaluations()} == set(evals)


def test_checks_fail_clearly_when_the_report_is_missing_or_stale(root, tmp_path):
    results = list(fd.family_check_results(None, "fidelity report not found: x", "x.html"))
    assert len(results) == len(catalog.FAMILIES)
    assert not any(r.passed for r in results) and all("not found" in r.description for r in results)
    # stale: unified _SUCCESS newer than the JSON
    out = paths.fidelity_dir(root, Partition(fxt.EXCHANGE, fxt.SYMBOL, fxt.DATE))
    if (out / "fidelity.json").exists():
        success = paths.unified_dir(root, Partition(fxt.EXCHANGE, fxt.SYMBOL, fxt.DATE)) / "_SUCCESS"
        t = (out / "fidelity.json").stat().st_mtime + 10
        os.utime(success, (t, t))
        with dg.instance_for_test() as instance:
            run = _defs(root).resolve_job_def("fidelity_checks_job").execute_in_process(
                instance=instance, tags={"dagster/partition": KEY}, resources={"data_root": DataRoot(path=str(root))})
            evals = run.get_asset_check_evaluations()
            assert evals and not any(e.passed for e in evals)
            assert "older than the unified events" in evals[0].description


def test_schedule_requests_yesterdays_partitions_by_tag():
    with dg.instance_for_test() as instance:
        ctx = dg.build_schedule_context(instance=instance,
                                        scheduled_execution_time=dt.datetime(2024, 8, 10, 3, 30, tzinfo=dt.UTC))
        reqs = fd.fidelity_checks_schedule.evaluate_tick(ctx).run_requests
    assert [r.tags["dagster/partition"] for r in reqs] == [f"2024-08-09|{i.key}" for i in INSTRUMENTS]
    assert all(r.partition_key is None for r in reqs)
    assert len({r.run_key for r in reqs}) == len(reqs)
