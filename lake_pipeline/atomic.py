"""Atomic file and directory publication: temp name in the same directory, fsync, rename.

A partition is visible only when complete, and a re-run replaces it (DESIGN §2). Temp names are hidden
(`.<name>.tmp-<pid>-<hex>`, `.<name>.old-<pid>-<hex>`) so no reader lists them, and carry the writer's pid so
`clean_stale_temps` can remove what a killed process left without touching a live writer's work.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path beside `final`; on success fsync + rename over `final`, on error remove the temp file."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(_temp_name(final.name, "tmp"))
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _temp_name(name: str, kind: str) -> str:
    return f".{name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


_TEMP_RE = re.compile(r"^\..+\.(?:tmp|old)-(?:(?P<pid>\d+)-)?[0-9a-f]{8}$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(directory: Path) -> list[Path]:
    """Remove the hidden temp files/directories that dead writers left in `directory`; return what was removed.

    A temp name without a pid (written before pids were recorded) counts as stale. A live process's temp (same
    host) is kept, so a concurrent writer is never robbed of its work in progress.
    """
    directory = Path(directory)
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        m = _TEMP_RE.match(entry.name)
        if m is None or (m["pid"] is not None and _alive(int(m["pid"]))):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(final: Path, text: str) -> None:
    write_bytes_atomic(final, text.encode())


def write_json_atomic(final: Path, obj: Any) -> None:
    write_text_atomic(final, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Build a directory under a temp name beside `final`, then swap it in; the old content is replaced whole.

    Readers see either the old complete directory or the new complete one, never a mix. On error the temp
    directory is removed and `final` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(_temp_name(final.name, "tmp"))
    tmp.mkdir()
    try:
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as fh:
                    os.fsync(fh.fileno())
        old = None
        if final.exists():
            old = final.with_name(_temp_name(final.name, "old"))
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
