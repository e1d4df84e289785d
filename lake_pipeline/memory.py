"""Give freed heap memory back to the operating system between the phases of a long job.

A phase that decodes a full day (hundreds of MB of parquet columns, in threads) leaves that memory free but held
by the allocators: Arrow's pool keeps it for reuse and glibc keeps each thread's arena. The next phase then
allocates on top of it and the process's peak RSS is the sum of both phases. Returning it between phases costs a
few milliseconds.
"""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _libc_malloc_trim():
    """glibc's malloc_trim from the process's own symbols (no `ldconfig` subprocess); None elsewhere."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def release_free_memory() -> None:
    """Return the memory Arrow's pool and the C heap hold free to the OS (no-op where unsupported)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _libc_malloc_trim()
    if trim is not None:
        trim(0)
