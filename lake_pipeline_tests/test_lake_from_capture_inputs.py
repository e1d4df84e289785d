"""lake-from-capture on bad or conflicting input (issue 13 item 3): each case is an exit 2 naming the file with
nothing published, or a counted repair in the manifests; plus a small hand-made USD-M capture end to end."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import polars as pl
import pytest

from lake_pipeline import paths
from lake_pipeline.cli import main
from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.lake.from_capture import lake_from_capture
from lake_pipeline.schemas import LAKE_TABLES
from lake_pipeline_tests.test_lake_from_capture import SMALL

PART_FILE, MANIFEST = "part-00000.parquet", "_manifest.json"
FUT = (
    '1723161599937000000 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161599950,'
    '"T":1723161599949,"s":"BTCUSDT","U":10,"u":20,"pu":5,"b":[["100.0","1.000"]],"a":[["101.0","2.000"]]}}\n'
    '1723161599938000000 {"lastUpdateId":15,"E":1723161599951,"T":1723161599950,"bids":[["99.0","3.000"]],'
    '"asks":[["102.0","4.000"]]}\n'
    '1723161599939000000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161599960,"T":1723161599959,'
    '"s":"BTCUSDT","t":7,"p":"100.0","q":"0.500","X":"MARKET","m":false}}\n'
    '1723161599940000000 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161599961,"T":1723161599960,'
    '"s":"BTCUSDT","t":8,"p":"100.0371","q":"0.25","X":"INSURANCE_FUND","m":true}}\n'
    '1723161599941000000 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161599990,'
    '"T":1723161599989,"s":"BTCUSDT","U":27,"u":30,"pu":20,"b":[["100.0","0.000"]],"a":[]}}\n'
    '1723161599942000000 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":30,"s":"BTCUSDT",'
    '"b":"99.0","B":"3.000","a":"101.0","A":"2.000","T":1723161599989,"E":1723161599990}}\n'
)


def _write(path: Path, text: str, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def _cli(capture: Path | list[Path], root: Path, symbol: str = "BTC-USDT", *extra: str) -> list[str]:
    files = [str(p) for p in (capture if isinstance(capture, list) else [capture])]
    return ["lake-from-capture", "--capture", *files, "--data-root", str(root), "--symbol", symbol, *extra]


def _published(root: Path) -> list[Path]:
    return sorted(p for p in (root / "lake").rglob("*") if p.is_file()) if (root / "lake").exists() else []


def test_futures_capture_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capture = _write(tmp_path / "btcusdt_20240808.gz", FUT, gz=True)
    assert main(_cli(capture, tmp_path / "data", "BTC-USDT-PERP")) == 0  # the venue follows from -PERP
    report = json.loads(capsys.readouterr().out)
    assert report["exchange"] == "BINANCE_FUTURES" and report["skipped"] == {"trade X=INSURANCE_FUND": 1}
    assert {k: report["sync"][k] for k in ("applied", "stale", "gaps")} == {"applied": 2, "stale": 0, "gaps": 0}
    ready = {t: paths.lake_ready(tmp_path / "data", Partition("BINANCE_FUTURES", "BTC-USDT-PERP", "2024-08-08"), t)
             for t in LAKE_TABLES}
    # [10..20] straddles L=15 (U <= L <= u), then [27..30] continues it by pu=20
    assert pl.read_parquet(ready["book"] / PART_FILE).select("sequence_number", "bid_0_price", "bid_1_price",
                                                        "ask_0_price").rows() == [(20, 100.0, 99.0, 101.0),
                                                                                  (30, 99.0, 0.0, 101.0)]
    assert pl.read_parquet(ready["trades"] / PART_FILE).select("id", "price", "amount").rows() == [(7, 100.0, 0.5)]
    manifest = json.loads((ready["trades"] / MANIFEST).read_text())
    assert manifest["skipped"] == {"trade X=INSURANCE_FUND": 1} and manifest["rows"] == 1
    assert manifest["captures"][0]["name"] == "btcusdt_20240808.gz" and manifest["source"] == "capture"
    assert manifest["captures"][0]["bytes"] == capture.stat().st_size


def test_unconfigured_symbol_gets_its_grid_from_the_capture(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capture = _write(tmp_path / "c", SMALL.replace("btcusdt@", "xrpusdt@").replace("0.50000000", "0.55000000"))
    assert main(_cli(capture, tmp_path / "data", "XRP-USDT")) == 0
    report = json.loads(capsys.readouterr().out)
    # prices 99/100/101 (8 decimals, all zeros after the point), sizes down to 0.55: the coarsest exact grids
    assert report["spec"] == {"symbol": "XRP-USDT", "tick": "1", "lot": "0.01", "source": "inferred"}
    trades = pl.read_parquet(paths.lake_ready(tmp_path / "data", Partition("BINANCE", "XRP-USDT", "2024-08-09"), "trades") / PART_FILE)
    assert trades.select("price", "amount").rows() == [(100.0, 0.55)]


def test_wrong_venue_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fut = _write(tmp_path / "fut", FUT)
    assert main(_cli(fut, tmp_path / "data", "BTC-USDT", "--exchange", "BINANCE")) == 2
    assert f"{fut}: depth diffs carry 'pu' (a USD-M futures capture)" in capsys.readouterr().err
    spot = _write(tmp_path / "spot", SMALL)
    assert main(_cli(spot, tmp_path / "data", "BTC-USDT-PERP", "--tick", "0.01", "--lot", "0.00000001")) == 2
    assert f"{spot}: depth diffs without 'pu' (a spot capture?)" in capsys.readouterr().err
    assert _published(tmp_path / "data") == []


def test_trade_far_from_its_receive_time_publishes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capture = _write(tmp_path / "c", SMALL.replace('"T":1723161600000', '"T":1000'))
    assert main(_cli(capture, tmp_path / "data")) == 2
    err = capsys.readouterr().err
    assert f"{capture}: trades.T = 1000 (1970-01-01T00:00:01.000Z) of frame #2" in err
    assert "outside the capture session (max clock skew 300 s" in err and "dt=1970-01-01" in err
    assert _published(tmp_path / "data") == []


@pytest.mark.parametrize(("content", "message"), [
    (b"", "capture file is empty (0 bytes)"),
    (gzip.compress(b"\n\n"), "the capture holds no frames"),
    (b"time,price\n1,2\n", ":1: expected '<recv_ns> [<recv_mono_ns>] {...frame...}'"),
    (b'1723161599937000000 {"hello":"world"}\n', "no Binance market frames (streams seen: {'<other>': 1})"),
    (gzip.compress(SMALL.encode())[:-40], "compressed stream is truncated or corrupt"),
    ("".join(SMALL.splitlines(keepends=True)[1:3]).encode(), "no diff-depth stream"),  # snapshot + trade
    (SMALL.replace("@depth@100ms", "@depth20@100ms").encode(),
     "2 frames of depth stream 'btcusdt@depth20@100ms' cannot be converted"),
    (SMALL.split("\n", 1)[0].encode() + b"\n", "the book never synchronised (0 REST snapshot(s)"),
])
def test_bad_capture_exits_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture, content: bytes,
                                             message: str) -> None:
    capture = tmp_path / "capture.gz"
    capture.write_bytes(content)
    assert main(_cli(capture, tmp_path / "data")) == 2
    err = capsys.readouterr().err
    assert str(capture) in err and message in err, err
    assert "Traceback" not in err
    assert _published(tmp_path / "data") == []


@pytest.mark.parametrize(("edit", "message"), [
    (('"p":"100.00000000","q":"0.50000000"', '"p":"0.00000000","q":"0.50000000"'),
     "trades.price of frame #2 = 0.0 is not a price: prices must be > 0"),
    (('[["101.00000000","2.00000000"]]', '[["0.00","2.00000000"]]'),
     "depth.ask_px of frame #0 = 0.0 is not a price"),
])
def test_value_policy_refuses_before_publishing(tmp_path: Path, capsys: pytest.CaptureFixture, edit: tuple,
                                                message: str) -> None:
    capture = _write(tmp_path / "c", SMALL.replace(*edit))
    assert main(_cli(capture, tmp_path / "data")) == 2
    assert f"{capture}: {message}" in capsys.readouterr().err
    assert _published(tmp_path / "data") == []


def test_a_trade_recorded_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    trade = SMALL.splitlines(keepends=True)[2]
    capture = _write(tmp_path / "c", SMALL + trade)
    assert main(_cli(capture, tmp_path / "data")) == 2
    assert "trade id 7 appears twice (again as trade 1 of the capture, 0-based)" in capsys.readouterr().err
    assert _published(tmp_path / "data") == []


def test_second_capture_of_a_date_is_refused_unless_replace(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "data"
    first = _write(tmp_path / "first", SMALL)
    second = _write(tmp_path / "second", SMALL.replace('"q":"0.50000000"', '"q":"0.70000000"'))
    assert main(_cli(first, root)) == 0
    assert main(_cli(first, root)) == 0  # the same capture again: a re-run replaces
    before = {p: p.read_bytes() for p in _published(root) if p.suffix == ".parquet"}
    capsys.readouterr()
    assert main(_cli(second, root)) == 2
    err = capsys.readouterr().err
    assert "already holds capture first (sha256" in err and "Refusing to mix two sources in one date" in err
    assert {p: p.read_bytes() for p in _published(root) if p.suffix == ".parquet"} == before  # nothing touched
    assert main(_cli(second, root, "BTC-USDT", "--replace")) == 0
    for table in LAKE_TABLES:
        for day in ("2024-08-08", "2024-08-09"):
            manifest = json.loads((paths.lake_ready(root, Partition("BINANCE", "BTC-USDT", day), table) / MANIFEST).read_text())
            assert [c["name"] for c in manifest["captures"]] == ["second"]
    trades = pl.read_parquet(paths.lake_ready(root, Partition("BINANCE", "BTC-USDT", "2024-08-09"), "trades") / PART_FILE)
    assert trades["amount"].to_list() == [0.7]


def test_every_touched_date_gets_every_table(tmp_path: Path) -> None:
    """The trade after midnight makes 2024-08-09 a date of this capture: all three tables exist for it."""
    report = lake_from_capture([_write(tmp_path / "c", SMALL)], tmp_path / "data", Instrument.parse("BTC-USDT"))
    assert report.rows == {"trades": {"2024-08-08": 0, "2024-08-09": 1}, "book": {"2024-08-08": 1, "2024-08-09": 1},
                           "book_delta_v2": {"2024-08-08": 2, "2024-08-09": 1}}


def test_killed_runs_temp_dirs_are_cleaned_live_ones_kept(tmp_path: Path) -> None:
    root = tmp_path / "data"
    instrument = paths.lake_ready(root, Partition("BINANCE", "BTC-USDT", "2024-08-08"), "book").parent
    dead = instrument / ".dt=2024-08-08.tmp-999999999-0123abcd"  # no such pid
    legacy = instrument / ".dt=2024-08-09.tmp-89abcdef"  # written before temp names carried a pid
    live = instrument / f".dt=2024-08-07.tmp-{os.getpid()}-fedcba98"
    for d in (dead, legacy, live):
        d.mkdir(parents=True)
        (d / PART_FILE).write_bytes(b"PAR1 partial")
    report = lake_from_capture([_write(tmp_path / "c", SMALL)], root, Instrument.parse("BTC-USDT"))
    assert sorted(report.cleaned) == sorted([str(dead), str(legacy)])
    assert live.exists() and not dead.exists() and not legacy.exists()
    assert sorted(p.name for p in instrument.iterdir()) == [live.name, "dt=2024-08-08", "dt=2024-08-09"]
