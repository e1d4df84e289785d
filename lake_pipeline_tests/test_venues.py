"""Venues through configuration, Dagster partitions, the CLI and the simulator: one deployment, spot and USD-M futures.

The partition value object itself is tested in test_instrument.py; here, what threads it through the pipeline.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from lake_pipeline import config, paths
from lake_pipeline.cli import main
from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.partitions import instrument_date_partitions, instruments_from_env, partition_key, partition_of

SPOT = Partition("BINANCE", "BTC-USDT", "2024-08-08")
PERP = Partition("BINANCE_FUTURES", "BTC-USDT-PERP", "2024-08-08")


def test_tick_and_lot_are_per_venue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert (config.symbol_spec(SPOT.instrument).tick, config.symbol_spec(SPOT.instrument).lot) == (
        Decimal("0.01"), Decimal("0.00000001"))
    assert (config.symbol_spec(PERP.instrument).tick, config.symbol_spec(PERP.instrument).lot) == (
        Decimal("0.1"), Decimal("0.001"))
    # the same symbol on two venues: two specs; a symbol on a venue not configured: none (inferred from data)
    extra = tmp_path / "symbols.yaml"
    extra.write_text('BINANCE_FUTURES:\n  BTC-USDT: {tick: "0.1", lot: "0.001"}\n'
                     'SOL-USDT: {tick: "0.01", lot: "0.001"}\n')  # older flat layout: default venue
    monkeypatch.setenv(config.SYMBOLS_FILE_ENV, str(extra))
    config._configured.cache_clear()
    try:
        assert config.symbol_spec(Instrument("BINANCE_FUTURES", "BTC-USDT")).tick == Decimal("0.1")
        assert config.symbol_spec(Instrument("BINANCE", "BTC-USDT")).tick == Decimal("0.01")
        assert config.symbol_spec(Instrument("BINANCE", "SOL-USDT")).lot == Decimal("0.001")
        assert config.symbol_spec(Instrument("BYBIT", "BTC-USDT")) is None
        extra.write_text("BINANCE:\n  XRP-USDT: {tick: '0.0001'}\n")
        config._configured.cache_clear()
        with pytest.raises(ValueError, match=r"symbols.yaml: BINANCE.XRP-USDT needs tick and lot"):
            config.symbol_spec(SPOT.instrument)
    finally:
        config._configured.cache_clear()


def test_instruments_from_the_environment() -> None:
    both = [Instrument("BINANCE", "BTC-USDT"), Instrument("BINANCE_FUTURES", "BTC-USDT-PERP")]
    assert instruments_from_env({"LAKE_INSTRUMENTS": "BINANCE_FUTURES.BTC-USDT-PERP, BINANCE.BTC-USDT"}) == both
    assert instruments_from_env({"LAKE_SYMBOLS": "BTC-USDT,BTC-USDT-PERP"}) == both  # bare: the default venue
    assert instruments_from_env({}) == config.configured_instruments()
    with pytest.raises(ValueError, match=r"^\$LAKE_INSTRUMENTS: exchange 'binance'"):
        instruments_from_env({"LAKE_INSTRUMENTS": "binance.BTC-USDT"})


def test_partition_of_any_context() -> None:
    """Asset runs carry a MultiPartitionKey; checks-only runs launched by tag a plain string: both give a Partition."""
    key = partition_key(PERP)
    assert key == "2024-08-08|BINANCE_FUTURES.BTC-USDT-PERP"
    assert key in instrument_date_partitions.get_partition_keys()
    asset_ctx = dg.build_asset_context(partition_key=key)
    assert partition_of(asset_ctx) == PERP

    class TagOnly:  # what a checks-only run's context offers: no multi_partition_key, a str partition_key
        partition_key = SPOT.key

        @property
        def multi_partition_key(self):
            raise dg.DagsterInvariantViolationError("not a multi-partition run")

    assert partition_of(TagOnly()) == SPOT
    TagOnly.partition_key = "2024-08-08|BTC-USDT"  # an old key (before venues): bare symbol, its default venue
    assert partition_of(TagOnly()) == SPOT


def test_hive_path_gives_back_the_partition(tmp_path: Path) -> None:
    path = paths.unified_dir(tmp_path, PERP) / "part-00000.parquet"
    assert paths.parse_partition_path(path) == PERP
    with pytest.raises(ValueError, match=r"dt=2024-13-01.*: date '2024-13-01'"):
        paths.parse_partition_path(tmp_path / "exchange=BINANCE/symbol=BTC-USDT/dt=2024-13-01")


@pytest.mark.parametrize("argv, message", [
    (["reconstruct", "--exchange", "binance", "--symbol", "BTC-USDT", "--date", "2024-08-08"],
     "exchange 'binance': expected Crypto Lake's venue name"),
    (["assess", "--symbol", "btc_usdt", "--date", "2024-08-08"], "symbol 'btc_usdt'"),
    (["fidelity", "--symbol", "BINANCE_FUTURES.BTC-USDT-PERP", "--exchange", "BINANCE", "--date", "2024-08-08"],
     "names venue BINANCE_FUTURES, but --exchange is BINANCE"),
    (["simulate", "--exchange", "BYBIT", "--symbol", "BTC-USDT", "--hours", "0.01"],
     "exchange 'BYBIT': the simulator speaks BINANCE and BINANCE_FUTURES"),
    (["acquire", "--source", ".", "--symbol", "BTC-USDT", "--date", "2024-08-32"], "date"),
])
def test_cli_bad_names_exit_2_naming_the_field(argv, message, tmp_path: Path, capsys) -> None:
    assert main([*argv[:1], "--data-root", str(tmp_path), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_simulator_writes_a_futures_venue(tmp_path: Path) -> None:
    """`simulate --exchange BINANCE_FUTURES --symbol BTC-USDT-PERP`: lake tables under exchange=BINANCE_FUTURES on the
    futures grid (tick 0.1, lot 0.001) at a perpetual's price level; its golden feed in USD-M frames (`pu`, `T`)."""
    assert main(["simulate", "--data-root", str(tmp_path), "--exchange", "BINANCE_FUTURES", "--symbol",
                 "BTC-USDT-PERP", "--hours", "0.01", "--seed", "4", "--quiet"]) == 0
    assert sorted(p.relative_to(tmp_path).parts[:2] for p in tmp_path.glob("*/*")) == [
        ("golden", "exchange=BINANCE_FUTURES"), ("lake", "ready"), ("sim_truth", "exchange=BINANCE_FUTURES")]
    from lake_pipeline.lake.read import read_table

    trades = read_table(tmp_path, PERP, "trades")
    book = read_table(tmp_path, PERP, "book")
    assert trades.height > 50 and book.height > 50
    assert trades["exchange"].cast(pl.String).unique().to_list() == ["BINANCE_FUTURES"]
    # normalised ticks/lots are exact integers of the futures grid: the raw floats are multiples of 0.1 and 0.001
    raw = pl.read_parquet(paths.lake_ready(tmp_path, PERP, "trades") / "*.parquet")
    assert ((raw["price"] * 10).round(6) % 1 == 0).all() and ((raw["amount"] * 1000).round(6) % 1 == 0).all()
    mid = float(raw["price"].median())
    assert 61_000 < mid < 63_000  # BTC's level, a perpetual a few bp above spot's 61,800 start
    import gzip

    [frames] = list(tmp_path.glob("golden/exchange=BINANCE_FUTURES/symbol=BTC-USDT-PERP/dt=*/session=*/frames-*"))
    depth = next(ln for ln in gzip.open(frames, "rt") if '"btcusdt@depth@100ms"' in ln)
    assert '"pu":' in depth and '"T":' in depth
