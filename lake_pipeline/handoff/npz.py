"""Write one structured array to `.npz` (numpy's zip of `.npy` members) from chunks, without holding it in memory.

A simulated BTC-USDT day is ~33 M hftbacktest events (2 GiB as 64-byte records): more than the export may hold at
once. The chunks go to a raw spill file first (the `.npy` header needs the final row count), then into the zip
member `data` behind its header; `np.load(path)["data"]` and hftbacktest read the result like `np.savez` output.
The archive appears atomically (temp name, fsync, rename).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np

from lake_pipeline.atomic import atomic_path

COPY_BYTES = 64 << 20


class NpzChunkWriter:
    """`append(chunk)` in order, then `close()` publishes `<path>` with member `data` (dtype of the chunks)."""

    def __init__(self, path: Path, dtype: np.dtype, member: str = "data") -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.member = member
        self.rows = 0
        self._spill_path = self.path.with_name(f".{self.path.name}.spill")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spill = open(self._spill_path, "wb")

    def append(self, chunk: np.ndarray) -> None:
        if chunk.dtype != self.dtype:
            raise TypeError(f"{self.path}: chunk dtype {chunk.dtype} is not {self.dtype}")
        self._spill.write(np.ascontiguousarray(chunk).data)
        self.rows += len(chunk)

    def close(self) -> int:
        """Assemble and publish the archive; returns its size in bytes."""
        self._spill.close()
        try:
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                      "shape": (self.rows,)}
            with atomic_path(self.path) as tmp:
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf, \
                        zf.open(f"{self.member}.npy", "w", force_zip64=True) as out, \
                        open(self._spill_path, "rb") as spill:
                    np.lib.format.write_array_header_1_0(out, header)  # hftbacktest reads only npy 1.0
                    shutil.copyfileobj(spill, out, COPY_BYTES)
        finally:
            self._spill_path.unlink(missing_ok=True)
        return self.path.stat().st_size

    def abort(self) -> None:
        self._spill.close()
        self._spill_path.unlink(missing_ok=True)


def save_npz(path: Path, array: np.ndarray) -> int:
    """A small array as `<path>` (member `data`), atomically; returns the size in bytes."""
    writer = NpzChunkWriter(path, array.dtype)
    writer.append(array)
    return writer.close()
