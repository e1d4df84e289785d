"""The reconstruction's fast book-level path equals the lake reader's normalisation, and defers to its errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake_pipeline.config import symbol_spec
from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.lake.read import BadValueError, OffGridError, read_table
from lake_pipeline.paths import lake_ready
from lake_pipeline.reconstruct.source import TableSource
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS, LAKE_STORED
from lake_pipeline_tests.recon_support import DAY, EX, SYM, T0


def _book_file(root, n: int = 500, mutate=None):
    rng = np.random.default_rng(3)
    times = T0 + np.arange(n) * 100_000_000
    cols: dict = {"timestamp": times, "receipt_timestamp": times + 7, "sequence_number": np.arange(n) + 10}
    for c in BOOK_LEVEL_COLUMNS:
        side, level, kind = c.split("_")
        if kind == "price":
            ticks = 6_000_000 - int(level) * 3 if side == "bid" else 6_000_001 + int(level) * 3
            cols[c] = (ticks + rng.integers(-1, 1, n)) / 100
        else:
            cols[c] = rng.integers(1, 10**9, n) / 1e8
    cols["bid_19_price"][::7] = 0.0  # absent level: price 0 ...
    cols["ask_18_size"][::5] = 0.0  # ... or size 0 (both become absent)
    cols["ask_19_price"][::3] = np.nan  # ... or NaN
    if mutate:
        mutate(cols)
    table = pa.table(cols, schema=LAKE_STORED["book"])
    table = table.set_column(table.schema.get_field_index("bid_18_size"), "bid_18_size",
                             pa.array(np.where(np.arange(n) % 11 == 0, None, cols["bid_18_size"]), pa.float64()))
    directory = lake_ready(root, Partition(EX, SYM, DAY), "book")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "1.parquet"
    pq.write_table(table, path, row_group_size=128)
    return path


def test_fast_levels_equal_the_lake_reader(data_root) -> None:
    _book_file(data_root)
    source = TableSource(data_root, Partition(EX, SYM, DAY), "book", symbol_spec(Instrument.parse(SYM)))
    rows, missing = source.read(37, 421)  # a range crossing row groups
    expected = read_table(data_root, Partition(EX, SYM, DAY), "book").slice(37, 421 - 37)
    assert missing == 0
    assert np.array_equal(rows.cols["levels"], expected.select(BOOK_LEVEL_COLUMNS).to_numpy())
    absent = rows.cols["row"] % 7 == 0  # bid_19 price written as 0 there: price and size both absent
    assert (rows.cols["levels"][absent, 38:40] == 0).all() and (rows.cols["levels"][~absent, 38:40] > 0).all()
    assert np.array_equal(rows.cols["row"], np.arange(37, 421))


@pytest.mark.parametrize(("column", "value", "error"), [
    ("ask_3_price", 60000.125, OffGridError),  # half a tick
    ("bid_7_size", -0.5, BadValueError),
])
def test_bad_level_raises_the_lake_readers_error(data_root, column, value, error) -> None:
    def mutate(cols):
        cols[column][123] = value

    path = _book_file(data_root, mutate=mutate)
    source = TableSource(data_root, Partition(EX, SYM, DAY), "book", symbol_spec(Instrument.parse(SYM)))
    with pytest.raises(error, match=rf"{path}: column '{column}', row 123 "):
        source.read(100, 200)
