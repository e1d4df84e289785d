"""The `reconstruct` concurrency pool: with the repo's dagster.yaml (default pool limit 1) a second reconstruction
waits for the slot instead of running beside the first, then runs as soon as it is freed.

A real instance from the repo's dagster.yaml; the "first reconstruction" holds the pool's one slot through the
instance's own concurrency API, so the test does not depend on two runs' timing lining up.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from lake_pipeline import paths
from lake_pipeline.definitions import defs
from lake_pipeline.demo import prepare_dagster_home
from lake_pipeline.instrument import SPOT, Instrument, Partition
from lake_pipeline.resources import DataRoot

SYMBOL, DATE = "BTC-USDT", "2024-08-08"
POOL = "reconstruct"


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def test_second_reconstruction_waits_for_the_pool_slot(data_root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from lake_pipeline.sim import simulate

    simulate(data_root, Instrument.parse(SYMBOL).on(DATE), hours=0.02, seed=3, golden_hours=0)
    monkeypatch.setenv("DAGSTER_HOME", str(prepare_dagster_home(tmp_path)))
    unified = next(a for a in defs.assets if a.key == dg.AssetKey("unified_events"))
    assert unified.op.pool == POOL
    published = paths.unified_dir(data_root, Partition(SPOT, SYMBOL, DATE)) / "_SUCCESS"
    with dg.DagsterInstance.get() as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(POOL)
        assert storage.get_concurrency_info(POOL).slot_count == 1
        assert storage.claim_concurrency_slot(POOL, "first-run", "unified_events").is_claimed

        outcome: dict = {}

        def second() -> None:
            outcome["result"] = dg.materialize([unified], partition_key=f"{DATE}|BINANCE.{SYMBOL}", instance=instance,
                                               resources={"data_root": DataRoot(path=str(data_root))},
                                               raise_on_error=False)

        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        _wait(lambda: storage.get_concurrency_info(POOL).pending_step_count == 1, 60, "the step to queue for a slot")
        time.sleep(1.0)
        assert not published.exists()  # still waiting: nothing ran beside the first reconstruction
        assert thread.is_alive()

        storage.free_concurrency_slot_for_step("first-run", "unified_events")
        thread.join(timeout=300)
        assert not thread.is_alive(), "the reconstruction did not finish after its slot was freed"
        assert outcome["result"].success
        assert published.exists()
        info = storage.get_concurrency_info(POOL)
        assert (info.active_slot_count, info.pending_step_count) == (0, 0)  # its slot is released again
