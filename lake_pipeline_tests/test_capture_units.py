"""Exact decimal string <-> int64 ticks/lots: agrees with Python's Decimal on random and edge-case strings."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lake_pipeline.capture.units import strings_to_units, unit_scale, units_of, units_to_float

UNITS = [Decimal("0.01"), Decimal("0.00000001"), Decimal("0.05"), Decimal("10"), Decimal("1"), Decimal("0.5")]


def reference(text: str | None, unit: Decimal) -> int | None:
    """Decimal arithmetic, the independent reference: None when malformed or off grid."""
    import re

    if text is None or not re.fullmatch(r"[0-9]+(\.[0-9]*)?", text) or len(text.split(".")[0]) > 18 - unit_scale(unit)[0]:
        return None
    q = Decimal(text) / unit
    return int(q) if q == q.to_integral_value() else None


decimal_strings = st.one_of(
    st.from_regex(r"[0-9]{1,12}\.[0-9]{0,10}", fullmatch=True),
    st.from_regex(r"[0-9]{1,6}", fullmatch=True),
    st.text(alphabet="0123456789.٠-e ", max_size=8),
    st.sampled_from(["", ".", ".5", "5.", "-1.00", "1e3", " 1", "1.0.0", "0.00000000", "92233720368.54775807",
                     "1234567890123456789", "61837.63000000", "25.42618900"]),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.none(), decimal_strings), max_size=30), unit=st.sampled_from(UNITS))
def test_strings_to_units_matches_decimal(values: list[str | None], unit: Decimal) -> None:
    got = strings_to_units(pl.Series("x", values, dtype=pl.String), unit).to_list()
    assert got == [reference(v, unit) for v in values]


def test_list_column_keeps_shape_and_nulls() -> None:
    s = pl.Series("l", [["1.01", "2"], [], None, ["0.001", "3.10"]], dtype=pl.List(pl.String))
    got = strings_to_units(s.slice(1), Decimal("0.01"))  # a sliced array exercises offset rebasing
    assert got.to_list() == [[], None, [None, 310]]
    assert strings_to_units(s, Decimal("0.01")).to_list() == [[101, 200], [], None, [None, 310]]


@pytest.mark.parametrize("text", ["61837.63", "0.01", "99999.99", "0.00000001", "25.426189", "90071992.54740991"])
def test_units_to_float_is_the_nearest_double(text: str) -> None:
    """Exact up to 2**53 - 1 units (the last case): 90 M BTC in 1e-8 lots, far beyond any real size."""
    unit = Decimal("0.01") if len(text.split(".")[1]) == 2 else Decimal("0.00000001")
    assert units_to_float(np.array([units_of(text, unit)]), unit)[0] == float(text)


def test_units_of_rejects_off_grid() -> None:
    assert units_of("61837.63000000", Decimal("0.01")) == 6183763
    with pytest.raises(ValueError, match="not a non-negative multiple of 0.01"):
        units_of("1.001", Decimal("0.01"))
    with pytest.raises(ValueError, match="positive"):
        unit_scale(Decimal("0"))
