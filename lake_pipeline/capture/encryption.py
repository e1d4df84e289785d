"""AES-256-GCM at rest in authenticated chunks: the capture's `.enc` container.

Layout: a 40-byte header, then chunks `[u32 ciphertext length][12-byte nonce][ciphertext + 16-byte tag]`.

    header = b"LKCAPENC" | u8 version | u8 algorithm | u16 reserved | u32 chunk size | 16-byte file id | 8-byte key id
    AAD(chunk i) = header | u64 i | u8 final

Binding the whole header, the chunk index and a final flag into each chunk's authentication means a reader detects
a flipped byte anywhere (header or chunk), chunks reordered or moved between files, and a file cut short (no chunk
flagged final) or extended. The key id lets a reader say "wrong key" instead of "tampered". Nonces are random
96-bit values (one key encrypts far fewer than 2^32 chunks). Decrypted chunks land in a bytearray that is zeroed
once consumed.
"""

from __future__ import annotations

import ctypes
import gzip
import io
import os
import struct
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lake_pipeline.capture.keys import CaptureKey, load_key

MAGIC = b"LKCAPENC"
GZIP_MAGIC = b"\x1f\x8b"
VERSION = 1
ALG_AES256GCM = 1
HEADER = struct.Struct(">8sBBHI16s8s")
CHUNK_HEAD = struct.Struct(">I12s")
TAG_BYTES = 16
DEFAULT_CHUNK_BYTES = 1 << 20
MAX_CHUNK_BYTES = 64 << 20


class CaptureDecryptError(ValueError):
    """An encrypted capture file that cannot be trusted or read; the message names the file and chunk."""


class WrongKeyError(CaptureDecryptError):
    pass


class TamperedError(CaptureDecryptError):
    pass


class TruncatedError(CaptureDecryptError):
    pass


def wipe(buf: bytearray | memoryview) -> None:
    """Zero a mutable buffer in place (plaintext must not linger in freed memory)."""
    n = len(buf)
    if n:
        ctypes.memset((ctypes.c_char * n).from_buffer(buf), 0, n)


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, 1 if final else 0)


class EncryptingWriter(io.RawIOBase):
    """A write-only binary stream that encrypts into `sink` chunk by chunk; `close()` writes the final chunk.

    `flush_chunk()` seals what is buffered as a (non-final) chunk now, so a crash loses at most one flush interval.
    """

    def __init__(self, sink: BinaryIO, key: CaptureKey, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        super().__init__()
        if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
            raise ValueError(f"chunk_bytes must be in 1..{MAX_CHUNK_BYTES}, got {chunk_bytes}")
        self._sink = sink
        self._aead = AESGCM(key.raw)
        self._chunk = chunk_bytes
        self.file_id = os.urandom(16)
        self.header = HEADER.pack(MAGIC, VERSION, ALG_AES256GCM, 0, chunk_bytes, self.file_id, key.key_id)
        self._buf = bytearray()
        self._index = 0
        self.bytes_out = len(self.header)
        sink.write(self.header)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self._buf += data
        while len(self._buf) >= self._chunk:
            self._seal(self._chunk, final=False)
        return len(data)

    def flush_chunk(self) -> None:
        if self._buf:
            self._seal(len(self._buf), final=False)

    def _seal(self, n: int, final: bool) -> None:
        nonce = os.urandom(12)
        view = memoryview(self._buf)[:n]
        try:
            sealed = self._aead.encrypt(nonce, view, _aad(self.header, self._index, final))
        finally:
            view.release()
        self._sink.write(CHUNK_HEAD.pack(len(sealed), nonce))
        self._sink.write(sealed)
        self.bytes_out += CHUNK_HEAD.size + len(sealed)
        wipe(memoryview(self._buf)[:n])
        del self._buf[:n]
        self._index += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(len(self._buf), final=True)
            wipe(self._buf)
        super().close()


class DecryptingReader(io.RawIOBase):
    """A read-only stream of the plaintext of an encrypted capture; verifies every chunk before releasing it.

    `allow_truncated=True` salvages the authenticated chunks of a file whose writer died before the final chunk.
    """

    def __init__(self, source: BinaryIO, key: CaptureKey, name: str = "<stream>", allow_truncated: bool = False) -> None:
        super().__init__()
        self._src = source
        self._name = name
        self._allow_truncated = allow_truncated
        raw = source.read(HEADER.size)
        if len(raw) < HEADER.size or raw[:8] != MAGIC:
            raise CaptureDecryptError(f"{name}: not an encrypted capture (bad magic)")
        magic, version, alg, _, chunk, self.file_id, key_id = HEADER.unpack(raw)
        if version != VERSION or alg != ALG_AES256GCM:
            raise CaptureDecryptError(f"{name}: unsupported container version {version} / algorithm {alg}")
        if not 0 < chunk <= MAX_CHUNK_BYTES:
            raise TamperedError(f"{name}: header chunk size {chunk} out of range (tampered header)")
        if key_id != key.key_id:
            raise WrongKeyError(f"{name}: encrypted with key id {key_id.hex()}, but the key supplied "
                                f"({key.source}) has id {key.key_id.hex()}: wrong key")
        self._header = raw
        self._max_sealed = chunk + TAG_BYTES
        self._aead = AESGCM(key.raw)
        self._plain = bytearray()
        self._pos = 0
        self._index = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, out) -> int:  # type: ignore[override]
        while self._pos >= len(self._plain):
            if self._done:
                return 0
            self._next_chunk()
        n = min(len(out), len(self._plain) - self._pos)
        out[:n] = memoryview(self._plain)[self._pos : self._pos + n]
        self._pos += n
        return n

    def _next_chunk(self) -> None:
        wipe(self._plain)
        head = self._src.read(CHUNK_HEAD.size)
        if not head:
            if self._allow_truncated:
                self._done, self._plain, self._pos = True, bytearray(), 0
                return
            raise TruncatedError(f"{self._name}: ends after chunk {self._index - 1} without a final chunk "
                                 "(truncated file)")
        if len(head) < CHUNK_HEAD.size:
            raise TruncatedError(f"{self._name}: chunk {self._index} header cut short (truncated file)")
        size, nonce = CHUNK_HEAD.unpack(head)
        if not TAG_BYTES <= size <= self._max_sealed:
            raise TamperedError(f"{self._name}: chunk {self._index} length {size} out of range (tampered)")
        sealed = self._src.read(size)
        if len(sealed) < size:
            raise TruncatedError(f"{self._name}: chunk {self._index} cut short (truncated file)")
        plain = bytearray(size - TAG_BYTES)
        for final in (False, True):
            try:
                self._aead.decrypt_into(nonce, sealed, _aad(self._header, self._index, final), plain)
            except InvalidTag:
                continue
            break
        else:
            wipe(plain)
            raise TamperedError(f"{self._name}: chunk {self._index} failed authentication (modified, reordered or "
                                "from another file)")
        self._plain, self._pos = plain, 0
        self._index += 1
        if final:
            if self._src.read(1):
                raise TamperedError(f"{self._name}: data after the final chunk {self._index - 1} (tampered)")
            self._done = True

    def close(self) -> None:
        wipe(self._plain)
        self._src.close()
        super().close()


def open_encrypted(path: Path, key: CaptureKey | None = None, allow_truncated: bool = False) -> BinaryIO:
    """Buffered plaintext stream of an encrypted capture file (key resolved by `keys.load_key` when not given)."""
    key = load_key(key)
    assert key is not None
    raw = DecryptingReader(open(path, "rb"), key, str(path), allow_truncated)
    return io.BufferedReader(raw, buffer_size=1 << 16)  # type: ignore[return-value]


def decrypt_bytes(path: Path, key: CaptureKey | None = None) -> bytes:
    """Whole plaintext of a (small) encrypted file; for tests and tools."""
    with open_encrypted(path, key) as fh:
        return fh.read()


class _OwningGzip(gzip.GzipFile):
    """A GzipFile that closes the stream it reads from (GzipFile leaves a passed-in fileobj open)."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__(fileobj=source, mode="rb")
        self._source = source

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._source.close()


def open_plaintext(path: Path, key: CaptureKey | None = None) -> BinaryIO:
    """The capture text inside an encrypted file: decrypted, then gunzipped when the plaintext is gzip."""
    buffered = open_encrypted(path, key)
    if buffered.peek(2)[:2] == GZIP_MAGIC:  # type: ignore[attr-defined]
        return _OwningGzip(buffered)  # type: ignore[return-value]
    return buffered
