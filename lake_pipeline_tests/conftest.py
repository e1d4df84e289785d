"""Shared fixtures: where the real recordings are, and temporary data roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lake_pipeline_tests.requires import unavailable

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    return Path(os.environ.get("LAKE_SHARED_DIR", REPO_ROOT.parent / "shared"))


def realdata_dir() -> Path:
    """`../shared/realdata/binance`: skip with a reason where absent (a user's clone), fail under CI=true."""
    path = shared_dir() / "realdata" / "binance"
    if path.is_dir():
        return path
    unavailable(f"real recordings absent at {path} (they live in ../shared beside the clone; set LAKE_SHARED_DIR to "
                "override)")


@pytest.fixture
def realdata() -> Path:
    return realdata_dir()


@pytest.fixture
def btc_recording(realdata: Path) -> list[Path]:
    """The continuous ~650 s BTCUSDT spot session (0808 then 0809 files, in order)."""
    return [realdata / "hftbacktest" / "spot" / f"btcusdt_2024080{d}.gz" for d in (8, 9)]


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


from lake_pipeline_tests.pg_server import postgres_server  # noqa: E402,F401  (session fixture: a real PostgreSQL)
from lake_pipeline_tests.handoff_support import sim_quarter_hour  # noqa: E402,F401  (session fixture: a reconstructed quarter hour)
