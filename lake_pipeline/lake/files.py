"""The files of one ready-zone partition, and what their parquet footers say (no data pages are read).

Why a per-file record: every later error must name the file it comes from, and `row` numbering across the
partition needs each file's row count and offset before any data flows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipeline.instrument import Partition
from lake_pipeline.lake.columns import resolve_columns, variant_of
from lake_pipeline.lake.errors import CorruptFileError
from lake_pipeline.paths import lake_ready


@dataclass(frozen=True)
class LakeFile:
    """One parquet file of a partition: its resolved columns and where its rows sit in the partition order."""

    path: Path
    table: str
    schema: pa.Schema
    columns: dict[str, str]  # canonical -> physical name
    variant: str
    rows: int
    offset: int  # partition row index of this file's first row
    bytes: int
    metadata: dict[str, str]  # parquet key-value metadata (e.g. contains_gaps), without arrow/pandas internals

    def dtype(self, canonical: str) -> pa.DataType:
        return self.schema.field(self.columns[canonical]).type


def _natural_key(path: Path) -> list[object]:
    """`2.parquet` before `10.parquet`: numbers in names compare as numbers."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", path.name)]


def partition_files(data_root: Path, part: Partition, table: str) -> list[Path]:
    """The partition's `*.parquet` files in input order (natural name order; hidden/temp `.`/`_` names skipped).

    FileNotFoundError naming the partition directory when it is absent or holds no parquet file.
    """
    directory = lake_ready(Path(data_root), part, table)
    if not directory.is_dir():
        raise FileNotFoundError(f"lake partition {directory} does not exist (table={table}, {part})")
    files = sorted(
        (p for p in directory.glob("*.parquet") if p.is_file() and not p.name.startswith((".", "_"))),
        key=_natural_key,
    )
    if not files:
        raise FileNotFoundError(f"lake partition {directory} holds no *.parquet file (table={table}, {part})")
    return files


def _user_metadata(schema: pa.Schema) -> dict[str, str]:
    raw = schema.metadata or {}
    out = {}
    for key, value in raw.items():
        name = key.decode(errors="replace")
        if name not in ("ARROW:schema", "pandas") and not name.startswith("ARROW:"):
            out[name] = value.decode(errors="replace")
    return out


def inspect_files(paths: list[Path], table: str) -> list[LakeFile]:
    """Read each footer, resolve its columns (LakeSchemaError) and number its rows after the previous files'."""
    out: list[LakeFile] = []
    offset = 0
    for path in paths:
        try:
            meta = pq.read_metadata(path)
            schema = meta.schema.to_arrow_schema()
        except (pa.ArrowException, OSError) as exc:
            raise CorruptFileError(f"{path}: not readable as parquet ({exc})") from exc
        columns = resolve_columns(schema, path, table)
        out.append(
            LakeFile(
                path=path,
                table=table,
                schema=schema,
                columns=columns,
                variant=variant_of(columns),
                rows=meta.num_rows,
                offset=offset,
                bytes=path.stat().st_size,
                metadata=_user_metadata(schema),
            )
        )
        offset += meta.num_rows
    return out


def partition(data_root: Path, part: Partition, table: str) -> list[LakeFile]:
    """`inspect_files(partition_files(...))`."""
    return inspect_files(partition_files(data_root, part, table), table)


def collect_file(f: LakeFile, lf: pl.LazyFrame) -> pl.DataFrame:
    """Collect a single-file query; a parquet decoding failure becomes a CorruptFileError naming the file."""
    try:
        return lf.collect()
    except pl.exceptions.PolarsError as exc:
        raise CorruptFileError(f"{f.path}: cannot decode parquet data ({exc})") from exc


def fingerprint(files: list[LakeFile]) -> tuple:
    """Identity of a partition's content for caching: (path, bytes, mtime_ns) per file."""
    return tuple((str(f.path), f.bytes, f.path.stat().st_mtime_ns) for f in files)
