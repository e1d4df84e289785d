"""Acquire Crypto Lake partitions: list at the source -> download to staging -> validate -> publish to ready.

Only a partition whose every file passes `validate.validate_file` is published, atomically (temp dir + rename),
to `lake/ready/{table}/exchange=E/symbol=S/dt=D/` with a `_manifest.json`; a re-run replaces it whole. A failing
partition stays in staging with `_validation.json` and raises `ValidationError` naming each object and reason.
A partition the source does not have is reported with status `missing` (Crypto Lake has whole-day gaps, research
cryptolake.md §5.4): that is a fact about the data, not an error of the tool.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from lake_pipeline import __version__
from lake_pipeline.atomic import atomic_dir, clean_stale_temps, write_json_atomic
from lake_pipeline.instrument import Partition
from lake_pipeline.lake.download import DEFAULT_CHUNK_BYTES, download_objects, sidecar_path
from lake_pipeline.lake.partition_writer import MANIFEST
from lake_pipeline.lake.retry import RetryPolicy
from lake_pipeline.lake.source import ObjectSource, SourceObject, open_source
from lake_pipeline.lake.validate import (
    DEFAULT_TOLERANCE_S,
    FileCheck,
    ValidationError,
    duplicate_trade_id_error,
    validate_file,
)
from lake_pipeline.lake.values import REPAIR_DUPLICATE_DELTA_ROWS
from lake_pipeline.paths import lake_ready, lake_staging

VALIDATION_REPORT = "_validation.json"

ACQUIRED, UP_TO_DATE, MISSING = "acquired", "up_to_date", "missing"


@dataclass
class AcquireResult:
    """What happened to one partition. `fetched_bytes` counts bytes transferred by this call only."""

    table: str
    part: Partition
    status: str
    source: str
    ready_dir: Path | None = None
    manifest: dict | None = None
    fetched_bytes: int = 0
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(self.manifest["rows"]) if self.manifest else 0

    @property
    def bytes(self) -> int:
        return int(self.manifest["bytes"]) if self.manifest else 0

    def summary(self) -> str:
        where = f"{self.table} {self.part}"
        if self.status == MISSING:
            return f"{where}: missing at source {self.source}"
        rate = self.fetched_bytes / self.seconds / 1e6 if self.seconds > 0 and self.fetched_bytes else 0.0
        return (f"{where}: {self.status}, {len(self.files)} file(s), {self.bytes:,} B, {self.rows:,} rows, "
                f"fetched {self.fetched_bytes:,} B in {self.seconds:.2f} s ({rate:.1f} MB/s)")


def read_manifest(ready_dir: Path) -> dict | None:
    try:
        return json.loads((ready_dir / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _manifest_matches(manifest: dict | None, source_url: str, objects: list[SourceObject]) -> bool:
    """The ready partition came from exactly these objects (same names, sizes and ETag/version)."""
    if not manifest or manifest.get("source") != source_url:
        return False
    have = {(f["name"], f["bytes"], f.get("version")) for f in manifest["files"]}
    return have == {(o.name, o.size, o.version) for o in objects}


def _manifest(table: str, part: Partition, source_url: str, checks: list[FileCheck],
              tolerance_s: float) -> dict:
    files = []
    for c in checks:
        entry = {k: v for k, v in c.to_dict().items() if k != "errors"}
        entry["version"] = c.obj.version
        files.append(entry)
    return {
        "table": table, "exchange": part.exchange, "symbol": part.symbol, "date": part.date, "source": source_url,
        "acquired_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "schema_variant": checks[0].schema_variant, "rows": sum(c.rows for c in checks),
        "bytes": sum(c.obj.size for c in checks), "time_tolerance_s": tolerance_s,
        "value_repairs": {REPAIR_DUPLICATE_DELTA_ROWS: sum(c.repeated_delta_rows for c in checks)}
        if table == "book_delta_v2" else {},
        "tool": f"lake_pipeline {__version__}", "files": files,
    }


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _publish(staging: Path, ready: Path, checks: list[FileCheck], manifest: dict) -> None:
    """Swap the validated files plus manifest into `ready` in one rename; then clear the staging partition."""
    with atomic_dir(ready) as tmp:
        for c in checks:
            _link_or_copy(c.path, tmp / c.obj.name)
        write_json_atomic(tmp / MANIFEST, manifest)
    shutil.rmtree(staging, ignore_errors=True)


def _fail(staging: Path, report: dict, checks: list[FileCheck], where: str) -> ValidationError:
    """Write `_validation.json`, forget files whose bytes are wrong (a re-run fetches them again), build the error."""
    path = staging / VALIDATION_REPORT
    write_json_atomic(path, report)
    for c in checks:
        if any(e.startswith(("ETag mismatch", "size ")) for e in c.errors):
            c.path.unlink(missing_ok=True)
            sidecar_path(staging, c.obj.name).unlink(missing_ok=True)
    errors = report["errors"]
    msg = f"{where}: partition failed validation, kept out of ready (report: {path}):\n  " + "\n  ".join(errors)
    return ValidationError(msg, errors, path)


def acquire_partition(
    source: str | ObjectSource,
    part: Partition,
    table: str,
    data_root: Path,
    *,
    endpoint_url: str | None = None,
    anonymous: bool = False,
    concurrency: int = 4,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    verify_etag: bool = True,
    force: bool = False,
    progress: bool = True,
    retry: RetryPolicy = RetryPolicy(),
) -> AcquireResult:
    """Bring one table of a partition from `source` into the ready zone.

    Returns status `acquired`, `up_to_date` (ready already holds exactly the source's objects; `force` re-fetches)
    or `missing` (the source has no parquet file for the partition). Raises `ValidationError` for a partition that
    fails validation, `SourceAccessError` / `TransientSourceError` when the source cannot be read.
    """
    t0 = time.perf_counter()
    src = source if not isinstance(source, str) else open_source(
        source, endpoint_url=endpoint_url, anonymous=anonymous, max_connections=concurrency, retry=retry)
    where = f"{table} {part.hive}"
    result = AcquireResult(table, part, MISSING, src.url)
    objects = src.list_partition(part, table)
    if not objects:
        logger.warning(f"{where}: missing at source {src.url}")
        return result
    result.files = [o.name for o in objects]
    ready = lake_ready(data_root, part, table)
    clean_stale_temps(ready.parent)  # a killed publication's hidden temp dirs (a **/*.parquet glob reads them)
    existing = read_manifest(ready)
    if not force and _manifest_matches(existing, src.url, objects):
        result.status, result.ready_dir, result.manifest = UP_TO_DATE, ready, existing
        result.seconds = time.perf_counter() - t0
        return result

    staging = lake_staging(data_root, part, table)
    (staging / VALIDATION_REPORT).unlink(missing_ok=True)
    staged = download_objects(src, objects, staging, concurrency=concurrency, chunk_bytes=chunk_bytes, retry=retry,
                              progress=progress, desc=f"{table} {part.symbol} {part.date}")
    result.fetched_bytes = sum(s.fetched_bytes for s in staged)
    checks = [
        validate_file(s.obj, s.path, table, part.date, part_size=src.part_size(s.obj), tolerance_s=tolerance_s,
                      verify_etag=verify_etag)
        for s in staged
    ]
    errors = [f"{c.obj.url}: {e}" for c in checks for e in c.errors]
    variants = {c.schema_variant for c in checks if c.schema_variant}
    if table == "trades" and (dup := duplicate_trade_id_error(checks)):
        errors.append(dup)
    if len(variants) > 1:
        errors.append("files mix schema variants: " + ", ".join(f"{c.obj.name}={c.schema_variant}" for c in checks))
    report = {"partition": where, "source": src.url, "valid": not errors, "errors": errors,
              "checked_at": dt.datetime.now(dt.UTC).isoformat(), "files": [c.to_dict() for c in checks]}
    if errors:
        raise _fail(staging, report, checks, where)
    manifest = _manifest(table, part, src.url, checks, tolerance_s)
    _publish(staging, ready, checks, manifest)
    result.status, result.ready_dir, result.manifest = ACQUIRED, ready, manifest
    result.seconds = time.perf_counter() - t0
    logger.info(result.summary())
    return result


def date_range(spec: str) -> list[str]:
    """`2024-01-01` or `2024-01-01..2024-01-03` (inclusive) -> ISO dates; a clear ValueError otherwise."""
    first, _, last = spec.partition("..")
    try:
        start = dt.date.fromisoformat(first)
        end = dt.date.fromisoformat(last) if last else start
    except ValueError as exc:
        raise ValueError(f"bad --date {spec!r}: expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from exc
    if end < start:
        raise ValueError(f"bad --date {spec!r}: the range ends before it starts")
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
