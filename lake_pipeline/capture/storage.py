"""Capture storage: `<recv_wall_ns> <recv_mono_ns> <frame>` lines, gzip, AES-256-GCM, rotated files.

`RotatingFrameWriter` turns frames into files under `golden/exchange=E/symbol=S/dt=D/session=ID/`: a new file at
every multiple of `rotate_s` of receive wall time (hourly by default, always also at UTC midnight so a file never
spans two date partitions). A file is written under a temporary name and published by rename when it is complete.
`StorageWorker` runs the writer on its own thread behind a bounded queue so the socket reader never waits on gzip,
encryption or the disk; a full queue raises `StorageOverflowError` in the reader (loud, never a silent drop).
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from loguru import logger

from lake_pipeline.atomic import atomic_path
from lake_pipeline.capture.encryption import DEFAULT_CHUNK_BYTES, EncryptingWriter
from lake_pipeline.capture.keys import CaptureKey

DAY_NS = 86_400 * 10**9


class StorageOverflowError(RuntimeError):
    """The writer fell behind by more than the queue holds: frames would be lost, so the capture stops."""


@dataclass
class FileInfo:
    """One published capture file (also the per-file metadata in session.json)."""

    path: str  # relative to the data root
    first_recv_ns: int
    last_recv_ns: int
    frames: int
    bytes: int
    encrypted: bool
    plain_bytes: int = 0
    regimes: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def utc_stamp(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y%m%dT%H%M%SZ")


def utc_date(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d")


class _OpenFile:
    """One file being written: raw sink → (encryption) ← gzip; published by rename on `close()`."""

    def __init__(self, final: Path, key: CaptureKey | None, gzip_level: int, chunk_bytes: int) -> None:
        self.final = final
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(final))
        self._raw: BinaryIO = self._stack.enter_context(open(tmp, "wb"))
        self._enc = EncryptingWriter(self._raw, key, chunk_bytes) if key is not None else None
        sink = self._enc if self._enc is not None else self._raw
        # mtime=0 and no name: the same frames give the same bytes
        self._gz = gzip.GzipFile(filename="", mode="wb", compresslevel=gzip_level, fileobj=sink, mtime=0)  # type: ignore[arg-type]
        self.frames = 0
        self.plain_bytes = 0
        self.first_ns = 0
        self.last_ns = 0

    def write(self, data: bytes, n_frames: int, first_ns: int, last_ns: int) -> None:
        self._gz.write(data)
        self.plain_bytes += len(data)
        self.first_ns = self.first_ns or first_ns
        self.last_ns = last_ns
        self.frames += n_frames

    def flush(self) -> None:
        """Make what was written so far recoverable from the temporary file (a sync-flushed, sealed chunk)."""
        self._gz.flush(zlib.Z_SYNC_FLUSH)
        if self._enc is not None:
            self._enc.flush_chunk()
        self._raw.flush()

    def close(self) -> int:
        self._gz.close()
        if self._enc is not None:
            self._enc.close()
        self._raw.flush()
        self._stack.close()  # closes the file, fsyncs and renames it into place
        return self.final.stat().st_size


class RotatingFrameWriter:
    """Writes batches of `(recv_wall_ns, recv_mono_ns, frame)` into rotated, compressed, encrypted files.

    `session_dir(date)` gives the directory for a UTC date. Not thread-safe: one writer thread owns it.
    """

    def __init__(self, session_dir: Callable[[str], Path], data_root: Path, key: CaptureKey | None,
                 rotate_s: float = 3600.0, gzip_level: int = 6, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 prefix: str = "frames") -> None:
        if rotate_s <= 0:
            raise ValueError(f"rotate_s must be positive, got {rotate_s}")
        self._session_dir = session_dir
        self._root = Path(data_root)
        self._key = key
        self._rotate_ns = int(rotate_s * 1e9)
        self._level = gzip_level
        self._chunk = chunk_bytes
        self._prefix = prefix
        self._file: _OpenFile | None = None
        self._file_end_ns = 0
        self._seq = 0
        self.files: list[FileInfo] = []
        self.frames = 0

    def _boundary_after(self, ns: int) -> int:
        next_rotation = (ns // self._rotate_ns + 1) * self._rotate_ns
        next_midnight = (ns // DAY_NS + 1) * DAY_NS
        return min(next_rotation, next_midnight)

    def _open(self, first_ns: int) -> None:
        suffix = ".jsonl.gz.enc" if self._key is not None else ".jsonl.gz"
        name = f"{self._prefix}-{utc_stamp(first_ns)}-{self._seq:04d}{suffix}"
        self._seq += 1
        directory = self._session_dir(utc_date(first_ns))
        self._file = _OpenFile(directory / name, self._key, self._level, self._chunk)
        self._file_end_ns = self._boundary_after(first_ns)

    def write_batch(self, batch: list[tuple[int, int, str]]) -> None:
        """Append frames (receive order); a frame at or after the current file's boundary starts the next file."""
        start = 0
        while start < len(batch):
            if self._file is None:
                self._open(batch[start][0])
            end = start
            while end < len(batch) and batch[end][0] < self._file_end_ns:
                end += 1
            if end > start:
                part = batch[start:end]
                data = "".join([f"{w} {m} {text}\n" for w, m, text in part]).encode()
                assert self._file is not None
                self._file.write(data, len(part), part[0][0], part[-1][0])
                self.frames += len(part)
            if end < len(batch):
                self.rotate()
            start = end

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def rotate(self) -> FileInfo | None:
        """Publish the current file (if any); the next frame opens a new one."""
        f, self._file = self._file, None
        if f is None:
            return None
        size = f.close()
        info = FileInfo(str(f.final.relative_to(self._root)), f.first_ns, f.last_ns, f.frames, size,
                        self._key is not None, f.plain_bytes)
        self.files.append(info)
        logger.info("capture file published: {} ({} frames, {} bytes)", info.path, info.frames, info.bytes)
        return info

    def close(self) -> list[FileInfo]:
        self.rotate()
        return self.files


class StorageWorker:
    """Owns a RotatingFrameWriter on a thread; `submit()` is the only call the socket reader makes.

    The hand-off is a deque (append and popleft are atomic under the GIL: no lock on the reader's path); its bound
    is the capture's memory budget for a slow disk. `submit` raises StorageOverflowError when it is full and
    re-raises any error the writer thread met, so storage failures surface in the capture loop at once.
    """

    def __init__(self, writer: RotatingFrameWriter, max_queue: int = 200_000, flush_s: float = 5.0,
                 batch: int = 4096, idle_s: float = 0.005) -> None:
        self.writer = writer
        self.max_queue = max_queue
        self._q: collections.deque[tuple[int, int, str]] = collections.deque()
        self._flush_s = flush_s
        self._batch = batch
        self._idle_s = idle_s
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self.max_backlog = 0
        self._thread = threading.Thread(target=self._run, name="capture-storage", daemon=True)
        self._thread.start()

    def submit(self, recv_wall_ns: int, recv_mono_ns: int, frame: str) -> None:
        if self._error is not None:
            raise StorageOverflowError(f"capture storage failed: {self._error!r}") from self._error
        if len(self._q) >= self.max_queue:
            raise StorageOverflowError(
                f"capture storage queue full ({self.max_queue} frames): the writer cannot keep up with the feed; "
                "stopping rather than dropping frames")
        self._q.append((recv_wall_ns, recv_mono_ns, frame))

    @property
    def backlog(self) -> int:
        return len(self._q)

    def _run(self) -> None:
        q, pop = self._q, self._q.popleft
        last_flush = time.monotonic()
        try:
            while True:
                stopping = self._stopping.is_set()  # read before draining: nothing queued before stop is missed
                backlog = len(q)
                if backlog:
                    self.max_backlog = max(self.max_backlog, backlog)
                    self.writer.write_batch([pop() for _ in range(min(backlog, self._batch))])
                elif stopping:
                    return
                else:
                    time.sleep(self._idle_s)
                if time.monotonic() - last_flush >= self._flush_s:
                    self.writer.flush()
                    last_flush = time.monotonic()
        except BaseException as exc:  # surfaced to the reader by submit() and close()
            self._error = exc
            logger.exception("capture storage thread failed")

    def close(self, timeout: float = 120.0) -> list[FileInfo]:
        """Write everything queued, publish the open file, and return the files written."""
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise StorageOverflowError(f"capture storage did not drain within {timeout} s")
        files = self.writer.close()
        if self._error is not None:
            raise StorageOverflowError(f"capture storage failed: {self._error!r}") from self._error
        return files
