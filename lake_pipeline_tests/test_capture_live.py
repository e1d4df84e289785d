"""LiveCapture against the local exchange server replaying the real BTC recording, clean and under every fault.

Each fault test checks the same three promises: the capture recovers (keeps going, reconnects, resyncs), it loses
nothing outside a flagged gap (the captured frames are exactly the frames the server pushed, and every update id or
trade id that never arrived is listed in session.json), and its book is right after every resync (every
update-aligned bookTicker checkpoint after each resync matches, and the final book equals the server's).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from loguru import logger

from lake_pipeline.book import OrderBook
from lake_pipeline.capture.golden import read_golden
from lake_pipeline.capture.keys import use_key
from lake_pipeline.capture.live import LiveCapture
from lake_pipeline.capture.replay import book_events, feed
from lake_pipeline.capture.sync import BookSync
from lake_pipeline.instrument import Instrument
from lake_pipeline.sim import simulate
from lake_pipeline.sim.exchange_faults import Faults, ServerTiming
from lake_pipeline.sim.exchange_feed import load_feed
from lake_pipeline_tests.exchange_helpers import (  # noqa: F401
    CAPTURE_KEY,
    DEPTH,
    SPEC,
    btc_feed,
    capture_config,
    capture_until_served,
    captured_lines,
    check_capture,
    payloads,
    serve,
)

pytestmark = pytest.mark.realdata



def test_capture_equals_served_frames_and_book_matches_bookticker(btc_feed, data_root):
    """The whole ~650 s real session at full speed: frames one for one, book exact at every aligned checkpoint."""
    with serve(btc_feed) as server:
        result, capture = capture_until_served(server, data_root)
        doc = check_capture(server, capture, result, data_root)
    lines = captured_lines(result, data_root)
    frames = [f for _, _, f in lines if f.startswith('{"stream"')]
    assert len(frames) == len(btc_feed.frames)
    per_stream = {k: v for k, v in doc["frames"]["per_stream"].items() if not k.startswith("<")}
    assert per_stream == Counter(f.stream for f in btc_feed.frames)
    assert per_stream[DEPTH] == 6495 - 3  # the recording's diffs but the 3 folded into the server's initial book
    assert doc["gaps"] == [] and doc["trade_gaps"] == [] and len(doc["resyncs"]) == 1
    # the capture's live checkpoints are exactly the aligned bookTickers after its sync point
    synced_at = doc["resyncs"][0]["snapshot_id"]
    diff_us = {d["u"] for d in payloads(frames, DEPTH) if d["u"] > synced_at}
    aligned = [t for t in payloads(frames, "btcusdt@bookTicker") if t["u"] in diff_us]
    assert doc["book"]["book_checks"]["checked"] == len(aligned) > 1000
    # independent offline replay of the stored files through the golden reader, sync and engine
    with use_key(CAPTURE_KEY):
        golden = read_golden([data_root / f["path"] for f in result.files], SPEC)
    book = OrderBook()
    bbo: dict[int, tuple] = {}
    sync = BookSync(book, on_applied=lambda d: bbo.__setitem__(d.last_id, (*book.best_bid(), *book.best_ask())))
    for event in book_events(golden):
        feed(sync, event)
    ticker = golden.book_ticker.filter(pl.col("u").is_in(list(bbo)))
    rows = list(ticker.select("u", "bid_px", "bid_qty", "ask_px", "ask_qty").iter_rows())
    assert len(rows) >= len(aligned) and all(bbo[u] == tuple(rest) for u, *rest in rows)
    assert doc["regimes"] and doc["physics"]["streams"][DEPTH]["max_per_exchange_second"] <= 10
    assert doc["encryption"]["key_id"] == CAPTURE_KEY.key_id.hex()


def _run(feed, data_root, faults=None, timing=None, seconds=2.0, **cfg):
    """Serve `feed` paced to last about `seconds` (the market keeps moving while the capture resyncs)."""
    speed = feed.duration_s() / seconds if seconds else 0.0
    with serve(feed, speed=speed, faults=faults, timing=timing) as server:
        result, capture = capture_until_served(server, data_root, **cfg)
        doc = check_capture(server, capture, result, data_root)
    return server, capture, doc


def test_fault_dropped_diff_is_a_flagged_gap_and_resynced(btc_feed, data_root):
    feed = btc_feed.head(6000)
    server, _, doc = _run(feed, data_root, Faults(drop_diff_at=(300,)))
    dropped = feed.diffs[300]
    assert [(g["from_id"], g["to_id"]) for g in doc["gaps"]] == [(dropped.first_id, dropped.last_id)]
    assert [r["reason"] for r in doc["resyncs"]] == ["initial", "gap"]
    assert server.stats.diffs_dropped == 1


def test_fault_duplicated_diff_is_ignored(btc_feed, data_root):
    server, _, doc = _run(btc_feed.head(6000), data_root, Faults(duplicate_diff_at=(200, 201, 400)))
    assert server.stats.diffs_duplicated == 3
    assert doc["gaps"] == [] and len(doc["resyncs"]) == 1
    assert doc["book"]["sync"]["stale"] >= 3  # the copies, dropped by u <= book_id


def test_fault_disconnect_mid_stream_reconnects_and_flags_what_was_missed(btc_feed, data_root):
    feed = btc_feed.head(6000)
    server, _, doc = _run(feed, data_root, Faults(disconnect_at=(2000, 4000)), seconds=3.0)
    assert server.stats.disconnects == 2 and doc["connection_count"] == 3
    assert all("closed" in r["reason"] or "error" in r["reason"] for r in doc["reconnects"])
    assert doc["gaps"] and doc["trade_gaps"]  # market moved on while we were away: flagged, then resynced
    assert len(doc["resyncs"]) >= 2


def test_fault_refused_connections_back_off_then_connect(btc_feed, data_root):
    server, _, doc = _run(btc_feed.head(3000), data_root, Faults(refuse_connections=3))
    assert server.stats.refused == 3 and len(doc["connect_failures"]) == 3
    delays = [f["retry_in_s"] for f in doc["connect_failures"]]
    assert delays[0] < delays[2] or delays[2] >= 0.2  # exponential backoff with jitter
    assert doc["connection_count"] == 1


def test_fault_stale_snapshot_is_refetched_keeping_the_buffer(btc_feed, data_root):
    timing = ServerTiming(start_frame=3000)  # the market ran before the capture joined
    server, _, doc = _run(btc_feed.head(9000), data_root, Faults(stale_snapshots=2, stale_lag_diffs=300), timing)
    [r] = doc["resyncs"]
    assert (r["snapshots"], r["too_old"]) == (3, 2)
    assert [s["kind"] for s in server.stats.snapshots] == ["stale", "stale", "inside_next"]


def test_fault_early_snapshot_drops_the_live_diffs_it_already_contains(btc_feed, data_root):
    server, capture, doc = _run(btc_feed.head(6000), data_root, Faults(early_snapshots=1, early_lead_diffs=3))
    [r] = doc["resyncs"]
    snap = server.stats.snapshots[0]
    assert snap["kind"] == "early" and snap["lastUpdateId"] > snap["sent_diff_u"]
    assert doc["book"]["sync"]["stale"] >= r["buffered_dropped"] + 1  # live diffs <= L after going live
    assert doc["gaps"] == []


def test_fault_slow_rest_keeps_reading_and_applies_the_buffer(btc_feed, data_root):
    feed = btc_feed.head(4000)
    server, capture, doc = _run(feed, data_root, Faults(slow_rest_s=0.6))
    [r] = doc["resyncs"]
    assert r["buffered_applied"] >= 3  # diffs that arrived while the snapshot was in flight
    assert (r["completed_ns"] - r["requested_ns"]) / 1e9 >= 0.6


def test_fault_429_is_honoured_and_never_escalates_to_418(btc_feed, data_root):
    server, capture, doc = _run(btc_feed.head(5000), data_root, Faults(force_429=1), seconds=3.0)
    statuses = doc["rest"]["statuses"]
    assert statuses.get("429") == 1 and "418" not in statuses
    assert server.budget.statuses[429] == 1 and server.budget.statuses[418] == 0
    [wait] = [w for w in doc["rest"]["waits"] if w["reason"] == "Retry-After"]
    assert 0.5 <= wait["seconds"] <= 1.0  # Retry-After: 1 (whole seconds, as Binance sends it)


def test_fault_cross_stream_reordering(btc_feed, data_root):
    server, _, doc = _run(btc_feed.head(6000), data_root, Faults(reorder_ms=4.0))
    frames = server.served_frames()
    last_trade_e, inversions = 0, 0
    for f in frames:
        data = json.loads(f)["data"]
        if f.startswith('{"stream":"btcusdt@trade"'):
            last_trade_e = data["E"]
        elif f.startswith(f'{{"stream":"{DEPTH}"') and data["E"] < last_trade_e:
            inversions += 1
    assert inversions >= 20 and doc["gaps"] == []  # the recording itself has 1 in this slice


def test_fault_server_shutdown_reconnects_at_once_and_continues(btc_feed, data_root):
    server, _, doc = _run(btc_feed.head(6000), data_root, Faults(shutdown_at=(2500,)))
    assert doc["connection_count"] == 2 and doc["reconnects"][0] == {**doc["reconnects"][0], "reason": "serverShutdown",
                                                                        "delay_s": 0.0}
    assert doc["frames"]["per_stream"]["!serverShutdown"] == 1
    assert doc["gaps"] == [] and len(doc["resyncs"]) == 1  # nothing missed: the book continues by update id


def test_fault_clean_close_is_not_the_end(btc_feed, data_root):
    """peer_lessons trap 6: a clean server close must reconnect (with backoff), not stop or spin."""
    server, _, doc = _run(btc_feed.head(6000), data_root, Faults(clean_close_at=(1000, 3000)))
    assert doc["connection_count"] == 3 and server.stats.clean_closes == 2
    assert all("code 1000" in r["reason"] and r["delay_s"] > 0 for r in doc["reconnects"])


def test_fault_missing_pong_closes_and_the_capture_recovers(btc_feed, data_root):
    feed = btc_feed.head(6000)
    timing = ServerTiming(ping_interval_s=0.4, pong_timeout_s=0.6)
    server, _, doc = _run(feed, data_root, Faults(ignore_pongs=True), timing, seconds=3.0)
    assert server.stats.pong_timeouts >= 2 and doc["connection_count"] >= 3
    assert all("1008" in r["reason"] for r in doc["reconnects"])
    assert all(c["pings"] >= 1 for c in doc["connections"][:-1])  # it did answer; the server ignored the pongs


def test_paced_capture_answers_pings_and_estimates_latency(btc_feed, data_root):
    feed = btc_feed.head(700)  # ~6 s of market in 2 s
    timing = ServerTiming(ping_interval_s=0.3, pong_timeout_s=0.5)
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    try:
        server, _, doc = _run(feed, data_root, None, timing, seconds=2.0, time_sample_s=0.2)
    finally:
        logger.remove(sink)
    assert server.stats.pong_timeouts == 0 and doc["connection_count"] == 1
    assert doc["connections"][0]["pings"] >= 3
    samples = [s for s in doc["clock"]["samples"] if s["source"] == "binance_time"]
    assert len(samples) >= 5 and all(s["rtt_ns"] > 0 for s in samples)
    assert set(doc["latency"]) == {DEPTH, "btcusdt@trade"}
    key_texts = (CAPTURE_KEY.raw.hex(), CAPTURE_KEY.raw.hex().upper())
    assert not any(k in line for line in lines for k in key_texts)
    assert CAPTURE_KEY.key_id.hex() in json.dumps(doc)  # the public id is recorded, the key is not


def test_storage_overflow_fails_loudly(btc_feed, data_root, monkeypatch):
    from lake_pipeline.capture import storage

    real = storage.RotatingFrameWriter.write_batch

    def slow(self, batch):
        import time

        time.sleep(0.05)
        real(self, batch)

    monkeypatch.setattr(storage.RotatingFrameWriter, "write_batch", slow)
    with serve(btc_feed.head(20000)) as server:
        with pytest.raises(storage.StorageOverflowError, match="queue full"):
            capture_until_served(server, data_root, max_queue=500)
    [session_json] = list(data_root.rglob("session.json"))
    doc = json.loads(session_json.read_text())
    assert doc["status"] == "failed" and "queue full" in doc["error"]
    assert doc["storage"]["queue_capacity"] == 500


def test_rotation_during_capture_loses_no_frame(btc_feed, data_root):
    feed = btc_feed.head(3000)
    server, capture, doc = _run(feed, data_root, rotate_s=0.25, flush_s=0.1)
    files = doc["files"]
    assert len(files) >= 6
    assert sum(f["frames"] for f in files) == doc["frames"]["total"]
    assert all(Path(f["path"]).name.endswith(".jsonl.gz.enc") for f in files)
    assert all(f["regimes"] for f in files[1:-1])  # each file carries the regime tags of its exchange-time span


def test_spec_from_exchange_info_for_an_unconfigured_symbol(btc_feed, data_root, monkeypatch):
    import lake_pipeline.capture.live as live

    monkeypatch.setattr(live, "symbol_spec", lambda symbol: None)
    server, capture, doc = _run(btc_feed.head(2000), data_root)
    assert doc["spec"] == {"symbol": "BTC-USDT", "tick": "0.01", "lot": "0.00000001", "source": "exchangeInfo"}
    assert Decimal(doc["spec"]["lot"]) == Decimal("0.00000001")


def test_silent_peer_is_detected_and_reconnected(btc_feed, data_root):
    """No frame and no ping for `silence_timeout_s`: the watchdog closes the connection and the capture reconnects."""
    timing = ServerTiming(ping_interval_s=3600)  # the server goes quiet once the feed ends
    with serve(btc_feed.head(300), timing=timing) as server:
        capture = LiveCapture(capture_config(server, data_root, duration_s=2.0, silence_timeout_s=0.4))
        result = asyncio.run(capture.run())
    doc = result.document
    assert doc["connection_count"] >= 2
    assert doc["reconnects"] and all(r["reason"].startswith("silent for") for r in doc["reconnects"])


def test_simulated_session_through_the_server(data_root, tmp_path):
    """The simulator's golden feed, served and captured: frames one for one, book equal to the server's."""
    summary = simulate(tmp_path / "sim", Instrument.parse("BTC-USDT").on("2024-08-08"), 0.02, 5, start_hour=9,
                       golden_hours=0.02)
    feed = load_feed(sorted(Path(summary.paths["golden"]).glob("frames-*")))
    server, capture, doc = _run(feed, data_root, Faults(drop_diff_at=(200,)), seconds=2.0)
    assert len(doc["gaps"]) == 1 and doc["book"]["book_checks"]["checked"] > 50


def test_snapshot_ending_exactly_at_the_last_buffered_diff(btc_feed, data_root):
    """peer_lessons trap 6: the first buffered diff with u == lastUpdateId must be dropped, not hang the sync."""
    timing = ServerTiming(snapshot_position="aligned")
    server, _, doc = _run(btc_feed.head(4000), data_root, timing=timing)
    [r] = doc["resyncs"]
    snap = server.stats.snapshots[0]
    assert snap["kind"] == "current" and snap["lastUpdateId"] == snap["sent_diff_u"]
    assert r["buffered_dropped"] >= 1 and doc["gaps"] == []


def test_an_unreadable_frame_is_stored_flagged_and_survived(btc_feed, data_root):
    """A frame the capture cannot interpret is still stored as received, listed in session.json, and the capture
    carries on (the book stays right)."""
    bad = '{"stream":"btcusdt@bookTicker","data":{"u":"not-a-number"}}'
    thread = serve(btc_feed.head(4000), speed=btc_feed.head(4000).duration_s() / 2.0)
    with thread as server:
        async def inject():
            while not server.connections:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)
            for conn in list(server.connections.values()):
                await conn.send(bad)
        asyncio.run_coroutine_threadsafe(inject(), thread.loop)
        result, capture = capture_until_served(server, data_root)
        doc = check_capture(server, capture, result, data_root)
    assert bad in server.served_frames()
    assert doc["frames"]["per_stream"]["<unreadable frame>"] == 1
    [err] = doc["frame_errors"]
    assert err["frame"] == bad and err["error"].startswith("ValueError")
