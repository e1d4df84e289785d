"""Tick and lot of a symbol: from config when configured, else inferred from the partition's own data.

Why: a user must be able to process a new symbol (ETH-USDT, XRP-USDT, …) without writing config first (DESIGN
§3). The inferred tick (lot) is the coarsest decimal grid 10^-k on which every price (size) of every lake table
of the partition lies; absent book levels (0 / NaN) are ignored. It reads only the price/size columns, reduced to
their distinct values per file, and is cached per process for unchanged files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from loguru import logger

from lake_pipeline.config import SymbolSpec, symbol_spec
from lake_pipeline.instrument import Partition
from lake_pipeline.lake.columns import PRICE_COLUMNS, SIZE_COLUMNS
from lake_pipeline.lake.files import LakeFile, collect_file, fingerprint, partition
from lake_pipeline.lake.grid import decimal_step, decimals_needed
from lake_pipeline.paths import lake_ready
from lake_pipeline.schemas import LAKE_TABLES

_INFERRED: dict[tuple, SymbolSpec] = {}


def distinct_values(f: LakeFile, canonicals: tuple[str, ...]) -> np.ndarray:
    """Every distinct value of the given (price or size) columns of one file, as float64."""
    names = [f.columns[c] for c in canonicals]
    query = pl.scan_parquet(f.path, hive_partitioning=False).select(
        [pl.col(n).cast(pl.Float64).unique().implode().alias(n) for n in names]
    )
    frame = collect_file(f, query)
    return np.unique(np.concatenate([frame[n][0].to_numpy() for n in names]))


def _infer(symbol: str, files: list[LakeFile]) -> SymbolSpec:
    prices = np.unique(np.concatenate([distinct_values(f, PRICE_COLUMNS[f.table]) for f in files]))
    sizes = np.unique(np.concatenate([distinct_values(f, SIZE_COLUMNS[f.table]) for f in files]))
    where = f"{symbol} ({len(files)} files: {sorted({f.table for f in files})}, first {files[0].path.parent})"
    steps = []
    for kind, values in (("price", prices), ("size", sizes)):
        usable = values[np.isfinite(values) & (values != 0)]
        if usable.size == 0:
            raise ValueError(f"cannot infer the {kind} grid of {where}: no non-zero {kind}s")
        try:
            steps.append(decimal_step(decimals_needed(usable)))
        except ValueError as exc:
            raise ValueError(f"cannot infer the {kind} grid of {where}: {exc}") from exc
    spec = SymbolSpec(symbol, steps[0], steps[1], source="inferred")
    logger.info(
        "{} is not in the symbol config: inferred tick {} and lot {} from {} distinct prices and {} distinct sizes of {}",
        symbol, f"{spec.tick:f}", f"{spec.lot:f}", prices.size, sizes.size, where,
    )
    return spec


def resolve_symbol_spec(data_root: Path, part: Partition) -> SymbolSpec:
    """Configured spec (source="config"), else the spec inferred from this partition's lake tables (source="inferred").

    FileNotFoundError when the symbol is unconfigured and no lake table of the partition exists.
    """
    configured = symbol_spec(part.instrument)
    if configured is not None:
        return configured
    files: list[LakeFile] = []
    for table in LAKE_TABLES:
        try:
            files += partition(data_root, part, table)
        except FileNotFoundError:
            continue
    if not files:
        where = lake_ready(Path(data_root), part, "{" + ",".join(LAKE_TABLES) + "}")
        raise FileNotFoundError(f"{part.instrument} is not configured and no lake data exists at {where} "
                                "to infer its tick/lot from")
    key = (part.instrument, fingerprint(files))
    if key not in _INFERRED:
        _INFERRED[key] = _infer(part.symbol, files)
    return _INFERRED[key]
