"""Simulator: the golden Binance feed is a valid spot capture of the same market as the lake tables."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from lake_pipeline.instrument import Instrument
from lake_pipeline.sim import simulate
from lake_pipeline_tests.sim_support import (
    LOT,
    DictBook,
    book_row_levels,
    delta_messages,
    golden_lines,
    golden_session,
    lots,
    read_lake,
    read_truth,
    ticks,
)

SEED = 3  # its REST snapshot is taken on a level deletion (the harder case for a consistent capture)
LINE = re.compile(rb"^\d{19} \{")
DEC8 = re.compile(r"^\d+\.\d{8}$")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, dict]]]:
    root = tmp_path_factory.mktemp("sim_golden")
    simulate(root, Instrument.parse("BTC-USDT").on("2024-08-08"), 0.04, SEED, start_hour=13)
    return root, golden_lines(root, SEED)


def _by_stream(lines: list[tuple[int, dict]], suffix: str) -> list[tuple[int, dict]]:
    return [(ns, f["data"]) for ns, f in lines if f.get("stream", "").endswith(suffix)]


def test_files_are_hftbacktest_lines_gzip_mtime_zero_and_session_counts_match(sim) -> None:
    root, lines = sim
    session = golden_session(root, SEED)
    files = sorted(session.glob("frames-*.jsonl.gz"))
    assert [f.name for f in files] == ["frames-20240808T130000Z.jsonl.gz"]
    raw = files[0].read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # gzip magic, mtime 0
    body = gzip.decompress(raw).splitlines()
    assert all(LINE.match(b) for b in body)
    recv = [ns for ns, _ in lines]
    assert recv == sorted(recv) and len(set(recv)) == len(recv)
    meta = json.loads((session / "session.json").read_text())
    assert meta["source"] == "simulator" and meta["seed"] == SEED and meta["symbol"] == "BTC-USDT"
    assert meta["streams"] == ["btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@bookTicker"]
    assert (meta["start_ns"], meta["end_ns"]) == (recv[0], recv[-1])
    counts = {s: len(_by_stream(lines, s)) for s in meta["streams"]} | {
        "<rest snapshot>": sum("lastUpdateId" in f for _, f in lines)}
    assert meta["frames"] == {"total": len(lines), "per_stream": counts} and counts["<rest snapshot>"] == 1
    assert meta["session_id"] == f"sim-{SEED}" and meta["status"] == "complete"


def test_payloads_have_binance_spot_fields_in_order(sim) -> None:
    _, lines = sim
    trade, depth, ticker = (_by_stream(lines, s)[0][1] for s in ("@trade", "@depth@100ms", "@bookTicker"))
    assert list(trade) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"] and trade["e"] == "trade"
    assert list(depth) == ["e", "E", "s", "U", "u", "b", "a"] and depth["e"] == "depthUpdate"
    assert list(ticker) == ["u", "s", "b", "B", "a", "A"] and ticker["s"] == "BTCUSDT"
    assert all(DEC8.match(x) for x in (trade["p"], trade["q"], ticker["b"], ticker["A"], depth["b"][0][0]))


def test_diffs_are_contiguous_and_trade_ids_consecutive(sim) -> None:
    _, lines = sim
    diffs = [d for _, d in _by_stream(lines, "@depth@100ms")]
    assert all(b["U"] == a["u"] + 1 for a, b in zip(diffs, diffs[1:], strict=False))
    trades = [d for _, d in _by_stream(lines, "@trade")]
    assert [t["t"] for t in trades] == list(range(trades[0]["t"], trades[0]["t"] + len(trades)))
    assert all(0 <= t["E"] - t["T"] <= 214 and t["M"] is True for t in trades)
    assert {t["m"] for t in trades} == {True, False}


def test_rest_snapshot_lies_strictly_inside_a_buffered_diff_and_holds_the_book(sim) -> None:
    root, lines = sim
    k = next(i for i, (_, f) in enumerate(lines) if "lastUpdateId" in f)
    snap = lines[k][1]
    before = [f["data"] for _, f in lines[:k] if f.get("stream", "").endswith("@depth@100ms")]
    assert 3 <= len(before) <= 5
    assert any(d["U"] < snap["lastUpdateId"] < d["u"] for d in before)
    assert 0 < len(snap["bids"]) <= 1000 and 0 < len(snap["asks"]) <= 1000
    bids = [(ticks(p), lots(q)) for p, q in snap["bids"]]
    asks = [(ticks(p), lots(q)) for p, q in snap["asks"]]
    assert [p for p, _ in bids] == sorted({p for p, _ in bids}, reverse=True)
    assert [p for p, _ in asks] == sorted({p for p, _ in asks}) and bids[0][0] < asks[0][0]
    assert all(0 < q * LOT < 10_000 for _, q in bids + asks)  # < 10,000 BTC
    # every level the straddled diff does not touch is exactly the book after the diff before it
    k = next(i for i, d in enumerate(before) if d["U"] < snap["lastUpdateId"] < d["u"])
    replay = DictBook()
    book = read_lake(root, "book")
    replay.resync_range(*book_row_levels(book, 0))
    for seq, _, rows in delta_messages(read_lake(root, "book_delta_v2"))[1:k]:
        for is_bid, p, q in rows:
            replay.set(is_bid, p, q)
    touched = {(True, ticks(p)) for p, _ in before[k]["b"]} | {(False, ticks(p)) for p, _ in before[k]["a"]}
    for is_bid, got, want in ((True, dict(bids), replay.bids), (False, dict(asks), replay.asks)):
        assert {p: q for p, q in got.items() if (is_bid, p) not in touched} == \
               {p: q for p, q in want.items() if (is_bid, p) not in touched}


def _rebuild(lines: list[tuple[int, dict]], book: DictBook):
    """Official spot rule: book = REST snapshot; drop diffs with u <= lastUpdateId; apply the rest in order."""
    last_id = None
    buffered: list[dict] = []
    for _, f in lines:
        if "lastUpdateId" in f:
            for side, is_bid in (("bids", True), ("asks", False)):
                for p, q in f[side]:
                    book.set(is_bid, ticks(p), lots(q))
            last_id = f["lastUpdateId"]
            for d in buffered:
                if d["u"] > last_id:
                    yield "depth", _apply(book, d)
            continue
        stream, d = f["stream"], f["data"]
        if stream.endswith("@depth@100ms"):
            if last_id is None:
                buffered.append(d)
            elif d["u"] > last_id:
                yield "depth", _apply(book, d)
        elif stream.endswith("@bookTicker") and last_id is not None:
            yield "ticker", d


def _apply(book: DictBook, d: dict) -> tuple[dict, tuple[int, int, int, int]]:
    for side, is_bid in (("b", True), ("a", False)):
        for p, q in d[side]:
            book.set(is_bid, ticks(p), lots(q))
    return d, book.bbo()


def test_book_from_snapshot_and_diffs_equals_bookticker_and_truth(sim) -> None:
    root, lines = sim
    truth = read_truth(root)
    bbo_at_u: dict[int, tuple[int, int, int, int]] = {}
    tickers = []
    golden_book = DictBook()
    for kind, item in _rebuild(lines, golden_book):
        if kind == "depth":
            d, bbo = item
            assert bbo == truth[d["u"]], f"diff u={d['u']}"
            bbo_at_u[d["u"]] = bbo
        else:
            tickers.append(item)
    aligned = [t for t in tickers if t["u"] in bbo_at_u]
    assert len(aligned) > 200
    for t in aligned:
        assert (ticks(t["b"]), lots(t["B"]), ticks(t["a"]), lots(t["A"])) == bbo_at_u[t["u"]]
    assert len(bbo_at_u) == sum(1 for _, f in lines if f.get("stream", "").endswith("@depth@100ms")) - 2
    # the snapshot held the whole book: at the end every level agrees with the lake replay (first row + deltas)
    lake_book = DictBook()
    book = read_lake(root, "book")
    lake_book.resync_range(*book_row_levels(book, 0))
    for _, _, rows in delta_messages(read_lake(root, "book_delta_v2")):
        for is_bid, p, q in rows:
            lake_book.set(is_bid, p, q)
    assert golden_book.bids == lake_book.bids and golden_book.asks == lake_book.asks
    assert len(golden_book.bids) > 100


def test_golden_diffs_carry_the_same_ticks_as_the_lake_deltas(sim) -> None:
    root, lines = sim
    lake = {seq: rows for seq, _, rows in delta_messages(read_lake(root, "book_delta_v2"))}
    diffs = [d for _, d in _by_stream(lines, "@depth@100ms")]
    assert len(diffs) == len(lake)
    for d in diffs[::7]:
        rows = [(True, ticks(p), lots(q)) for p, q in d["b"]] + [(False, ticks(p), lots(q)) for p, q in d["a"]]
        assert rows == lake[d["u"]]
    recv_lag = np.array([ns for ns, _ in _by_stream(lines, "@depth@100ms")]) - np.array([d["E"] for d in diffs]) * 10**6
    assert recv_lag.min() >= 0 and np.median(recv_lag) < 10**7


def test_lake_trades_aggregate_the_golden_fills(sim) -> None:
    """Lake rows (one per taker order and level) and golden fills sum to the same volume per (T, price, side)."""
    root, lines = sim
    fills = [d for _, d in _by_stream(lines, "@trade")]
    lake = read_lake(root, "trades")
    last_t = fills[-1]["T"]
    from_fills: dict[tuple[int, int, bool], int] = {}
    for f in fills:
        key = (f["T"], ticks(f["p"]), not f["m"])
        from_fills[key] = from_fills.get(key, 0) + lots(f["q"])
    from_lake: dict[tuple[int, int, bool], int] = {}
    for t, p, s, a in zip(lake["timestamp"], lake["price"], lake["side"], lake["amount"], strict=True):
        key = (int(round(t / 1e6)), ticks(p), s == "buy")
        if key[0] < last_t:  # fills in the last ms may come after the golden window closes
            from_lake[key] = from_lake.get(key, 0) + lots(a)
    assert len(from_lake) > 1000
    assert from_lake == {k: v for k, v in from_fills.items() if k[0] < last_t}
    assert len(fills) > 1.3 * len(lake["id"])  # several fills per aggregate row
