"""Real USD-M recording (hftbacktest BTCUSDT 2024-08-08, `@depth@0ms` with `pu`): the rebuilt book equals the
recording's own bookTicker at every update-aligned checkpoint, straight from the capture and through lake tables
-> reconstruct; plus the converter's exact figures on it.

A checkpoint is a bookTicker whose `u` equals the `u` of an applied diff (update ids are not contiguous on USD-M,
so a bookTicker between two diffs' ids is an intermediate state no diff shows).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from lake_pipeline import paths
from lake_pipeline.book import OrderBook
from lake_pipeline.capture.golden import read_golden
from lake_pipeline.capture.replay import book_events, feed
from lake_pipeline.capture.sync import FUTURES_RULE, BookSync, DepthDiff
from lake_pipeline.config import symbol_spec
from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.lake.from_capture import lake_from_capture
from lake_pipeline.paths import unified_dir
from lake_pipeline.reconstruct.run import reconstruct_partition
from lake_pipeline.schemas import LAKE_STORED, LAKE_TABLES
from lake_pipeline_tests.conftest import realdata_dir

PERP = symbol_spec(Instrument.parse("BTC-USDT-PERP"))
VENUE, SYMBOL = "BINANCE_FUTURES", "BTC-USDT-PERP"
DATES = ("2024-08-08", "2024-08-09")  # the recorder's clock ran 1.27 s slow: the last diffs are dated 08-09
N_CHECKPOINTS = 629  # bookTicker u == u of an applied diff (of 66,089 bookTickers and 6,547 applied diffs)
EXPECTED_ROWS = {
    "trades": {"2024-08-08": 21313, "2024-08-09": 0},  # 21,313 MARKET trades, none after midnight
    "book": {"2024-08-08": 6543, "2024-08-09": 4},  # 6,547 applied diffs (6,551 minus 4 older than the snapshot)
    "book_delta_v2": {"2024-08-08": 443432, "2024-08-09": 89},  # every level of all 6,551 diffs
}
_BBO = ("bid_px", "bid_qty", "ask_px", "ask_qty")
_UNIFIED = (("best_bid_price", 10), ("best_bid_quantity", 1000), ("best_ask_price", 10), ("best_ask_quantity", 1000))


@pytest.fixture(scope="module")
def recording() -> list[Path]:
    return [realdata_dir() / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"]


@pytest.fixture(scope="module")
def frames(recording: list[Path]):
    return read_golden(recording, PERP)


@pytest.fixture(scope="module")
def converted(recording: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("usdm_lake")
    return root, lake_from_capture(recording, root, Instrument(VENUE, SYMBOL))


@pytest.fixture(scope="module")
def reconstructed(converted: tuple[Path, object]) -> Path:
    root, _ = converted
    for d in DATES:
        reconstruct_partition(root, Partition(VENUE, SYMBOL, d), chunk_rows=50_000)
    return root


def _matched(ticker: pl.DataFrame, ours: pl.DataFrame, ours_u: str) -> tuple[int, int, pl.DataFrame]:
    joined = ticker.join(ours, left_on="u", right_on=ours_u, how="inner", suffix="_book")
    equal = pl.all_horizontal([pl.col(c) == pl.col(f"{c}_book") for c in _BBO])
    return joined.select(equal.sum()).item(), joined.height, joined


@pytest.mark.realdata
def test_reader_keeps_futures_fields(frames) -> None:
    assert frames.counts == {"btcusdt@depth@0ms": 6551, "btcusdt@trade": 21313, "btcusdt@bookTicker": 66089,
                             "<rest snapshot>": 1}
    assert frames.skipped == {}  # every trade of this recording is a MARKET fill
    d = frames.depth.row(0, named=True)
    assert (d["E"], d["T"], d["U"], d["u"], d["pu"]) == (1723161256299, 1723161256298, 5123107832006,
                                                         5123107837557, 5123107831937)
    s = frames.snapshots.row(0, named=True)
    assert (s["last_update_id"], s["E"], s["T"], len(s["bid_px"])) == (5123107852948, 1723161256501, 1723161256493,
                                                                        1000)
    t = frames.book_ticker.row(0, named=True)
    assert (t["u"], t["E"], t["T"], t["bid_px"], t["bid_qty"]) == (5123107839020, 1723161256313, 1723161256313,
                                                                    618002, 2507)
    assert frames.trades["X"].unique().to_list() == ["MARKET"]
    # USD-M ids are not contiguous: continuity holds only through pu
    depth = frames.depth
    assert (depth["pu"].slice(1) == depth["u"].slice(0, depth.height - 1)).all()
    assert (depth["U"].slice(1) != depth["u"].slice(0, depth.height - 1) + 1).sum() > 6000


@pytest.mark.realdata
def test_book_from_capture_equals_book_ticker(frames) -> None:
    """(a) golden reader + futures sync + book engine, no lake in between."""
    book = OrderBook()
    after: dict[int, tuple[int, int, int, int]] = {}

    def record(diff: DepthDiff) -> None:
        (bp, bq), (ap, aq) = book.best_bid(), book.best_ask()
        after[diff.last_id] = (int(bp), int(bq), int(ap), int(aq))

    sync = BookSync(book, on_applied=record, rule=FUTURES_RULE)
    for event in book_events(frames):
        feed(sync, event)
    stats = sync.stats
    assert (stats.applied, stats.stale, stats.gaps, stats.snapshots_loaded) == (6547, 4, 0, 1)
    ours = pl.DataFrame([(u, *v) for u, v in after.items()], schema=["u", *_BBO], orient="row")
    matched, total, _ = _matched(frames.book_ticker, ours, "u")
    print(f"USD-M capture -> book: bookTicker checkpoints matched {matched}/{total}")
    assert total == N_CHECKPOINTS and matched == total


@pytest.mark.realdata
def test_broken_pu_chain_is_seen(frames) -> None:
    """The same recording with one diff removed: the next diff's pu names the missing u, the sync resyncs."""
    events = list(book_events(frames))
    missing = next(i for i, e in enumerate(events) if isinstance(e, DepthDiff) and i > 100)
    sync = BookSync(OrderBook(), rule=FUTURES_RULE)
    for event in events[:missing] + events[missing + 1:]:
        feed(sync, event)
    assert sync.stats.gaps == 1 and not sync.is_live and sync.needs_snapshot  # no later snapshot to resync from


@pytest.mark.realdata
def test_converter_tables(converted: tuple[Path, object]) -> None:
    root, report = converted
    assert report.rows == EXPECTED_ROWS and report.exchange == VENUE
    assert report.sync["applied"] == 6547 and report.sync["gaps"] == 0 and report.skipped == {}
    assert report.captures == [{"name": "btcusdt_20240808.gz", "bytes": 3637062,
                                "sha256": "0ad7b3a0f5cff220761ea890cfd6e3c15f6899edc7f94637ec915043d7a72251"}]
    for table in LAKE_TABLES:
        for d in DATES:
            ready = paths.lake_ready(root, Partition(VENUE, SYMBOL, d), table)
            assert sorted(f.name for f in ready.iterdir()) == ["_manifest.json", "part-00000.parquet"]
            assert pq.read_schema(ready / "part-00000.parquet").equals(LAKE_STORED[table])
            assert pq.read_metadata(ready / "part-00000.parquet").num_rows == EXPECTED_ROWS[table][d]
    first = pl.read_parquet(paths.lake_ready(root, Partition(VENUE, SYMBOL, DATES[0]), "book_delta_v2") / "part-00000.parquet")
    assert first.row(0) == (1723161256299000064, 1723161255030314667, 5123107837557, True, 58710.2, 0.014)
    trade = pl.read_parquet(paths.lake_ready(root, Partition(VENUE, SYMBOL, DATES[0]), "trades") / "part-00000.parquet").row(0)
    assert trade == ("buy", 0.006, 61800.3, 5266583935, 1723161256322000128, 1723161255088176367)


@pytest.mark.realdata
def test_reconstructed_best_bid_ask_equals_book_ticker(reconstructed: Path, frames) -> None:
    """(b) lake tables -> reconstruct -> unified_events' best bid/ask after each delta message."""
    root = reconstructed
    unified = pl.concat(
        pl.scan_parquet(str(unified_dir(root, Partition(VENUE, SYMBOL, d))) + "/part-*.parquet")
        .filter(pl.col("event_type") == "BOOK_DELTA")
        .group_by("sequence_number", maintain_order=True).last()
        .select("sequence_number", "book_flags",
                *[(pl.col(c) * scale).round().cast(pl.Int64).alias(name) for (c, scale), name in zip(_UNIFIED, _BBO)])
        .collect()
        for d in DATES
    )
    matched, total, joined = _matched(frames.book_ticker, unified, "sequence_number")
    print(f"USD-M capture -> lake -> reconstruct: bookTicker checkpoints matched {matched}/{total}")
    assert total == N_CHECKPOINTS and matched == total
    assert (joined["book_flags"] & 0b0111 == 0).all()  # initialised, never crossed, no gap at a checkpoint


@pytest.mark.realdata
def test_fidelity_on_the_futures_partition(reconstructed: Path, recording: list[Path]) -> None:
    """The recording as the partition's golden session (a link, not a copy): Tier A paired with the pu rule."""
    from lake_pipeline.fidelity.runner import run_fidelity

    root = reconstructed
    session = paths.golden_dir(root, Partition(VENUE, SYMBOL, DATES[0])) / "session=usdm"
    session.mkdir(parents=True)
    (session / recording[0].name).symlink_to(recording[0])
    report = run_fidelity(root, Partition(VENUE, SYMBOL, DATES[0])).to_json()
    values = {m["name"]: m["value"] for m in report["metrics"]}
    assert report["status"] == "PASS"
    assert values["bbo_update_match_rate"] == 1.0 and values["depth_ladder_match_rate"] == 1.0
    assert values["trade_match_rate"] == 1.0 and values["golden_sequence_gaps"] == 0  # pu chain, not U == u + 1


@pytest.mark.realdata
def test_golden_messages_gap_follows_the_venue_rule(frames) -> None:
    from dataclasses import replace

    from lake_pipeline.fidelity.adapters import golden_messages

    assert golden_messages(frames)["gap"].sum() == 0
    broken = replace(frames, depth=frames.depth.filter(pl.int_range(pl.len()) != 100))
    assert golden_messages(broken)["gap"].arg_max() == 100 and golden_messages(broken)["gap"].sum() == 1
