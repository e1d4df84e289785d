"""The partition value object: text forms round-trip, and bad names are refused with the field named."""

import pytest

from lake_pipeline.instrument import FUTURES, SPOT, Instrument, Partition


def test_instrument_text_forms():
    assert Instrument.parse("BINANCE_FUTURES.BTC-USDT-PERP") == Instrument(FUTURES, "BTC-USDT-PERP")
    assert Instrument.parse("BTC-USDT-PERP") == Instrument(FUTURES, "BTC-USDT-PERP")
    assert Instrument.parse("BTC-USDT") == Instrument(SPOT, "BTC-USDT")
    assert Instrument.parse("ETH-USDT", exchange="BYBIT").key == "BYBIT.ETH-USDT"
    with pytest.raises(ValueError, match="--exchange is BINANCE"):
        Instrument.parse("BINANCE_FUTURES.BTC-USDT-PERP", exchange="BINANCE")


def test_partition_key_and_path_round_trip(tmp_path):
    p = Partition(FUTURES, "BTC-USDT-PERP", "2024-08-08")
    assert p.key == "2024-08-08|BINANCE_FUTURES.BTC-USDT-PERP"
    assert Partition.parse(p.key) == p
    assert p.dir(tmp_path, "lake/ready/trades") == (
        tmp_path / "lake/ready/trades/exchange=BINANCE_FUTURES/symbol=BTC-USDT-PERP/dt=2024-08-08")
    assert Instrument(SPOT, "BTC-USDT").on("2024-08-09").hive == "exchange=BINANCE/symbol=BTC-USDT/dt=2024-08-09"


@pytest.mark.parametrize("args, field", [(("binance", "BTC-USDT", "2024-08-08"), "exchange"),
                                         (("BINANCE", "btc/usdt", "2024-08-08"), "symbol"),
                                         (("BINANCE", "BTC-USDT", "2024-8-8"), "date"),
                                         (("BINANCE", "BTC-USDT", "2024-02-30"), "date")])
def test_bad_names_name_the_field(args, field):
    with pytest.raises(ValueError, match=f"^{field} "):
        Partition(*args)
