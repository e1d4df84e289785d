"""Integrity validation of staged lake files: bytes, ETag, Parquet structure, schema, rows, times.

A file passes only if
* its size equals the listed size and its content matches the S3 ETag where the ETag can be recomputed:
  a single-part ETag is the MD5 of the content; a multipart ETag `<md5 of part md5s>-N` needs the part size, which
  we ask S3 for (HEAD ?partNumber=1). When the part size is unknown the ETag is recorded as `unverifiable-multipart`
  and integrity rests on the size, the Parquet checks below and the sha256 we record for later re-verification;
* the Parquet footer and EVERY row group decode (a flipped byte in a compressed page fails here);
* its Arrow schema is the stored (cryptofeed names) or the loaded (lakeapi names) variant of its table;
* it has rows, and every received time and every present (> 0) origin time lies inside the partition's UTC date,
  give or take `tolerance_s` (default `values.TIME_MARGIN_S`);
* its values follow the value policy (lake/values.py): prices > 0 (book levels: 0 = absent), sizes >= 0; trade
  ids are unique across the partition (checked by `acquire` over all files); repeated delta rows are counted
  (`value_repairs` in the manifest: reconstruct drops them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake_pipeline.lake import values
from lake_pipeline.lake.columns import PRICE_COLUMNS, SIZE_COLUMNS, resolve_columns
from lake_pipeline.lake.source import SourceObject
from lake_pipeline.schemas import DICT_STR, LAKE_LOADED, LAKE_STORED

DEFAULT_TOLERANCE_S = values.TIME_MARGIN_S
HASH_BLOCK = 1 << 20
NS = 1_000_000_000
TIME_COLUMNS = {"stored": ("timestamp", "receipt_timestamp"), "loaded": ("origin_time", "received_time")}
PARTITION_COLUMNS = ("exchange", "symbol")


class ValidationError(ValueError):
    """A staged partition failed validation; the message names each failing object and the reason."""

    def __init__(self, message: str, errors: list[str], report_path: Path | None = None):
        super().__init__(message)
        self.errors = errors
        self.report_path = report_path


@dataclass
class Digests:
    sha256: str
    md5: str | None
    multipart_etag: str | None


def file_digests(path: Path, part_size: int | None = None, whole_md5: bool = True) -> Digests:
    """sha256 of the file, plus its MD5 (`whole_md5`) and/or the S3 multipart ETag for `part_size`, in one read."""
    sha = hashlib.sha256()
    md5 = hashlib.md5() if whole_md5 else None
    part_md5s: list[bytes] = []
    part = hashlib.md5()
    in_part = 0
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            sha.update(block)
            if md5 is not None:
                md5.update(block)
            if part_size:
                view = memoryview(block)
                while view:
                    take = min(len(view), part_size - in_part)
                    part.update(view[:take])
                    in_part += take
                    view = view[take:]
                    if in_part == part_size:
                        part_md5s.append(part.digest())
                        part, in_part = hashlib.md5(), 0
    if part_size and in_part:
        part_md5s.append(part.digest())
    multipart = f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}" if part_size else None
    return Digests(sha.hexdigest(), md5.hexdigest() if md5 is not None else None, multipart)


def etag_check(obj: SourceObject, digests: Digests, part_size: int | None) -> tuple[str, str | None]:
    """(status, error): status is `md5`, `multipart`, `unverifiable-multipart` or `none` (no ETag: local source)."""
    if not obj.etag:
        return "none", None
    if "-" in obj.etag:
        if part_size is None:
            return "unverifiable-multipart", None
        got = digests.multipart_etag
    else:
        got = digests.md5
    status = "multipart" if "-" in obj.etag else "md5"
    if got != obj.etag:
        return status, (
            f"ETag mismatch: source {obj.etag}, content gives {got} (corrupted in transit, or the bucket uses "
            "SSE-KMS whose ETags are not MD5s: then pass --no-etag-check)"
        )
    return status, None


def _time_like(t: pa.DataType) -> bool:
    return pa.types.is_timestamp(t)


def _string_like(t: pa.DataType) -> bool:
    return t == DICT_STR or pa.types.is_string(t) or pa.types.is_large_string(t) or (
        pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)))


def _field_matches(expected: pa.Field, actual: pa.Field, variant: str) -> bool:
    if expected.name != actual.name:
        return False
    if variant == "loaded" and _time_like(expected.type):
        return _time_like(actual.type)
    if variant == "loaded" and expected.type == DICT_STR:
        return _string_like(actual.type)
    return expected.type.equals(actual.type)


def match_schema(table: str, schema: pa.Schema) -> tuple[str | None, str]:
    """("stored" | "loaded", "") when `schema` is a known variant of `table`, else (None, what differs)."""
    if table not in LAKE_STORED:
        raise ValueError(f"unknown lake table {table!r} (expected one of {sorted(LAKE_STORED)})")
    actual = [f for f in schema if not f.name.startswith("__index_level_")]  # pandas index columns carry no data
    reasons = []
    for variant, expected_schema in (("stored", LAKE_STORED[table]), ("loaded", LAKE_LOADED[table])):
        expected = list(expected_schema)
        if variant == "loaded" and [f.name for f in actual] == [f.name for f in expected[: len(actual)]]:
            if len(actual) == len(expected) - len(PARTITION_COLUMNS):  # saved with drop_partition_cols=True
                expected = expected[: len(actual)]
        if len(actual) == len(expected) and all(_field_matches(e, a, variant) for e, a in zip(expected, actual)):
            return variant, ""
        reasons.append(f"{variant}: {_schema_diff(expected, actual)}")
    return None, "; ".join(reasons)


def _schema_diff(expected: list[pa.Field], actual: list[pa.Field]) -> str:
    exp_names, act_names = [f.name for f in expected], [f.name for f in actual]
    missing = [n for n in exp_names if n not in act_names]
    extra = [n for n in act_names if n not in exp_names]
    if missing or extra:
        return f"missing columns {missing[:6]}{'…' if len(missing) > 6 else ''}, unexpected columns {extra[:6]}"
    if exp_names != act_names:
        return "columns in a different order"
    bad = [f"{a.name}: {a.type} (expected {e.type})" for e, a in zip(expected, actual) if not e.type.equals(a.type)]
    return "wrong types " + ", ".join(bad[:6])


def _as_ns(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_timestamp(col.type):
        factor = {"s": NS, "ms": 1_000_000, "us": 1_000, "ns": 1}[col.type.unit]
        return pc.multiply(col.cast(pa.int64()), factor)
    return col


@dataclass
class _TimeStats:
    lo: int
    hi: int
    outside: dict[str, int] = field(default_factory=dict)
    first_outside: dict[str, int] = field(default_factory=dict)
    first_received: int | None = None
    last_received: int | None = None

    def add(self, name: str, values: pa.ChunkedArray, *, received: bool) -> None:
        if not received:
            values = values.filter(pc.greater(values, 0))  # <= 0 means "origin time missing": not a range error
        if received and len(values):
            mm = pc.min_max(values)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            if lo is not None:
                self.first_received = lo if self.first_received is None else min(self.first_received, lo)
                self.last_received = hi if self.last_received is None else max(self.last_received, hi)
        bad = values.filter(pc.or_(pc.less(values, self.lo), pc.greater_equal(values, self.hi)))
        if len(bad):
            self.outside[name] = self.outside.get(name, 0) + len(bad)
            self.first_outside.setdefault(name, bad[0].as_py())


def iso_ns(ns: int | None) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns // NS, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % NS:09d}Z"


def day_bounds_ns(date: str) -> tuple[int, int]:
    start = dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC)
    return int(start.timestamp()) * NS, int(start.timestamp() + 86_400) * NS


@dataclass
class FileCheck:
    """Outcome of validating one staged object; `errors` empty means valid."""

    obj: SourceObject
    path: Path
    errors: list[str] = field(default_factory=list)
    sha256: str | None = None
    etag_check: str | None = None
    schema_variant: str | None = None
    rows: int = 0
    row_groups: int = 0
    first_received_time: int | None = None
    last_received_time: int | None = None
    trade_ids: list = field(default_factory=list, repr=False)  # numpy chunks, for the partition-wide check
    repeated_delta_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {
            "name": self.obj.name, "source_url": self.obj.url, "bytes": self.obj.size, "etag": self.obj.etag,
            "etag_check": self.etag_check, "sha256": self.sha256, "schema_variant": self.schema_variant,
            "rows": self.rows, "row_groups": self.row_groups,
            "first_received_time": iso_ns(self.first_received_time),
            "last_received_time": iso_ns(self.last_received_time), "errors": self.errors,
        }


def _check_parquet(check: FileCheck, table: str, date: str, tolerance_s: float) -> None:
    """Footer, schema, every row group, rows > 0, times in the day. Stops at the first structural failure."""
    try:
        pf = pq.ParquetFile(check.path, page_checksum_verification=True)  # CRCs are checked where present
    except Exception as exc:  # noqa: BLE001 — any decoder error means the same thing here
        check.errors.append(f"Parquet footer unreadable (truncated or not a Parquet file): {type(exc).__name__}: {exc}")
        return
    with pf:
        variant, why = match_schema(table, pf.schema_arrow)
        if variant is None:
            check.errors.append(f"schema is not a known `{table}` schema ({why})")
            return
        check.schema_variant = variant
        check.row_groups = pf.num_row_groups
        columns = resolve_columns(pf.schema_arrow, check.path, table)
        start, end = day_bounds_ns(date)
        tol = int(tolerance_s * NS)
        stats = _TimeStats(start - tol, end + tol)
        origin_col, received_col = TIME_COLUMNS[variant]
        for i in range(pf.num_row_groups):
            try:
                group = pf.read_row_group(i)
            except Exception as exc:  # noqa: BLE001
                check.errors.append(f"row group {i} of {pf.num_row_groups} unreadable: {type(exc).__name__}: {exc}")
                return
            _check_values(check, table, group, columns, check.rows)
            check.rows += group.num_rows
            stats.add(received_col, _as_ns(group.column(received_col)), received=True)
            stats.add(origin_col, _as_ns(group.column(origin_col)), received=False)
        if check.rows != pf.metadata.num_rows:
            check.errors.append(f"row groups hold {check.rows} rows but the footer says {pf.metadata.num_rows}")
    check.first_received_time, check.last_received_time = stats.first_received, stats.last_received
    if check.rows == 0:
        check.errors.append("no rows")
    for name, n in stats.outside.items():
        check.errors.append(
            f"{n} `{name}` values outside dt={date} ± {tolerance_s:g} s (first: {iso_ns(stats.first_outside[name])})"
        )


def _numbers(group: pa.Table, name: str) -> np.ndarray:
    return group.column(name).to_numpy().astype(np.float64, copy=False)


def _check_values(check: FileCheck, table: str, group: pa.Table, columns: dict[str, str], first_row: int) -> None:
    """The value policy on one row group; the first violation per column is reported (file row numbers)."""
    found: list[values.Violation | None] = []
    for canonical in PRICE_COLUMNS[table]:
        name = columns[canonical]
        found.append(values.check_prices(name, _numbers(group, name), absent_is_zero=table == "book"))
    for canonical in SIZE_COLUMNS[table]:
        name = columns[canonical]
        found.append(values.check_sizes(name, _numbers(group, name)))
    for v in found:
        if v is not None and not any(e.startswith(f"column {v.column!r}") for e in check.errors):
            check.errors.append(f"column {v.column!r}, row {first_row + v.row} (0-based): value {v.value!r} {v.problem}")
    if table == "trades":
        check.trade_ids.append(group.column(columns["trade_id"]).to_numpy())
    elif table == "book_delta_v2":
        key = ("origin_time", "received_time", "sequence_number", "side_is_bid", "price", "size")
        check.repeated_delta_rows += values.count_duplicate_rows(
            {k: group.column(columns[k]).to_numpy() for k in key})


def duplicate_trade_id_error(checks: list[FileCheck]) -> str | None:
    """The partition-wide unique trade id rule over the files' ids: an error naming file, row and value."""
    chunks = [(c, np.concatenate(c.trade_ids) if c.trade_ids else np.empty(0, np.int64)) for c in checks]
    if not chunks:
        return None
    ids = np.concatenate([a for _, a in chunks])
    dup = values.find_duplicate_trade_id(ids)
    if dup is None:
        return None
    earlier = int(np.flatnonzero(ids == dup.value)[0])

    def locate(row: int) -> tuple[str, int]:
        for c, a in chunks:
            if row < len(a):
                return c.obj.url, row
            row -= len(a)
        raise IndexError(row)

    (url, row), (first_url, first_row) = locate(dup.row), locate(earlier)
    return (f"{url}: trade id {dup.value!r} at row {row} (0-based) repeats row {first_row} of {first_url}: "
            "trade ids must be unique")


def validate_file(
    obj: SourceObject,
    path: Path,
    table: str,
    date: str,
    *,
    part_size: int | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    verify_etag: bool = True,
) -> FileCheck:
    """Every check of the module docstring on one staged file; never raises for bad content (see `errors`)."""
    check = FileCheck(obj, Path(path))
    size = check.path.stat().st_size
    if size != obj.size:
        check.errors.append(f"size {size} bytes differs from the source's {obj.size}")
    if size == 0:
        check.errors.append("empty object (0 bytes)")
        return check
    multipart = bool(obj.etag and "-" in obj.etag)
    digests = file_digests(check.path, part_size if multipart else None,
                           whole_md5=verify_etag and bool(obj.etag) and not multipart)
    check.sha256 = digests.sha256
    if verify_etag:
        check.etag_check, err = etag_check(obj, digests, part_size)
        if err:
            check.errors.append(err)
    else:
        check.etag_check = "skipped"
    _check_parquet(check, table, date, tolerance_s)
    return check
