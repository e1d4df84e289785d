"""USD-M futures book sync (research binance.md §2.3): the `pu` chain, one test per edge case, spot unchanged.

Hand-made events on the dict reference book of test_sync, so every expected book state is written out in full.
Update ids are deliberately NOT contiguous between events (`U != pu + 1`), as on the real futures stream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lake_pipeline.capture.sync import (
    FUTURES_RULE,
    SPOT_RULE,
    BookSync,
    DepthDiff,
    DiffResult,
    SnapshotResult,
    SyncState,
    rule_for,
)
from lake_pipeline_tests.test_sync import (
    SNAP_ASKS,
    SNAP_BIDS,
    DictBook,
    _cryptofeed_capture,
    _replay_with_checkpoints,
    arr,
    snapshot,
)


def fdiff(first: int, last: int, prev: int | None, bids: dict[int, int] | None = None,
          asks: dict[int, int] | None = None) -> DepthDiff:
    bids, asks = bids or {}, asks or {}
    return DepthDiff(first, last, arr(*bids), arr(*bids.values()), arr(*asks), arr(*asks.values()), meta=last,
                     prev_id=prev)


@pytest.fixture
def sync() -> BookSync:
    return BookSync(DictBook(), rule=FUTURES_RULE)


def test_rule_for_venue() -> None:
    assert rule_for("BINANCE_FUTURES") is FUTURES_RULE and rule_for("BINANCE") is SPOT_RULE
    with pytest.raises(ValueError, match="no Binance order book sync rule for venue 'KUCOIN'"):
        rule_for("KUCOIN")


def test_snapshot_strictly_inside_a_buffered_diff(sync: BookSync) -> None:
    """hftbacktest 2024 BTCUSDT: L falls strictly inside [U, u] of a buffered diff; it is applied whole."""
    assert sync.on_diff(fdiff(10, 20, 5, {100: 1})) is DiffResult.BUFFERED
    assert sync.on_diff(fdiff(25, 40, 20, {100: 9}, {101: 0})) is DiffResult.BUFFERED
    out = snapshot(sync, 30)
    assert (out.result, out.dropped, out.applied) == (SnapshotResult.LOADED, 1, 1)  # u=20 < L dropped
    assert sync.book_id == 40 and sync.book.state() == ({100: 9, 99: 7}, {102: 4})
    assert sync.on_diff(fdiff(47, 50, 40, {98: 3})) is DiffResult.APPLIED  # U != pu + 1 is normal
    assert sync.book_id == 50 and sync.book.state()[0] == {100: 9, 99: 7, 98: 3}


def test_snapshot_equal_to_a_diffs_u_applies_that_diff(sync: BookSync) -> None:
    """cryptofeed BINANCE_FUTURES: L equals some diff's u exactly; U <= L <= u holds, the diff is re-applied
    (absolute sizes: no change), and the next diff continues with pu == L."""
    sync.on_diff(fdiff(10, 20, 5, {100: 1}))
    sync.on_diff(fdiff(22, 30, 20, {100: 5}))
    out = snapshot(sync, 30)
    assert (out.result, out.dropped, out.applied) == (SnapshotResult.LOADED, 1, 1)
    assert sync.book.state() == (SNAP_BIDS, SNAP_ASKS)
    assert sync.on_diff(fdiff(33, 35, 30, asks={101: 2})) is DiffResult.APPLIED
    assert sync.book.state() == (SNAP_BIDS, {101: 2, 102: 4}) and sync.stats.gaps == 0


def test_first_event_continuing_the_snapshot_by_pu(sync: BookSync) -> None:
    """Empty buffer: the first live diff may start after L (U > L) when its pu is L (tardis-node's rule)."""
    assert snapshot(sync, 30).result is SnapshotResult.LOADED and sync.is_live
    assert sync.on_diff(fdiff(36, 40, 30, {100: 4})) is DiffResult.APPLIED
    assert sync.book_id == 40 and sync.book.state()[0] == {100: 4, 99: 7}


def test_first_event_neither_overlapping_nor_continuing_is_a_gap(sync: BookSync) -> None:
    snapshot(sync, 30)
    assert sync.on_diff(fdiff(36, 40, 33)) is DiffResult.GAP
    assert sync.state is SyncState.SYNCING and sync.needs_snapshot and sync.book_id == 30


def test_snapshot_ahead_of_the_websocket_drops_older_live_diffs(sync: BookSync) -> None:
    snapshot(sync, 30)
    assert sync.on_diff(fdiff(20, 28, 15, {100: 1})) is DiffResult.STALE  # u < L
    assert sync.on_diff(fdiff(29, 34, 28, {100: 3})) is DiffResult.APPLIED  # U <= L <= u
    assert sync.book.state()[0] == {100: 3, 99: 7}


def test_snapshot_older_than_the_buffer_keeps_it_and_refetches(sync: BookSync) -> None:
    sync.on_diff(fdiff(40, 50, 35, {100: 8}))
    sync.on_diff(fdiff(52, 60, 50, {99: 0}))
    out = snapshot(sync, 30)
    assert (out.result, out.dropped) == (SnapshotResult.TOO_OLD, 0)
    assert sync.state is SyncState.SYNCING and sync.buffered == 2 and sync.needs_snapshot
    out = snapshot(sync, 45)
    assert (out.result, out.applied) == (SnapshotResult.LOADED, 2)
    assert sync.book_id == 60 and sync.book.state() == ({100: 8}, SNAP_ASKS)


def test_broken_pu_chain_resyncs(sync: BookSync) -> None:
    snapshot(sync, 30)
    sync.on_diff(fdiff(31, 40, 30, {100: 4}))
    result = sync.on_diff(fdiff(45, 50, 42, {100: 6}))  # pu 42 != 40: the event ending at 42 was lost
    assert result is DiffResult.GAP and sync.stats.gaps == 1
    assert sync.state is SyncState.SYNCING and sync.buffered == 1 and sync.needs_snapshot
    assert sync.book.state()[0] == {100: 4, 99: 7}  # untouched by the gapped diff
    assert snapshot(sync, 47).result is SnapshotResult.LOADED and sync.book_id == 50
    assert sync.book.state()[0] == {100: 6, 99: 7}


def test_duplicate_event_is_stale_not_a_gap(sync: BookSync) -> None:
    snapshot(sync, 30)
    sync.on_diff(fdiff(31, 40, 30, {100: 4}))
    assert sync.on_diff(fdiff(31, 40, 30, {100: 1})) is DiffResult.STALE
    assert sync.book.state()[0] == {100: 4, 99: 7} and sync.stats.gaps == 0


def test_pu_matters_not_U(sync: BookSync) -> None:
    """A diff overlapping the book (U <= book_id) but with the wrong pu is a gap on futures; spot applies it."""
    snapshot(sync, 30)
    sync.on_diff(fdiff(31, 40, 30))
    assert sync.on_diff(fdiff(38, 45, 37)) is DiffResult.GAP
    spot = BookSync(DictBook())
    snapshot(spot, 30)
    spot.on_diff(fdiff(31, 40, 30))
    assert spot.on_diff(fdiff(38, 45, 37)) is DiffResult.APPLIED  # spot ignores pu: U <= book_id + 1


def test_spot_rule_resyncs_on_futures_style_ids() -> None:
    """The reason futures needs its own rule: non-contiguous ids are a gap for spot."""
    spot = BookSync(DictBook())
    snapshot(spot, 30)
    spot.on_diff(fdiff(29, 40, 25))
    assert spot.on_diff(fdiff(47, 50, 40)) is DiffResult.GAP


def test_snapshot_while_live_reanchors_the_first_event_rule(sync: BookSync) -> None:
    snapshot(sync, 30)
    sync.on_diff(fdiff(31, 40, 30))
    out = snapshot(sync, 44, bids={100: 2}, asks={103: 1})
    assert out.result is SnapshotResult.RELOADED and sync.book_id == 44
    assert sync.on_diff(fdiff(41, 43, 40)) is DiffResult.STALE  # u < L
    assert sync.on_diff(fdiff(44, 48, 43, {100: 3})) is DiffResult.APPLIED  # U <= L <= u, pu is not L
    assert sync.book.state() == ({100: 3}, {103: 1})
    assert snapshot(sync, 20).result is SnapshotResult.IGNORED


def test_futures_diff_without_pu_is_an_error(sync: BookSync) -> None:
    snapshot(sync, 30)
    with pytest.raises(ValueError, match="futures depthUpdate U=31 u=40 has no pu"):
        sync.on_diff(fdiff(31, 40, None))


# ---------------------------------------------------------------------------------------------------------------
# Real cryptofeed USD-M recording (2021, SOURCES.md §2). Measured here: every REST snapshot was AHEAD of the
# WebSocket (diffs older than L arrive after it and are dropped live); for AKRO/KEEP/CTK L equals a later diff's u
# exactly, for SUSHI L equals a later diff's U (SOURCES.md's "L equals some diff's u" holds for 3 of the 4).
# ---------------------------------------------------------------------------------------------------------------
# symbol: (L, first applied diff (U, u, pu), stale diffs, bookTicker checkpoints)
CRYPTOFEED_FUTURES = {
    "SUSHIUSDT": (600859605926, (600859605926, 600859607423, 600859604824), 3, 12),
    "AKROUSDT": (600859605486, (600859603597, 600859605486, 600859599831), 1, 7),
    "KEEPUSDT": (600859619434, (600859618057, 600859619434, 600859607807), 3, 13),
    "CTKUSDT": (600859618836, (600859617271, 600859618836, 600859616469), 5, 18),
}


@pytest.mark.realdata
@pytest.mark.parametrize("symbol", CRYPTOFEED_FUTURES)
def test_cryptofeed_futures_recording(realdata: Path, tmp_path: Path, symbol: str) -> None:
    snapshot_id, first_applied, stale, checkpoints = CRYPTOFEED_FUTURES[symbol]
    path, spec, found_id = _cryptofeed_capture(realdata, symbol, tmp_path / symbol, venue="BINANCE_FUTURES")
    sync, results, n_checks = _replay_with_checkpoints(path, spec, FUTURES_RULE)  # asserts every checkpoint
    assert found_id == snapshot_id and n_checks == checkpoints
    applied = [event for event, delta in results if delta.get("applied")]
    assert (applied[0].first_id, applied[0].last_id, applied[0].prev_id) == first_applied
    assert applied[0].first_id <= snapshot_id <= applied[0].last_id  # the first event rule, pu != L
    assert all(b.prev_id == a.last_id for a, b in zip(applied, applied[1:]))  # then the pu chain, unbroken
    assert (sync.stats.stale, sync.stats.gaps, sync.stats.snapshots_loaded, sync.is_live) == (stale, 0, 1, True)
    # the same events under the spot rule: the non-contiguous ids (U != previous u + 1) are taken for gaps
    spot = BookSync(DictBook())
    for event, _ in results:
        if isinstance(event, DepthDiff):
            spot.on_diff(event)
        else:
            spot.on_snapshot(event.last_update_id, event.bid_px, event.bid_sz, event.ask_px, event.ask_sz)
    assert spot.stats.gaps > 0
