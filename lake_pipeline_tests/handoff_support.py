"""Reconstructed partitions for the hand-off tests: a simulated quarter hour, the real BTC spot recording."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lake_pipeline_tests.requires import unavailable

from lake_pipeline.instrument import Instrument, Partition

EX, SYM, DAY = "BINANCE", "BTC-USDT", "2024-08-08"
INSTRUMENT = f"{EX}.{SYM}"
PART = Partition(EX, SYM, DAY)


def hftbacktest_installed() -> None:
    """Skip (fail under CI=true) when the hftbacktest test extra is missing."""
    try:
        import hftbacktest  # noqa: F401
    except ImportError:
        unavailable("hftbacktest is not installed (test extra: pip install -e '.[test]')")


def simulated_root(base: Path, hours: float = 0.25, seed: int = 3, faults: tuple[str, ...] = ()) -> Path:
    """Simulate `hours` of BTC-USDT on DAY and reconstruct it (published unified events + book states)."""
    from lake_pipeline.reconstruct.run import reconstruct_partition
    from lake_pipeline.sim.simulate import simulate

    simulate(base, PART, hours, seed, faults=list(faults), golden_hours=0)
    reconstruct_partition(base, PART, chunk_rows=100_000)
    return base


def real_root(base: Path, realdata: Path) -> Path:
    """The real BTC spot recording (0808 then 0809 files: one session across midnight) as two reconstructed days."""
    from lake_pipeline.lake.from_capture import lake_from_capture
    from lake_pipeline.reconstruct.run import reconstruct_partition

    files = [realdata / "hftbacktest" / "spot" / f"btcusdt_2024080{d}.gz" for d in (8, 9)]
    lake_from_capture(files, base, Instrument(EX, SYM))
    for day in ("2024-08-08", "2024-08-09"):
        reconstruct_partition(base, Instrument(EX, SYM).on(day))
    return base


def copy_partition(src: Path, dst: Path, date: str = DAY) -> Path:
    """Copy one partition's lake, unified and book_states zones to another data root (to break it on purpose)."""
    p = Partition(EX, SYM, date)
    for zone in ("lake/ready/trades", "lake/ready/book", "lake/ready/book_delta_v2", "unified", "book_states"):
        if p.dir(src, zone).exists():
            shutil.copytree(p.dir(src, zone), p.dir(dst, zone))
            for f in p.dir(dst, zone).iterdir():  # copytree keeps mtimes; keep their order (inputs, then outputs)
                st = p.dir(src, zone).joinpath(f.name).stat()
                os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    return dst


@pytest.fixture(scope="session")
def sim_quarter_hour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_root(tmp_path_factory.mktemp("handoff_sim"))
