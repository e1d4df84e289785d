"""Crypto Lake reader: `lake/ready/{table}/exchange=E/symbol=S/dt=D/*.parquet` -> normalised polars frames.

Every later stage (assessment, reconstruction, the Dagster raw assets) reads the lake through here and gets
`schemas.NORMALISED[table]`: int64 ns UTC times (null origin_time where the source had null / <= 0), int64
ticks/lots on the symbol's grid, `row` = input order within the partition (files in natural name order), plus
constant `exchange`, `symbol` (Categorical) and `date` (pl.Date) columns taken from the path.

Laziness: `scan_table` reads parquet footers only (to resolve columns and number rows) and returns one lazy
frame per file, concatenated. Values are validated as batches flow (see `normalise`): an off-grid price, an
implausible time, a missing received_time or an unknown trade side raises when the query reaches it, with the
file, column and row in the message (batches may run in parallel, so with several bad rows the one named
is not necessarily the first). For an unconfigured symbol, tick/lot inference reads the distinct
price/size values once (cached per process).
"""

from __future__ import annotations

from datetime import date as Date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from lake_pipeline.config import SymbolSpec
from lake_pipeline.lake.columns import detect_variant
from lake_pipeline.lake.errors import (
    BadValueError,
    CorruptFileError,
    LakeReadError,
    LakeSchemaError,
    OffGridError,
)
from lake_pipeline.instrument import Partition
from lake_pipeline.lake.files import LakeFile, collect_file, partition, partition_files
from lake_pipeline.lake.infer import resolve_symbol_spec
from lake_pipeline.lake.normalise import scan_file
from lake_pipeline.paths import lake_ready
from lake_pipeline.schemas import LAKE_TABLES

__all__ = [
    "BadValueError",
    "CorruptFileError",
    "LakeReadError",
    "LakeSchemaError",
    "OffGridError",
    "describe_partition",
    "detect_variant",
    "partition_files",
    "read_table",
    "resolve_symbol_spec",
    "scan_table",
]

PARTITION_COLUMNS = ("exchange", "symbol", "date")


def _check_args(table: str, part: Partition) -> Date:
    if table not in LAKE_TABLES:
        raise ValueError(f"unknown lake table {table!r}; expected one of {LAKE_TABLES}")
    return Date.fromisoformat(part.date)  # Partition validated it


def _with_partition(lf: pl.LazyFrame, part: Partition, day: Date) -> pl.LazyFrame:
    return lf.with_columns(
        pl.lit(part.exchange, dtype=pl.Categorical).alias("exchange"),
        pl.lit(part.symbol, dtype=pl.Categorical).alias("symbol"),
        pl.lit(day, dtype=pl.Date).alias("date"),
    )


def _scan(files: list[LakeFile], spec: SymbolSpec | None, columns: list[str] | None = None) -> pl.LazyFrame:
    return pl.concat([scan_file(f, spec, columns) for f in files], how="vertical", rechunk=False)


def scan_table(data_root: Path, part: Partition, table: str, spec: SymbolSpec | None = None) -> pl.LazyFrame:
    """Lazy normalised frame of one partition (columns of NORMALISED[table] + exchange, symbol, date).

    `spec` defaults to `resolve_symbol_spec(...)`. Raises now: FileNotFoundError (no files), LakeSchemaError,
    CorruptFileError (unreadable footer). Raises on collect: BadValueError / OffGridError naming file, column, row.
    """
    day = _check_args(table, part)
    files = partition(data_root, part, table)
    spec = spec or resolve_symbol_spec(data_root, part)
    return _with_partition(_scan(files, spec), part, day)


def read_table(data_root: Path, part: Partition, table: str, spec: SymbolSpec | None = None) -> pl.DataFrame:
    """`scan_table(...).collect()`; a data page polars cannot decode becomes a CorruptFileError naming its file."""
    lf = scan_table(data_root, part, table, spec)
    try:
        return lf.collect()
    except pl.exceptions.PolarsError:
        # Find the culprit file (only on this failure path), so the error names it; else re-raise as is.
        for f in partition(data_root, part, table):
            collect_file(f, pl.scan_parquet(f.path, hive_partitioning=False))
        raise


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return np.datetime_as_string(np.datetime64(int(ns), "ns"), unit="ns") + "Z"


def _schema_text(files: list[LakeFile]) -> dict[str, str]:
    """Physical columns across the files (first-seen order); differing types are joined with ' | '."""
    out: dict[str, list[str]] = {}
    for f in files:
        for field in f.schema:
            seen = out.setdefault(field.name, [])
            if str(field.type) not in seen:
                seen.append(str(field.type))
    return {name: " | ".join(types) for name, types in out.items()}


def describe_partition(data_root: Path, part: Partition, table: str) -> dict[str, Any]:
    """What the raw Dagster assets record: files, rows, bytes, schema, variant, received_time range, spec.

    Reads parquet footers and the two time columns (validated like any read), plus, for an unconfigured symbol,
    the distinct prices/sizes for the tick/lot inference.
    """
    _check_args(table, part)
    files = partition(data_root, part, table)
    times = _scan(files, None, ["origin_time", "received_time"]).select(
        first=pl.col("received_time").min(),
        last=pl.col("received_time").max(),
        origin_missing=pl.col("origin_time").null_count(),
    )
    stats = times.collect().row(0, named=True)
    variants = {f.variant for f in files}
    gaps = {f.metadata.get("contains_gaps") for f in files} - {None}
    return {
        "path": str(lake_ready(Path(data_root), part, table)),
        "files": [str(f.path) for f in files],
        "file_rows": [f.rows for f in files],
        "rows": sum(f.rows for f in files),
        "bytes": sum(f.bytes for f in files),
        "variant": variants.pop() if len(variants) == 1 else "mixed",
        "schema": _schema_text(files),
        "first_time": _iso(stats["first"]),
        "last_time": _iso(stats["last"]),
        "origin_time_missing": int(stats["origin_missing"]),
        "contains_gaps": " | ".join(sorted(gaps)) or None,
        "spec": resolve_symbol_spec(data_root, part).to_dict(),
    }
