"""Real capture -> lake tables: exact schemas and values, and the rebuilt book vs the recording's bookTicker."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from lake_pipeline import paths
from lake_pipeline.capture.golden import CaptureFormatError, read_golden
from lake_pipeline.capture.replay import book_events, feed
from lake_pipeline.capture.sync import BookSync
from lake_pipeline.cli import main
from lake_pipeline.config import symbol_spec
from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.lake.from_capture import exchange_ms_to_lake_ns, lake_from_capture
from lake_pipeline.schemas import LAKE_STORED, LAKE_TABLES
from lake_pipeline_tests.conftest import realdata_dir

BTC = symbol_spec(Instrument.parse("BTC-USDT"))
DATES = ("2024-08-08", "2024-08-09")
# Rows per UTC date of the EXCHANGE time; the files split by (1.27 s slow) receive time, so a few trades and
# diffs of the 0808 file belong to 2024-08-09. Totals equal the frame/level counts of the recording.
EXPECTED_ROWS = {
    "trades": {"2024-08-08": 9738, "2024-08-09": 10166},  # 19,904 @trade
    "book": {"2024-08-08": 3437, "2024-08-09": 3056},  # 6,493 applied diffs (6,495 minus 2 before the snapshot)
    "book_delta_v2": {"2024-08-08": 123840, "2024-08-09": 174271},  # 298,111 levels in 6,495 diffs
}
PART_FILE = "part-00000.parquet"
N_CHECKPOINTS = 1072  # bookTicker u == some applied diff's u (SOURCES.md: 1,072/1,072)


@pytest.fixture(scope="module")
def recording() -> list[Path]:
    return [realdata_dir() / "hftbacktest" / "spot" / f"btcusdt_2024080{d}.gz" for d in (8, 9)]


@pytest.fixture(scope="module")
def converted(recording: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("lake")
    return root, lake_from_capture(recording, root, Instrument.parse("BTC-USDT"))


@pytest.fixture(scope="module")
def ticker(recording: list[Path]) -> pl.DataFrame:
    return read_golden(recording, BTC, kinds=["book_ticker"]).book_ticker


def lake_table(root: Path, table: str) -> pl.DataFrame:
    return pl.concat(
        [pl.read_parquet(paths.lake_ready(root, Partition("BINANCE", "BTC-USDT", d), table) / "part-00000.parquet") for d in DATES]
    )


def to_units(values: pl.Series | np.ndarray, scale: float) -> np.ndarray:
    """Independent float -> int conversion for the checks (the lake's float64 is the nearest double)."""
    return np.rint(np.asarray(values) * scale).astype(np.int64)


@pytest.mark.realdata
def test_partitions_schemas_and_row_counts(converted: tuple[Path, object]) -> None:
    root, report = converted
    assert report.rows == EXPECTED_ROWS
    assert report.sync["applied"] == 6493 and report.sync["stale"] == 2 and report.sync["gaps"] == 0
    for table in LAKE_TABLES:
        days = sorted(p.name for p in (root / "lake" / "ready" / table / "exchange=BINANCE" / "symbol=BTC-USDT").iterdir())
        assert days == [f"dt={d}" for d in DATES]
        for d in DATES:
            ready = paths.lake_ready(root, Partition("BINANCE", "BTC-USDT", d), table)
            assert sorted(f.name for f in ready.iterdir()) == ["_manifest.json", PART_FILE]  # no temp leftovers
            assert pq.read_schema(ready / PART_FILE).equals(LAKE_STORED[table])
            assert pq.read_metadata(ready / PART_FILE).num_rows == EXPECTED_ROWS[table][d]


@pytest.mark.realdata
def test_first_rows_exact(converted: tuple[Path, object]) -> None:
    root, _ = converted
    trade = lake_table(root, "trades").row(0, named=True)
    # {"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true} received at ...896568
    assert trade == {"side": "sell", "amount": 0.02, "price": 61837.63, "id": 3735683259,
                     "timestamp": int(1723161255342 / 1000.0 * 1e9), "receipt_timestamp": 1723161254087896568}
    delta = lake_table(root, "book_delta_v2")
    first = delta.filter(pl.col("sequence_number") == 50093239202)
    assert first.height == 3 + 9  # the first diff: 3 bids, 9 asks
    assert first.select("timestamp", "receipt_timestamp").unique().rows() == [
        (int(1723161255208 / 1000.0 * 1e9), 1723161253937085768)]
    assert first.row(0) == (1723161255208000000, 1723161253937085768, 50093239202, True, 61737.63, 0.0)
    assert first["side_is_bid"].to_list() == [True] * 3 + [False] * 9
    assert first.row(3)[3:] == (False, 61837.64, 1.54698)
    book = lake_table(root, "book").row(0, named=True)
    # the diff [50093239208..50093239224] straddles the snapshot (L=50093239218) and is the first applied
    assert (book["sequence_number"], book["timestamp"]) == (50093239224, int(1723161255408 / 1000.0 * 1e9))
    assert (book["bid_0_price"], book["bid_0_size"], book["ask_0_price"]) == (61837.63, 3.78826, 61837.64)


@pytest.mark.realdata
def test_book_table_matches_book_ticker_at_every_checkpoint(converted: tuple[Path, object],
                                                           ticker: pl.DataFrame) -> None:
    root, _ = converted
    book = lake_table(root, "book")
    assert book["sequence_number"].is_sorted() and book["sequence_number"].n_unique() == book.height
    joined = ticker.join(book, left_on="u", right_on="sequence_number")
    assert joined.height == N_CHECKPOINTS
    for ours, theirs, scale in (("bid_0_price", "bid_px", 100), ("bid_0_size", "bid_qty", 1e8),
                                ("ask_0_price", "ask_px", 100), ("ask_0_size", "ask_qty", 1e8)):
        assert (to_units(joined[ours], scale) == joined[theirs].to_numpy()).all(), ours


def replay_lake(book: pl.DataFrame, delta: pl.DataFrame, resync_each_row: bool) -> dict[int, tuple]:
    """Independent dict-book replay of the lake tables: seed from the first book row, apply delta messages.

    With `resync_each_row`, before each message the book's top-20 window is re-seeded from the previous book row
    (what a reconstructor does with snapshots); the BBO after the message is then compared.
    """
    rows = {r["sequence_number"]: r for r in book.iter_rows(named=True)}

    def seed(row: dict, bids: dict, asks: dict) -> None:
        for side, levels in (("bid", bids), ("ask", asks)):
            px = [round(row[f"{side}_{i}_price"] * 100) for i in range(20) if row[f"{side}_{i}_size"]]
            worst = min(px) if side == "bid" else max(px)
            for p in [p for p in levels if (p >= worst if side == "bid" else p <= worst)]:
                del levels[p]
            for i in range(20):
                if row[f"{side}_{i}_size"]:
                    levels[round(row[f"{side}_{i}_price"] * 100)] = round(row[f"{side}_{i}_size"] * 1e8)

    first = book.row(0, named=True)
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    seed(first, bids, asks)
    previous = first["sequence_number"]
    bbo: dict[int, tuple] = {}
    messages = delta.filter(pl.col("sequence_number") > previous).with_columns(
        px=pl.col("price").mul(100).round().cast(pl.Int64), sz=pl.col("size").mul(1e8).round().cast(pl.Int64)
    ).partition_by("sequence_number", maintain_order=True, as_dict=True)
    for (seq,), msg in messages.items():
        if resync_each_row:
            seed(rows[previous], bids, asks)
        for is_bid, px, sz in msg.select("side_is_bid", "px", "sz").iter_rows():
            side = bids if is_bid else asks
            if sz:
                side[px] = sz
            else:
                side.pop(px, None)
        bb, ba = max(bids), min(asks)
        bbo[seq] = (bb, bids[bb], ba, asks[ba])
        previous = seq
    return bbo


@pytest.mark.realdata
def test_lake_delta_replay_matches_book_ticker(converted: tuple[Path, object], ticker: pl.DataFrame) -> None:
    root, _ = converted
    book, delta = lake_table(root, "book"), lake_table(root, "book_delta_v2")
    for resync in (True, False):
        bbo = replay_lake(book, delta, resync_each_row=resync)
        checks = ticker.filter(pl.col("u").is_in(list(bbo)))
        assert checks.height == N_CHECKPOINTS  # the seed row (u=...224) is not a bookTicker checkpoint
        misses = [(u, bbo[u], tuple(r)) for u, *r in
                  checks.select("u", "bid_px", "bid_qty", "ask_px", "ask_qty").iter_rows() if bbo[u] != tuple(r)]
        if resync:
            assert misses == []
        else:
            # Seeded once with 20 levels, the replay cannot know the ask at 61845.32 that lay beyond the seed's
            # 20th ask (61844.41) and was never updated before it became best: the one honest miss.
            assert misses == [(50093249972, (6184531, 292465000, 6184562, 9000), (6184531, 292465000, 6184532, 606000))]


@pytest.mark.realdata
def test_sync_with_engine_matches_book_ticker(recording: list[Path], ticker: pl.DataFrame) -> None:
    from lake_pipeline.book import OrderBook

    book = OrderBook()
    bbo: dict[int, tuple] = {}
    sync = BookSync(book, on_applied=lambda d: bbo.__setitem__(d.last_id, (*book.best_bid(), *book.best_ask())))
    for event in book_events(read_golden(recording, BTC, kinds=["depth", "snapshots"])):
        feed(sync, event)
        assert not book.is_crossed()
    checks = ticker.filter(pl.col("u").is_in(list(bbo)))
    assert checks.height == N_CHECKPOINTS
    assert all(bbo[u] == tuple(r) for u, *r in checks.select("u", "bid_px", "bid_qty", "ask_px", "ask_qty").iter_rows())


def test_exchange_time_quantised_like_the_lake() -> None:
    ms = np.array([1723161255208, 1664582400033, 1723161599999, 1, 4102444800000], dtype=np.int64)
    assert exchange_ms_to_lake_ns(ms).tolist() == [int(m / 1000.0 * 1e9) for m in ms.tolist()]
    assert exchange_ms_to_lake_ns(np.array([1664582400033]))[0] == 1664582400032999936  # cryptolake.md §4.1


SMALL = (
    '1723161599937085768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161599950,"s":"BTCUSDT",'
    '"U":10,"u":12,"b":[["100.00000000","1.00000000"]],"a":[["101.00000000","2.00000000"]]}}\n'
    '1723161599937085800 {"lastUpdateId":11,"bids":[["99.00000000","3.00000000"]],"asks":[["102.00000000","4.0"]]}\n'
    '1723161599937085900 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161600001,"s":"BTCUSDT",'
    '"t":7,"p":"100.00000000","q":"0.50000000","T":1723161600000,"m":false,"M":true}}\n'
    '1723161599937086000 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161600050,"s":"BTCUSDT",'
    '"U":13,"u":13,"b":[["100.00000000","0.00000000"]],"a":[]}}\n'
)


def test_cli_small_capture_rerun_replaces(tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture) -> None:
    capture = tmp_path / "c.gz"
    capture.write_bytes(gzip.compress(SMALL.encode()))
    args = ["lake-from-capture", "--capture", str(capture), "--data-root", str(data_root), "--symbol", "BTC-USDT"]
    for _ in range(2):  # a re-run replaces its partitions, never appends
        assert main(args) == 0
    assert '"applied": 2' in capsys.readouterr().out
    book = {d: pl.read_parquet(paths.lake_ready(data_root, Partition("BINANCE", "BTC-USDT", d), "book") / PART_FILE) for d in DATES}
    assert book["2024-08-08"].select("sequence_number", "bid_0_price", "bid_0_size", "bid_1_price", "ask_0_price",
                                     "ask_1_price", "ask_2_price").rows() == [(12, 100.0, 1.0, 99.0, 101.0, 102.0, 0.0)]
    assert book["2024-08-09"].select("sequence_number", "bid_0_price", "bid_1_price").rows() == [(13, 99.0, 0.0)]
    trades = pl.read_parquet(paths.lake_ready(data_root, Partition("BINANCE", "BTC-USDT", "2024-08-09"), "trades") / PART_FILE)
    assert trades.rows() == [("buy", 0.5, 100.0, 7, 1723161600000000000, 1723161599937085900)]
    deltas = pl.concat([pl.read_parquet(paths.lake_ready(data_root, Partition("BINANCE", "BTC-USDT", d), "book_delta_v2") / PART_FILE)
                        for d in DATES])
    assert deltas.select("sequence_number", "side_is_bid", "price", "size").rows() == [
        (12, True, 100.0, 1.0), (12, False, 101.0, 2.0), (13, True, 100.0, 0.0)]


def test_failed_conversion_publishes_nothing(tmp_path: Path, data_root: Path) -> None:
    good = tmp_path / "a"
    good.write_text(SMALL)
    bad = tmp_path / "b"
    bad.write_text(SMALL.splitlines()[2] + "\nnot a line\n")
    with pytest.raises(CaptureFormatError, match=f"{bad}:2:"):
        lake_from_capture([good, bad], data_root, Instrument.parse("BTC-USDT"))
    assert not (data_root / "lake").exists() or not any(p.is_file() for p in (data_root / "lake").rglob("*"))


def test_cli_errors_are_clear(tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture) -> None:
    capture = tmp_path / "c"
    capture.write_text(SMALL)
    base = ["lake-from-capture", "--capture", str(capture), "--data-root", str(data_root)]
    assert main([*base, "--symbol", "DOGE-USDT", "--tick", "0.01"]) == 2
    assert "symbol DOGE-USDT has no tick/lot in config (lake_pipeline/symbols.yaml): pass both" in capsys.readouterr().err
    assert main([*base, "--symbol", "DOGE-USDT"]) == 2  # tick/lot inferred, then the stream names the other symbol
    assert "capture holds stream 'btcusdt@depth@100ms', not symbol DOGE-USDT" in capsys.readouterr().err
    assert main([*base, "--symbol", "ETH-USDT", "--tick", "0.01", "--lot", "0.00000001"]) == 2
    assert "capture holds stream 'btcusdt@depth@100ms', not symbol ETH-USDT (expected streams 'ethusdt@...')" in capsys.readouterr().err


def test_gap_in_capture_pauses_book_rows_until_the_next_snapshot(tmp_path: Path, data_root: Path) -> None:
    def depth(first: int, last: int, bid: str) -> str:
        return (f'1723161599937086{first:03d} {{"stream":"btcusdt@depth@100ms","data":{{"E":1723161599960,'
                f'"U":{first},"u":{last},"b":[["{bid}","1.0"]],"a":[]}}}}\n')

    capture = tmp_path / "gap"
    capture.write_text(
        SMALL.splitlines(keepends=True)[0] + SMALL.splitlines(keepends=True)[1]  # diff [10..12], snapshot 11
        + depth(13, 13, "98.00") + depth(20, 21, "97.00")  # gap: 14..19 missing
        + '1723161599937087000 {"lastUpdateId":21,"bids":[["96.00","1"]],"asks":[["102.00","4"]]}\n'
        + depth(22, 23, "95.00")
    )
    report = lake_from_capture([capture], data_root, Instrument.parse("BTC-USDT"))
    counters = {k: report.sync[k] for k in ("applied", "gaps", "snapshots_loaded", "stale")}
    assert counters == {"applied": 3, "gaps": 1, "snapshots_loaded": 2, "stale": 1}  # [20..21] ends at L=21
    book = pl.read_parquet(paths.lake_ready(data_root, Partition("BINANCE", "BTC-USDT", "2024-08-08"), "book") / PART_FILE)
    assert book.select("sequence_number", "bid_0_price", "bid_1_price", "bid_2_price").rows() == [
        (12, 100.0, 99.0, 0.0), (13, 100.0, 99.0, 98.0), (23, 96.0, 95.0, 0.0)]
    deltas = pl.read_parquet(paths.lake_ready(data_root, Partition("BINANCE", "BTC-USDT", "2024-08-08"), "book_delta_v2") / PART_FILE)
    assert deltas["sequence_number"].to_list() == [12, 12, 13, 21, 23]  # every diff, synced or not
