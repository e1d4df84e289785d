"""The value policy (lake/values.py): each rule passes good values and names the first bad row otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from lake_pipeline.lake import values
from lake_pipeline.lake.errors import BadValueError

DAY = "2024-08-08"
START = 1723075200 * 10**9  # 2024-08-08T00:00:00Z


def test_prices_must_be_positive_and_book_levels_may_be_absent() -> None:
    assert values.check_prices("price", np.array([1.0, 2.5])) is None
    v = values.check_prices("price", np.array([1.0, 0.0, -1.0]))
    assert (v.column, v.row, v.value) == ("price", 1, 0.0)
    assert values.check_prices("bid_3_price", np.array([0.0, 5.0]), absent_is_zero=True) is None
    assert values.check_prices("bid_3_price", np.array([0.0, -5.0]), absent_is_zero=True).row == 1


def test_sizes_may_be_zero_not_negative() -> None:
    assert values.check_sizes("size", np.array([0.0, 3.0])) is None
    assert values.check_sizes("size", np.array([0.0, -0.001])).value == -0.001


def test_price_band_around_the_median() -> None:
    prices = np.array([60000.0, 60010.0, 1e12, 59990.0])
    ref = values.median_price(prices)
    assert ref == pytest.approx(60005.0)
    v = values.check_price_band("price", prices, ref)
    assert (v.row, v.value) == (2, 1e12)
    assert values.check_price_band("price", np.array([60000.0, 120.0]), ref) is None  # deep book level: kept


def test_times_inside_the_day_with_the_margin() -> None:
    margin = int(values.TIME_MARGIN_S * 1e9)
    ok = np.array([START - margin, START, START + 86_400 * 10**9 + margin - 1, -1, 0])
    assert values.check_times("timestamp", ok, DAY) is None
    year_2090 = 3_789_000_000 * 10**9
    v = values.check_times("timestamp", np.array([START, year_2090]), DAY)
    assert (v.row, v.value) == (1, year_2090) and "2090-" in v.problem and "dt=2024-08-08" in v.problem
    assert values.check_times("receipt_timestamp", np.array([START, 0]), DAY, missing_allowed=False).row == 1


def test_duplicate_trade_ids_name_both_rows() -> None:
    assert values.find_duplicate_trade_id(np.array([5, 3, 4])) is None
    v = values.find_duplicate_trade_id(np.array([7, 8, 9, 8, 7]))
    assert (v.row, v.value) == (3, 8) and "row 1" in v.problem


def test_duplicate_delta_rows_are_counted_and_slices_see_the_row_before() -> None:
    cols = {"price": np.array([1, 1, 1, 2, 2]), "size": np.array([5, 5, 6, 0, 0])}
    assert values.duplicate_row_mask(cols).tolist() == [False, True, False, False, True]
    assert values.count_duplicate_rows(cols) == 2
    tail = {k: v[1:] for k, v in cols.items()}
    assert values.duplicate_row_mask(tail, {"price": 1, "size": 5}).tolist() == [True, False, False, True]


def test_violation_becomes_an_error_naming_file_column_row_value(tmp_path) -> None:
    err = values.check_prices("price", np.array([3.0, 0.0])).error(tmp_path / "1.parquet", row_offset=10)
    assert isinstance(err, BadValueError)
    assert (err.column, err.file_row) == ("price", 11)
    assert str(err).startswith(f"{tmp_path / '1.parquet'}: column 'price', row 11") and "0.0" in str(err)
