"""Capture storage: the AES-256-GCM container, key handling, rotation, and the golden reader reading `.enc` files."""

from __future__ import annotations

import base64
import io
import os
import struct
import threading
import time
from pathlib import Path

import pytest
from loguru import logger

from lake_pipeline.capture.encryption import (
    CHUNK_HEAD,
    HEADER,
    CaptureDecryptError,
    DecryptingReader,
    EncryptingWriter,
    TamperedError,
    TruncatedError,
    WrongKeyError,
    decrypt_bytes,
    wipe,
)
from lake_pipeline.capture.golden import iter_frames, read_golden
from lake_pipeline.capture.keys import (
    KEY_ENV,
    CaptureKey,
    CaptureKeyError,
    generate_key_file,
    load_key,
    parse_key_text,
    use_key,
)
from lake_pipeline.capture.storage import DAY_NS, RotatingFrameWriter, StorageOverflowError, StorageWorker

KEY = CaptureKey(bytes(range(32)), "test")
OTHER = CaptureKey(bytes(range(1, 33)), "other")


def _seal(data: bytes, key: CaptureKey = KEY, chunk: int = 1000, flushes: tuple[int, ...] = ()) -> bytes:
    sink = io.BytesIO()
    w = EncryptingWriter(sink, key, chunk)
    pos = 0
    for cut in (*flushes, len(data)):
        w.write(data[pos:cut])
        if cut != len(data):
            w.flush_chunk()
        pos = cut
    w.close()
    return sink.getvalue()


def _open(blob: bytes, key: CaptureKey = KEY, **kw) -> bytes:
    return DecryptingReader(io.BytesIO(blob), key, "blob", **kw).read()


def _chunks(blob: bytes) -> list[tuple[int, int]]:
    """(offset, length incl. head) of each chunk."""
    out, pos = [], HEADER.size
    while pos < len(blob):
        size, _ = CHUNK_HEAD.unpack_from(blob, pos)
        out.append((pos, CHUNK_HEAD.size + size))
        pos += CHUNK_HEAD.size + size
    return out


DATA = os.urandom(10_500)


def test_round_trip_across_chunks_and_flushes():
    blob = _seal(DATA, flushes=(7, 2000, 2001))
    sizes = [n - CHUNK_HEAD.size - 16 for _, n in _chunks(blob)]
    assert sizes == [7, 1000, 993, 1, *[1000] * 8, 499]  # flushed parts, full chunks, the final remainder
    assert _open(blob) == DATA
    assert _open(_seal(b"")) == b""


@pytest.mark.parametrize("where", ["header_file_id", "chunk_length", "nonce", "ciphertext", "tag", "final_chunk"])
def test_a_flipped_byte_is_rejected(where):
    blob = bytearray(_seal(DATA))
    chunks = _chunks(bytes(blob))
    offset = {"header_file_id": 20, "chunk_length": chunks[1][0] + 3, "nonce": chunks[2][0] + 5,
              "ciphertext": chunks[3][0] + 100, "tag": chunks[4][0] + chunks[4][1] - 1,
              "final_chunk": chunks[-1][0] + CHUNK_HEAD.size + 1}[where]
    blob[offset] ^= 0x01
    with pytest.raises(CaptureDecryptError) as err:
        _open(bytes(blob))
    assert "blob" in str(err.value)
    assert isinstance(err.value, TamperedError | TruncatedError)


def test_wrong_key_is_a_clear_error_that_does_not_leak_the_key():
    with pytest.raises(WrongKeyError, match="wrong key") as err:
        _open(_seal(DATA), OTHER)
    assert KEY.key_id.hex() in str(err.value) and OTHER.key_id.hex() in str(err.value)
    assert KEY.raw.hex() not in str(err.value) and OTHER.raw.hex() not in str(err.value)


def test_reordered_moved_and_truncated_chunks_are_detected():
    blob = _seal(DATA)
    (o1, n1), (o2, n2) = _chunks(blob)[1:3]
    swapped = blob[:o1] + blob[o2 : o2 + n2] + blob[o1 : o1 + n1] + blob[o2 + n2 :]
    with pytest.raises(TamperedError, match="chunk 1 failed authentication"):
        _open(swapped)
    other_file = _seal(DATA)  # same key, same data, different file id
    o, n = _chunks(other_file)[1]
    with pytest.raises(TamperedError):
        _open(blob[:o1] + other_file[o : o + n] + blob[o1 + n1 :])
    last = _chunks(blob)[-1][0]
    with pytest.raises(TruncatedError, match="without a final chunk"):
        _open(blob[:last])
    with pytest.raises(TruncatedError, match="cut short"):
        _open(blob[: last + 10])
    with pytest.raises(TamperedError, match="after the final chunk"):
        _open(blob + blob[o1 : o1 + n1])
    assert _open(blob[:last], allow_truncated=True) == DATA[: 10 * 1000]  # salvage: every sealed chunk


def test_wipe_zeroes_in_place():
    buf = bytearray(b"secret plaintext")
    view = memoryview(buf)
    wipe(buf)
    assert bytes(view) == b"\x00" * 16


def test_key_sources_and_errors_never_echo_the_value(tmp_path, monkeypatch):
    raw = os.urandom(32)
    assert parse_key_text(raw.hex(), "x").raw == raw
    assert parse_key_text(base64.b64encode(raw).decode(), "x").raw == raw
    assert load_key(env={KEY_ENV: raw.hex().upper()}).raw == raw
    secret = raw.hex()[:60]  # 30 bytes: invalid
    with pytest.raises(CaptureKeyError, match="expected 32 bytes") as err:
        load_key(env={KEY_ENV: secret})
    assert secret not in str(err.value)
    with pytest.raises(CaptureKeyError, match="no capture key"):
        load_key(env={})
    path = generate_key_file(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert load_key(env={"LAKE_CAPTURE_KEY_FILE": str(tmp_path / "k")}).raw == path.raw
    with pytest.raises(FileExistsError):
        generate_key_file(tmp_path / "k")
    assert raw.hex() not in repr(parse_key_text(raw.hex(), "x"))
    with use_key(KEY):
        assert load_key(env={}) is KEY


def _frames(n: int, t0: int, step_ns: int) -> list[tuple[int, int, str]]:
    return [(t0 + i * step_ns, 5_000 + i, f'{{"stream":"btcusdt@trade","data":{{"i":{i}}}}}') for i in range(n)]


def test_rotation_boundaries_lose_no_frame_and_midnight_splits_partitions(tmp_path):
    t0 = 20 * DAY_NS - 2_500_000_000  # 2.5 s before a UTC midnight
    frames = _frames(50, t0, 100_000_000)  # 5 s of frames, 10/s; some exactly on second boundaries
    writer = RotatingFrameWriter(lambda d: tmp_path / f"dt={d}" / "session=s", tmp_path, KEY, rotate_s=1.0,
                                 chunk_bytes=256)
    for i in range(0, len(frames), 7):
        writer.write_batch(frames[i : i + 7])
    files = writer.close()
    assert len(files) == 6 and sum(f.frames for f in files) == 50
    # boundaries at whole seconds: a frame exactly on a boundary opens the next file
    for f in files:
        assert f.first_recv_ns // 10**9 == f.last_recv_ns // 10**9
    dates = sorted({Path(f.path).parts[0] for f in files})
    assert dates == ["dt=1970-01-20", "dt=1970-01-21"]
    paths = [tmp_path / f.path for f in files]
    assert all(p.name.endswith(".jsonl.gz.enc") for p in paths)
    with use_key(KEY):
        got = [(w, m, fr.decode()) for w, m, fr in iter_frames(paths)]
    assert got == frames
    assert not list(tmp_path.rglob(".*tmp*"))  # everything published, no temp files left


def test_golden_reader_decrypts_with_the_key_from_the_environment(tmp_path, monkeypatch):
    writer = RotatingFrameWriter(lambda d: tmp_path, tmp_path, KEY, rotate_s=3600)
    body = '{"lastUpdateId":7,"bids":[["1.00","2.00000000"]],"asks":[["1.01","3.00000000"]]}'
    writer.write_batch([(10**18, 1, body)] + _frames(3, 10**18 + 1, 1))
    [info] = writer.close()
    path = tmp_path / info.path
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY.raw).decode())
    golden = read_golden([path], kinds=("snapshots",))
    assert golden.snapshots["last_update_id"].to_list() == [7]
    assert golden.counts["btcusdt@trade"] == 3
    monkeypatch.setenv(KEY_ENV, OTHER.raw.hex())
    with pytest.raises(WrongKeyError):
        list(iter_frames([path]))
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(CaptureKeyError, match="no capture key"):
        list(iter_frames([path]))
    assert decrypt_bytes(path, KEY)[:2] == b"\x1f\x8b"  # the plaintext inside is gzip


def test_storage_worker_full_queue_is_a_loud_error(tmp_path):
    writer = RotatingFrameWriter(lambda d: tmp_path, tmp_path, None, rotate_s=3600)
    gate = threading.Event()
    real = writer.write_batch

    def slow(batch):
        gate.wait(10)
        real(batch)

    writer.write_batch = slow  # type: ignore[method-assign]
    worker = StorageWorker(writer, max_queue=5, flush_s=0.05, batch=1)
    with pytest.raises(StorageOverflowError, match="queue full"):
        for w, m, text in _frames(100, 1, 1):
            worker.submit(w, m, text)
            time.sleep(0.001)
    gate.set()
    files = worker.close()
    assert 5 <= sum(f.frames for f in files) <= 7  # what was queued is still written, nothing silently lost


def test_storage_worker_writes_everything_in_order(tmp_path):
    writer = RotatingFrameWriter(lambda d: tmp_path, tmp_path, KEY, rotate_s=0.001)
    worker = StorageWorker(writer, max_queue=100_000, flush_s=0.01)
    frames = _frames(5000, 10**18, 1000)  # 5 ms: rotation every millisecond -> 5 files
    for f in frames:
        worker.submit(*f)
    files = worker.close()
    assert len(files) == 5
    with use_key(KEY):
        assert [(w, m, t.decode()) for w, m, t in iter_frames([tmp_path / f.path for f in files])] == frames


def test_key_never_reaches_the_log(tmp_path):
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    try:
        key = parse_key_text(os.urandom(32).hex(), "env")
        writer = RotatingFrameWriter(lambda d: tmp_path, tmp_path, key, rotate_s=3600)
        writer.write_batch(_frames(3, 1, 1))
        writer.close()
        logger.info("using {}", key)
    finally:
        logger.remove(sink)
    text = "\n".join(lines)
    assert key.raw.hex() not in text and base64.b64encode(key.raw).decode() not in text
    assert key.key_id.hex() in text


def test_header_layout_is_stable():
    blob = _seal(b"x")
    magic, version, alg, _, chunk, _file_id, key_id = HEADER.unpack_from(blob)
    assert (magic, version, alg, chunk, key_id) == (b"LKCAPENC", 1, 1, 1000, KEY.key_id)
    assert struct.calcsize(">8sBBHI16s8s") == 40
