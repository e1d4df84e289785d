"""Synthetic markets for the fidelity tests, and writers that put them in the real contract formats.

`synthetic_market` builds ONE ground truth: a 20-level book updated every 100 ms (contiguous Binance update ids),
bookTicker quotes (including intra-batch ones that the update-id alignment must skip), and Hawkes taker orders
split into same-millisecond fills. From it:
* `market_view`          the canonical MarketView (what the adapters must reproduce);
* `write_unified`        unified/…/part-*.parquet + _SUCCESS (schemas.UNIFIED_EVENT) and book_states/…;
* `write_golden_capture` a `<recv_ns> <frame>` capture file (trade, depth@100ms, bookTicker, one REST snapshot)
                         that `capture.golden.read_golden` reads.
Perturbations (`shift_prices`, `drop_messages`, `scale_sizes`) make broken reconstructions with known defects.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake_pipeline import paths
from lake_pipeline.fidelity import hawkes
from lake_pipeline.fidelity.frames import BBO_SCHEMA, LADDER_SCHEMA, MarketView, conform
from lake_pipeline.instrument import Partition
from lake_pipeline.schemas import BOOK_STATE, N_LEVELS, UNIFIED_EVENT

TICK = Decimal("0.01")
LOT = Decimal("0.00000001")
T0 = 1_723_161_600_000_000_000  # 2024-08-09T00:00:00Z
MS = 1_000_000
DATE = "2024-08-09"
SYMBOL = "BTC-USDT"
EXCHANGE = "BINANCE"


@dataclass
class Market:
    """Ground truth in ticks/lots. ladder_* are (T × 20) arrays; quotes include intra-batch ones."""

    msg_time: np.ndarray
    first_id: np.ndarray
    last_id: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    quotes: pl.DataFrame
    trades: pl.DataFrame
    start_ns: int
    end_ns: int


def synthetic_market(seconds: int = 300, seed: int = 0, t0: int = T0, rate: float = 6.0,
                     size_sigma: float = 1.1) -> Market:
    rng = np.random.default_rng(seed)
    n = seconds * 10
    msg_time = t0 + 50 * MS + np.arange(n, dtype=np.int64) * 100 * MS
    k = rng.integers(1, 8, n)
    last_id = 50_000_000_000 + np.cumsum(k)
    first_id = last_id - k + 1
    best_bid = 6_000_000 + np.cumsum(rng.choice([-1, 0, 0, 0, 0, 1], n))
    spread = np.where(rng.random(n) < 0.98, 1, rng.integers(2, 7, n))
    gaps_b = rng.integers(1, 4, (n, N_LEVELS))
    gaps_b[:, 0] = 0
    gaps_a = rng.integers(1, 4, (n, N_LEVELS))
    gaps_a[:, 0] = 0
    bid_px = best_bid[:, None] - np.cumsum(gaps_b, axis=1)
    ask_px = (best_bid + spread)[:, None] + np.cumsum(gaps_a, axis=1)
    # sizes persist between messages at a level (so diffs are sparse), change with probability 0.3
    bid_sz = np.exp(rng.normal(17.5, 1.5, (n, N_LEVELS))).astype(np.int64) + 1
    ask_sz = np.exp(rng.normal(17.5, 1.5, (n, N_LEVELS))).astype(np.int64) + 1
    # intra-batch quotes (u' < u, a different BBO) that update-id alignment must supersede, then the true one at u
    extra = rng.random(n) < 0.5
    qx = pl.DataFrame({"update_id": last_id[extra] - 1, "bid_px": bid_px[extra, 0] - 1, "bid_sz": bid_sz[extra, 0] + 7,
                       "ask_px": ask_px[extra, 0], "ask_sz": ask_sz[extra, 0]})
    qx = qx.filter(pl.col("update_id") >= pl.Series(first_id[extra]))
    qt = pl.DataFrame({"update_id": last_id, "bid_px": bid_px[:, 0], "bid_sz": bid_sz[:, 0], "ask_px": ask_px[:, 0],
                       "ask_sz": ask_sz[:, 0]})
    quotes = pl.concat([qx, qt]).sort("update_id")
    # taker orders: Hawkes times, geometric fills in the same ms, lognormal sizes with round-lot masses
    tt = hawkes.simulate(rate, 0.45, 60.0, seconds - 1.0, seed + 1)
    order_ms = (t0 + 1000 * MS + (tt * 1e9).astype(np.int64)) // MS * MS
    fills = rng.geometric(0.4, order_ms.size)
    time_ns = np.repeat(order_ms, fills)
    is_buy = np.repeat(rng.random(order_ms.size) < 0.5, fills)
    qty = np.exp(rng.normal(np.log(6.7e4), size_sigma * np.log(10), time_ns.size)).astype(np.int64) + 1
    qty[rng.random(qty.size) < 0.05] = 10_000  # 0.0001 BTC point mass
    mi = np.clip(np.searchsorted(msg_time, time_ns, side="right") - 1, 0, n - 1)
    price = np.where(is_buy, ask_px[mi, 0], bid_px[mi, 0])
    trades = pl.DataFrame({"time_ns": time_ns, "trade_id": 3_700_000_000 + np.arange(time_ns.size, dtype=np.int64),
                           "price": price, "qty": qty, "is_buy": is_buy})
    return Market(msg_time, first_id, last_id, bid_px, bid_sz, ask_px, ask_sz, quotes, trades, int(t0),
                  int(t0 + seconds * 1_000_000_000))


def window(m: Market, t0: int, t1: int) -> Market:
    """The ground truth restricted to [t0, t1) (e.g. the hour a golden capture covered)."""
    k = (m.msg_time >= t0) & (m.msg_time < t1)
    ids = m.last_id[k]
    return Market(m.msg_time[k], m.first_id[k], ids, m.bid_px[k], m.bid_sz[k], m.ask_px[k], m.ask_sz[k],
                  m.quotes.filter(pl.col("update_id").is_between(int(m.first_id[k][0]), int(ids[-1]))),
                  m.trades.filter(pl.col("time_ns").is_between(t0, t1, closed="left")), int(t0), int(t1))


def ladder_frame(m: Market) -> pl.DataFrame:
    cols: dict[str, np.ndarray] = {"time_ns": m.msg_time}
    for side, px, sz in (("bid", m.bid_px, m.bid_sz), ("ask", m.ask_px, m.ask_sz)):
        for k in range(N_LEVELS):
            cols[f"{side}_{k}_price"] = px[:, k]
            cols[f"{side}_{k}_size"] = sz[:, k]
    return conform(pl.DataFrame(cols), LADDER_SCHEMA, "fixture ladder")


def bbo_frame(m: Market) -> pl.DataFrame:
    return conform(pl.DataFrame({"time_ns": m.msg_time, "update_id": m.last_id, "bid_px": m.bid_px[:, 0],
                                 "bid_sz": m.bid_sz[:, 0], "ask_px": m.ask_px[:, 0], "ask_sz": m.ask_sz[:, 0]}),
                   BBO_SCHEMA, "fixture bbo")


def market_view(m: Market, label: str = "golden") -> MarketView:
    """The canonical view of the ground truth (golden convention: quotes present, BBO after each message)."""
    msgs = pl.DataFrame({"time_ns": m.msg_time, "first_id": m.first_id, "last_id": m.last_id,
                         "gap": np.zeros(m.msg_time.size, bool)})
    snaps = m.msg_time[::50]
    drift = pl.DataFrame({"time_ns": snaps, "drift_levels": np.zeros(snaps.size, np.int32)})
    return MarketView(label, TICK, LOT, bbo_frame(m), m.trades, m.start_ns, m.end_ns, ladder=ladder_frame(m),
                      drift=drift, messages=msgs, quotes=m.quotes)


# ---------------------------------------------------------------------------------------------------------------
# Broken reconstructions (each with one known defect)
# ---------------------------------------------------------------------------------------------------------------


def shift_prices(m: Market, ticks: int = 1) -> Market:
    """Every book price shifted by `ticks` (trades untouched)."""
    return replace(m, bid_px=m.bid_px + ticks, ask_px=m.ask_px + ticks)


def drop_messages(m: Market, every: int = 40, stale_for: int = 5) -> Market:
    """Book messages dropped: every `every`-th message is lost and the book stays stale for `stale_for` messages."""
    idx = np.arange(m.msg_time.size)
    src = idx.copy()
    for start in range(every, idx.size, every):
        src[start:start + stale_for] = start - 1
    return replace(m, bid_px=m.bid_px[src], bid_sz=m.bid_sz[src], ask_px=m.ask_px[src], ask_sz=m.ask_sz[src])


def scale_sizes(m: Market, factor: float = 1.5) -> Market:
    """Every book size multiplied by `factor` (prices and trades untouched)."""
    return replace(m, bid_sz=(m.bid_sz * factor).astype(np.int64), ask_sz=(m.ask_sz * factor).astype(np.int64))


# ---------------------------------------------------------------------------------------------------------------
# Writers: the real contract formats
# ---------------------------------------------------------------------------------------------------------------


def _dec(units: np.ndarray, unit: Decimal, valid: np.ndarray | None = None) -> pa.Array:
    """int64 ticks/lots → decimal128(38,18) values (vectorised, exact); `valid` False → null."""
    exp = unit.as_tuple().exponent
    arr = pa.array(np.asarray(units, dtype=np.int64), mask=None if valid is None else ~np.asarray(valid, bool))
    scaled = pc.multiply(arr.cast(pa.decimal128(20, 0)), pa.scalar(unit, pa.decimal128(max(1, -exp), -exp)))
    return scaled.cast(pa.decimal128(38, 18))


def _dec_str(units: int, unit: Decimal) -> str:
    return f"{Decimal(int(units)).scaleb(unit.as_tuple().exponent):.8f}"


def _ts(ns: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ns, dtype=np.int64)).cast(pa.timestamp("ns", tz="UTC"))


def _dict(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    return pa.array(values.astype(object), pa.string(),
                    mask=None if valid is None else ~np.asarray(valid, bool)).dictionary_encode()


def write_unified(m: Market, data_root: Path, *, snapshot_every: int = 50, rows_per_part: int = 4000,
                  drift: np.ndarray | None = None) -> Path:
    """unified/… parts (two BOOK_DELTA rows per message — the first with an intermediate best bid, so readers must
    take the LAST row of a message —, one BOOK_SNAPSHOT row every `snapshot_every` messages, TRADE rows) +
    _SUCCESS, and book_states/… (the ladder after every message). Vectorised: a full day writes in seconds."""
    n = m.msg_time.size
    snap = np.arange(n) % snapshot_every == 0
    reps = np.where(snap, 1, 2)
    idx = np.repeat(np.arange(n), reps)
    pos = np.arange(idx.size) - np.repeat(np.cumsum(reps) - reps, reps)
    last = pos == reps[idx] - 1
    prev = np.maximum(idx - 1, 0)
    sn = snap[idx]
    tr = m.trades
    nt = tr.height
    mi = np.clip(np.searchsorted(m.msg_time, tr["time_ns"].to_numpy(), side="right") - 1, 0, n - 1)
    drift_levels = np.zeros(n, np.int64) if drift is None else np.asarray(drift, np.int64)
    cols = {
        "t": np.concatenate([m.msg_time[idx], tr["time_ns"].to_numpy()]),
        "kind": np.concatenate([np.zeros(idx.size, np.int64), np.ones(nt, np.int64)]),
        "order": np.concatenate([2 * idx + pos, np.arange(nt)]),
        "event_type": np.concatenate([np.where(sn, "BOOK_SNAPSHOT", "BOOK_DELTA"), np.full(nt, "TRADE")]),
        "seq": np.concatenate([m.last_id[idx], np.zeros(nt, np.int64)]),
        "has_seq": np.concatenate([np.ones(idx.size, bool), np.zeros(nt, bool)]),
        "trade_id": np.concatenate([np.zeros(idx.size, np.int64), tr["trade_id"].to_numpy()]),
        "side": np.concatenate([np.where(sn, "", "bid"), np.where(tr["is_buy"].to_numpy(), "buy", "sell")]),
        "has_side": np.concatenate([~sn, np.ones(nt, bool)]),
        "price": np.concatenate([m.bid_px[idx, 1], tr["price"].to_numpy()]),
        "qty": np.concatenate([m.bid_sz[idx, 1], tr["qty"].to_numpy()]),
        "bb": np.concatenate([np.where(last, m.bid_px[idx, 0], m.bid_px[prev, 0]), m.bid_px[mi, 0]]),
        "bbq": np.concatenate([np.where(last, m.bid_sz[idx, 0], m.bid_sz[prev, 0]), m.bid_sz[mi, 0]]),
        "ba": np.concatenate([m.ask_px[idx, 0], m.ask_px[mi, 0]]),
        "baq": np.concatenate([m.ask_sz[idx, 0], m.ask_sz[mi, 0]]),
        "drift": np.concatenate([drift_levels[idx], np.zeros(nt, np.int64)]),
        "has_drift": np.concatenate([sn, np.zeros(nt, bool)]),
    }
    order = np.lexsort((cols["order"], cols["kind"], cols["t"]))
    cols = {k: v[order] for k, v in cols.items()}
    udir = paths.unified_dir(data_root, Partition(EXCHANGE, SYMBOL, DATE))
    udir.mkdir(parents=True, exist_ok=True)
    total = cols["t"].size
    for j, start in enumerate(range(0, total, rows_per_part)):
        c = {k: v[start:start + rows_per_part] for k, v in cols.items()}
        k = c["t"].size
        table = pa.table({
            "event_time": _ts(c["t"]), "received_time": _ts(c["t"] + 5 * MS),
            "event_type": _dict(c["event_type"]),
            "exchange": _dict(np.full(k, EXCHANGE)), "symbol": _dict(np.full(k, SYMBOL)),
            "sequence_number": pa.array(c["seq"], mask=~c["has_seq"]),
            "trade_id": pa.array(c["trade_id"], mask=c["has_seq"]),
            "side": _dict(c["side"], c["has_side"]),
            "price": _dec(c["price"], TICK, c["has_side"]), "quantity": _dec(c["qty"], LOT, c["has_side"]),
            "best_bid_price": _dec(c["bb"], TICK), "best_bid_quantity": _dec(c["bbq"], LOT),
            "best_ask_price": _dec(c["ba"], TICK), "best_ask_quantity": _dec(c["baq"], LOT),
            "book_flags": pa.array(np.zeros(k, np.int32)),
            "drift_levels": pa.array(c["drift"].astype(np.int32), mask=~c["has_drift"]),
        }).cast(UNIFIED_EVENT)
        pq.write_table(table, udir / f"part-{j:05d}.parquet", compression="zstd")
    (udir / "_SUCCESS").write_text("")
    bdir = paths.book_states_dir(data_root, Partition(EXCHANGE, SYMBOL, DATE))
    bdir.mkdir(parents=True, exist_ok=True)
    lad = ladder_frame(m)
    book = {"event_time": _ts(lad["time_ns"].to_numpy())}
    for c in BOOK_STATE.names[1:]:
        book[c] = _dec(lad[c].to_numpy(), TICK if c.endswith("price") else LOT)
    pq.write_table(pa.table(book).cast(BOOK_STATE), bdir / "part-00000.parquet", compression="zstd")
    return udir


def write_golden_capture(m: Market, path: Path, *, stream: str = "btcusdt", recv_lag_ms: int = 3) -> Path:
    """A gzip capture `<recv_ns> <frame>`: one REST snapshot (aligned to the first diff), then trade, depth diff
    (full top-20 replacement: changed levels set, vanished levels zeroed) and bookTicker frames in receive order."""
    lines: list[tuple[int, int, str]] = []
    n = m.msg_time.size

    def levels(px, sz):
        return [[_dec_str(p, TICK), _dec_str(s, LOT)] for p, s in zip(px, sz, strict=True)]

    def env(kind: str, data: dict) -> str:
        return json.dumps({"stream": f"{stream}@{kind}", "data": data}, separators=(",", ":"))

    snap_id = int(m.first_id[0]) - 1
    snap = {"lastUpdateId": snap_id, "bids": levels(m.bid_px[0], m.bid_sz[0]), "asks": levels(m.ask_px[0], m.ask_sz[0])}
    lines.append((int(m.msg_time[0]) - 200 * MS, 0, json.dumps(snap, separators=(",", ":"))))
    for i in range(n):
        prev = max(i - 1, 0)
        data = {"e": "depthUpdate", "E": int(m.msg_time[i] // MS), "s": stream.upper(), "U": int(m.first_id[i]),
                "u": int(m.last_id[i])}
        for key, px, sz in (("b", m.bid_px, m.bid_sz), ("a", m.ask_px, m.ask_sz)):
            now = dict(zip(px[i].tolist(), sz[i].tolist(), strict=True))
            before = dict(zip(px[prev].tolist(), sz[prev].tolist(), strict=True)) if i else {}
            upd = [[p, s] for p, s in now.items() if before.get(p) != s] + [[p, 0] for p in before if p not in now]
            data[key] = [[_dec_str(p, TICK), _dec_str(s, LOT)] for p, s in upd]
        lines.append((int(m.msg_time[i]) + recv_lag_ms * MS, 1, env("depth@100ms", data)))
    for u, bp, bs, ap, as_ in m.quotes.iter_rows():
        i = int(np.searchsorted(m.last_id, u))
        t = int(m.msg_time[min(i, n - 1)]) - (2 * MS if u < m.last_id[min(i, n - 1)] else 0)
        lines.append((t + recv_lag_ms * MS, 2, env("bookTicker", {"u": int(u), "s": stream.upper(),
                                                               "b": _dec_str(bp, TICK), "B": _dec_str(bs, LOT),
                                                               "a": _dec_str(ap, TICK), "A": _dec_str(as_, LOT)})))
    for t, tid, p, q, buy in m.trades.iter_rows():
        lines.append((int(t) + recv_lag_ms * MS, 3, env("trade", {
            "e": "trade", "E": int(t // MS), "s": stream.upper(), "t": int(tid), "p": _dec_str(p, TICK),
            "q": _dec_str(q, LOT), "T": int(t // MS), "m": not buy, "M": True})))
    lines.sort(key=lambda x: (x[0], x[1]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        for t, _, frame in lines:
            fh.write(f"{t} {frame}\n")
    return path


def golden_session_dir(data_root: Path, session: str = "s1") -> Path:
    return paths.golden_dir(data_root, Partition(EXCHANGE, SYMBOL, DATE)) / f"session={session}"


def fast_tolerances_file(directory: Path, reps: int) -> Path:
    """The shipped tolerances with fewer bootstrap replicates (same tolerances), written as a `--tolerances` file:
    keeps report tests fast without changing any gate."""
    from lake_pipeline.fidelity import tolerances

    t = tolerances.load()
    t.bootstrap = {**t.bootstrap, "reps": reps}
    path = Path(directory) / "tolerances.yaml"
    tolerances.dump(t, path)
    return path
