"""The local exchange server over loopback, replaying the real BTC recording: wire protocol, REST, limits, faults."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from lake_pipeline.sim.exchange_faults import Faults, ServerTiming
from lake_pipeline.sim.exchange_feed import KIND_DEPTH
from lake_pipeline.sim.replay_book import DepthDiff, ReplayBook
from lake_pipeline_tests.exchange_helpers import STREAMS, btc_feed, run, serve  # noqa: F401

pytestmark = pytest.mark.realdata


async def _texts(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[str]:
    out = []
    while len(out) < n:
        msg = await ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        out.append(msg.data)
    return out


async def _until_quiet(ws: aiohttp.ClientWebSocketResponse, quiet_s: float = 0.5) -> list[str]:
    """Text frames until the server has been silent for `quiet_s` (the feed ended)."""
    out = []
    while True:
        try:
            msg = await ws.receive(timeout=quiet_s)
        except TimeoutError:
            return out
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return out
        out.append(msg.data)


def test_combined_stream_serves_the_recording_byte_for_byte_and_control_messages(btc_feed):
    feed = btc_feed.head(3000)
    span = (feed.frames[-1].recv_ns - feed.frames[0].recv_ns) / 1e9
    with serve(feed, speed=span / 2.0) as server:  # about two seconds
        async def client():
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"{server.ws_url}/stream?streams={STREAMS}")
                first = await _texts(ws, 500)
                await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","BAD"],"id":1}')
                await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":2}')
                await ws.send_str('{"method":"UNSUBSCRIBE","params":["btcusdt@bookTicker"],"id":"x3"}')
                await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":4}')
                rest = await _until_quiet(ws)
                await ws.close()
                return first, rest
        first, rest = run(client)
    assert first == [f.text for f in feed.frames[:500]]
    replies = [json.loads(t) for t in rest if not t.startswith('{"stream"')]
    assert replies == [{"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 1},
                       {"result": None, "id": 2}, {"result": None, "id": "x3"},
                       {"result": ["btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@aggTrade"], "id": 4}]
    after = [json.loads(t) for t in rest[rest.index(next(t for t in rest if '"id":4' in t)) + 1 :]]
    assert {m["stream"] for m in after} == {"btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@aggTrade"}
    aggs = [m["data"] for m in after if m["stream"] == "btcusdt@aggTrade"]
    trades = {m["data"]["t"]: m["data"] for m in after if m["stream"] == "btcusdt@trade"}
    covered = [a for a in aggs if a["f"] in trades and a["l"] in trades]
    assert len(covered) >= 10
    for a in covered:
        group = [trades[t] for t in range(a["f"], a["l"] + 1)]
        assert {(g["T"], g["p"], g["m"]) for g in group} == {(a["T"], a["p"], a["m"])}
    served = [t for t in rest if t.startswith('{"stream"')]
    assert first + served == [t for t in server.served_frames()]


def test_raw_stream_and_microseconds(btc_feed):
    feed = btc_feed.head(400)
    trades = [json.loads(f.text)["data"] for f in feed.frames if f.stream == "btcusdt@trade"][:3]
    with serve(feed) as server:
        async def client():
            async with aiohttp.ClientSession() as http:
                raw = await http.ws_connect(f"{server.ws_url}/ws/btcusdt@trade?timeUnit=MICROSECOND")
                got = [json.loads(t) for t in await _texts(raw, 3)]
                await raw.close()
                bad = await http.get(f"{server.rest_url}/stream?streams=btcusdt@nope")
                return got, bad.status
        got, bad_status = run(client)
    assert [g["t"] for g in got] == [t["t"] for t in trades]
    assert [(g["E"], g["T"]) for g in got] == [(t["E"] * 1000, t["T"] * 1000) for t in trades]
    assert bad_status == 400


def test_server_closes_a_client_that_does_not_pong_and_keeps_one_that_does(btc_feed):
    timing = ServerTiming(ping_interval_s=0.3, pong_timeout_s=0.7)  # pongs count: stay under 5 msgs/s
    with serve(btc_feed.head(50), timing=timing) as server:
        async def client(autoping: bool):
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"{server.ws_url}/ws", autoping=autoping)
                t0 = time.monotonic()
                pings = 0
                while time.monotonic() - t0 < 2.0:
                    try:
                        msg = await ws.receive(timeout=0.3)
                    except TimeoutError:
                        continue
                    if msg.type is aiohttp.WSMsgType.PING:
                        pings += 1
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        return "closed", ws.close_code, msg.extra, time.monotonic() - t0, pings
                await ws.close()
                return "open", None, None, time.monotonic() - t0, pings
        silent = run(lambda: client(autoping=False))
        polite = run(lambda: client(autoping=True))
    assert silent[:3] == ("closed", 1008, "Pong timeout") and 0.9 <= silent[3] <= 2.0 and silent[4] >= 2
    assert polite[0] == "open"
    assert server.stats.pong_timeouts == 1


def test_more_than_five_messages_a_second_closes_with_1008(btc_feed):
    with serve(btc_feed.head(50)) as server:
        async def client():
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"{server.ws_url}/ws")
                for i in range(6):
                    await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                while True:
                    msg = await ws.receive(timeout=5)
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        return ws.close_code, msg.extra
        assert run(client) == (1008, "Too many requests")


def test_rest_depth_time_exchange_info_and_errors(btc_feed):
    feed = btc_feed.head(100)
    with serve(feed) as server:
        async def client():
            async with aiohttp.ClientSession() as http:
                out = {}
                for name, params in {"big": {"symbol": "BTCUSDT", "limit": "9999"}, "default": {"symbol": "BTCUSDT"},
                                     "unknown": {"symbol": "NOPEUSDT"}, "missing": {}}.items():
                    async with http.get(f"{server.rest_url}/api/v3/depth", params=params) as r:
                        out[name] = (r.status, int(r.headers["X-MBX-USED-WEIGHT-1M"]), await r.json())
                async with http.get(f"{server.rest_url}/api/v3/time") as r:
                    out["time"] = await r.json()
                async with http.get(f"{server.rest_url}/api/v3/exchangeInfo", params={"symbol": "BTCUSDT"}) as r:
                    out["info"] = await r.json()
                return out
        out = run(client)
    status, weight, big = out["big"]
    assert (status, weight) == (200, 250)
    # nothing replayed yet (no subscriber): the initial book, labelled inside the next diff as real snapshots are
    assert feed.initial_book.update_id < big["lastUpdateId"] < feed.diffs[0].last_id
    assert len(big["bids"]) == len(feed.initial_book.bids) <= 5000 and set(big) == {"lastUpdateId", "bids", "asks"}
    assert big["bids"][0] == list(feed.initial_book.best()[0])
    status, weight, default = out["default"]
    assert (status, weight, len(default["bids"]), len(default["asks"])) == (200, 255, 100, 100)
    assert out["unknown"][0] == 400 and out["unknown"][2] == {"code": -1121, "msg": "Invalid symbol."}
    assert out["missing"][0] == 400 and out["missing"][2]["code"] == -1102
    first_e = json.loads(next(f.text for f in feed.frames if f.kind == KIND_DEPTH))["data"]["E"]
    assert abs(out["time"]["serverTime"] - first_e) < 200  # the exchange clock is the replay's
    [sym] = out["info"]["symbols"]
    tick = next(f["tickSize"] for f in sym["filters"] if f["filterType"] == "PRICE_FILTER")
    assert (sym["symbol"], tick) == ("BTCUSDT", "0.01000000")
    assert {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000} in \
        out["info"]["rateLimits"]


def test_rate_limit_429_with_retry_after_then_418_when_ignored(btc_feed):
    timing = ServerTiming(weight_limit=300, ban_after_ignored_429=2, ban_s=30)
    with serve(btc_feed.head(50), timing=timing) as server:
        async def client():
            async with aiohttp.ClientSession() as http:
                out = []
                for _ in range(4):
                    async with http.get(f"{server.rest_url}/api/v3/depth",
                                        params={"symbol": "BTCUSDT", "limit": "5000"}) as r:
                        out.append((r.status, r.headers.get("Retry-After"), (await r.json()).get("code")))
                return out
        out = run(client)
    assert out[0] == (200, None, None)
    assert out[1][0] == 429 and 0 < int(out[1][1]) <= 60 and out[1][2] == -1003
    assert out[2][0] == 429  # ignored once
    assert out[3] == (418, "30", -1003)  # ignored twice: banned


def test_snapshot_plus_stream_rebuilds_the_servers_book(btc_feed):
    """A client that syncs from the server's own snapshot ends with the server's book (aligned and mid-diff labels)."""
    feed = btc_feed.head(4000)
    for position in ("aligned", "inside_next"):
        # paced (10x real time, ~3 s): at full speed a loaded machine can finish the feed before the snapshot
        # request lands, leaving no diff to apply on top of it
        with serve(feed, speed=10.0, timing=ServerTiming(snapshot_position=position)) as server:
            async def client():
                async with aiohttp.ClientSession() as http:
                    ws = await http.ws_connect(f"{server.ws_url}/stream?streams=btcusdt@depth@100ms")
                    buffered = [json.loads(t)["data"] for t in await _texts(ws, 30)]
                    async with http.get(f"{server.rest_url}/api/v3/depth", params={"symbol": "BTCUSDT",
                                                                                    "limit": "5000"}) as r:
                        snap = await r.json()
                    n_diffs = sum(1 for f in feed.frames if f.kind == KIND_DEPTH)
                    rest = [json.loads(t)["data"] for t in await _texts(ws, n_diffs - 30)]
                    await ws.close()
                    return buffered, snap, rest
            buffered, snap, rest = run(client)
            book = ReplayBook()
            book.load(snap["lastUpdateId"], snap["bids"], snap["asks"])
            applied = [book.apply(DepthDiff.from_payload(d)) for d in buffered + rest]
            assert book.gaps == 0 and sum(applied) > 0
            assert book.update_id == server.book.update_id
            assert book.top(5000) == server.book.top(5000)
            kinds = {s["kind"] for s in server.stats.snapshots}
            assert kinds == ({"current"} if position == "aligned" else {"inside_next"})


def test_server_shutdown_event_then_close_and_refused_connection(btc_feed):
    feed = btc_feed.head(300)
    with serve(feed, faults=Faults(shutdown_at=(100,), refuse_connections=1)) as server:
        async def client():
            async with aiohttp.ClientSession() as http:
                try:
                    await http.ws_connect(f"{server.ws_url}/stream?streams={STREAMS}")
                    refused = False
                except aiohttp.WSServerHandshakeError as exc:
                    refused = exc.status == 503
                ws = await http.ws_connect(f"{server.ws_url}/stream?streams={STREAMS}")
                frames = []
                while True:
                    msg = await ws.receive(timeout=10)
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        return refused, frames, ws.close_code
                    frames.append(json.loads(msg.data))
        refused, frames, code = run(client)
    assert refused and server.stats.refused == 1
    assert len(frames) == 101 and frames[-1]["stream"] == "!serverShutdown"
    assert frames[-1]["data"]["e"] == "serverShutdown" and code == 1000


def test_paced_replay_follows_recorded_receive_times(btc_feed):
    feed = btc_feed.head(400)
    span = (feed.frames[-1].recv_ns - feed.frames[0].recv_ns) / 1e9
    with serve(feed, speed=span / 1.0) as server:  # the whole slice in about one second
        async def client():
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"{server.ws_url}/stream?streams={STREAMS}")
                t0 = time.monotonic()
                await _texts(ws, 200)
                mid = time.monotonic() - t0
                await _texts(ws, 200)
                return mid, time.monotonic() - t0
        mid, total = run(client)
    expected_mid = (feed.frames[199].recv_ns - feed.frames[0].recv_ns) / 1e9 / (span / 1.0)
    assert 0.8 <= total <= 2.5  # never early; late only by scheduling on a busy machine
    assert expected_mid - 0.1 <= mid <= expected_mid + 0.6
