"""Golden capture reader: real BTC recording counts/continuity, the 3-column format, gzip by magic, bad lines."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from lake_pipeline.instrument import Instrument
from lake_pipeline.capture.golden import (
    OTHER_STREAM,
    SNAPSHOT_STREAM,
    CaptureFormatError,
    iter_frames,
    iter_golden,
    read_golden,
    stream_counts,
)
from lake_pipeline.config import SymbolSpec, symbol_spec
from lake_pipeline_tests.conftest import realdata_dir

BTC = symbol_spec(Instrument.parse("BTC-USDT"))

# SOURCES.md §1 (per file, exact)
EXPECTED_COUNTS = [
    {"btcusdt@depth@100ms": 3451, "btcusdt@trade": 9757, "btcusdt@bookTicker": 28040, SNAPSHOT_STREAM: 1},
    {"btcusdt@depth@100ms": 3044, "btcusdt@trade": 10147, "btcusdt@bookTicker": 45134},
]


@pytest.fixture(scope="module")
def btc_frames() -> list:
    """Each real BTC file read with the BTC spec (int64 ticks/lots), then both read as one capture."""
    paths = [realdata_dir() / "hftbacktest" / "spot" / f"btcusdt_2024080{d}.gz" for d in (8, 9)]
    return [read_golden([p], BTC) for p in paths] + [read_golden(paths, BTC)]


@pytest.mark.realdata
def test_real_btc_stream_counts_match_sources(btc_recording: list[Path], btc_frames: list) -> None:
    for path, expected, frames in zip(btc_recording, EXPECTED_COUNTS, btc_frames):
        assert stream_counts([path]) == expected
        assert frames.counts == expected
        assert frames.depth.height == expected["btcusdt@depth@100ms"]
        assert frames.trades.height == expected["btcusdt@trade"]
        assert frames.book_ticker.height == expected["btcusdt@bookTicker"]
        assert frames.snapshots.height == expected.get(SNAPSHOT_STREAM, 0)
        assert frames.agg_trades.height == 0


@pytest.mark.realdata
def test_real_btc_snapshot_exact(btc_frames: list) -> None:
    snap = btc_frames[0].snapshots.row(0, named=True)
    assert snap["last_update_id"] == 50093239218
    assert snap["frame_no"] == 7  # line 8 of the 0808 file
    assert (len(snap["bid_px"]), len(snap["ask_px"])) == (1000, 1000)
    # first levels exactly as on the wire: 61837.63 / 3.78826 and 61837.64 / 1.54698
    assert (snap["bid_px"][0], snap["bid_qty"][0]) == (6183763, 378826000)
    assert (snap["ask_px"][0], snap["ask_qty"][0]) == (6183764, 154698000)
    assert snap["bid_px"] == sorted(snap["bid_px"], reverse=True) and snap["ask_px"] == sorted(snap["ask_px"])


@pytest.mark.realdata
def test_real_btc_continuity_across_files(btc_frames: list) -> None:
    both = btc_frames[2]
    trade_ids = both.trades["t"]
    assert (trade_ids.diff().drop_nulls() == 1).all()
    depth = both.depth
    assert (depth["U"].slice(1) == depth["u"].slice(0, depth.height - 1) + 1).all()
    assert (depth["frame_no"].diff().drop_nulls() > 0).all()  # capture order kept
    total = sum(sum(c.values()) for c in EXPECTED_COUNTS)
    frame_nos = pl.concat([both.frame(k)["frame_no"] for k in ("trades", "depth", "book_ticker", "snapshots")])
    assert frame_nos.sort().to_list() == list(range(total))


def _write(path: Path, text: str, gz: bool) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


THREE_COLUMN = (
    '1723161253937085768 5000000001 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,'
    '"s":"BTCUSDT","U":10,"u":12,"b":[["61737.63000000","0.00000000"],["61730.17000000","1.00000000"]],"a":[]}}\n'
    '1723161253937085800 5000000002 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
    '"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}\n'
    "\n"
    '1723161253937085900 5000000003 {"lastUpdateId":11,"bids":[["61837.63000000","3.78826000"]],"asks":[]}\n'
    '1723161253937086000 5000000004 {"stream":"btcusdt@bookTicker","data":{"u":12,"s":"BTCUSDT","b":"61837.63000000",'
    '"B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}\n'
    '1723161253937086100 5000000005 {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,'
    '"s":"BTCUSDT","a":15683430,"p":"61837.64000000","q":"0.58000000","f":19862790,"l":19862791,"T":1633998523963,'
    '"m":false,"M":true}}\n'
    '1723161253937086200 5000000006 {"stream":"btcusdt@kline_1m","data":{"e":"kline"}}\n'
    '1723161253937086300 5000000007 {"result":null,"id":1}'  # no final newline
)


@pytest.mark.parametrize("gz,name", [(False, "capture.txt"), (True, "capture.txt"), (False, "capture.gz")])
def test_three_column_format_any_compression(tmp_path: Path, gz: bool, name: str) -> None:
    """gzip is detected by magic bytes: gz content without .gz name and plain content named .gz both read."""
    path = _write(tmp_path / name, THREE_COLUMN, gz)
    frames = read_golden([path], BTC)
    assert frames.counts == {
        "btcusdt@depth@100ms": 1, "btcusdt@trade": 1, SNAPSHOT_STREAM: 1, "btcusdt@bookTicker": 1,
        "btcusdt@aggTrade": 1, "btcusdt@kline_1m": 1, OTHER_STREAM: 1,
    }
    depth = frames.depth.row(0, named=True)
    assert depth == {
        "frame_no": 0, "recv_ns": 1723161253937085768, "recv_mono_ns": 5000000001, "E": 1723161255208, "U": 10,
        "u": 12, "bid_px": [6173763, 6173017], "bid_qty": [0, 100000000], "ask_px": [], "ask_qty": [],
        "T": None, "pu": None,  # USD-M only
    }
    trade = frames.trades.row(0, named=True)
    assert trade == {
        "frame_no": 1, "recv_ns": 1723161253937085800, "recv_mono_ns": 5000000002, "E": 1723161255343,
        "T": 1723161255342, "t": 3735683259, "price": 6183763, "qty": 2000000, "is_buyer_maker": True,
        "X": None,  # USD-M only
    }
    assert frames.snapshots.row(0, named=True)["frame_no"] == 2  # the blank line is not a frame
    assert frames.book_ticker.select("u", "bid_px", "bid_qty", "ask_px", "ask_qty").row(0) == (
        12, 6183763, 378826000, 6183764, 154698000)
    agg = frames.agg_trades.row(0, named=True)
    assert (agg["a"], agg["f"], agg["l"], agg["price"], agg["qty"], agg["is_buyer_maker"]) == (
        15683430, 19862790, 19862791, 6183764, 58000000, False)
    assert list(iter_frames([path]))[3][:2] == (1723161253937086000, 5000000004)


def test_strings_kept_exact_without_spec(tmp_path: Path) -> None:
    frames = read_golden([_write(tmp_path / "c", THREE_COLUMN, False)])
    assert frames.trades["price"].to_list() == ["61837.63000000"]
    assert frames.depth["bid_qty"].to_list() == [["0.00000000", "1.00000000"]]


def test_two_column_lines_have_null_mono(tmp_path: Path) -> None:
    text = "\n".join(line.split(" ", 2)[0] + " " + line.split(" ", 2)[2] for line in THREE_COLUMN.splitlines() if line)
    frames = read_golden([_write(tmp_path / "c", text, True)], kinds=["trades"])
    assert frames.trades["recv_mono_ns"].to_list() == [None]
    assert frames.depth.height == 0 and frames.counts["btcusdt@depth@100ms"] == 1  # not requested, still counted


def test_small_blocks_give_identical_frames(tmp_path: Path) -> None:
    """Lines cut across read blocks are reassembled; frame_no continues across blocks."""
    path = _write(tmp_path / "c", THREE_COLUMN, True)
    whole = read_golden([path, path], BTC)
    tiny = read_golden([path, path], BTC, block_bytes=37)
    for kind in ("trades", "depth", "book_ticker", "snapshots", "agg_trades"):
        assert tiny.frame(kind).equals(whole.frame(kind)), kind
    assert whole.depth["frame_no"].to_list() == [0, 7]  # 7 frames per file (the blank line is none)
    assert len(list(iter_golden([path], block_bytes=37))) > 1


@pytest.mark.parametrize(
    "line,message",
    [
        ("this is not a capture line", "expected '<recv_ns> [<recv_mono_ns>] {...frame...}'"),
        ("17231612539370857x {\"lastUpdateId\":1,\"bids\":[],\"asks\":[]}", "expected '<recv_ns>"),
        ("1 2 3 {\"lastUpdateId\":1,\"bids\":[],\"asks\":[]}", "expected '<recv_ns>"),
        ('1723161253937086000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1,', "invalid JSON frame"),
        ('1723161253937086000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"t":5,"p":"1.00",'
         '"m":true}}', "trades frame lacks ['qty']"),
        ('1723161253937086000 {"lastUpdateId":1,"bids":[["1.00"]],"asks":[]}', "lacks a level element"),
        ('1723161253937086000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"t":5,"p":"1.001",'
         '"q":"1","m":true}}', "trades.price value '1.001' is off the tick/lot grid"),
        ('1723161253937086000 {"stream":"ethusdt@trade","data":{"e":"trade","E":1,"T":1,"t":5,"p":"1.00",'
         '"q":"1","m":true}}', "stream of symbol 'ethusdt' in a capture of ['btcusdt']"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    good = THREE_COLUMN.splitlines()[1]
    path = _write(tmp_path / "bad.gz", f"{good}\n{good}\n{line}\n{good}\n", True)
    with pytest.raises(CaptureFormatError) as err:
        read_golden([path], BTC)
    assert f"{path}:3:" in str(err.value)
    assert message in str(err.value)


def test_missing_file_and_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="capture file not found"):
        read_golden([tmp_path / "absent.gz"])
    with pytest.raises(ValueError, match="unknown kinds"):
        read_golden([], kinds=["quotes"])


def test_custom_grid_for_an_unconfigured_symbol(tmp_path: Path) -> None:
    spec = SymbolSpec("X", Decimal("0.05"), Decimal("0.5"))
    line = ('1 {"stream":"x@trade","data":{"E":1,"T":1,"t":5,"p":"12.35000000","q":"1.50000000","m":false}}\n'
            '2 {"stream":"x@trade","data":{"E":1,"T":1,"t":6,"p":"12.36000000","q":"1.50000000","m":false}}\n')
    path = _write(tmp_path / "c", line, False)
    with pytest.raises(CaptureFormatError, match=r":2: trades.price value '12.36000000'"):
        read_golden([path], spec)
    ok = _write(tmp_path / "ok", line.splitlines()[0], False)
    assert read_golden([ok], spec).trades.select("price", "qty").row(0) == (247, 3)


def test_off_grid_level_names_the_element(tmp_path: Path) -> None:
    line = '1 {"lastUpdateId":1,"bids":[["61837.63000000","1.00000000"],["0.00500000","1.00000000"]],"asks":[]}\n'
    with pytest.raises(CaptureFormatError, match=r":1: snapshots.bid_px value '0.00500000' is off the tick/lot grid"):
        read_golden([_write(tmp_path / "c", line, False)], BTC)
