"""Write-ahead log of one reconstruction: per-chunk output segments + engine checkpoints + DONE markers.

Protocol (every file is written atomically: temp name, fsync, rename):

    wal.json                     fingerprint of inputs + parameters; a mismatch discards the whole log
    unified-NNNNN.parquet        chunk N's unified rows (absent when the chunk had none)
    states-NNNNN.parquet         chunk N's book-state rows (absent when none)
    ckpt-NNNNN.npz               engine state AFTER chunk N (book levels, replay state, input positions)
    DONE-NNNNN.json              commit marker, written last: chunk N is durable
    END.json                     every chunk is done: their count and the run summary

Recovery keeps the longest run of DONE chunks 0..k and deletes everything after it (a segment or checkpoint
without its DONE marker may be from a chunk that was killed half way). The run resumes from ckpt-k. Publication
hard-links the segments into the final partition directories (built aside, then swapped in by
`atomic.atomic_dir`), so a crash during publication leaves the log intact and the next run simply publishes again;
the log itself is renamed away before it is deleted, so it never exists half deleted.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from loguru import logger

from lake_pipeline.atomic import atomic_dir, atomic_path, fsync_dir, write_json_atomic
from lake_pipeline.reconstruct.writer import write_parquet

CRASH_ENV = "LAKE_RECONSTRUCT_CRASH_AT"
"""Fault injection for the crash-recovery tests: `<point>:<chunk>` (or `<point>` for any chunk) SIGKILLs this
process at that point."""

_DONE = re.compile(r"^DONE-(\d{5})\.json$")
_CHUNK_FILE = re.compile(r"^(unified|states|ckpt|DONE)-(\d{5})\.(parquet|npz|json)$")
SUCCESS = "_SUCCESS"
SUMMARY = "_summary.json"


def crash_point(point: str, chunk: int) -> None:
    """SIGKILL ourselves when `$LAKE_RECONSTRUCT_CRASH_AT` names this point (tests only; no-op otherwise)."""
    if os.environ.get(CRASH_ENV) in (point, f"{point}:{chunk}"):
        os.kill(os.getpid(), signal.SIGKILL)


def _name(kind: str, chunk: int, ext: str) -> str:
    return f"{kind}-{chunk:05d}.{ext}"


class Wal:
    """The log directory of one partition's reconstruction (single writer, guarded by a lock file)."""

    def __init__(self, directory: Path, fingerprint: dict[str, Any]) -> None:
        self.dir = Path(directory)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        self._lock_fh: Any = None
        self.done: list[dict[str, Any]] = []

    # ---- lifecycle ------------------------------------------------------------------------------------------

    @contextmanager
    def opened(self) -> Iterator[Wal]:
        """Lock the log, validate it against the fingerprint and trim it to the last DONE chunk."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(self.dir.parent / f".{self.dir.name}.lock", "w")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_fh.close()
            raise RuntimeError(f"{self.dir}: another reconstruction of this partition is running") from exc
        try:
            self._recover()
            yield self
        finally:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()

    def _recover(self) -> None:
        for trash in self.dir.parent.glob(f".{self.dir.name}.trash-*"):  # a removal that was killed half way
            shutil.rmtree(trash, ignore_errors=True)
        meta = self.dir / "wal.json"
        stored = json.loads(meta.read_text()) if meta.exists() else None
        if stored != self.fingerprint:
            if stored is not None:
                logger.info("{}: inputs or parameters changed since the interrupted run; starting over", self.dir)
            self._wipe()
            write_json_atomic(meta, self.fingerprint)
            return
        chunks = sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := _DONE.match(p.name)))
        k = -1
        while k + 1 in chunks:
            k += 1
        for p in self.dir.iterdir():
            m = _CHUNK_FILE.match(p.name)
            if p.name.startswith(".") or (m is not None and int(m.group(2)) > k):
                p.unlink()
        self.done = [json.loads((self.dir / _name("DONE", i, "json")).read_text()) for i in range(k + 1)]
        if k >= 0:
            logger.info("{}: resuming after chunk {} ({} chunks durable)", self.dir, k, k + 1)

    def _wipe(self) -> None:
        for p in self.dir.iterdir():
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()

    def remove(self) -> None:
        """Delete the log (after publication, or after a run failed on bad input).

        Renamed away first (atomic), then deleted: a kill during the deletion must not leave a log with some DONE
        markers gone, which a later run would take for a shorter finished log. The lock file stays: deleting it
        would let a second process lock a fresh inode while this one still holds the old.
        """
        if self.dir.exists():
            trash = self.dir.with_name(f".{self.dir.name}.trash-{uuid.uuid4().hex[:8]}")
            os.replace(self.dir, trash)
            fsync_dir(self.dir.parent)
            crash_point("after-trash", len(self.done) - 1)
            shutil.rmtree(trash, ignore_errors=True)

    # ---- chunks ---------------------------------------------------------------------------------------------

    @property
    def next_chunk(self) -> int:
        return len(self.done)

    def load_checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """(arrays, info) saved after the last DONE chunk, or None on a fresh log."""
        if not self.done:
            return None
        with np.load(self.dir / _name("ckpt", len(self.done) - 1, "npz")) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "__info__"}
            info = json.loads(bytes(npz["__info__"]).decode())
        return arrays, info

    def write_segment(self, kind: str, chunk: int, table: pa.Table) -> int:
        """Write chunk `chunk`'s `kind` ("unified" | "states") segment; returns its bytes (0: empty, no file)."""
        if not table.num_rows:
            return 0
        size = write_parquet(self.dir / _name(kind, chunk, "parquet"), table)
        crash_point(f"after-{kind}", chunk)
        return size

    def commit_chunk(self, chunk: int, record: dict[str, Any], arrays: dict[str, np.ndarray],
                     info: dict[str, Any]) -> None:
        """Make chunk `chunk` durable once its segments are written: checkpoint, then the DONE marker."""
        if chunk != len(self.done):
            raise RuntimeError(f"{self.dir}: chunk {chunk} committed out of order (expected {len(self.done)})")
        payload = {**arrays, "__info__": np.frombuffer(json.dumps(info, sort_keys=True).encode(), dtype=np.uint8)}
        with atomic_path(self.dir / _name("ckpt", chunk, "npz")) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **payload)
        crash_point("after-checkpoint", chunk)
        record = {"chunk": chunk, **record}
        write_json_atomic(self.dir / _name("DONE", chunk, "json"), record)
        self.done.append(record)
        crash_point("after-done", chunk)

    # ---- the end --------------------------------------------------------------------------------------------

    def finished(self) -> dict[str, Any] | None:
        """The summary stored by `finish` when every chunk it counted is durable (a killed publication left it)."""
        end = self.dir / "END.json"
        if not end.exists():
            return None
        record = json.loads(end.read_text())
        if record.get("chunks") != len(self.done):
            end.unlink()
            return None
        return record["summary"]

    def finish(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.dir / "END.json", {"chunks": len(self.done), "summary": summary})

    def publish(self, unified_dir: Path, states_dir: Path, summary: dict[str, Any]) -> None:
        """Swap in the final partitions (book states first, unified with `_SUCCESS` last), then drop the log."""
        for kind, final in (("states", states_dir), ("unified", unified_dir)):
            with atomic_dir(final) as tmp:
                part = 0
                for record in self.done:
                    segment = self.dir / _name(kind, record["chunk"], "parquet")
                    if segment.exists():
                        os.link(segment, tmp / f"part-{part:05d}.parquet")
                        part += 1
                write_json_atomic(tmp / SUMMARY, summary)
                (tmp / SUCCESS).write_text("")
            crash_point(f"after-publish-{kind}", len(self.done) - 1)
        self.remove()
