"""The exchange server's protocol pieces without a network: stream names, control messages, limits, derived streams."""

from __future__ import annotations

import json

import pytest

from lake_pipeline.instrument import FUTURES
from lake_pipeline.sim.derived_streams import (
    AggTradeBuilder,
    WindowDiffMerger,
    diff_payload,
    partial_depth,
    to_microseconds,
)
from lake_pipeline.sim.exchange_feed import FeedError, build_feed
from lake_pipeline.sim.exchange_limits import MessageRate, WeightBudget
from lake_pipeline.sim.exchange_protocol import Subscriptions, handle_control, parse_stream, payload_of
from lake_pipeline.sim.replay_book import DepthDiff, ReplayBook
from lake_pipeline.capture.protocol import FUTURES as FUTURES_API
from lake_pipeline.capture.protocol import SPOT as SPOT_API


@pytest.mark.parametrize(
    ("name", "kind", "levels", "interval"),
    [("btcusdt@trade", "trade", None, None), ("btcusdt@aggTrade", "aggTrade", None, None),
     ("btcusdt@bookTicker", "bookTicker", None, None), ("btcusdt@depth", "depth", None, 1000),
     ("btcusdt@depth@100ms", "depth", None, 100), ("ethbtc@depth20@100ms", "depth20", 20, 100),
     ("ethbtc@depth5", "depth5", 5, 1000), ("btcusdt@depth@1000ms", "depth", None, 1000)],
)
def test_valid_stream_names(name, kind, levels, interval):
    s = parse_stream(name)
    assert (s.kind, s.levels, s.interval_ms) == (kind, levels, interval)


@pytest.mark.parametrize(
    ("name", "kind", "levels", "interval"),
    [("btcusdt@depth", "depth", None, 250), ("btcusdt@depth@500ms", "depth", None, 500),
     ("btcusdt@depth@100ms", "depth", None, 100), ("btcusdt@depth@0ms", "depth", None, 0),
     ("btcusdt@depth20@100ms", "depth20", 20, 100), ("btcusdt@depth5", "depth5", 5, 250)],
)
def test_valid_futures_stream_names(name, kind, levels, interval):
    s = parse_stream(name, FUTURES_API)
    assert (s.kind, s.levels, s.interval_ms) == (kind, levels, interval)


@pytest.mark.parametrize("name", ["BTCUSDT@trade", "btcusdt@trade@100ms", "btcusdt@depth15", "btcusdt", "btcusdt@kline",
                                  "btcusdt@depth@50ms", "@trade", "btcusdt@depth@0ms", "btcusdt@depth@500ms"])
def test_invalid_stream_names(name):
    assert parse_stream(name) is None


@pytest.mark.parametrize("name", ["btcusdt@depth@1000ms", "btcusdt@depth20@0ms", "btcusdt@depth@50ms"])
def test_invalid_futures_stream_names(name):
    assert parse_stream(name, FUTURES_API) is None


def test_futures_connection_stream_cap_is_200():
    subs = Subscriptions(protocol=FUTURES_API)
    subs.add([f"s{i:03d}usdt@trade" for i in range(200)])
    reply = json.loads(handle_control('{"method":"SUBSCRIBE","params":["zzzusdt@trade"],"id":1}', subs))
    assert reply["error"] == {"code": 2, "msg": "Invalid request: too many streams (max 200)"}


def test_subscribe_list_unsubscribe_round_trip():
    subs = Subscriptions()
    assert json.loads(handle_control('{"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@depth"],"id":1}', subs)) == \
        {"result": None, "id": 1}
    assert json.loads(handle_control('{"method":"LIST_SUBSCRIPTIONS","id":"abc"}', subs)) == \
        {"result": ["btcusdt@trade", "btcusdt@depth"], "id": "abc"}
    handle_control('{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":3}', subs)
    assert list(subs.streams) == ["btcusdt@depth"]
    assert json.loads(handle_control('{"method":"GET_PROPERTY","params":["combined"],"id":4}', subs))["result"] is True
    handle_control('{"method":"SET_PROPERTY","params":["combined",false],"id":5}', subs)
    assert subs.combined is False


@pytest.mark.parametrize(
    ("text", "error"),
    [('{"method":"SUBSCRIBE","params":["BTCUSDT@trade"],"id":2}', {"code": 2, "msg": "Invalid request: invalid stream"}),
     ('{"method":"SUBSCRIBE","params":["btcusdt@trade"]', None),
     ('{"method":"FOO","params":[],"id":7}', {"code": 2, "msg": "Invalid request: unknown method"}),
     ('{"method":"SET_PROPERTY","params":["foo",true],"id":8}', {"code": 0, "msg": "Unknown property"}),
     ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":9}', {"code": 1, "msg": "Invalid value type: expected Boolean"})],
)
def test_error_frames_are_wrapped_with_the_request_id(text, error):
    reply = json.loads(handle_control(text, Subscriptions()))
    if error is None:  # invalid JSON: code 3, no id to echo
        assert reply["error"]["code"] == 3 and reply["error"]["msg"].startswith("Invalid JSON") and reply["id"] is None
    else:
        assert reply == {"error": error, "id": json.loads(text)["id"]}


def test_request_id_rules():
    subs = Subscriptions()
    assert json.loads(handle_control('{"method":"LIST_SUBSCRIPTIONS","id":null}', subs)) == {"result": [], "id": None}
    bad = json.loads(handle_control('{"method":"LIST_SUBSCRIPTIONS","id":"has space"}', subs))
    assert bad["error"]["code"] == 2 and bad["id"] is None
    too_long = json.loads(handle_control(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": "a" * 37}), subs))
    assert too_long["error"]["code"] == 2


def test_payload_of_envelope():
    frame = '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":2}}'
    assert payload_of(frame) == '{"e":"trade","E":1,"T":2}'
    assert json.loads(to_microseconds(payload_of(frame))) == {"e": "trade", "E": 1000, "T": 2000}


@pytest.mark.parametrize(("limit", "weight"), [(1, 5), (100, 5), (101, 25), (500, 25), (501, 50), (1000, 50),
                                               (1001, 250), (5000, 250)])
def test_depth_weights(limit, weight):
    assert SPOT_API.depth_weight(limit) == weight


def test_weight_budget_429_then_418_when_ignored():
    budget = WeightBudget(limit=500, window_s=60, ban_after_ignored=2, ban_s=120)
    assert [budget.charge(250, 1.0).status, budget.charge(250, 2.0).status] == [200, 200]
    over = budget.charge(250, 3.0)
    assert (over.status, over.used_weight, over.retry_after) == (429, 500, 57)
    assert budget.charge(5, 4.0).status == 429  # ignored once
    banned = budget.charge(5, 5.0)  # ignored twice -> IP ban
    assert (banned.status, banned.retry_after) == (418, 120)
    assert budget.charge(5, 70.0).status == 418  # still banned in the next window
    assert budget.charge(5, 126.0).status == 200


def test_weight_budget_honoured_retry_after_is_not_punished():
    budget = WeightBudget(limit=300)
    budget.charge(250, 1.0)
    assert budget.charge(250, 2.0).status == 429
    assert budget.charge(250, 60.5).status == 200  # waited for the next window
    forced = budget.charge(5, 61.0, force_429_for=2.0)
    assert (forced.status, forced.retry_after) == (429, 2)
    assert budget.charge(5, 63.5).status == 200


def test_message_rate_sliding_second():
    rate = MessageRate(per_second=5)
    assert all(rate.hit(0.1 * i) for i in range(5))
    assert rate.hit(0.55) is False
    fresh = MessageRate(per_second=5)
    assert all(fresh.hit(0.3 * i) for i in range(20))  # 3-4 per second is fine forever


def _trade(t, T, p, q, m):
    return {"e": "trade", "E": T + 1, "s": "BTCUSDT", "t": t, "p": p, "q": q, "T": T, "m": m, "M": True}


def test_agg_trade_groups_one_taker_order():
    agg = AggTradeBuilder()
    out = [agg.add(_trade(1, 10, "100.00", "0.10000000", True)), agg.add(_trade(2, 10, "100.00", "0.25000000", True)),
           agg.add(_trade(3, 10, "100.01", "0.01000000", True)), agg.add(_trade(4, 11, "100.01", "1.00000000", False))]
    assert out[:2] == [None, None]
    first, second = json.loads(out[2]), json.loads(out[3])
    assert (first["f"], first["l"], first["q"], first["p"], first["a"]) == (1, 2, "0.35000000", "100.00", 1)
    assert (second["f"], second["l"], second["q"], second["a"]) == (3, 3, "0.01000000", 2)
    last = json.loads(agg.flush())
    assert (last["f"], last["l"], last["m"], last["M"]) == (4, 4, False, True)
    futures = AggTradeBuilder(futures=True)
    futures.add(_trade(1, 10, "100.0", "0.010", True))
    assert "M" not in json.loads(futures.flush())  # USD-M aggTrade has no M field


def test_second_merger_last_quantity_wins_and_ids_span():
    m = WindowDiffMerger(1000)
    assert m.add(DepthDiff(10, 12, 1000, [["1.0", "5"]], [])) is None
    assert m.add(DepthDiff(13, 15, 1900, [["1.0", "0"], ["2.0", "1"]], [["3.0", "2"]])) is None
    merged = json.loads(diff_payload(m.add(DepthDiff(16, 16, 2000, [], [])), "BTCUSDT"))
    assert merged == {"e": "depthUpdate", "E": 1900, "s": "BTCUSDT", "U": 10, "u": 15,
                      "b": [["2.0", "1"], ["1.0", "0"]], "a": [["3.0", "2"]]}


def test_futures_window_merge_keeps_the_pu_chain():
    """Three @0ms diffs with non-contiguous ids merged into 100 ms windows: each merged pu is the previous merged
    u, E/T are the window's last, as a real USD-M @100ms stream."""
    m = WindowDiffMerger(100)
    diffs = [DepthDiff(10, 12, 1010, [["1.0", "5"]], [], 7, 1009),
             DepthDiff(15, 20, 1090, [], [["2.0", "1"]], 12, 1088),
             DepthDiff(22, 30, 1150, [["1.0", "0"]], [], 20, 1149), DepthDiff(31, 33, 1230, [], [], 30, 1230)]
    out = [m.add(d) for d in diffs]
    assert out[:2] == [None, None] and out[3] is not None
    first, second = json.loads(diff_payload(out[2], "BTCUSDT")), json.loads(diff_payload(out[3], "BTCUSDT"))
    assert first == {"e": "depthUpdate", "E": 1090, "T": 1088, "s": "BTCUSDT", "U": 10, "u": 20, "pu": 7,
                     "b": [["1.0", "5"]], "a": [["2.0", "1"]]}
    assert (second["U"], second["u"], second["pu"], second["E"], second["T"]) == (22, 30, 20, 1150, 1149)
    book = ReplayBook()
    book.load(20, [["1.0", "5"], ["0.9", "1"]], [["2.0", "1"]])
    top = json.loads(partial_depth(book, 1, out[3], "BTCUSDT"))  # USD-M partial depth is a depthUpdate
    assert (top["e"], top["pu"], top["u"]) == ("depthUpdate", 20, 30)
    assert (top["b"], top["a"]) == ([["1.0", "5"]], [["2.0", "1"]])


def test_replay_book_rules():
    book = ReplayBook()
    book.load(100, [["10.00", "1.0"], ["9.00", "2.0"]], [["11.00", "3.0"]])
    assert book.apply(DepthDiff(90, 100, 0, [["10.00", "9.0"]], [])) is False  # u <= id: stale
    assert book.apply(DepthDiff(95, 105, 0, [["10.00", "0.00000000"], ["9.50", "1.0"]], [])) is True  # straddles
    assert book.top(5) == ([["9.50", "1.0"], ["9.00", "2.0"]], [["11.00", "3.0"]])
    book.apply(DepthDiff(110, 111, 0, [], []))
    assert book.gaps == 1 and book.update_id == 111
    assert json.loads(book.snapshot_body(1)) == {"lastUpdateId": 111, "bids": [["9.50", "1.0"]], "asks": [["11.00", "3.0"]]}


def test_replay_book_futures_rules():
    """USD-M: ids are not contiguous; only a broken `pu` chain is a gap; the first diff after a snapshot may
    straddle it (U <= L <= u); snapshots carry E and the book's last T."""
    book = ReplayBook()
    book.load(100, [["10.0", "1.000"]], [["11.0", "3.000"]])
    assert book.apply(DepthDiff(95, 105, 5, [["10.0", "2.000"]], [], 90, 4)) is True  # straddles L: no gap
    assert book.apply(DepthDiff(120, 130, 6, [], [], 105, 6)) is True  # U != u+1 but pu == u: no gap
    assert book.gaps == 0
    assert book.apply(DepthDiff(140, 150, 7, [], [], 135, 7)) is True  # pu 135 != 130: a gap
    assert book.gaps == 1 and book.update_id == 150
    assert json.loads(book.snapshot_body(1, event_ms=9)) == {"lastUpdateId": 150, "E": 9, "T": 7,
                                                             "bids": [["10.0", "2.000"]], "asks": [["11.0", "3.000"]]}


def _line(stream, data):
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def test_feed_folds_pre_roll_into_the_initial_book():
    diff = lambda U, u, E, b: _line("xusdt@depth@100ms", {"e": "depthUpdate", "E": E, "s": "XUSDT", "U": U, "u": u,  # noqa: E731
                                                          "b": b, "a": []})
    lines = [(1_000, diff(1, 5, 1, [["1.00", "1"]])), (2_000, diff(6, 9, 2, [["2.00", "2"]])),
             (3_000, json.dumps({"lastUpdateId": 7, "bids": [["1.00", "1"]], "asks": [["3.00", "1"]]})),
             (4_000, diff(10, 12, 3, [["1.00", "0"]]))]
    feed = build_feed(lines, "hand-made")
    assert feed.initial_book.update_id == 9  # snapshot 7 + the straddling diff [6..9]
    assert feed.initial_book.top(5)[0] == [["2.00", "2"], ["1.00", "1"]]
    assert [f.recv_ns for f in feed.frames] == [4_000] and feed.symbol == "XUSDT"
    no_snapshot = build_feed(lines[:2], "no-snapshot")
    assert no_snapshot.initial_book.update_id == 0 and len(no_snapshot.frames) == 2
    with pytest.raises(FeedError, match="no depth diffs"):
        build_feed(lines[2:3], "only-a-snapshot")
    assert feed.exchange == "BINANCE"


def test_feed_of_futures_frames_is_a_futures_feed():
    def diff(U: int, u: int, pu: int) -> str:
        return _line("xusdt@depth@0ms", {"e": "depthUpdate", "E": u, "T": u, "s": "XUSDT", "U": U, "u": u, "pu": pu,
                                         "b": [], "a": []})

    feed = build_feed([(1, diff(5, 9, 3)), (2, diff(12, 15, 9))], "usdm")
    assert feed.exchange == FUTURES and feed.protocol is FUTURES_API
    assert feed.initial_book.update_id == 3  # without a snapshot the first diff's pu starts the chain
    spot = _line("xusdt@depth@100ms", {"e": "depthUpdate", "E": 1, "s": "XUSDT", "U": 16, "u": 17, "b": [], "a": []})
    with pytest.raises(FeedError, match="mixes spot diffs"):
        build_feed([(1, diff(5, 9, 3)), (2, spot)], "mixed")


def test_exchange_info_falls_back_to_a_builtin_entry(tmp_path, monkeypatch):
    from lake_pipeline.sim.exchange_info import exchange_info

    monkeypatch.setenv("LAKE_SHARED_DIR", str(tmp_path))  # no recorded fixture there
    info = exchange_info(["BTCUSDT"], 1234, 42)
    [sym] = info["symbols"]
    assert sym["symbol"] == "BTCUSDT" and info["serverTime"] == 42
    assert info["rateLimits"] == [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                   "limit": 1234}]
    assert exchange_info(["NOPE"], 1, 1)["symbols"] == []
    [fut] = exchange_info([], 2400, 42, futures=True)["symbols"]
    assert fut["contractType"] == "PERPETUAL" and fut["quantityPrecision"] == 3
