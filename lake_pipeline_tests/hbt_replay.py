"""Replay an export in hftbacktest's own backtester and compare its local book with our unified stream.

hftbacktest's `wait_next_feed` returns after each local feed timestamp; we record its local best bid/ask ticks
there. Each of our delta messages (rows with equal event time, sequence number and received time) is compared
with hftbacktest's book at the message's local timestamp: the state after every exported row with local_ts <= it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from numba import njit

from lake_pipeline.handoff import events
from lake_pipeline.schemas import EVENT_DELTA, FLAG_CROSSED, FLAG_UNINITIALISED

HBT_INVALID_MIN = np.iinfo(np.int64).min
HBT_INVALID_MAX = np.iinfo(np.int64).max
NO_TIMEOUT = 10**15


def asset(npz: Path, snapshot: Path | None, tick: float, lot: float):
    from hftbacktest import BacktestAsset

    a = (BacktestAsset().data([str(npz)]).linear_asset(1.0).constant_order_latency(1_000_000, 1_000_000)
         .risk_adverse_queue_model().no_partial_fill_exchange().trading_value_fee_model(-0.00005, 0.0007)
         .tick_size(tick).lot_size(lot).last_trades_capacity(0))
    if snapshot is not None:
        a = a.initial_snapshot(str(snapshot))
    return a


@njit
def _record(hbt, ts, bid, ask) -> int:
    n = 0
    while n < len(ts):
        rc = hbt.wait_next_feed(False, NO_TIMEOUT)
        if rc == 1:
            break
        if rc != 2:
            return -rc
        depth = hbt.depth(0)
        ts[n] = hbt.current_timestamp
        bid[n] = depth.best_bid_tick
        ask[n] = depth.best_ask_tick
        n += 1
    return n


def replay_local_bbo(npz: Path, snapshot: Path | None, tick: float, lot: float) -> pl.DataFrame:
    """hftbacktest's local best bid/ask ticks after each local feed timestamp (HashMapMarketDepthBacktest)."""
    from hftbacktest import HashMapMarketDepthBacktest

    data = np.load(npz)["data"]
    cap = len(np.unique(data["local_ts"])) + 16
    ts, bid, ask = np.zeros(cap, np.int64), np.zeros(cap, np.int64), np.zeros(cap, np.int64)
    hbt = HashMapMarketDepthBacktest([asset(npz, snapshot, tick, lot)])
    n = _record(hbt, ts, bid, ask)
    hbt.close()
    assert n >= 0, f"hftbacktest wait_next_feed failed with {-n}"
    return pl.DataFrame({"local_ts": ts[:n], "hbt_bid": bid[:n], "hbt_ask": ask[:n]})


@dataclass
class Match:
    messages: int
    matched: int
    crossed: int
    shared_local_ts: int
    mismatches: pl.DataFrame

    @property
    def rate(self) -> float:
        return self.matched / self.messages


def compare(data_root: Path, instrument: str, start: str, end: str, hbt: pl.DataFrame, offset_ns: int) -> Match:
    """Per delta message of our stream: our best bid/ask ticks vs hftbacktest's local book at its local_ts."""
    ours = (events(data_root, instrument, start, end, prices="ticks")
            .filter(pl.col("event_type") == EVENT_DELTA, (pl.col("book_flags") & FLAG_UNINITIALISED) == 0)
            .group_by(["event_time", "sequence_number", "received_time"], maintain_order=True)
            .agg(pl.col("best_bid_price").last(), pl.col("best_ask_price").last(), pl.col("book_flags").last())
            .with_columns((pl.col("received_time").fill_null(pl.col("event_time")).dt.epoch("ns") + offset_ns)
                          .alias("local_ts"),
                          pl.col("best_bid_price").fill_null(HBT_INVALID_MIN),
                          pl.col("best_ask_price").fill_null(HBT_INVALID_MAX))
            .collect())
    ours = ours.with_columns(pl.len().over("local_ts").alias("same_ts")).sort("local_ts", maintain_order=True)
    joined = ours.join_asof(hbt.sort("local_ts"), on="local_ts", strategy="backward")
    ok = (joined["best_bid_price"] == joined["hbt_bid"]) & (joined["best_ask_price"] == joined["hbt_ask"])
    ok = ok.fill_null(False)
    return Match(messages=len(joined), matched=int(ok.sum()),
                 crossed=int(((joined["book_flags"] & FLAG_CROSSED) != 0).sum()),
                 shared_local_ts=int((joined["same_ts"] > 1).sum()), mismatches=joined.filter(~ok))
