"""One decoded Binance payload -> sync input, for the live path (a WebSocket frame at a time).

The recorded path decodes whole blocks (`golden.iter_golden` + `replay.book_events`); a live client has one
`json.loads`-ed frame at a time and needs the same exact int64 ticks/lots, so both paths share
`units.strings_to_units` and cannot disagree on a value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from lake_pipeline.capture.sync import DepthDiff
from lake_pipeline.capture.units import strings_to_units
from lake_pipeline.config import SymbolSpec


def levels_to_units(levels: list[list[str]], spec: SymbolSpec, what: str) -> tuple[np.ndarray, np.ndarray]:
    """`[[price, qty], ...]` (extra elements ignored) -> (int64 ticks, int64 lots); ValueError naming `what`."""
    prices = strings_to_units(pl.Series([lv[0] for lv in levels], dtype=pl.String), spec.tick)
    sizes = strings_to_units(pl.Series([lv[1] for lv in levels], dtype=pl.String), spec.lot)
    for values, raw_index, unit in ((prices, 0, spec.tick), (sizes, 1, spec.lot)):
        if values.null_count():
            bad = levels[values.is_null().arg_max()][raw_index]
            raise ValueError(f"{what}: {bad!r} is not on the grid {unit:f} of {spec.symbol} (or malformed)")
    return prices.to_numpy(), sizes.to_numpy()


def diff_from_payload(data: dict[str, Any], spec: SymbolSpec, meta: Any = None) -> DepthDiff:
    """A spot `depthUpdate` payload (the envelope's `data`) -> `DepthDiff`."""
    where = f"depthUpdate U={data.get('U')} u={data.get('u')}"
    bid_px, bid_sz = levels_to_units(data["b"], spec, f"{where} bids")
    ask_px, ask_sz = levels_to_units(data["a"], spec, f"{where} asks")
    return DepthDiff(int(data["U"]), int(data["u"]), bid_px, bid_sz, ask_px, ask_sz, meta=meta)


def snapshot_from_body(body: dict[str, Any], spec: SymbolSpec) -> tuple[int, np.ndarray, np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """A REST `/api/v3/depth` body -> `(lastUpdateId, bid_px, bid_sz, ask_px, ask_sz)` for `BookSync.on_snapshot`."""
    where = f"snapshot lastUpdateId={body.get('lastUpdateId')}"
    return (int(body["lastUpdateId"]), *levels_to_units(body["bids"], spec, f"{where} bids"),
            *levels_to_units(body["asks"], spec, f"{where} asks"))
