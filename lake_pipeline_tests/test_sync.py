"""Spot book sync state machine: one test per edge case of research binance.md §2.2, then real cryptofeed data.

Hand-made events use a tiny dict book (defined here, independent of the numba engine) so every expected book
state is written out in full.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lake_pipeline.capture.golden import read_golden
from lake_pipeline.capture.replay import book_events, feed
from lake_pipeline.capture.sync import SPOT_RULE, BookSync, DepthDiff, DiffResult, SnapshotResult, SyncRule, SyncState
from lake_pipeline.config import SymbolSpec
from lake_pipeline.instrument import Instrument


class DictBook:
    """Reference book: {price: size} per side, absolute sizes, 0 deletes (absent delete is a no-op)."""

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def apply_levels(self, is_bid: bool, prices: np.ndarray, sizes: np.ndarray) -> None:
        side = self.bids if is_bid else self.asks
        for p, s in zip(np.asarray(prices).tolist(), np.asarray(sizes).tolist()):
            if s:
                side[p] = s
            else:
                side.pop(p, None)

    def load_snapshot(self, bid_px, bid_sz, ask_px, ask_sz) -> None:  # noqa: ANN001
        self.bids, self.asks = {}, {}
        self.apply_levels(True, bid_px, bid_sz)
        self.apply_levels(False, ask_px, ask_sz)

    def state(self) -> tuple[dict[int, int], dict[int, int]]:
        return dict(self.bids), dict(self.asks)

    def bbo(self) -> tuple[int, int, int, int]:
        bb, ba = max(self.bids), min(self.asks)
        return bb, self.bids[bb], ba, self.asks[ba]


def arr(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def diff(first: int, last: int, bids: dict[int, int] | None = None, asks: dict[int, int] | None = None) -> DepthDiff:
    bids, asks = bids or {}, asks or {}
    return DepthDiff(first, last, arr(*bids), arr(*bids.values()), arr(*asks), arr(*asks.values()), meta=last)


SNAP_BIDS = {100: 5, 99: 7}
SNAP_ASKS = {101: 3, 102: 4}


def snapshot(sync: BookSync, last_update_id: int, bids: dict[int, int] = SNAP_BIDS, asks: dict[int, int] = SNAP_ASKS):
    return sync.on_snapshot(last_update_id, arr(*bids), arr(*bids.values()), arr(*asks), arr(*asks.values()))


@pytest.fixture
def sync() -> BookSync:
    return BookSync(DictBook())


def test_buffers_until_first_diff_then_asks_for_snapshot(sync: BookSync) -> None:
    assert sync.state is SyncState.SYNCING and not sync.needs_snapshot
    assert sync.on_diff(diff(1, 5, {100: 1})) is DiffResult.BUFFERED
    assert sync.needs_snapshot and sync.buffered == 1 and sync.book_id is None


def test_snapshot_strictly_inside_a_diff_applies_it_whole(sync: BookSync) -> None:
    """BTC: diffs [189..202], [203..207], [208..224] before a snapshot L=218."""
    sync.on_diff(diff(189, 202, {100: 1}))
    sync.on_diff(diff(203, 207, {99: 1}))
    sync.on_diff(diff(208, 224, {100: 9, 98: 2}, {101: 0}))
    out = snapshot(sync, 218)
    assert (out.result, out.applied, out.dropped) == (SnapshotResult.LOADED, 1, 2)
    assert sync.is_live and sync.book_id == 224 and not sync.needs_snapshot
    assert sync.book.state() == ({100: 9, 99: 7, 98: 2}, {102: 4})


def test_last_buffered_diff_ends_exactly_at_snapshot(sync: BookSync) -> None:
    """ETH / NKNUSDT: the last buffered diff has u == L: drop it; the next has U == L+1 and applies."""
    sync.on_diff(diff(1, 5, {100: 1}))
    sync.on_diff(diff(6, 8, {99: 1}))
    out = snapshot(sync, 8)
    assert (out.result, out.applied, out.dropped) == (SnapshotResult.LOADED, 0, 2)
    assert sync.is_live and sync.book_id == 8 and sync.book.state() == (SNAP_BIDS, SNAP_ASKS)
    assert sync.on_diff(diff(9, 10, asks={103: 1})) is DiffResult.APPLIED
    assert sync.book.state() == (SNAP_BIDS, {**SNAP_ASKS, 103: 1}) and sync.book_id == 10


def test_snapshot_ahead_of_websocket_drops_stale_live_diffs(sync: BookSync) -> None:
    """LRCBTC: snapshot L=543 received before diff [540..543]; the drop rule must apply to live diffs."""
    sync.on_diff(diff(530, 539, {100: 1}))
    out = snapshot(sync, 543)
    assert (out.result, out.dropped) == (SnapshotResult.LOADED, 1)
    assert sync.on_diff(diff(540, 543, {100: 42})) is DiffResult.STALE
    assert sync.on_diff(diff(543, 543, {100: 43})) is DiffResult.STALE  # u == book_id: stale too
    assert sync.book.state() == (SNAP_BIDS, SNAP_ASKS)
    assert sync.on_diff(diff(541, 546, {100: 44})) is DiffResult.APPLIED  # straddles L+1: applied whole
    assert sync.on_diff(diff(547, 550, {99: 0})) is DiffResult.APPLIED
    assert sync.book.state() == ({100: 44}, SNAP_ASKS) and sync.book_id == 550
    assert sync.stats.stale == 3 and sync.stats.gaps == 0


def test_snapshot_older_than_buffer_keeps_buffer_and_refetches(sync: BookSync) -> None:
    """L < U(first) - 1: refetch, never clear the buffer (unicorn-binance-local-depth-cache resync loop)."""
    sync.on_diff(diff(10, 12, {100: 1}))
    sync.on_diff(diff(13, 15, asks={101: 0}))
    out = snapshot(sync, 8)
    assert out.result is SnapshotResult.TOO_OLD
    assert sync.state is SyncState.SYNCING and sync.buffered == 2 and sync.needs_snapshot
    assert sync.book.state() == ({}, {})  # nothing loaded
    sync.on_diff(diff(16, 16, {97: 1}))
    out = snapshot(sync, 11, {100: 3, 99: 7}, SNAP_ASKS)
    assert (out.result, out.applied, out.dropped) == (SnapshotResult.LOADED, 3, 0)
    assert sync.book.state() == ({100: 1, 99: 7, 97: 1}, {102: 4}) and sync.book_id == 16
    assert sync.stats.snapshots_too_old == 1 and sync.stats.snapshots_loaded == 1


def test_snapshot_exactly_aligned_before_first_diff_is_used(sync: BookSync) -> None:
    """L + 1 == U(first): the overlap rule holds, no needless refetch (the official text would refetch)."""
    sync.on_diff(diff(10, 12, {100: 1}))
    out = snapshot(sync, 9)
    assert (out.result, out.applied) == (SnapshotResult.LOADED, 1)
    assert sync.book.state() == ({100: 1, 99: 7}, SNAP_ASKS) and sync.book_id == 12


def test_live_gap_resyncs_keeping_the_stream(sync: BookSync) -> None:
    """U > book_id + 1: SYNCING, the gapped diff starts the new buffer; the next snapshot resumes."""
    sync.on_diff(diff(1, 5))
    snapshot(sync, 5)
    assert sync.on_diff(diff(6, 7, {100: 2})) is DiffResult.APPLIED
    assert sync.on_diff(diff(9, 12, {100: 3})) is DiffResult.GAP
    assert sync.state is SyncState.SYNCING and sync.needs_snapshot and sync.buffered == 1
    assert sync.book.state() == ({100: 2, 99: 7}, SNAP_ASKS)  # the gapped diff was not applied
    assert sync.on_diff(diff(13, 14, {99: 0})) is DiffResult.BUFFERED
    out = snapshot(sync, 12, {100: 8}, {101: 1})
    assert (out.result, out.applied, out.dropped) == (SnapshotResult.LOADED, 1, 1)
    assert sync.book.state() == ({100: 8}, {101: 1}) and sync.book_id == 14 and sync.stats.gaps == 1


def test_gap_inside_the_replayed_buffer(sync: BookSync) -> None:
    """The buffer is replayed with the LIVE rules: a hole in it starts a new resync from the gapped diff."""
    for d in (diff(1, 5), diff(6, 8, {100: 1}), diff(12, 14, {100: 2}), diff(15, 15, {99: 0})):
        sync.on_diff(d)
    out = snapshot(sync, 6)
    assert (out.result, out.applied, out.dropped) == (SnapshotResult.LOADED, 1, 1)
    assert sync.state is SyncState.SYNCING and sync.buffered == 2 and sync.stats.gaps == 1
    assert sync.book.state() == ({100: 1, 99: 7}, SNAP_ASKS)
    out = snapshot(sync, 13)
    assert (out.result, out.applied) == (SnapshotResult.LOADED, 2)
    assert sync.book.state() == ({100: 2}, SNAP_ASKS) and sync.book_id == 15


def test_snapshot_with_empty_buffer_goes_live_guarded_by_gap_rule(sync: BookSync) -> None:
    snapshot(sync, 20)
    assert sync.is_live and sync.book_id == 20
    assert sync.on_diff(diff(22, 23)) is DiffResult.GAP  # not a continuation of 20: no trust
    sync2 = BookSync(DictBook())
    snapshot(sync2, 20)
    assert sync2.on_diff(diff(21, 23, {98: 1})) is DiffResult.APPLIED


def test_snapshot_while_live(sync: BookSync) -> None:
    sync.on_diff(diff(1, 5))
    snapshot(sync, 5)
    sync.on_diff(diff(6, 9, {100: 1}))
    assert snapshot(sync, 7, {1: 1}, {2: 2}).result is SnapshotResult.IGNORED  # older than the book
    assert sync.book.state() == ({100: 1, 99: 7}, SNAP_ASKS)
    assert snapshot(sync, 12, {50: 1}, {60: 2}).result is SnapshotResult.RELOADED
    assert sync.book.state() == ({50: 1}, {60: 2}) and sync.book_id == 12
    assert sync.on_diff(diff(10, 12, {50: 9})) is DiffResult.STALE


def test_buffer_overflow_discards_oldest_and_counts() -> None:
    sync = BookSync(DictBook(), max_buffer=3)
    for i in range(5):
        sync.on_diff(diff(10 * i + 1, 10 * i + 10, {100 + i: 1}))
    assert sync.buffered == 3 and sync.stats.buffer_overflow == 2
    assert snapshot(sync, 5).result is SnapshotResult.TOO_OLD  # buffer now starts at U=21
    out = snapshot(sync, 25)
    assert (out.result, out.applied) == (SnapshotResult.LOADED, 3)  # [21..30] straddles L=25
    assert sync.book.state() == ({**SNAP_BIDS, 102: 1, 103: 1, 104: 1}, SNAP_ASKS)


def test_request_resync_and_on_applied_sees_post_state() -> None:
    seen: list[tuple[int, tuple]] = []
    book = DictBook()
    sync = BookSync(book, on_applied=lambda d: seen.append((d.meta, book.bbo())))
    sync.on_diff(diff(1, 3, {100: 2}))
    sync.on_diff(diff(4, 6, asks={101: 0}))
    snapshot(sync, 2)
    assert seen == [(3, (100, 2, 101, 3)), (6, (100, 2, 102, 4))]
    sync.request_resync()
    assert sync.state is SyncState.SYNCING and not sync.needs_snapshot
    assert sync.on_diff(diff(7, 8)) is DiffResult.BUFFERED and sync.needs_snapshot


# ---------------------------------------------------------------------------------------------------------------
# Real cryptofeed spot recording (2021, SOURCES.md §2): NKNUSDT u == L, LRCBTC snapshot ahead of the WebSocket.
# ---------------------------------------------------------------------------------------------------------------
WIRE = Decimal("0.00000001")


def _cryptofeed_capture(realdata: Path, symbol: str, out: Path, venue: str = "BINANCE") -> tuple[Path, SymbolSpec, int]:
    """Re-emit one symbol's ws frames + its REST snapshot as a golden capture, ordered by receive time."""
    folder = realdata / "cryptofeed"
    lines: list[tuple[int, str]] = []
    for line in (folder / f"{venue}.ws.1.0").read_text().splitlines()[1:]:
        ts, _, frame = line.partition(": ")
        if frame.startswith(f'{{"stream":"{symbol.lower()}@'):
            lines.append((round(float(ts) * 1e9), frame))
    snapshot_id = -1
    for line in (folder / f"{venue}.http.0.0").read_text().splitlines():
        url, _, rest = line.partition(" -> ")
        ts, _, body = rest.partition(": ")
        if url.endswith(f"symbol={symbol}&limit=1000"):
            lines.append((round(float(ts) * 1e9), body))
            snapshot_id = json.loads(body)["lastUpdateId"]
    lines.sort(key=lambda x: x[0])
    out.write_text("".join(f"{ns} {frame}\n" for ns, frame in lines))
    # The wire grid (8 decimals), not exchangeInfo's tickSize: the NKNUSDT snapshot holds deep resting levels
    # (0.00212) placed before the 0.0001 tick, exactly like BTC's sizes off today's stepSize.
    return out, SymbolSpec(symbol, WIRE, WIRE), snapshot_id


def _replay_with_checkpoints(path: Path, spec: SymbolSpec, rule: SyncRule = SPOT_RULE) -> tuple[BookSync, list, int]:
    """Replay through the sync; compare BBO at every bookTicker whose u equals an applied diff's u."""
    frames = read_golden([path], spec)
    book = DictBook()
    bbo_at: dict[int, tuple] = {}
    sync = BookSync(book, on_applied=lambda d: bbo_at.__setitem__(d.last_id, book.bbo()), rule=rule)
    results = []
    for event in book_events(frames):
        before = sync.stats.to_dict()
        feed(sync, event)
        results.append((event, {k: v - before[k] for k, v in sync.stats.to_dict().items() if v != before[k]}))
    ticker = frames.book_ticker.filter(pl.col("u").is_in(list(bbo_at)))
    checks = [bbo_at[u] == tuple(row) for u, *row in ticker.select("u", "bid_px", "bid_qty", "ask_px", "ask_qty").iter_rows()]
    assert all(checks)
    return sync, results, len(checks)


@pytest.mark.realdata
def test_cryptofeed_nknusdt_first_diff_ends_at_snapshot(realdata: Path, tmp_path: Path) -> None:
    path, spec, snapshot_id = _cryptofeed_capture(realdata, "NKNUSDT", tmp_path / "nkn")
    sync, results, n_checks = _replay_with_checkpoints(path, spec)
    assert snapshot_id == 499869752
    first = results[0][0]
    assert (first.first_id, first.last_id) == (499869750, 499869752)  # buffered before the snapshot
    assert results[1][1] == {"stale": 1, "snapshots_loaded": 1}  # u == L: dropped at the snapshot
    assert results[2][0].first_id == snapshot_id + 1 and results[2][1] == {"applied": 1}
    assert sync.is_live and sync.stats.gaps == 0 and sync.stats.applied == 149
    assert n_checks > 0


@pytest.mark.realdata
def test_cryptofeed_lrcbtc_snapshot_ahead_of_websocket(realdata: Path, tmp_path: Path) -> None:
    path, spec, snapshot_id = _cryptofeed_capture(realdata, "LRCBTC", tmp_path / "lrc")
    sync, results, _ = _replay_with_checkpoints(path, spec)
    assert snapshot_id == 259345543
    i = next(i for i, (event, _) in enumerate(results) if not isinstance(event, DepthDiff))
    after = results[i + 1]
    assert (after[0].first_id, after[0].last_id) == (259345540, 259345543)
    assert after[1] == {"stale": 1}  # the live diff received after the snapshot is dropped, not applied
    assert results[i + 2][1] == {"applied": 1} and sync.stats.gaps == 0 and sync.is_live


@pytest.mark.realdata
def test_cryptofeed_all_symbols_match_book_ticker(realdata: Path, tmp_path: Path) -> None:
    total = 0
    for symbol in ("NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"):
        path, spec, _ = _cryptofeed_capture(realdata, symbol, tmp_path / symbol)
        sync, _, n_checks = _replay_with_checkpoints(path, spec)
        assert sync.stats.gaps == 0 and sync.stats.snapshots_loaded == 1
        total += n_checks
    assert total == 26  # SOURCES.md: cryptofeed spot 26/26


# ---------------------------------------------------------------------------------------------------------------
# Live path: one json.loads-ed frame at a time gives exactly the recorded path's events.
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.realdata
def test_live_payloads_equal_recorded_events(realdata: Path) -> None:
    from lake_pipeline.capture.golden import iter_frames
    from lake_pipeline.capture.replay import Snapshot
    from lake_pipeline.capture.book_tracker import diff_from_payload, snapshot_from_body
    from lake_pipeline.capture.levels import LevelParser
    from lake_pipeline.config import symbol_spec

    btc = symbol_spec(Instrument.parse("BTC-USDT"))
    levels = LevelParser(btc.tick, btc.lot)
    path = realdata / "hftbacktest" / "spot" / "btcusdt_20240808.gz"
    recorded = [e for frames in _first_block(path, btc) for e in book_events(frames)]
    live = []
    for _, _, frame in iter_frames([path]):
        msg = json.loads(frame)
        if "lastUpdateId" in msg:
            live.append(snapshot_from_body(msg, levels))
        elif msg["stream"].endswith("@depth@100ms"):
            live.append(diff_from_payload(msg["data"], levels))
        if len(live) == len(recorded):
            break
    assert len(recorded) > 100
    for rec, got in zip(recorded, live):
        if isinstance(rec, Snapshot):
            assert got[0] == rec.last_update_id
            arrays = zip(got[1:], (rec.bid_px, rec.bid_sz, rec.ask_px, rec.ask_sz))
        else:
            assert (got.first_id, got.last_id) == (rec.first_id, rec.last_id)
            arrays = zip((got.bid_px, got.bid_sz, got.ask_px, got.ask_sz), (rec.bid_px, rec.bid_sz, rec.ask_px, rec.ask_sz))
        for a, b in arrays:
            assert a.dtype == np.int64 and np.array_equal(a, b)


def _first_block(path: Path, spec: SymbolSpec) -> list:
    from lake_pipeline.capture.golden import iter_golden

    return [next(iter(iter_golden([path], spec, kinds=["depth", "snapshots"], block_bytes=1 << 20)))]


def test_live_payload_off_grid_is_named() -> None:
    from lake_pipeline.capture.book_tracker import diff_from_payload
    from lake_pipeline.capture.levels import LevelParser

    levels = LevelParser(Decimal("0.01"), WIRE)
    with pytest.raises(ValueError, match=r"depthUpdate U=5 u=6 asks: price \(tick 0.01\) '1.005' is off the grid"):
        diff_from_payload({"U": 5, "u": 6, "E": 1, "b": [["1.00", "2"]], "a": [["1.005", "1"]]}, levels)
    d = diff_from_payload({"U": 5, "u": 6, "E": 7, "b": [["1.00", "2", []]], "a": []}, levels)
    assert (d.bid_px.tolist(), d.bid_sz.tolist(), d.ask_px.tolist(), d.meta, d.prev_id) == ([100], [200000000], [], 7,
                                                                                           None)
    f = diff_from_payload({"U": 5, "u": 9, "pu": 3, "E": 7, "T": 6, "b": [], "a": [["1.01", "0"]]}, levels)
    assert (f.prev_id, f.ask_px.tolist(), f.ask_sz.tolist()) == (3, [101], [0])  # USD-M keeps pu
