"""The Binance feed of the simulated market, spot or USD-M futures, written as golden capture files.

Exactly the line format of the real hftbacktest recordings: `<recv_ns> <raw frame>\\n`, combined-stream envelopes
`{"stream":"btcusdt@depth@100ms","data":{…}}` with the spot payloads of research binance.md §1.2 (`@trade` one per
fill, `@depth@100ms` diffs with contiguous U/u, `@bookTicker` at every BBO change) and one raw REST depth body
(limit 1000) near the start, received after the diff that contains its `lastUpdateId`.
With `futures=True` (the partition's venue is BINANCE_FUTURES) the payloads are USD-M's, as in the real USD-M
recording: diffs carry `T` and `pu` (the previous diff's `u`), trades `T` and `"X":"MARKET"` (no `M`), bookTickers
`e`, `T`, `E`, the REST body `E` and `T`; prices print with the contract's price precision (at least 2 decimals)
and quantities with the lot's (`"61800.20"`, `"0.006"`), not spot's 8. The simulator's `T` is the batch's emit time
(its engine has no separate matching time), so `T == E` on diffs and bookTickers. All frames travel on one
connection, so they arrive in send order; files rotate hourly by receive time and are gzip'ed with mtime 0.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from lake_pipeline.capture.protocol import wire_symbol
from lake_pipeline.sim.clock import NS_PER_MS, InOrderDelivery
from lake_pipeline.sim.engine import ChunkOutput, RestSnapshot

STREAM_SUFFIXES = ("@trade", "@depth@100ms", "@bookTicker")
NS_PER_HOUR = 3_600 * 10**9
REST_SNAPSHOT_KEY = "<rest snapshot>"
"""Frame-count key of REST snapshot lines (the live capture's session.json uses the same)."""
_RANK_TRADE, _RANK_BOOKTICKER, _RANK_DEPTH = 0, 1, 2


def decimal_strings(units: pl.Expr, unit_e8: int, decimals: int = 8) -> pl.Expr:
    """int ticks/lots -> Binance's decimal strings: spot's 8 decimals ("61837.63000000"), or `decimals` (USD-M
    "61800.20"; `unit_e8` must be a multiple of 10^(8 - decimals))."""
    v = units * unit_e8
    frac = (v % 10**8) // 10 ** (8 - decimals)
    return pl.concat_str([(v // 10**8).cast(pl.Utf8), pl.lit("."), frac.cast(pl.Utf8).str.zfill(decimals)])


def _levels_json(levels: np.ndarray, tick_e8: int, lot_e8: int, px_dec: int = 8, qty_dec: int = 8) -> str:
    return ",".join(f'["{_dec(int(p) * tick_e8, px_dec)}","{_dec(int(q) * lot_e8, qty_dec)}"]' for p, q in levels)


def _dec(e8: int, decimals: int = 8) -> str:
    return f"{e8 // 10**8}.{(e8 % 10**8) // 10 ** (8 - decimals):0{decimals}d}"


def _decimals(unit_e8: int) -> int:
    """Decimals of a unit given in 1e-8 (0.1 -> 1, 0.001 -> 3)."""
    d = 8
    while d > 0 and unit_e8 % 10 ** (9 - d) == 0:
        d -= 1
    return d


def frame_file_name(hour_ns: int) -> str:
    return f"frames-{datetime.fromtimestamp(hour_ns // 10**9, UTC):%Y%m%dT%H%M%SZ}.jsonl.gz"


@dataclass
class GoldenFeed:
    """Accumulates the frames of consecutive chunks and writes hourly files into `directory`."""

    directory: Path
    symbol: str  # lake form, e.g. BTC-USDT
    tick_e8: int
    lot_e8: int
    delivery: InOrderDelivery
    rng: np.random.Generator
    end_ms: int  # frames sent at or after this exchange time are not captured
    futures: bool = False  # USD-M payloads (module docstring)
    frames: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    first_ns: int | None = None
    last_ns: int | None = None
    _pending: pl.DataFrame | None = None
    _snapshot_wait: tuple[RestSnapshot, int] | None = None  # (snapshot, u of the diff holding its L)
    _snapshot_line: tuple[int, str] | None = None
    _out: gzip.GzipFile | None = None
    _raw: object = None
    _hour: int | None = None

    def __post_init__(self) -> None:
        self.wire = wire_symbol(self.symbol)  # BTC-USDT and BTC-USDT-PERP are both BTCUSDT on the wire
        self.prefix = self.wire.lower()
        self.frames = {self.prefix + s: 0 for s in STREAM_SUFFIXES} | {REST_SNAPSHOT_KEY: 0}
        self.px_dec = max(_decimals(self.tick_e8), 2) if self.futures else 8
        self.qty_dec = _decimals(self.lot_e8) if self.futures else 8
        self._last_u: int | None = None  # u of the last diff built (USD-M `pu` of the next)

    def _px(self, col: str) -> pl.Expr:
        return decimal_strings(pl.col(col), self.tick_e8, self.px_dec)

    def _qty(self, col: str) -> pl.Expr:
        return decimal_strings(pl.col(col), self.lot_e8, self.qty_dec)

    @property
    def streams(self) -> list[str]:
        return [self.prefix + s for s in STREAM_SUFFIXES]

    # -- frame building --------------------------------------------------------------------------------------
    def _trade_frames(self, chunk: ChunkOutput, fill_e_ms: np.ndarray) -> pl.DataFrame:
        f = chunk.fills
        df = pl.DataFrame({"T": f[:, 0], "p": f[:, 1], "q": f[:, 2], "buy": f[:, 3] == 1, "t": f[:, 4],
                           "E": fill_e_ms})
        maker = pl.when(pl.col("buy")).then(pl.lit("false")).otherwise(pl.lit("true"))  # m: buyer is maker
        if self.futures:  # {"e","E","T","s","t","p","q","X","m"} as in the real USD-M recording
            line = pl.concat_str([
                pl.lit(f'{{"stream":"{self.prefix}@trade","data":{{"e":"trade","E":'), pl.col("E").cast(pl.Utf8),
                pl.lit(',"T":'), pl.col("T").cast(pl.Utf8), pl.lit(f',"s":"{self.wire}","t":'),
                pl.col("t").cast(pl.Utf8), pl.lit(',"p":"'), self._px("p"), pl.lit('","q":"'), self._qty("q"),
                pl.lit('","X":"MARKET","m":'), maker, pl.lit("}}"),
            ])
        else:
            line = pl.concat_str([
                pl.lit(f'{{"stream":"{self.prefix}@trade","data":{{"e":"trade","E":'), pl.col("E").cast(pl.Utf8),
                pl.lit(f',"s":"{self.wire}","t":'), pl.col("t").cast(pl.Utf8),
                pl.lit(',"p":"'), self._px("p"), pl.lit('","q":"'), self._qty("q"),
                pl.lit('","T":'), pl.col("T").cast(pl.Utf8), pl.lit(',"m":'), maker, pl.lit(',"M":true}}'),
            ])
        return df.select(send=pl.col("E") * NS_PER_MS, rank=pl.lit(_RANK_TRADE), seq=pl.col("t"), line=line)

    def _bookticker_frames(self, chunk: ChunkOutput) -> pl.DataFrame:
        b = chunk.bookticker
        df = pl.DataFrame({"u": b[:, 0], "ms": b[:, 1], "bp": b[:, 2], "bq": b[:, 3], "ap": b[:, 4], "aq": b[:, 5]})
        head = '{"e":"bookTicker","u":' if self.futures else '{"u":'
        tail = [pl.lit('","T":'), pl.col("ms").cast(pl.Utf8), pl.lit(',"E":'), pl.col("ms").cast(pl.Utf8),
                pl.lit("}}")] if self.futures else [pl.lit('"}}')]
        line = pl.concat_str([
            pl.lit(f'{{"stream":"{self.prefix}@bookTicker","data":{head}'), pl.col("u").cast(pl.Utf8),
            pl.lit(f',"s":"{self.wire}","b":"'), self._px("bp"), pl.lit('","B":"'), self._qty("bq"),
            pl.lit('","a":"'), self._px("ap"), pl.lit('","A":"'), self._qty("aq"), *tail,
        ])
        return df.select(send=pl.col("ms") * NS_PER_MS, rank=pl.lit(_RANK_BOOKTICKER), seq=pl.col("u"), line=line)

    def _depth_frames(self, chunk: ChunkOutput, send_ms: np.ndarray) -> pl.DataFrame:
        n_rows = np.diff(np.concatenate(([0], chunk.msg_row_end)))
        rows = pl.DataFrame({"msg": np.repeat(np.arange(chunk.n_messages), n_rows), "bid": chunk.row_is_bid,
                             "p": chunk.row_price, "q": chunk.row_size})
        entries = rows.select(
            "msg", "bid",
            entry=pl.concat_str([pl.lit('["'), self._px("p"), pl.lit('","'), self._qty("q"), pl.lit('"]')]),
        ).group_by("msg", "bid", maintain_order=True).agg(pl.col("entry").str.join(","))
        msgs = pl.DataFrame({"msg": np.arange(chunk.n_messages), "E": chunk.msg_e_ms, "U": chunk.msg_first_uid,
                             "u": chunk.msg_last_uid, "send": send_ms * NS_PER_MS})
        for side, flag in (("b", True), ("a", False)):
            part = entries.filter(pl.col("bid") == flag).select("msg", pl.col("entry").alias(side))
            msgs = msgs.join(part, on="msg", how="left", maintain_order="left")
        if self.futures:  # T (= E here) after E, pu = the previous diff's u (the first: U - 1, ids are contiguous)
            prev = np.concatenate(([chunk.msg_first_uid[0] - 1 if self._last_u is None else self._last_u],
                                   chunk.msg_last_uid[:-1])) if chunk.n_messages else np.zeros(0, np.int64)
            if chunk.n_messages:
                self._last_u = int(chunk.msg_last_uid[-1])
            msgs = msgs.with_columns(pu=pl.Series(prev, dtype=pl.Int64))
            times = [pl.col("E").cast(pl.Utf8), pl.lit(',"T":'), pl.col("E").cast(pl.Utf8)]
            ids = [pl.lit(',"u":'), pl.col("u").cast(pl.Utf8), pl.lit(',"pu":'), pl.col("pu").cast(pl.Utf8)]
        else:
            times = [pl.col("E").cast(pl.Utf8)]
            ids = [pl.lit(',"u":'), pl.col("u").cast(pl.Utf8)]
        line = pl.concat_str([
            pl.lit(f'{{"stream":"{self.prefix}@depth@100ms","data":{{"e":"depthUpdate","E":'), *times,
            pl.lit(f',"s":"{self.wire}","U":'), pl.col("U").cast(pl.Utf8), *ids,
            pl.lit(',"b":['), pl.col("b").fill_null(""), pl.lit('],"a":['), pl.col("a").fill_null(""),
            pl.lit("]}}"),
        ])
        return msgs.select("send", rank=pl.lit(_RANK_DEPTH), seq=pl.col("u"), line=line)

    # -- public --------------------------------------------------------------------------------------------------
    def add_chunk(self, chunk: ChunkOutput, fill_e_ms: np.ndarray, depth_send_ms: np.ndarray,
                  snapshot: RestSnapshot | None, first_msg_index: int) -> None:
        """Deliver this chunk's frames (those sent before the chunk's end are final; the rest wait)."""
        parts = [self._trade_frames(chunk, fill_e_ms), self._bookticker_frames(chunk),
                 self._depth_frames(chunk, depth_send_ms)]
        if self._pending is not None:
            parts.insert(0, self._pending)
        frames = pl.concat([p.with_columns(pl.col("rank").cast(pl.Int64)) for p in parts])
        frames = frames.filter(pl.col("send") < self.end_ms * NS_PER_MS).sort("send", "rank", "seq")
        cut = chunk.end_ms * NS_PER_MS
        ready = frames.filter(pl.col("send") < cut)
        self._pending = frames.filter(pl.col("send") >= cut)
        if snapshot is not None and self._snapshot_wait is None:
            self._snapshot_wait = (snapshot, int(chunk.msg_last_uid[snapshot.message_index - first_msg_index]))
        self._deliver(ready)

    def _deliver(self, ready: pl.DataFrame) -> None:
        recv = self.delivery.receive(ready["send"].to_numpy())
        ready = ready.with_columns(recv=pl.Series(recv, dtype=pl.Int64))
        if self._snapshot_wait is not None and self._snapshot_line is None:
            snap, u = self._snapshot_wait
            diff = ready.filter((pl.col("rank") == _RANK_DEPTH) & (pl.col("seq") == u))
            if diff.height:
                self._snapshot_line = self._snapshot_frame(snap, int(diff["recv"][0]),
                                                           int(diff["send"][0]) // NS_PER_MS)
        self._write(ready)

    def _snapshot_frame(self, snap: RestSnapshot, diff_recv: int, diff_e_ms: int) -> tuple[int, str]:
        """The REST body arrives 30–80 ms after the diff whose [U, u] holds its lastUpdateId (USD-M: with `E`, the
        reply time on the exchange clock, and `T`, that diff's time)."""
        wait_ms = int(self.rng.integers(30, 81))
        recv = diff_recv + wait_ms * NS_PER_MS + int(self.rng.integers(0, NS_PER_MS))
        times = f'"E":{diff_e_ms + wait_ms},"T":{diff_e_ms},' if self.futures else ""
        levels = (self.tick_e8, self.lot_e8, self.px_dec, self.qty_dec)
        body = (f'{{"lastUpdateId":{snap.last_update_id},{times}"bids":[{_levels_json(snap.bids, *levels)}],'
                f'"asks":[{_levels_json(snap.asks, *levels)}]}}')
        return recv, body

    def _write(self, ready: pl.DataFrame) -> None:
        if ready.height == 0:
            return
        counts = ready.group_by("rank").len()
        for rank, n in zip(counts["rank"], counts["len"], strict=True):
            self.frames[self.prefix + STREAM_SUFFIXES[{_RANK_TRADE: 0, _RANK_DEPTH: 1, _RANK_BOOKTICKER: 2}[rank]]] += n
        recv = ready["recv"].to_numpy()
        lines = ready["line"].to_list()
        due = self._snapshot_line is not None and self.frames[REST_SNAPSHOT_KEY] == 0
        if due and recv[-1] >= self._snapshot_line[0]:
            k = int(np.searchsorted(recv, self._snapshot_line[0], side="right"))
            recv = np.insert(recv, k, self._snapshot_line[0])
            lines.insert(k, self._snapshot_line[1])
            self.frames[REST_SNAPSHOT_KEY] = 1
        self._emit(recv, lines)

    def _emit(self, recv: np.ndarray, lines: list[str]) -> None:
        """Append `<recv_ns> <frame>` lines (already in receive order) to the hourly files."""
        hours = recv // NS_PER_HOUR
        bounds = np.flatnonzero(np.diff(hours)) + 1
        for lo, hi in zip(np.concatenate(([0], bounds)), np.concatenate((bounds, [len(recv)])), strict=True):
            self._file_for(int(hours[lo]))
            text = "".join(f"{r} {line}\n" for r, line in zip(recv[lo:hi].tolist(), lines[lo:hi], strict=True))
            self._out.write(text.encode())
        self.first_ns = int(recv[0]) if self.first_ns is None else self.first_ns
        self.last_ns = int(recv[-1])

    def _file_for(self, hour: int) -> None:
        if hour == self._hour:
            return
        self._close_file()
        name = frame_file_name(hour * NS_PER_HOUR)
        self._raw = open(self.directory / name, "wb")  # noqa: SIM115 - closed in _close_file
        self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=3)
        self._hour = hour
        self.files.append(name)

    def _close_file(self) -> None:
        if self._out is not None:
            self._out.close()
            self._raw.close()
            self._out = None

    def close(self, session: dict) -> dict:
        """Flush the frames still waiting, close the last file and write `session.json` (the live capture's keys)."""
        if self._pending is not None and self._pending.height:
            pending, self._pending = self._pending, None
            self._deliver(pending)
        if self._snapshot_line is not None and self.frames[REST_SNAPSHOT_KEY] == 0:  # arrived after the last frame
            self._emit(np.array([self._snapshot_line[0]], dtype=np.int64), [self._snapshot_line[1]])
            self.frames[REST_SNAPSHOT_KEY] = 1
        self._close_file()
        meta = {
            "format": 1,
            **session,
            "symbol": self.symbol,
            "streams": self.streams,
            "start_ns": self.first_ns,
            "end_ns": self.last_ns,
            "duration_s": round((self.last_ns - self.first_ns) / 1e9, 3) if self.first_ns is not None else 0.0,
            "status": "complete",
            "frames": {"total": sum(self.frames.values()), "per_stream": dict(sorted(self.frames.items()))},
            # same shape as the live capture's file entries (capture/storage.FileInfo)
            "files": [{"path": name, "bytes": (self.directory / name).stat().st_size, "encrypted": False}
                      for name in self.files],
            "line_format": "<recv_ns> <raw frame>",
            "rest_snapshot_limit": 1000,
        }
        (self.directory / "session.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return meta
