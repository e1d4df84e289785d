"""Write one structured array to `.npz` (numpy's zip of `.npy` members) from chunks, without holding it in memory.

A simulated BTC-USDT day is ~35 M hftbacktest events (2 GiB as 64-byte records): more than the export may hold at
once, and too much to write twice. The archive is written in one pass: room for the zip entry header and the
`.npy` header is left at the start, chunks are appended behind it (their CRC-32 accumulated), and at the end the
zip64 central directory is appended and the two headers are filled in, now that the row count is known. The CRC of
the whole member (`.npy` header + data) is combined from the two parts (zlib's crc32_combine, in GF(2)).
`np.load(path)["data"]` and hftbacktest (which reads only `.npy` version 1.0) read it like `np.savez` output.
The file appears atomically (temp name, fsync, rename).
"""

from __future__ import annotations

import io
import os
import struct
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lake_pipeline.atomic import fsync_dir

try:  # ISA-L's CRC-32 (the zip polynomial, same values as zlib's) runs ~10x faster: 0.1 s instead of 1.2 s for a
    from isal.isal_zlib import crc32  # 2 GiB day (optional: the hftbacktest extra installs it)
except ImportError:  # pragma: no cover - plain zlib when isal is absent
    from zlib import crc32

NPY_HEADER_BYTES = 256
"""Room for the `.npy` 1.0 header of any row count below 10^15 (a multiple of 64, as numpy aligns it)."""
_ZIP64_EXTRA = struct.Struct("<HHQQ")  # local header: tag 1, size 16, uncompressed, compressed
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_ZIP64_CENTRAL_EXTRA = struct.Struct("<HHQQQ")
_ZIP64_END = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_END = struct.Struct("<IHHHHIIH")
_U32 = 0xFFFFFFFF


def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of A + B from crc32(A), crc32(B) and len(B) (zlib's crc32_combine; Python's zlib lacks it)."""
    if len2 <= 0:
        return crc1
    op = [0xEDB88320] + [1 << n for n in range(31)]  # the operator appending one zero bit
    op = _gf2_square(_gf2_square(op))  # four zero bits
    while len2:
        op = _gf2_square(op)  # 8, 16, 32, ... zero bits: one byte, two, four, ...
        if len2 & 1:
            crc1 = _gf2_times(op, crc1)
        len2 >>= 1
    return crc1 ^ crc2


def npy_header(dtype: np.dtype, rows: int) -> bytes:
    """The `.npy` 1.0 header of a 1-d array, padded to exactly NPY_HEADER_BYTES."""
    d = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (rows,)})
    body = d.encode("latin1")
    pad = NPY_HEADER_BYTES - 10 - len(body) - 1
    if pad < 0:
        raise ValueError(f".npy header of {rows} rows does not fit {NPY_HEADER_BYTES} bytes")
    out = b"\x93NUMPY\x01\x00" + struct.pack("<H", NPY_HEADER_BYTES - 10) + body + b" " * pad + b"\n"
    np.lib.format.read_array_header_1_0(io.BytesIO(out[8:]))  # numpy must read it back
    return out


def _dos_time() -> tuple[int, int]:
    t = time.localtime()
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday


class NpzChunkWriter:
    """`append(chunk)` in order, then `close()` publishes `<path>` with member `data` (dtype of the chunks)."""

    def __init__(self, path: Path, dtype: np.dtype, member: str = "data") -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.name = f"{member}.npy".encode()
        self.rows = 0
        self._crc = 0
        self._bytes = 0
        self._head = _LOCAL.size + len(self.name) + _ZIP64_EXTRA.size
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}")
        self._fh = open(self._tmp, "wb")
        self._fh.write(b"\0" * (self._head + NPY_HEADER_BYTES))

    def append(self, chunk: np.ndarray) -> None:
        if chunk.dtype != self.dtype:
            raise TypeError(f"{self.path}: chunk dtype {chunk.dtype} is not {self.dtype}")
        view = memoryview(np.ascontiguousarray(chunk)).cast("B")
        self._crc = crc32(view, self._crc)
        self._fh.write(view)
        self._bytes += len(view)
        self.rows += len(chunk)

    def close(self) -> int:
        """Write the headers and the central directory, fsync and rename into place; returns the size in bytes."""
        try:
            header = npy_header(self.dtype, self.rows)
            crc = crc32_combine(crc32(header), self._crc, self._bytes)
            size = NPY_HEADER_BYTES + self._bytes
            mtime, mdate = _dos_time()
            cd_offset = self._head + size
            central = (_CENTRAL.pack(0x02014B50, 45, 45, 0, 0, mtime, mdate, crc, _U32, _U32, len(self.name),
                                     _ZIP64_CENTRAL_EXTRA.size, 0, 0, 0, 0, _U32)
                       + self.name + _ZIP64_CENTRAL_EXTRA.pack(1, 24, size, size, 0))
            end64 = cd_offset + len(central)
            self._fh.write(central)
            self._fh.write(_ZIP64_END.pack(0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(central), cd_offset))
            self._fh.write(_ZIP64_LOCATOR.pack(0x07064B50, 0, end64, 1))
            self._fh.write(_END.pack(0x06054B50, 0, 0, 1, 1, len(central), _U32, 0))
            self._fh.seek(0)
            self._fh.write(_LOCAL.pack(0x04034B50, 45, 0, 0, mtime, mdate, crc, _U32, _U32, len(self.name),
                                       _ZIP64_EXTRA.size) + self.name + _ZIP64_EXTRA.pack(1, 16, size, size))
            self._fh.write(header)
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.replace(self._tmp, self.path)
            fsync_dir(self.path.parent)
        finally:
            self.abort()
        return self.path.stat().st_size

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)


def save_npz(path: Path, array: np.ndarray) -> int:
    """A small array as `<path>` (member `data`), atomically; returns the size in bytes."""
    writer = NpzChunkWriter(path, array.dtype)
    writer.append(array)
    return writer.close()


class BackgroundAppend:
    """`writer.append` in one background thread, at most `depth` chunks queued: the CRC and the file write release
    the GIL, so the caller prepares the next chunk meanwhile. `drain()` before `writer.close()`; `shutdown()` (waits
    for the thread) before `writer.abort()`. A failed append (e.g. disk full) is raised by the next call."""

    def __init__(self, writer: NpzChunkWriter, depth: int = 3) -> None:
        self.writer, self.depth = writer, depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="npz-append")
        self._inflight: deque[Future] = deque()

    def append(self, chunk: np.ndarray) -> None:
        """Queue `chunk` (which must not be modified afterwards)."""
        self._inflight.append(self._pool.submit(self.writer.append, chunk))
        while len(self._inflight) > self.depth:
            self._inflight.popleft().result()

    def drain(self) -> None:
        while self._inflight:
            self._inflight.popleft().result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
