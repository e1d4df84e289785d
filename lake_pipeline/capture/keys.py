"""The capture encryption key: where it comes from, and how it stays out of logs.

Resolution order: an explicit key, a process default set with `use_key()` (tests, the Dagster resource), the
`LAKE_CAPTURE_KEY` environment variable (64 hex digits or base64 of 32 bytes), then the file named by
`LAKE_CAPTURE_KEY_FILE` (same text forms, or 32 raw bytes). Error messages describe the problem (length, form,
source) but never echo the value; `CaptureKey` prints as its public key id only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from loguru import logger

KEY_ENV = "LAKE_CAPTURE_KEY"
KEY_FILE_ENV = "LAKE_CAPTURE_KEY_FILE"
KEY_BYTES = 32


class CaptureKeyError(ValueError):
    """No usable capture key (the message says where it looked and what was wrong, never the key itself)."""


class CaptureKey:
    """A 256-bit AES key. `key_id` (8 bytes of a domain-separated SHA-256) identifies it without revealing it."""

    __slots__ = ("_raw", "source", "key_id")

    def __init__(self, raw: bytes, source: str) -> None:
        if len(raw) != KEY_BYTES:
            raise CaptureKeyError(f"{source}: a capture key must be {KEY_BYTES} bytes, got {len(raw)}")
        self._raw = bytes(raw)
        self.source = source
        self.key_id = hashlib.sha256(b"lake-pipeline capture key id\x00" + self._raw).digest()[:8]

    @property
    def raw(self) -> bytes:
        return self._raw

    def __repr__(self) -> str:
        return f"CaptureKey(id={self.key_id.hex()}, source={self.source})"

    __str__ = __repr__

    def __reduce__(self):  # never pickled into run storage or logs by accident
        raise TypeError("CaptureKey cannot be pickled")


def parse_key_text(text: str | bytes, source: str) -> CaptureKey:
    """Decode a key from 64 hex digits, base64 of 32 bytes, or 32 raw bytes."""
    if isinstance(text, bytes) and len(text) == KEY_BYTES:
        try:
            text.decode("ascii")
        except UnicodeDecodeError:
            return CaptureKey(text, source)
    value = (text.decode("ascii", "replace") if isinstance(text, bytes) else text).strip()
    if len(value) == 2 * KEY_BYTES:
        try:
            return CaptureKey(bytes.fromhex(value), source)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == KEY_BYTES:
        return CaptureKey(raw, source)
    raise CaptureKeyError(f"{source}: expected {KEY_BYTES} bytes as {2 * KEY_BYTES} hex digits or base64 "
                    f"(got {len(value)} characters that decode to neither)")


def read_key_file(path: Path) -> CaptureKey:
    path = Path(path)
    if not path.is_file():
        raise CaptureKeyError(f"capture key file not found: {path}")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("capture key file {} is readable by group/others (mode {:o}); chmod 600 it", path, mode & 0o777)
    return parse_key_text(path.read_bytes(), f"key file {path}")


_default: CaptureKey | None = None


@contextlib.contextmanager
def use_key(key: CaptureKey) -> Iterator[CaptureKey]:
    """Make `key` the process default for readers that meet encrypted files (restored on exit)."""
    global _default
    previous, _default = _default, key
    try:
        yield key
    finally:
        _default = previous


def load_key(key: CaptureKey | str | None = None, key_file: Path | None = None,
             env: Mapping[str, str] | None = None, required: bool = True) -> CaptureKey | None:
    """The capture key from the first source that has one (see module doc); None only when not `required`."""
    env = os.environ if env is None else env
    if isinstance(key, CaptureKey):
        return key
    if key:
        return parse_key_text(key, "explicit key")
    if key_file is not None:
        return read_key_file(key_file)
    if _default is not None:
        return _default
    if env.get(KEY_ENV):
        return parse_key_text(env[KEY_ENV], f"${KEY_ENV}")
    if env.get(KEY_FILE_ENV):
        return read_key_file(Path(env[KEY_FILE_ENV]))
    if required:
        raise CaptureKeyError(f"no capture key: set ${KEY_ENV} (64 hex digits or base64 of 32 bytes) or "
                        f"${KEY_FILE_ENV} (a file holding one)")
    return None


def generate_key_file(path: Path) -> CaptureKey:
    """Write a fresh random key (hex) to `path` with mode 600; refuses to overwrite an existing file."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite a capture key")
    raw = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(raw.hex() + "\n")
    return CaptureKey(raw, f"key file {path}")
