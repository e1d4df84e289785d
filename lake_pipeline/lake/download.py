"""Resumable, chunked, concurrent download of a partition's objects into the staging zone.

Each object is fetched as fixed-size chunks (ranged GETs) by a bounded thread pool and written in place into
`<name>.part`. A sidecar `<name>.download.json` records the object identity (url, size, version/ETag) and which
chunks are on disk, so a killed run resumes with only the missing chunks; a finished file is renamed to `<name>`
and marked complete, so a re-run skips it. A changed object (other size/ETag) restarts from zero.

A full disk (ENOSPC) removes every partial `.part` of the call (they cannot complete and would keep the disk
full); the next start also removes `.part` files and sidecars of objects the source no longer lists.
"""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from loguru import logger
from tqdm import tqdm

from lake_pipeline.atomic import write_json_atomic
from lake_pipeline.lake.retry import RetryPolicy, call_with_retries
from lake_pipeline.lake.source import CorruptTransferError, ObjectChangedError, ObjectSource, SourceObject

DEFAULT_CHUNK_BYTES = 8 << 20
SIDECAR_SUFFIX = ".download.json"
PART_SUFFIX = ".part"
FLUSH_EVERY_S = 0.5


class RangeBodyError(ConnectionError):
    """The body of a ranged GET was shorter or longer than the range asked for (retried like a reset)."""


@dataclass
class StagedFile:
    """One object in staging after `download_objects`: where it is and what this run transferred for it."""

    obj: SourceObject
    path: Path
    fetched_bytes: int
    staged_before: int
    skipped: bool


def sidecar_path(staging_dir: Path, name: str) -> Path:
    return staging_dir / f"{name}{SIDECAR_SUFFIX}"


def read_sidecar(staging_dir: Path, name: str) -> dict | None:
    path = sidecar_path(staging_dir, name)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _same_object(meta: dict | None, obj: SourceObject, chunk_bytes: int) -> bool:
    return bool(meta) and (meta["url"], meta["size"], meta["version"], meta["chunk_bytes"]) == (
        obj.url, obj.size, obj.version, chunk_bytes)


class _ObjectDownload:
    """Chunk bookkeeping of one object: open `.part` file, done chunks, throttled sidecar flushes."""

    def __init__(self, obj: SourceObject, staging_dir: Path, chunk_bytes: int):
        self.obj, self.dir, self.chunk_bytes = obj, staging_dir, chunk_bytes
        self.final = staging_dir / obj.name
        self.part = staging_dir / f"{obj.name}{PART_SUFFIX}"
        self.n_chunks = -(-obj.size // chunk_bytes)
        self.lock = threading.Lock()
        self.fetched = 0
        self.last_flush = 0.0
        meta = read_sidecar(staging_dir, obj.name)
        same = _same_object(meta, obj, chunk_bytes)
        self.complete = same and meta["complete"] and self.final.is_file() and self.final.stat().st_size == obj.size
        self.was_complete = self.complete
        self.done: set[int] = set()
        self.fd: int | None = None
        if self.complete:
            return
        if same and self.part.is_file() and self.part.stat().st_size == obj.size:
            self.done = set(meta["done"])
        else:
            self.part.unlink(missing_ok=True)
        self.final.unlink(missing_ok=True)
        self.fd = os.open(self.part, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self.fd, obj.size)

    def present_bytes(self) -> int:
        """Bytes already on disk before this run fetches anything."""
        if self.complete:
            return self.obj.size
        return sum(end - start for start, end in map(self.chunk_range, self.done))

    def pending(self) -> list[int]:
        return [] if self.complete else [i for i in range(self.n_chunks) if i not in self.done]

    def chunk_range(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_bytes
        return start, min(self.obj.size, start + self.chunk_bytes)

    def _write_sidecar(self, complete: bool) -> None:
        meta = {**{k: v for k, v in self.obj.to_dict().items() if k != "bytes"}, "size": self.obj.size,
                "chunk_bytes": self.chunk_bytes, "done": sorted(self.done), "complete": complete}
        write_json_atomic(sidecar_path(self.dir, self.obj.name), meta)

    def mark_done(self, index: int) -> None:
        with self.lock:
            self.done.add(index)
            now = time.monotonic()
            if now - self.last_flush >= FLUSH_EVERY_S:
                os.fdatasync(self.fd)  # chunks are durable before the sidecar claims them
                self._write_sidecar(complete=False)
                self.last_flush = now

    def add_fetched(self, n: int) -> None:
        with self.lock:
            self.fetched += n

    def flush(self) -> None:
        if not self.complete and self.fd is not None:
            with self.lock:
                os.fdatasync(self.fd)
                self._write_sidecar(complete=False)

    def finish(self) -> None:
        os.fsync(self.fd)
        self.close()
        os.replace(self.part, self.final)
        self.complete = True
        self._write_sidecar(complete=True)

    def discard(self) -> None:
        """Drop partial state (the object changed at the source)."""
        self.close()
        self.part.unlink(missing_ok=True)
        sidecar_path(self.dir, self.obj.name).unlink(missing_ok=True)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _fetch_chunk(source: ObjectSource, dl: _ObjectDownload, index: int, retry: RetryPolicy, bar: tqdm) -> None:
    start, end = dl.chunk_range(index)
    pos = start

    def sink(block: bytes) -> None:
        nonlocal pos
        if pos + len(block) > end:
            raise RangeBodyError(f"{dl.obj.url}: server sent more than the requested range {start}-{end - 1}")
        os.pwrite(dl.fd, block, pos)
        pos += len(block)
        dl.add_fetched(len(block))
        bar.update(len(block))

    def attempt() -> None:
        nonlocal pos
        try:
            source.read_range(dl.obj, pos, end, sink)
        except CorruptTransferError:
            pos = start  # the bytes written so far are suspect: fetch the whole chunk again
            raise
        if pos != end:
            raise RangeBodyError(f"{dl.obj.url}: body ended at byte {pos}, expected {end}")

    try:
        call_with_retries(attempt, what=f"GET {dl.obj.url} bytes {start}-{end - 1}", policy=retry)
    except ObjectChangedError as exc:
        exc.url = dl.obj.url  # type: ignore[attr-defined]
        raise
    dl.mark_done(index)


def remove_stale_parts(staging_dir: Path, keep: set[str]) -> list[Path]:
    """Delete `<name>.part` files and their sidecars for objects not in `keep` (left by an earlier run)."""
    removed = []
    for part in staging_dir.glob(f"*{PART_SUFFIX}"):
        name = part.name.removesuffix(PART_SUFFIX)
        if name not in keep:
            part.unlink(missing_ok=True)
            sidecar_path(staging_dir, name).unlink(missing_ok=True)
            removed.append(part)
    if removed:
        logger.info(f"{staging_dir}: removed {len(removed)} stale partial download(s)")
    return removed


def download_objects(
    source: ObjectSource,
    objects: Iterable[SourceObject],
    staging_dir: Path,
    *,
    concurrency: int = 4,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    retry: RetryPolicy = RetryPolicy(),
    progress: bool = True,
    desc: str = "download",
) -> list[StagedFile]:
    """Bring every object into `staging_dir` complete; skip complete ones, resume partial ones, fetch the rest.

    At most `concurrency` ranged requests are in flight. On failure, progress made so far is recorded in the
    sidecars (a re-run continues from there) and the first error is raised.
    """
    if concurrency < 1 or chunk_bytes < 1:
        raise ValueError(f"concurrency ({concurrency}) and chunk_bytes ({chunk_bytes}) must be >= 1")
    staging_dir.mkdir(parents=True, exist_ok=True)
    objects = list(objects)
    remove_stale_parts(staging_dir, {o.name for o in objects})
    downloads = [_ObjectDownload(obj, staging_dir, chunk_bytes) for obj in objects]
    present = [d.present_bytes() for d in downloads]
    tasks = [(d, i) for d in downloads for i in d.pending()]
    with tqdm(total=sum(d.obj.size for d in downloads), initial=sum(present), unit="B", unit_scale=True,
              unit_divisor=1024, desc=desc, disable=not progress or not tasks, mininterval=0.5, leave=False) as bar:
        try:
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lake-dl") as pool:
                futures = [pool.submit(_fetch_chunk, source, d, i, retry, bar) for d, i in tasks]
                _, not_done = wait(futures, return_when=FIRST_EXCEPTION)
                for fut in not_done:
                    fut.cancel()
            errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
            if errors:
                raise errors[0]
            for d in downloads:
                if not d.complete:
                    d.finish()
        except BaseException as exc:
            changed = getattr(exc, "url", None) if isinstance(exc, ObjectChangedError) else None
            disk_full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
            for d in downloads:
                if d.obj.url == changed or (disk_full and not d.complete):
                    d.discard()
                else:
                    d.flush()
                    d.close()
            raise
    out = []
    for d, before in zip(downloads, present, strict=True):
        logger.debug(f"{d.obj.url}: fetched {d.fetched} B, {before} B already staged")
        out.append(StagedFile(d.obj, d.final, d.fetched, before, skipped=d.was_complete))
    return out
