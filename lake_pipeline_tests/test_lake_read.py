"""Crypto Lake reader: schema variants, aliases, time and grid normalisation, inference, errors, laziness."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger

from lake_pipeline.config import SymbolSpec
from lake_pipeline.instrument import Partition
from lake_pipeline.lake import grid
from lake_pipeline.lake.read import (
    BadValueError,
    CorruptFileError,
    LakeSchemaError,
    OffGridError,
    describe_partition,
    detect_variant,
    partition_files,
    read_table,
    resolve_symbol_spec,
    scan_table,
)
from lake_pipeline.paths import lake_ready
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS, LAKE_LOADED, LAKE_STORED, NORMALISED

EX, SYM, DAY = "BINANCE", "BTC-USDT", "2022-10-01"


def us(ns: int) -> int:
    """What the reader makes of a lake time: the nearest microsecond (float-second artefacts removed)."""
    return (ns + 500) // 1000 * 1000


def rounded(expected: dict[str, list]) -> dict[str, list]:
    """Expected normalised columns with their times rounded like the reader does."""
    return {k: [us(t) for t in v] if k.endswith("_time") else v for k, v in expected.items()}
T0 = 1664582400 * 10**9  # 2022-10-01T00:00:00Z in ns
# Real rows printed in crypto-lake/analysis-sharing (BINANCE BTC-USDT 2022-10-01): float-second artefacts.
ORIGIN_NS = 1664582400032999936  # 00:00:00.032999936 == int(1664582400.033 * 1e9)
RECEIVED_NS = 1664582400286983936  # 00:00:00.286983936
TRADE_STORED = {
    "side": ["buy", "sell", "sell"],
    "amount": [0.00131, 0.00079, 0.29],
    "price": [19423.92, 19422.61, 19422.61],
    "id": [1640546282, 1640546283, 1640546284],
    "timestamp": [ORIGIN_NS, ORIGIN_NS + 4_000_128, ORIGIN_NS + 4_000_128],
    "receipt_timestamp": [RECEIVED_NS, RECEIVED_NS + 32_768, RECEIVED_NS + 46_848],
}
TRADE_EXPECTED = {
    "origin_time": [ORIGIN_NS, ORIGIN_NS + 4_000_128, ORIGIN_NS + 4_000_128],
    "received_time": [RECEIVED_NS, RECEIVED_NS + 32_768, RECEIVED_NS + 46_848],
    "trade_id": [1640546282, 1640546283, 1640546284],
    "side_is_buy": [True, False, False],
    "price": [1942392, 1942261, 1942261],
    "quantity": [131, 79, 29000],
    "row": [0, 1, 2],
}
@pytest.fixture(autouse=True)
def btc_lot_00001(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Pin BTC-USDT to today's LOT_SIZE step 0.00001 (the shipped config uses the finer wire precision 1e-8), so the
    expected lots below and the lot-grid rejection stay meaningful whatever symbols.yaml says."""
    from lake_pipeline import config

    f = tmp_path_factory.mktemp("cfg") / "symbols.yaml"
    f.write_text('BTC-USDT: {tick: "0.01", lot: "0.00001"}\n')
    monkeypatch.setenv("LAKE_SYMBOLS_FILE", str(f))
    config._configured.cache_clear()
    yield
    config._configured.cache_clear()


LOADED_NAMES = {"amount": "quantity", "id": "trade_id", "timestamp": "origin_time", "receipt_timestamp": "received_time"}


def write_lake(
    root: Path, table: str, columns: dict, schema: pa.Schema | None = None, name: str = "1.snappy.parquet",
    symbol: str = SYM, metadata: dict | None = None,
) -> Path:
    """Write one lake file; columns not given in `schema` are inferred by pyarrow."""
    directory = lake_ready(root, Partition(EX, symbol, DAY), table)
    directory.mkdir(parents=True, exist_ok=True)
    if schema is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    tbl = pa.table(columns, schema=schema)
    if metadata:
        tbl = tbl.replace_schema_metadata(metadata)
    pq.write_table(tbl, directory / name)
    return directory / name


def loaded(columns: dict) -> dict:
    """Stored-name columns -> lakeapi names, times as naive timestamp[ns], plus categorical exchange/symbol."""
    out = {LOADED_NAMES.get(k, k): v for k, v in columns.items()}
    n = len(next(iter(columns.values())))
    for k in ("origin_time", "received_time"):
        out[k] = pa.array(out[k], pa.int64()).cast(pa.timestamp("ns"))
    out["exchange"] = pa.array([EX] * n).dictionary_encode()
    out["symbol"] = pa.array([SYM] * n).dictionary_encode()
    return out


def book_row_columns(n_rows: int = 2) -> tuple[dict, dict]:
    """Stored book columns (20 levels around 19422.61 / 19422.62) and the expected normalised ticks/lots."""
    cols: dict = {
        "timestamp": [T0 + 32_000_000 + 100_000_000 * i for i in range(n_rows)],
        "receipt_timestamp": [T0 + 279_075_840 + 100_000_000 * i for i in range(n_rows)],
        "sequence_number": [25095473073 + 78 * i for i in range(n_rows)],
    }
    expected = {k: list(v) for k, v in zip(("origin_time", "received_time", "sequence_number"), cols.values(), strict=True)}
    for c in BOOK_LEVEL_COLUMNS:
        side, level, kind = c.split("_")
        ticks = 1942261 - int(level) if side == "bid" else 1942262 + int(level)
        if kind == "price":
            cols[c] = [ticks / 100 for _ in range(n_rows)]
            expected[c] = [ticks] * n_rows
        else:
            cols[c] = [0.01822 + int(level) * 0.00001 for _ in range(n_rows)]
            expected[c] = [1822 + int(level)] * n_rows
    expected["row"] = list(range(n_rows))
    return cols, expected


DELTA_STORED = {
    "timestamp": [ORIGIN_NS] * 3,
    "receipt_timestamp": [RECEIVED_NS] * 3,
    "sequence_number": [25095473151] * 3,
    "side_is_bid": [True, False, True],
    "price": [19422.32, 19422.62, 19422.25],
    "size": [0.00675, 0.0, 1.23456],
}
DELTA_EXPECTED = {
    "origin_time": [ORIGIN_NS] * 3,
    "received_time": [RECEIVED_NS] * 3,
    "sequence_number": [25095473151] * 3,
    "side_is_bid": [True, False, True],
    "price": [1942232, 1942262, 1942225],
    "size": [675, 0, 123456],
    "row": [0, 1, 2],
}


def normalised(df: pl.DataFrame, table: str) -> dict:
    assert df.columns == NORMALISED[table].names + ["exchange", "symbol", "date"]
    assert df["exchange"].cast(pl.String).unique().to_list() == [EX]
    assert df["symbol"].cast(pl.String).unique().to_list() == [SYM]
    assert df["date"].cast(pl.String).unique().to_list() == [DAY]
    return df.select(NORMALISED[table].names).to_dict(as_series=False)


# ---- schema round trips and aliases -------------------------------------------------------------------------------


ROUND_TRIP = {
    "trades": (TRADE_STORED, TRADE_EXPECTED),
    "book": book_row_columns(),
    "book_delta_v2": (DELTA_STORED, DELTA_EXPECTED),
}


@pytest.mark.parametrize("variant", ["stored", "loaded"])
@pytest.mark.parametrize("table", list(ROUND_TRIP))
def test_round_trip_exact_values(data_root: Path, table: str, variant: str) -> None:
    cols, expected = ROUND_TRIP[table]
    if variant == "stored":
        write_lake(data_root, table, cols, LAKE_STORED[table])
    else:
        write_lake(data_root, table, loaded(cols), LAKE_LOADED[table])
    df = read_table(data_root, Partition(EX, SYM, DAY), table)
    # lake times are float-second images: the reader rounds them to the microsecond (…032999936 -> …033000000)
    assert normalised(df, table) == rounded(expected)
    assert df.select(NORMALISED[table].names).schema == pl.from_arrow(NORMALISED[table].empty_table()).schema


@pytest.mark.parametrize("table", ["trades", "book", "book_delta_v2"])
def test_detect_variant_both_sets_and_mixed(data_root: Path, table: str) -> None:
    path = lake_ready(data_root, Partition(EX, SYM, DAY), table) / "1.parquet"
    assert detect_variant(LAKE_STORED[table], path) == "stored"
    assert detect_variant(LAKE_LOADED[table], path) == "loaded"
    assert detect_variant(LAKE_STORED[table], Path("elsewhere.parquet")) == "stored"  # table found by its columns
    # One file mixing lakeapi's origin_time with cryptofeed's receipt_timestamp still resolves.
    mixed = LAKE_STORED[table].set(LAKE_STORED[table].get_field_index("timestamp"), pa.field("origin_time", pa.int64()))
    assert detect_variant(mixed, path) == "mixed"


def test_first_alias_wins_and_extra_columns_are_ignored(data_root: Path) -> None:
    cols = dict(TRADE_STORED)
    cols["origin_time"] = [ORIGIN_NS + 1064, ORIGIN_NS + 2064, ORIGIN_NS + 3064]  # lakeapi name listed first: it wins
    cols["venue_note"] = ["x", "y", "z"]
    write_lake(data_root, "trades", cols)
    df = read_table(data_root, Partition(EX, SYM, DAY), "trades")
    assert df["origin_time"].to_list() == [us(ORIGIN_NS) + 1000, us(ORIGIN_NS) + 2000, us(ORIGIN_NS) + 3000]
    assert "venue_note" not in df.columns


def test_files_of_different_variants_in_one_partition(data_root: Path) -> None:
    write_lake(data_root, "trades", TRADE_STORED, LAKE_STORED["trades"], name="1.parquet")
    write_lake(data_root, "trades", loaded(TRADE_STORED), LAKE_LOADED["trades"], name="2.parquet")
    df = read_table(data_root, Partition(EX, SYM, DAY), "trades")
    assert df["row"].to_list() == [0, 1, 2, 3, 4, 5]
    assert df["price"].to_list() == TRADE_EXPECTED["price"] * 2
    assert describe_partition(data_root, Partition(EX, SYM, DAY), "trades")["variant"] == "mixed"


def test_unknown_schema_lists_expected_and_missing_columns(data_root: Path) -> None:
    cols = {k: v for k, v in DELTA_STORED.items() if k != "size"}
    cols["new_quantity"] = [1.0, 2.0, 3.0]  # the rename that made a peer's replay skip every delta
    path = write_lake(data_root, "book_delta_v2", cols)
    with pytest.raises(LakeSchemaError) as err:
        scan_table(data_root, Partition(EX, SYM, DAY), "book_delta_v2")
    msg = str(err.value)
    assert str(path) in msg and "missing column(s) ['size']" in msg
    assert "stored variant: [timestamp, receipt_timestamp, sequence_number, side_is_bid, price, size]" in msg
    assert "loaded variant: [origin_time, received_time, sequence_number, side_is_bid, price, size]" in msg
    assert "new_quantity" in msg  # what was found


def test_unusable_column_type_is_a_schema_error(data_root: Path) -> None:
    cols = dict(DELTA_STORED, price=["19422.32", "19422.62", "19422.25"])
    path = write_lake(data_root, "book_delta_v2", cols)
    with pytest.raises(LakeSchemaError, match=r"column 'price' .* has type string; expected float64") as err:
        scan_table(data_root, Partition(EX, SYM, DAY), "book_delta_v2")
    assert str(path) in str(err.value)


# ---- times ----------------------------------------------------------------------------------------------------------

MS = [1664582400033, 1664582400279]  # ms since epoch of two real rows
MS_AS_NS = [v * 10**6 for v in MS]


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (pa.array([ORIGIN_NS, RECEIVED_NS], pa.int64()), [ORIGIN_NS, RECEIVED_NS]),
        (pa.array([1664582400, 1664582401], pa.timestamp("s")), [T0, T0 + 10**9]),
        (pa.array(MS, pa.timestamp("ms")), MS_AS_NS),
        (pa.array([v * 1000 + 7 for v in MS], pa.timestamp("us")), [v + 7000 for v in MS_AS_NS]),
        (pa.array([ORIGIN_NS, RECEIVED_NS], pa.timestamp("ns")), [ORIGIN_NS, RECEIVED_NS]),
        (pa.array(MS, pa.timestamp("ms", tz="UTC")), MS_AS_NS),
        (pa.array([ORIGIN_NS, RECEIVED_NS], pa.timestamp("ns", tz="Asia/Tokyo")), [ORIGIN_NS, RECEIVED_NS]),
        # float seconds -> the same ns as the lake's own int64 ones, then both are rounded to the microsecond
        (pa.array([1664582400.033, 1664582400.286983936], pa.float64()), [ORIGIN_NS, RECEIVED_NS]),
        (pa.array([1664582400.043, 1664582400.0], pa.float64()), [1664582400043000064, T0]),
    ],
    ids=["int64-ns", "ts-s", "ts-ms", "ts-us", "ts-ns", "ts-ms-utc", "ts-ns-tokyo", "float-s", "float-s-up"],
)
def test_time_normalisation(data_root: Path, array: pa.Array, expected: list[int]) -> None:
    assert int(1664582400.033 * 1e9) == ORIGIN_NS and int(1664582400.043 * 1e9) == 1664582400043000064
    cols = {k: v[:2] for k, v in DELTA_STORED.items()}
    cols["timestamp"] = array
    cols["receipt_timestamp"] = array
    write_lake(data_root, "book_delta_v2", cols)
    df = read_table(data_root, Partition(EX, SYM, DAY), "book_delta_v2")
    assert df["origin_time"].to_list() == [us(t) for t in expected]
    assert df["received_time"].to_list() == [us(t) for t in expected]
    assert us(ORIGIN_NS) == 1664582400033000000 and us(1664582400043000064) == 1664582400043000000


def test_missing_origin_time_becomes_null(data_root: Path) -> None:
    cols = {k: v * 2 for k, v in TRADE_STORED.items()}
    cols["timestamp"] = pa.array([ORIGIN_NS, 0, -1, None, -5, ORIGIN_NS], pa.int64())
    write_lake(data_root, "trades", cols)
    assert read_table(data_root, Partition(EX, SYM, DAY), "trades")["origin_time"].to_list() == [us(ORIGIN_NS), None, None, None, None, us(ORIGIN_NS)]
    cols["timestamp"] = pa.array([1664582400.033, 0.0, -1.0, None, float("nan"), 1664582400.033], pa.float64())
    write_lake(data_root, "trades", cols)
    assert read_table(data_root, Partition(EX, SYM, DAY), "trades")["origin_time"].to_list() == [us(ORIGIN_NS), None, None, None, None, us(ORIGIN_NS)]


def test_missing_received_time_is_an_error_naming_file_column_row(data_root: Path) -> None:
    path = write_lake(data_root, "trades", dict(TRADE_STORED, receipt_timestamp=pa.array([RECEIVED_NS, None, RECEIVED_NS], pa.int64())))
    with pytest.raises(BadValueError, match=r"column 'receipt_timestamp', row 1 .*value None is missing") as err:
        read_table(data_root, Partition(EX, SYM, DAY), "trades")
    assert str(path) in str(err.value)
    write_lake(data_root, "trades", dict(TRADE_STORED, receipt_timestamp=[RECEIVED_NS, RECEIVED_NS, 0]))
    with pytest.raises(BadValueError, match=r"column 'receipt_timestamp', row 2 .*value 0 is missing"):
        read_table(data_root, Partition(EX, SYM, DAY), "trades")


def test_millisecond_integers_are_not_taken_for_ns(data_root: Path) -> None:
    path = write_lake(data_root, "trades", dict(TRADE_STORED, timestamp=[ORIGIN_NS, 1664582400037, ORIGIN_NS]))
    with pytest.raises(BadValueError, match=r"column 'timestamp', row 1 .*1664582400037 is outside the plausible") as err:
        read_table(data_root, Partition(EX, SYM, DAY), "trades")
    assert str(path) in str(err.value)


# ---- prices and sizes -----------------------------------------------------------------------------------------------


def test_off_grid_price_names_file_column_row_value(data_root: Path) -> None:
    write_lake(data_root, "book_delta_v2", DELTA_STORED, name="1.parquet")
    second = write_lake(data_root, "book_delta_v2", dict(DELTA_STORED, price=[19422.32, 19422.325, 19422.25]), name="2.parquet")
    with pytest.raises(OffGridError) as err:
        read_table(data_root, Partition(EX, SYM, DAY), "book_delta_v2")
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert msg.startswith(f"{second}: column 'price', row 1 (0-based, in this file): value 19422.325 is not on the tick grid 0.01")
    assert (err.value.path, err.value.column, err.value.file_row) == (second, "price", 1)


def test_off_grid_size_is_rejected(data_root: Path) -> None:
    write_lake(data_root, "trades", dict(TRADE_STORED, amount=[0.00131, 0.000795, 0.29]))
    with pytest.raises(OffGridError, match=r"column 'amount', row 1 .*0.000795 is not on the lot grid 0\.00001 of BTC-USDT \(config\)"):
        read_table(data_root, Partition(EX, SYM, DAY), "trades")


def test_float_values_round_to_the_grid_never_truncate() -> None:
    """Peer trap 1: int(0.29 * 1e8) == 28999999."""
    assert int(0.29 * 1e8) == 28999999
    assert grid.to_ticks(np.array([0.29, 0.57, 1.1, 19423.92]), Decimal("0.00000001")).tolist() == [
        29000000, 57000000, 110000000, 1942392000000]
    assert grid.to_ticks(pl.Series([0.29, 4.35]), Decimal("0.01")).tolist() == [29, 435]
    df = pl.DataFrame({"x": [0.29, 4.35, 1.005]}).select(grid.to_ticks(pl.col("x"), Decimal("0.001")))
    assert df["x"].to_list() == [290, 4350, 1005]
    assert grid.to_ticks(np.array([2.5, 7.5]), Decimal("0.5")).tolist() == [5, 15]  # non-decimal steps divide
    with pytest.raises(ValueError, match="value 0.295 at index 1 is not on the grid of step 0.01"):
        grid.to_ticks(np.array([0.29, 0.295]), Decimal("0.01"))
    with pytest.raises(ValueError, match="value 60000.0001 at index 0"):  # 1 % of a tick off is still off
        grid.to_ticks(np.array([60000.0001]), Decimal("0.01"))


@settings(max_examples=300, deadline=None)
@given(ticks=st.integers(min_value=1, max_value=10**12), decimals=st.integers(min_value=0, max_value=10))
def test_decimal_floats_round_trip_to_their_ticks(ticks: int, decimals: int) -> None:
    """Any decimal `ticks * 10^-k` parsed to float comes back as exactly `ticks` (vs an exact Decimal reference)."""
    step = grid.decimal_step(decimals)
    value = float(Decimal(ticks) * step)  # what cryptofeed's float(str) produced
    assert grid.to_ticks(np.array([value]), step).tolist() == [ticks]
    assert grid.decimals_needed(np.array([value])) <= decimals


def test_decimals_needed() -> None:
    assert grid.decimals_needed(np.array([0.5123, 0.51, 3.0, 0.0, np.nan])) == 4
    assert grid.decimals_needed(np.array([19423.92, 0.1 + 0.2])) == 2
    assert grid.decimals_needed(np.array([100.0, 2.0])) == 0
    assert grid.decimals_needed(np.array([])) == 0
    with pytest.raises(ValueError, match="lies on no decimal grid"):
        grid.decimals_needed(np.array([1 / 3]))


def test_absent_book_levels_are_zero(data_root: Path) -> None:
    cols, expected = book_row_columns(1)
    cols["bid_19_price"] = [0.0]  # absent level, lake style
    cols["bid_19_size"] = [0.0]
    cols["ask_18_price"] = [float("nan")]
    cols["ask_18_size"] = [float("nan")]
    cols["ask_19_size"] = [None]  # price present, size missing: the level is absent
    write_lake(data_root, "book", cols, LAKE_STORED["book"])
    out = read_table(data_root, Partition(EX, SYM, DAY), "book")
    for c in ("bid_19_price", "bid_19_size", "ask_18_price", "ask_18_size", "ask_19_price", "ask_19_size"):
        assert out[c].to_list() == [0], c
    assert out["ask_17_price"].to_list() == expected["ask_17_price"]


@pytest.mark.parametrize(
    ("column", "values"),
    [("size", [0.1, float("nan"), 0.2]), ("price", [19422.32, None, 19422.25]), ("side_is_bid", [True, None, False])],
)
def test_missing_delta_value_is_an_error(data_root: Path, column: str, values: list) -> None:
    write_lake(data_root, "book_delta_v2", dict(DELTA_STORED, **{column: values}), LAKE_STORED["book_delta_v2"])
    with pytest.raises(BadValueError, match=rf"column '{column}', row 1 .*is missing"):
        read_table(data_root, Partition(EX, SYM, DAY), "book_delta_v2")


def test_bad_trade_side_names_file_row_value(data_root: Path) -> None:
    path = write_lake(data_root, "trades", dict(TRADE_STORED, side=["buy", "sell", "unknown"]))
    with pytest.raises(BadValueError, match=r"column 'side', row 2 .*'unknown' is not a trade side") as err:
        read_table(data_root, Partition(EX, SYM, DAY), "trades")
    assert str(path) in str(err.value)


def test_string_and_float_trade_ids(data_root: Path) -> None:
    write_lake(data_root, "trades", dict(TRADE_STORED, id=["1640546282", "1640546283", "1640546284"]))
    assert read_table(data_root, Partition(EX, SYM, DAY), "trades")["trade_id"].to_list() == TRADE_EXPECTED["trade_id"]
    write_lake(data_root, "trades", dict(TRADE_STORED, id=["1640546282", "x1", "1640546284"]))
    with pytest.raises(BadValueError, match=r"column 'id', row 1 .*'x1' is not an integer id"):
        read_table(data_root, Partition(EX, SYM, DAY), "trades")
    kucoin_like = [1.0, 2.0, 108086470184688960.0]  # float-mangled ids (multiples of 16) are still integers
    write_lake(data_root, "trades", dict(TRADE_STORED, id=kucoin_like))
    assert read_table(data_root, Partition(EX, SYM, DAY), "trades")["trade_id"].to_list() == [1, 2, 108086470184688960]
    write_lake(data_root, "trades", dict(TRADE_STORED, id=[1.0, 2.5, 3.0]))
    with pytest.raises(BadValueError, match=r"column 'id', row 1 .*2.5 is not an integer id"):
        read_table(data_root, Partition(EX, SYM, DAY), "trades")


# ---- tick / lot inference -------------------------------------------------------------------------------------------


def test_tick_and_lot_inferred_for_unconfigured_symbol(data_root: Path) -> None:
    xrp = "XRP-USDT"
    write_lake(data_root, "trades", dict(TRADE_STORED, price=[0.5123, 0.5124, 0.51], amount=[12.5, 3.0, 100.1]), symbol=xrp)
    write_lake(data_root, "book_delta_v2", dict(DELTA_STORED, price=[0.5121, 0.5, 0.5125], size=[0.0, 7.3, 1.0]), symbol=xrp)
    logs: list[str] = []
    sink = logger.add(logs.append, level="INFO")
    try:
        spec = resolve_symbol_spec(data_root, Partition(EX, xrp, DAY))
    finally:
        logger.remove(sink)
    assert spec == SymbolSpec(xrp, Decimal("0.0001"), Decimal("0.1"), "inferred")
    assert any("XRP-USDT is not in the symbol config: inferred tick 0.0001 and lot 0.1" in line for line in logs)
    df = read_table(data_root, Partition(EX, xrp, DAY), "trades")
    assert df["price"].to_list() == [5123, 5124, 5100] and df["quantity"].to_list() == [125, 30, 1001]
    assert describe_partition(data_root, Partition(EX, xrp, DAY), "book_delta_v2")["spec"] == {
        "symbol": xrp, "tick": "0.0001", "lot": "0.1", "source": "inferred"}


def test_configured_spec_wins(data_root: Path) -> None:
    write_lake(data_root, "trades", TRADE_STORED)
    assert resolve_symbol_spec(data_root, Partition(EX, SYM, DAY)) == SymbolSpec(SYM, Decimal("0.01"), Decimal("0.00001"), "config")


def test_unconfigured_symbol_without_data(data_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="NOPE-USDT is not configured and no lake data exists"):
        resolve_symbol_spec(data_root, Partition(EX, "NOPE-USDT", DAY))


# ---- partitions, description, laziness -----------------------------------------------------------------------------


def test_missing_and_empty_partition(data_root: Path) -> None:
    directory = lake_ready(data_root, Partition(EX, SYM, DAY), "trades")
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        scan_table(data_root, Partition(EX, SYM, DAY), "trades")
    assert str(directory) in str(err.value)
    directory.mkdir(parents=True)
    (directory / "_manifest.json").write_text("{}")
    (directory / ".1.parquet.tmp-abc").write_text("partial")
    with pytest.raises(FileNotFoundError, match=r"holds no \*\.parquet file"):
        partition_files(data_root, Partition(EX, SYM, DAY), "trades")


def test_corrupt_parquet_names_the_file(data_root: Path) -> None:
    write_lake(data_root, "trades", TRADE_STORED, name="1.parquet")
    good = write_lake(data_root, "trades", TRADE_STORED, name="2.parquet")
    bad = good.with_name("3.parquet")
    bad.write_bytes(good.read_bytes()[:-100])  # a truncated download
    with pytest.raises(CorruptFileError) as err:
        scan_table(data_root, Partition(EX, SYM, DAY), "trades")
    assert str(err.value).startswith(f"{bad}: not readable as parquet")


def test_corrupt_data_page_names_the_file(data_root: Path) -> None:
    n = 20_000
    cols = {k: np.resize(np.asarray(v), n) for k, v in DELTA_STORED.items()}
    write_lake(data_root, "book_delta_v2", cols, name="1.parquet")
    bad = write_lake(data_root, "book_delta_v2", cols, name="2.parquet")
    page = pq.read_metadata(bad).row_group(0).column(4).data_page_offset  # `price`: footer stays valid
    raw = bytearray(bad.read_bytes())
    raw[page + 40 : page + 200] = bytes(b ^ 0x5A for b in raw[page + 40 : page + 200])
    bad.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError) as err:
        read_table(data_root, Partition(EX, SYM, DAY), "book_delta_v2")
    assert str(err.value).startswith(f"{bad}: cannot decode parquet data")


def test_files_read_in_natural_order(data_root: Path) -> None:
    for n in (10, 2, 1):
        write_lake(data_root, "trades", dict(TRADE_STORED, id=[n * 100 + i for i in range(3)]), name=f"{n}.snappy.parquet")
    assert [p.name for p in partition_files(data_root, Partition(EX, SYM, DAY), "trades")] == [
        "1.snappy.parquet", "2.snappy.parquet", "10.snappy.parquet"]
    df = read_table(data_root, Partition(EX, SYM, DAY), "trades")
    assert df["trade_id"].to_list() == [100, 101, 102, 200, 201, 202, 1000, 1001, 1002]
    assert df["row"].to_list() == list(range(9))


def test_scan_is_lazy_and_validates_as_data_flows(data_root: Path) -> None:
    write_lake(data_root, "trades", TRADE_STORED, name="1.parquet")
    write_lake(data_root, "trades", TRADE_STORED, name="2.parquet")
    bad = write_lake(data_root, "trades", dict(TRADE_STORED, price=[19422.61, 19422.615, 19423.0]), name="3.parquet")
    lf = scan_table(data_root, Partition(EX, SYM, DAY), "trades")  # builds the plan from footers only: no error yet
    assert isinstance(lf, pl.LazyFrame)
    assert lf.select(pl.len()).collect().item() == 9  # no column projected: nothing decoded or validated
    assert normalised(lf.head(1).collect(), "trades") == {k: v[:1] for k, v in rounded(TRADE_EXPECTED).items()}
    with pytest.raises(OffGridError) as err:
        lf.collect()
    assert (err.value.path, err.value.column, err.value.file_row) == (bad, "price", 1)
    with pytest.raises(OffGridError):
        lf.collect(engine="streaming")


def test_describe_partition(data_root: Path) -> None:
    first = write_lake(data_root, "trades", TRADE_STORED, name="1.parquet", metadata={"contains_gaps": "Yes"})
    second = write_lake(data_root, "trades", dict(TRADE_STORED, timestamp=[0, ORIGIN_NS, ORIGIN_NS]), name="2.parquet")
    info = describe_partition(data_root, Partition(EX, SYM, DAY), "trades")
    assert info["path"] == str(lake_ready(data_root, Partition(EX, SYM, DAY), "trades"))
    assert info["files"] == [str(first), str(second)]
    assert info["rows"] == 6 and info["file_rows"] == [3, 3]
    assert info["bytes"] == first.stat().st_size + second.stat().st_size
    assert info["variant"] == "stored"
    assert info["schema"] == {"side": "string", "amount": "double", "price": "double", "id": "int64",
                              "timestamp": "int64", "receipt_timestamp": "int64"}
    assert info["first_time"] == "2022-10-01T00:00:00.286984000Z"
    assert info["last_time"] == "2022-10-01T00:00:00.287031000Z"
    assert info["origin_time_missing"] == 1
    assert info["contains_gaps"] == "Yes"
    assert info["spec"] == {"symbol": SYM, "tick": "0.01", "lot": "0.00001", "source": "config"}


def test_raw_lake_asset_materialises_with_describe_metadata(data_root: Path) -> None:
    """The consumer: lake_pipeline/defs/lake.py turns describe_partition into asset metadata."""
    import dagster as dg

    from lake_pipeline.defs.lake import assets
    from lake_pipeline.partitions import partition_key
    from lake_pipeline.resources import DataRoot

    day = "2024-08-08"
    directory = lake_ready(data_root, Partition(EX, SYM, day), "book_delta_v2")
    directory.mkdir(parents=True)
    shift = 677 * 86_400 * 10**9  # 2022-10-01 -> 2024-08-08: times must lie in the partition's day
    cols = {k: [t + shift for t in v] if k.endswith("timestamp") else v for k, v in DELTA_STORED.items()}
    pq.write_table(pa.table(cols, schema=LAKE_STORED["book_delta_v2"]), directory / "1.snappy.parquet")
    asset = next(a for a in assets if a.key.path[-1] == "book_delta_v2")
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([asset], partition_key=partition_key(Partition(EX, SYM, day)), instance=instance,
                                resources={"data_root": DataRoot(path=str(data_root))})
    md = result.asset_materializations_for_node(asset.op.name)[0].metadata
    assert md["dagster/row_count"].value == 3 and md["schema_variant"].value == "stored"
    assert md["first_time"].value == "2024-08-08T00:00:00.286984000Z"
    assert md["symbol_spec"].value == {"symbol": SYM, "tick": "0.01", "lot": "0.00001", "source": "config"}
    assert [c.name for c in md["dagster/column_schema"].schema.columns] == list(DELTA_STORED)
