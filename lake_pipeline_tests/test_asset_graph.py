"""Snapshot of the asset graph: keys, lineage, partitioning, checks, jobs, schedules and sensors.

A refactor that silently renames an asset, drops a dependency or changes a partition key format fails here.
"""

from __future__ import annotations

import dagster as dg

from lake_pipeline.definitions import defs

EXPECTED_ASSETS = {
    "lake/trades": [],
    "lake/book": [],
    "lake/book_delta_v2": [],
    "data_assessment": ["lake/book", "lake/book_delta_v2", "lake/trades"],
    "unified_events": ["data_assessment", "lake/book", "lake/book_delta_v2", "lake/trades"],
    "fidelity_report": ["golden_samples", "unified_events"],
    "golden_samples": [],
    "hftbacktest_export": ["unified_events"],
}
EXPECTED_CHECKS = {
    ("unified_events", f"fidelity_{family}")
    for family in ("bbo", "depth", "drift", "imbalance", "integrity", "inter_event", "spread", "tails", "tob_depth",
                   "trade_size", "volatility")
}


def test_asset_keys_and_lineage() -> None:
    graph = defs.get_repository_def().asset_graph
    actual = {
        key.to_user_string(): sorted(p.to_user_string() for p in graph.get(key).parent_keys)
        for key in graph.get_all_asset_keys()
    }
    assert actual == EXPECTED_ASSETS


def test_every_asset_is_date_by_instrument_with_one_backfill_policy() -> None:
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        pdef = node.partitions_def
        assert isinstance(pdef, dg.MultiPartitionsDefinition), key
        assert [d.name for d in pdef.partitions_defs] == ["date", "instrument"], key
        # the instrument names its venue: spot and USD-M futures side by side (symbols.yaml by default)
        assert pdef.get_partitions_def_for_dimension("instrument").get_partition_keys() == [
            "BINANCE.BTC-USDT", "BINANCE.ETH-USDT", "BINANCE_FUTURES.BTC-USDT-PERP"], key
        keys = pdef.get_partition_keys()
        assert {"2024-08-08|BINANCE.BTC-USDT", "2024-08-08|BINANCE_FUTURES.BTC-USDT-PERP"} <= set(keys), key
        assert "2024-08-08|BTC-USDT" not in keys, key  # the old key format is gone (README: Upgrading)
    # one policy on the whole chain (mixed policies split a backfill into separate runs, research dagster.md), and
    # that policy is none: see partitions.py
    assert {graph.get(k).backfill_policy for k in graph.get_all_asset_keys()} == {None}


def test_checks_jobs_schedules_sensors() -> None:
    repo = defs.get_repository_def()
    checks = {(c.asset_key.to_user_string(), c.name) for c in repo.asset_graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS
    assert sorted(j.name for j in repo.get_all_jobs()) == [
        "__ASSET_JOB", "chain_job", "fidelity_checks_job", "golden_capture_job", "lake_acquisition_job"]
    assert sorted(s.name for s in repo.schedule_defs) == ["daily_lake_acquisition", "fidelity_checks_schedule"]
    sensors = {s.name: s for s in repo.sensor_defs}
    assert sorted(sensors) == ["chain_automation_sensor", "golden_capture_sensor"]
    # a deploy must not start captures by accident; automation of the chain is on
    assert sensors["golden_capture_sensor"].default_status == dg.DefaultSensorStatus.STOPPED
    assert sensors["chain_automation_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
    chain = {k.to_user_string() for k in repo.get_job("chain_job").asset_layer.selected_asset_keys}
    assert chain == set(EXPECTED_ASSETS) - {"golden_samples", "hftbacktest_export"}
