"""Dagster wiring of the capture: the sensor's run requests (evaluate_tick) and the golden_samples asset end to end."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from lake_pipeline.capture.keys import KEY_ENV
from lake_pipeline.defs.capture import (
    SESSIONS_ENV,
    golden_capture_job,
    golden_capture_sensor,
    golden_samples,
)
from lake_pipeline.resources import DataRoot
from lake_pipeline_tests.exchange_helpers import CAPTURE_KEY, btc_feed, serve  # noqa: F401

SESSIONS = """
sessions:
  - {name: btc-main, instrument: BINANCE.BTC-USDT, regime_intent: NORMAL, duration: 1h}
  - {name: btc-second, symbol: BTC-USDT, duration: 30m}      # same instrument (default venue): never two runs at once
  - {name: perp, instrument: BINANCE_FUTURES.BTC-USDT-PERP, duration: 1h}   # same coin, other venue: its own run
  - {name: eth-quiet, symbol: ETH-USDT, regime_intent: LOW_VOLUME, duration: 20m, rotate: 5m}
  - {name: never, symbol: ETH-USDT, schedule: {days: []}}
  - {name: unknown-symbol, symbol: DOGE-USDT}                # not a partition key: skipped
"""


@pytest.fixture
def sessions_env(tmp_path, monkeypatch):
    path = tmp_path / "sessions.yaml"
    path.write_text(SESSIONS)
    monkeypatch.setenv(SESSIONS_ENV, str(path))
    return path


DEFS = dg.Definitions(assets=[golden_samples], jobs=[golden_capture_job], sensors=[golden_capture_sensor],
                      resources={"data_root": DataRoot()})


def _tick(instance: dg.DagsterInstance):
    return golden_capture_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=DEFS))


def test_sensor_requests_one_bounded_run_per_instrument(sessions_env):
    assert golden_capture_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    with dg.instance_for_test() as instance:
        result = _tick(instance)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    by_instrument = {r.partition_key.keys_by_dimension["instrument"]: r for r in result.run_requests}
    assert sorted(by_instrument) == ["BINANCE.BTC-USDT", "BINANCE.ETH-USDT", "BINANCE_FUTURES.BTC-USDT-PERP"]
    btc, eth = by_instrument["BINANCE.BTC-USDT"], by_instrument["BINANCE.ETH-USDT"]
    assert btc.partition_key == f"{today}|BINANCE.BTC-USDT"
    assert by_instrument["BINANCE_FUTURES.BTC-USDT-PERP"].tags["capture_session"] == "perp"
    slot = int(datetime.now(UTC).timestamp() // 3600)
    assert btc.run_key in (f"golden-btc-main-BINANCE.BTC-USDT-{slot}", f"golden-btc-main-BINANCE.BTC-USDT-{slot - 1}")
    assert btc.tags["dagster/max_runtime"] == str(3600 + 900) and btc.tags["capture_session"] == "btc-main"
    eth_config = eth.run_config["ops"]["golden_samples"]["config"]
    assert (eth_config["duration_s"], eth_config["rotate_s"], eth_config["regime_intent"]) == (1200, 300, "LOW_VOLUME")
    assert eth.tags["dagster/max_runtime"] == str(1200 + 900)


def test_sensor_skips_instruments_with_a_run_in_flight(sessions_env):
    with dg.instance_for_test() as instance:
        for key, status in (("BINANCE.BTC-USDT", dg.DagsterRunStatus.STARTED),
                            ("BINANCE_FUTURES.BTC-USDT-PERP", dg.DagsterRunStatus.STARTING),
                            ("BINANCE.ETH-USDT", dg.DagsterRunStatus.SUCCESS)):
            create_run_for_test(instance, job_name=golden_capture_job.name, status=status,
                                tags={"dagster/partition/instrument": key})
        result = _tick(instance)
        assert [r.partition_key.keys_by_dimension["instrument"] for r in result.run_requests] == ["BINANCE.ETH-USDT"]
        create_run_for_test(instance, job_name=golden_capture_job.name, status=dg.DagsterRunStatus.STARTING,
                            tags={"dagster/partition/instrument": "BINANCE.ETH-USDT"})
        result = _tick(instance)
        assert not result.run_requests and "in flight" in result.skip_message


def test_sensor_without_config_skips(monkeypatch):
    monkeypatch.delenv(SESSIONS_ENV, raising=False)
    with dg.instance_for_test() as instance:
        result = _tick(instance)
    assert not result.run_requests and SESSIONS_ENV in result.skip_message


def test_job_and_definitions():
    job = DEFS.resolve_job_def("golden_capture_job")
    assert job.tags["pipeline"] == "golden_capture" and job.tags["dagster/max_runtime"] == "4500"


@pytest.mark.realdata
def test_golden_samples_asset_captures_today_and_describes_past_days(btc_feed, data_root, monkeypatch):
    monkeypatch.setenv(KEY_ENV, CAPTURE_KEY.raw.hex())
    feed = btc_feed.head(2500)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    with serve(feed, speed=feed.duration_s() / 1.0) as server:
        config = {"duration_s": 2.0, "ws_url": server.ws_url, "rest_url": server.rest_url, "ntp": False,
                  "session_name": "test", "regime_intent": "NORMAL"}
        result = dg.materialize([golden_samples], partition_key=f"{today}|BINANCE.BTC-USDT",
                                resources={"data_root": DataRoot(path=str(data_root))},
                                run_config={"ops": {"golden_samples": {"config": config}}})
    assert result.success
    [mat] = result.asset_materializations_for_node("golden_samples")
    md = {k: v.value for k, v in mat.metadata.items()}
    assert md["status"] == "complete" and md["dagster/row_count"] > 1000 and md["files"] == 1
    assert md["gaps"] == 0 and md["book_check_mismatches"] == 0 and md["physics_ok"] is True
    [session_json] = list(data_root.rglob("session.json"))
    doc = json.loads(session_json.read_text())
    assert (doc["session_name"], doc["regime_intent"]) == ("test", "NORMAL")
    # the same session seen as a past day's partition: described, not recorded
    past = session_json.parent.parent.with_name("dt=2024-08-08")
    shutil.move(session_json.parent.parent, past)
    described = dg.materialize([golden_samples], partition_key="2024-08-08|BINANCE.BTC-USDT",
                               resources={"data_root": DataRoot(path=str(data_root))})
    [mat] = described.asset_materializations_for_node("golden_samples")
    assert mat.metadata["dagster/row_count"].value == md["dagster/row_count"]
    # a past day without sessions: recorded as empty (not a failure that would skip the fidelity report), saying why
    empty = dg.materialize([golden_samples], partition_key="2024-08-09|BINANCE.BTC-USDT",
                           resources={"data_root": DataRoot(path=str(data_root))})
    [mat] = empty.asset_materializations_for_node("golden_samples")
    assert (mat.metadata["sessions"].value, mat.metadata["dagster/row_count"].value) == (0, 0)
    assert mat.metadata["reason"].value.startswith("no golden sessions for BINANCE.BTC-USDT on 2024-08-09")



def test_golden_samples_run_fails_when_the_endpoint_never_answers(data_root):
    """Issue 13: a capture run that records no frame fails (with the reason), it does not materialise 0 frames."""
    from lake_pipeline_tests.exchange_helpers import SilentEndpoints

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    with SilentEndpoints() as silent:
        config = {"duration_s": 1.0, "ws_url": silent.deaf_url, "rest_url": silent.deaf_url.replace("ws:", "http:"),
                  "ntp": False, "plaintext": True}
        result = dg.materialize([golden_samples], partition_key=f"{today}|BINANCE.BTC-USDT",
                                resources={"data_root": DataRoot(path=str(data_root))},
                                run_config={"ops": {"golden_samples": {"config": config}}}, raise_on_error=False)
    assert not result.success
    assert result.asset_materializations_for_node("golden_samples") == []
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "failed: no frame recorded: could not connect to ws://127.0.0.1:" in message, message
