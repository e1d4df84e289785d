"""release_free_memory hands memory freed on the C heap back to the OS (glibc), instead of keeping it for reuse."""

from __future__ import annotations

import pytest

from lake_pipeline.memory import _libc_malloc_trim, release_free_memory


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


@pytest.mark.skipif(_libc_malloc_trim() is None, reason="needs glibc's malloc_trim (Linux with glibc)")
def test_freed_heap_memory_goes_back_to_the_os():
    import pyarrow  # noqa: F401 - imported by release_free_memory; its own pages must not count in the measure

    release_free_memory()
    # 128 MiB in heap-sized blocks (below mmap's threshold), each followed by a small live block (above pymalloc's
    # 512 B): once the big ones are freed the heap is full of holes that glibc keeps, as after a decoding phase
    blocks = [(bytearray(64 * 1024), bytearray(1024)) for _ in range(2_000)]
    pins = [pin for _, pin in blocks]
    del blocks
    before = _rss_bytes()
    release_free_memory()
    after = _rss_bytes()
    assert before - after > 64 * 2**20, (before, after)  # most of the 128 MiB of holes
    assert len(pins) == 2_000
