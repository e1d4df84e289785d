"""A data root on an object store (`s3://bucket/prefix`): stage partitions through a local working copy.

The domain code (lake/, assess/, reconstruct/, fidelity/, capture/) works on local paths and relies on local
atomic renames, fsync and a crash-safe WAL, none of which an object store offers. So a step with a remote data
root runs on a local mirror of the partitions it touches (the classic stage-in / stage-out pattern):

1. stage in: each input zone partition (`<zone>/exchange=E/symbol=S/dt=D/`) is downloaded whole (or only the
   named files of it, e.g. a marker or one report, for `file_reads`) into a private
   local root (`$LAKE_WORK_DIR`, default `<system temp>/lake_pipeline_work`, then one directory per data root
   URL and per staging key + partition), keeping the remote LastModified as the local mtime. A required input
   partition with no object under it fails at once with an error naming its remote URL.
2. the domain function runs on that local root, unchanged.
3. stage out, only when the block succeeded: for each output zone partition that changed, delete the old remote
   partition (completion markers first), upload the data files, then the JSON documents, then the completion
   markers (`_SUCCESS`, `_manifest.json`) LAST, so a reader honouring the markers never sees a partial
   partition as complete and a re-run replaces, never appends. An output left byte-for-byte as it was staged in
   is not re-uploaded. On failure nothing is uploaded and the local root is kept (a re-run with the same work
   dir finds the reconstruction WAL and resumes); on success it is removed.

No Dagster here: `lake_pipeline.resources.DataRoot.staged` is the thin Dagster-facing wrapper.
Credentials and region come from the standard AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, AWS_DEFAULT_REGION, …) through s3fs/botocore; an S3-compatible endpoint (MinIO, moto) from the
`endpoint_url` argument or `$LAKE_S3_ENDPOINT_URL`. Any other fsspec protocol with its package installed works
too (e.g. `gs://` with gcsfs), with default options.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger

from lake_pipeline.atomic import atomic_dir
from lake_pipeline.instrument import Partition

WORK_DIR_ENV = "LAKE_WORK_DIR"
ENDPOINT_ENV = "LAKE_S3_ENDPOINT_URL"
MARKERS = ("_SUCCESS", "_manifest.json")
"""Completion markers: uploaded last, deleted first."""

_TOTALS_LOCK = threading.Lock()
TOTALS = {"downloaded_bytes": 0, "downloaded_files": 0, "uploaded_bytes": 0, "uploaded_files": 0,
          "deleted_files": 0}
"""Process-wide transfer counters (observability and tests; never reset by this module)."""


class RemotePartitionMissing(FileNotFoundError):
    """A required input partition has no object under its remote prefix."""


def is_remote(path: str | os.PathLike | None) -> bool:
    """True for `scheme://…` URLs other than `file://` (a local path, relative or absolute, is not remote)."""
    text = str(path or "")
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    return bool(m) and m.group(1).lower() not in ("file", "local")


def default_work_dir() -> Path:
    return Path(os.environ.get(WORK_DIR_ENV) or Path(tempfile.gettempdir()) / "lake_pipeline_work")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "root"


def _priority(name: str) -> int:
    """Upload order inside a partition: data files, then JSON documents, then completion markers."""
    if name in MARKERS:
        return 2
    return 1 if name.endswith(".json") else 0


def _mtime(info: dict) -> float | None:
    for key in ("LastModified", "mtime", "created", "last_modified"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (bytes, mtime_ns) of the visible files under `directory` (hidden temp files skipped)."""
    if not directory.is_dir():
        return {}
    out = {}
    for p in directory.rglob("*"):
        rel = p.relative_to(directory)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            st = p.stat()
            out[rel.as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def _count(**kw: int) -> None:
    with _TOTALS_LOCK:
        for k, v in kw.items():
            TOTALS[k] += v


@dataclass
class StageStats:
    """What one staged block moved."""

    downloaded_files: int = 0
    downloaded_bytes: int = 0
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    deleted_files: int = 0
    published: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    stage_in_s: float = 0.0
    stage_out_s: float = 0.0

    def summary(self) -> str:
        return (f"staged in {self.downloaded_files} files / {self.downloaded_bytes} B in {self.stage_in_s:.2f} s; "
                f"published {len(self.published)} partitions ({self.uploaded_files} files / {self.uploaded_bytes} B, "
                f"{self.deleted_files} old objects deleted) in {self.stage_out_s:.2f} s"
                + (f"; unchanged {len(self.unchanged)}" if self.unchanged else ""))


class RemoteRoot:
    """A data root at an fsspec URL (`s3://bucket/prefix`), staged through a local working copy."""

    def __init__(self, url: str, *, endpoint_url: str | None = None, work_dir: Path | str | None = None,
                 fs: Any = None, storage_options: dict | None = None):
        import fsspec

        if not is_remote(url):
            raise ValueError(f"{url!r} is not an object-store URL (expected e.g. s3://bucket/prefix)")
        self.url = url.rstrip("/")
        self.protocol = self.url.split("://", 1)[0].lower()
        self.endpoint_url = endpoint_url or os.environ.get(ENDPOINT_ENV) or None
        if fs is None:
            options = dict(storage_options or {})
            if self.protocol in ("s3", "s3a"):
                options.setdefault("skip_instance_cache", True)  # no loop/session shared across forks or tests
                options.setdefault("use_listings_cache", False)  # listings must see our own deletes and uploads
                if self.endpoint_url:
                    options.setdefault("client_kwargs", {})["endpoint_url"] = self.endpoint_url
            fs = fsspec.filesystem(self.protocol, **options)
        self.fs = fs
        self.base = fs._strip_protocol(self.url).rstrip("/")
        self.work_dir = Path(work_dir) if work_dir else default_work_dir()
        digest = hashlib.sha1(f"{self.url}|{self.endpoint_url or ''}".encode()).hexdigest()[:10]
        self.cache_root = self.work_dir / f"{_slug(self.url.split('://', 1)[1])}-{digest}"

    # -- addressing --------------------------------------------------------------------------------------------
    def remote_dir(self, zone: str, part: Partition) -> str:
        """The partition's key prefix as the filesystem sees it (`bucket/prefix/zone/exchange=…/…/dt=…`)."""
        return f"{self.base}/{zone}/{part.hive}"

    def url_of(self, zone: str, part: Partition) -> str:
        return f"{self.protocol}://{self.remote_dir(zone, part)}"

    def local_root(self, key: str, part: Partition) -> Path:
        """A private local data root for one staging key (e.g. one asset) and partition."""
        return self.cache_root / f"{_slug(key)}-{_slug(part.exchange)}-{_slug(part.symbol)}-{part.date}"

    def _list(self, prefix: str) -> dict[str, dict]:
        """relative key -> info for every object under `prefix/` (directory placeholders skipped)."""
        try:
            found = self.fs.find(prefix, detail=True, withdirs=False)
        except FileNotFoundError:
            return {}
        out = {}
        for key, info in found.items():
            key = key.rstrip("/")
            if info.get("type") == "directory" or not key.startswith(prefix + "/"):
                continue
            out[key[len(prefix) + 1:]] = info
        return out

    # -- stage in ----------------------------------------------------------------------------------------------
    def download(self, local_root: Path, zone: str, part: Partition, *,
                 required: bool = True, names: Iterable[str] | None = None, stats: StageStats | None = None) -> bool:
        """Replace the local partition by the remote one (only the files called `names`, when given: e.g. a
        completion marker or one report); False when there is none (and not `required`)."""
        stats = stats if stats is not None else StageStats()
        prefix = self.remote_dir(zone, part)
        objects = self._list(prefix)
        if names is not None:
            wanted = set(names)
            objects = {k: v for k, v in objects.items() if k in wanted}
        local = part.dir(local_root, zone)
        if not objects:
            if required:
                raise RemotePartitionMissing(
                    f"input partition {self.protocol}://{prefix}/ does not exist (no objects under it): "
                    f"materialize the upstream asset for {part.key} first, or upload the partition")
            if local.exists():
                shutil.rmtree(local)
            return False
        with atomic_dir(local) as tmp:
            for rel, info in sorted(objects.items()):
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(f"{prefix}/{rel}", str(dest))
                mtime = _mtime(info)
                if mtime is not None:  # the remote write time: staleness checks compare these, and the WAL too
                    os.utime(dest, (mtime, mtime))
                size = dest.stat().st_size
                stats.downloaded_files += 1
                stats.downloaded_bytes += size
                _count(downloaded_files=1, downloaded_bytes=size)
        return True

    # -- stage out ---------------------------------------------------------------------------------------------
    def publish(self, local_root: Path, zone: str, part: Partition, *,
                stats: StageStats | None = None) -> bool:
        """Replace the remote partition by the local one: delete old objects (markers first), upload data files,
        JSON documents, then markers. False (nothing done) when the local partition does not exist."""
        stats = stats if stats is not None else StageStats()
        local = part.dir(local_root, zone)
        files = sorted(_snapshot(local), key=lambda rel: (_priority(rel.rsplit("/", 1)[-1]), rel))
        if not files:
            return False
        prefix = self.remote_dir(zone, part)
        old = self._list(prefix)
        markers = [f"{prefix}/{rel}" for rel in old if rel.rsplit("/", 1)[-1] in MARKERS]
        rest = [f"{prefix}/{rel}" for rel in old if rel.rsplit("/", 1)[-1] not in MARKERS]
        for batch in (markers, rest):
            if batch:
                self.fs.rm(batch)
        stats.deleted_files += len(old)
        _count(deleted_files=len(old))
        for rel in files:
            src = local / rel
            size = src.stat().st_size
            self.fs.put_file(str(src), f"{prefix}/{rel}")
            stats.uploaded_files += 1
            stats.uploaded_bytes += size
            _count(uploaded_files=1, uploaded_bytes=size)
        stats.published.append(f"{self.protocol}://{prefix}")
        return True

    # -- the block ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def staged(self, part: Partition, *, reads: Iterable[str] = (),
               optional_reads: Iterable[str] = (), file_reads: Mapping[str, Iterable[str]] | None = None,
               writes: Iterable[str] = (), key: str | None = None,
               stats: StageStats | None = None) -> Iterator[Path]:
        """Yield a local data root holding the partitions of `reads` (required), `optional_reads` and, of each zone
        in `file_reads`, only the named files (relative to the partition, when present); on success publish the
        changed partitions of `writes`.

        `key` names the private local root (default: derived from the zones), so two different steps of one
        partition never share a working copy, and a step re-run on the same machine finds its own again."""
        reads, optional_reads, writes = list(reads), list(optional_reads), list(writes)
        file_reads = {zone: sorted(names) for zone, names in (file_reads or {}).items()}
        stats = stats if stats is not None else StageStats()
        if key is None:
            spec = "|".join(",".join(z) for z in (reads, optional_reads, sorted(file_reads), writes))
            key = f"{(writes or reads or ['read'])[0]}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}"
        root = self.local_root(key, part)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        for zone in reads:
            self.download(root, zone, part, required=True, stats=stats)
        for zone in optional_reads:
            self.download(root, zone, part, required=False, stats=stats)
        for zone, names in file_reads.items():
            self.download(root, zone, part, required=False, names=names, stats=stats)
        staged_in = {z: _snapshot(part.dir(root, z)) for z in writes}
        stats.stage_in_s = time.perf_counter() - t0

        yield root  # an exception here propagates: nothing is uploaded and the local root is kept

        t1 = time.perf_counter()
        for zone in writes:
            now = _snapshot(part.dir(root, zone))
            if now and now == staged_in[zone]:
                stats.unchanged.append(self.url_of(zone, part))
                continue
            self.publish(root, zone, part, stats=stats)
        stats.stage_out_s = time.perf_counter() - t1
        logger.info("{} {}: {}", self.url, part.key, stats.summary())
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def local_or_staged(data_root: str | os.PathLike, part: Partition, *, endpoint_url: str | None = None,
                    **zones: Any) -> Iterator[Path]:
    """For CLI commands: a local `data_root` as is, or an object-store URL staged like `RemoteRoot.staged`
    (`zones`: reads=, optional_reads=, file_reads=, writes=)."""
    if not is_remote(data_root):
        yield Path(data_root)
        return
    with RemoteRoot(str(data_root), endpoint_url=endpoint_url).staged(part, **zones) as root:
        yield root
