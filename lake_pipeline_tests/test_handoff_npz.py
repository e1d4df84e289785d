"""The one-pass .npz writer: a valid zip64 archive numpy reads back exactly, with a correct CRC."""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from lake_pipeline.handoff.npz import BackgroundAppend, NpzChunkWriter, crc32_combine, save_npz

DTYPE = np.dtype([("ev", "u8"), ("exch_ts", "i8"), ("px", "f8")], align=True)


@pytest.mark.parametrize("n", [0, 1, 4095, 100_000])
def test_crc32_combine_equals_zlib_on_the_concatenation(n: int) -> None:
    a, b = os.urandom(777), os.urandom(n)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_chunks_round_trip_through_np_load_and_zipfile(tmp_path: Path) -> None:
    x = np.zeros(50_001, DTYPE)
    x["exch_ts"] = np.arange(len(x))
    x["px"] = np.random.default_rng(0).random(len(x))
    w = NpzChunkWriter(tmp_path / "x.npz", DTYPE)
    for i in range(0, len(x), 6_000):
        w.append(x[i:i + 6_000])
    size = w.close()
    assert size == (tmp_path / "x.npz").stat().st_size
    with zipfile.ZipFile(tmp_path / "x.npz") as z:
        assert z.testzip() is None  # every CRC checks
        assert [i.filename for i in z.infolist()] == ["data.npy"]
    y = np.load(tmp_path / "x.npz")["data"]
    assert y.dtype == DTYPE and (y == x).all()
    assert list(tmp_path.iterdir()) == [tmp_path / "x.npz"]  # no temp file left
    save_npz(tmp_path / "empty.npz", x[:0])
    assert len(np.load(tmp_path / "empty.npz")["data"]) == 0


def test_an_aborted_writer_leaves_nothing(tmp_path: Path) -> None:
    w = NpzChunkWriter(tmp_path / "x.npz", DTYPE)
    w.append(np.zeros(10, DTYPE))
    w.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match="chunk dtype"):
        NpzChunkWriter(tmp_path / "y.npz", DTYPE).append(np.zeros(3, np.int64))


def test_background_append_writes_in_order_and_raises_a_failed_append(tmp_path: Path) -> None:
    x = np.zeros(20_000, DTYPE)
    x["exch_ts"] = np.arange(len(x))
    w = NpzChunkWriter(tmp_path / "x.npz", DTYPE)
    bg = BackgroundAppend(w, depth=2)
    for i in range(0, len(x), 1_000):
        bg.append(x[i:i + 1_000])
    bg.drain()
    w.close()
    bg.shutdown()
    assert (np.load(tmp_path / "x.npz")["data"] == x).all()
    w = NpzChunkWriter(tmp_path / "y.npz", DTYPE)
    bg = BackgroundAppend(w)
    bg.append(np.zeros(3, np.int64))  # wrong dtype: the thread's TypeError reaches the caller
    with pytest.raises(TypeError, match="is not"):
        bg.drain()
    bg.shutdown()
    w.abort()
    assert list(tmp_path.iterdir()) == [tmp_path / "x.npz"]
