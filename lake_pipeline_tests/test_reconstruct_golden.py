"""Real data: the BTC recording converted to lake tables, reconstructed, against the recording's own bookTicker."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from lake_pipeline.capture.golden import read_golden
from lake_pipeline.config import symbol_spec
from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.lake.from_capture import lake_from_capture
from lake_pipeline.paths import unified_dir
from lake_pipeline.reconstruct.run import reconstruct_partition
from lake_pipeline_tests.conftest import realdata_dir

BTC = symbol_spec(Instrument.parse("BTC-USDT"))
DATES = ("2024-08-08", "2024-08-09")
N_CHECKPOINTS = 1072  # bookTicker updates whose u equals a depth diff's u (SOURCES.md)
EXPECTED_DRIFT_SNAPSHOTS = {"2024-08-08": 43, "2024-08-09": 46}  # of 3,436 and 3,055 compared
_COLUMNS = [("bid_price", "bid_px", 100), ("bid_quantity", "bid_qty", 10**8), ("ask_price", "ask_px", 100),
            ("ask_quantity", "ask_qty", 10**8)]


@pytest.fixture(scope="module")
def reconstructed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    recording = [realdata_dir() / "hftbacktest" / "spot" / f"btcusdt_2024080{d}.gz" for d in (8, 9)]
    root = tmp_path_factory.mktemp("golden_lake")
    lake_from_capture(recording, root, Instrument.parse("BTC-USDT"))
    summaries = {d: reconstruct_partition(root, Partition("BINANCE", "BTC-USDT", d), chunk_rows=50_000) for d in DATES}
    ticker = read_golden(recording, BTC, kinds=["book_ticker"]).book_ticker
    return root, summaries, ticker


def _bbo_after_messages(root: Path) -> pl.DataFrame:
    """Best bid/ask (ticks, lots) after each delta message, keyed by its sequence_number (= the diff's u)."""
    frames = []
    for d in DATES:
        u = pl.scan_parquet(str(unified_dir(root, Partition("BINANCE", "BTC-USDT", d))) + "/part-*.parquet")
        frames.append(
            u.filter(pl.col("event_type") == "BOOK_DELTA")
            .group_by("sequence_number", maintain_order=True).last()
            .select(
                "sequence_number", "book_flags",
                *[(pl.col(f"best_{c}") * scale).cast(pl.Int64).alias(f"r_{name}") for c, name, scale in _COLUMNS],
            ).collect()
        )
    return pl.concat(frames)


@pytest.mark.realdata
def test_best_bid_ask_equals_book_ticker_at_every_aligned_checkpoint(reconstructed) -> None:
    root, summaries, ticker = reconstructed
    ours = _bbo_after_messages(root)
    joined = ticker.join(ours, left_on="u", right_on="sequence_number", how="inner")
    assert joined.height == N_CHECKPOINTS
    equal = pl.all_horizontal([pl.col(name) == pl.col(f"r_{name}") for _, name, _ in _COLUMNS])
    matched = joined.select(equal.sum()).item()
    print(f"bookTicker checkpoints matched: {matched}/{joined.height}")
    assert matched == N_CHECKPOINTS  # 100 %: the book row after every diff re-syncs the top 20
    assert (joined["book_flags"] & 0b0111 == 0).all()  # initialised, never crossed, no gap at a checkpoint
    # Drift: seeded from a 20-level book row, the replay does not know deeper levels until a diff or a later
    # book row shows them; each later book row reveals some as the price moves (the converter's book, built from
    # the 1000-level REST snapshot, knows them). Exact figures of this recording:
    assert {d: s.drift["snapshots_with_drift"] for d, s in summaries.items()} == EXPECTED_DRIFT_SNAPSHOTS
    for d, s in summaries.items():
        assert {k: v for k, v in s.gaps.items() if k not in ("drift", "total")} == dict.fromkeys(
            ("sequence_backwards", "time_hole", "crossed", "invalid_snapshot", "recoveries"), 0), d
        assert s.replay["trades_not_consumed_cap"] == 0
