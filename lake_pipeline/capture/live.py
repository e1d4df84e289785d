"""LiveCapture: record Binance golden samples, spot or USD-M futures (DESIGN §6, research binance.md §1–§2, §6).

One combined-stream WebSocket (`@trade`, `@depth@100ms`, `@bookTicker`, optionally `@aggTrade`) for one symbol, on
the endpoints of the venue (`CaptureConfig.exchange`: `BINANCE` spot, `BINANCE_FUTURES` USD-M with its
`/fapi/v1` REST paths, weights and `pu` sync rule from `capture.protocol` / `capture.sync`). Frames are stored as
received, so USD-M's `T` (transaction time) stays beside `E` in every diff, trade, bookTicker and snapshot.
Every text frame is stamped (`time.time_ns()`, `time.monotonic_ns()`) the moment it is read and handed to the
storage thread through a bounded queue, together with the REST snapshots, so the reader never waits for gzip,
encryption or the disk. The same loop keeps a live book (`BookTracker`: the shared sync over the shared engine),
resyncs on gaps while keeping the socket and the buffer, and measures clock, latency, regimes and stream physics.

Reconnects: jittered exponential backoff after failures; right away after `serverShutdown`; after a clean close
too (a server closing cleanly is not "done" — peer_lessons trap 6), never in a tight loop (the delay only resets
once a connection delivered frames), and within Binance's 300 connection attempts per 5 minutes. A connection
attempt is bounded (`connect_timeout_s`) and gives way to the end of the capture, so an endpoint that never answers
cannot hold the run past its duration.

A capture that recorded no market frame (it never connected, or the peer sent nothing) is `failed`, with an error
that says which; its caller (CLI exit code, Dagster run) fails too, instead of reporting "complete: 0 frames".
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import json
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import aiohttp
from aiohttp import WSMsgType
from loguru import logger

from lake_pipeline.capture.book_tracker import BookTracker
from lake_pipeline.capture.clock import ClockTracker, LatencyStats, binance_time_sample, ntp_sample
from lake_pipeline.capture.encryption import DEFAULT_CHUNK_BYTES
from lake_pipeline.capture.keys import CaptureKey
from lake_pipeline.capture.physics import PhysicsMonitor
from lake_pipeline.capture.protocol import VenueProtocol, venue_protocol, wire_symbol
from lake_pipeline.capture.regime import RegimeConfig, RegimeDetector, overlapping
from lake_pipeline.capture.rest import RestClient, RestError
from lake_pipeline.capture.session_config import DEFAULT_STREAMS
from lake_pipeline.capture.session_log import ConnectionRecord, SessionLog, session_document, write_session_json
from lake_pipeline.capture.storage import RotatingFrameWriter, StorageWorker, utc_date, utc_stamp
from lake_pipeline.capture.sync import DiffResult, rule_for
from lake_pipeline.config import SymbolSpec, symbol_spec
from lake_pipeline.instrument import Instrument
from lake_pipeline.paths import golden_dir

SNAPSHOT_COUNT_KEY = "<rest snapshot>"
_TICKER_U = re.compile(r'"u":(\d+)')
CONTROL_COUNT_KEY = "<control>"
MAX_ATTEMPTS_PER_5MIN = 300


def ticker_update_id(frame: str) -> int:
    """`u` of a bookTicker frame without decoding the JSON (73 % of all frames are bookTickers)."""
    m = _TICKER_U.search(frame)
    if m is None:
        data = json.loads(frame)
        return int(data.get("data", data)["u"])
    return int(m[1])


def binance_symbol(symbol: str, protocol: VenueProtocol) -> str:
    """`BTC-USDT` → `BTCUSDT`, `BTC-USDT-PERP` → `BTCUSDT` on USD-M; a `-PERP` symbol on spot is an error."""
    if symbol.upper().endswith("-PERP") and not protocol.diff_has_prev_id:
        raise ValueError(f"{symbol}: a -PERP symbol trades on USD-M futures (BINANCE_FUTURES), not on "
                         f"{protocol.exchange} spot")
    return wire_symbol(symbol.replace("/", "-"))


@dataclass
class CaptureConfig:
    symbol: str  # pipeline form, e.g. "BTC-USDT"
    data_root: Path
    duration_s: float = 3600.0
    exchange: str = ""  # BINANCE | BINANCE_FUTURES; "" = the symbol's venue (`-PERP` symbols are USD-M)
    ws_url: str = ""  # "" = the venue's (wss://stream.binance.com:9443, wss://fstream.binance.com)
    rest_url: str = ""  # "" = the venue's (https://api.binance.com, https://fapi.binance.com)
    streams: tuple[str, ...] = DEFAULT_STREAMS  # stream suffixes after "<symbol>@"
    key: CaptureKey | None = None  # None = plaintext (only when explicitly allowed by the caller)
    rotate_s: float = 3600.0
    gzip_level: int = 6
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    flush_s: float = 5.0
    max_queue: int = 200_000
    snapshot_limit: int = 5000
    min_snapshot_interval_s: float = 1.0
    reconnect_base_s: float = 0.5
    reconnect_cap_s: float = 30.0
    silence_timeout_s: float = 30.0  # no frame and no ping for this long: the connection is dead
    connect_timeout_s: float = 10.0  # one WebSocket connection attempt (TCP, TLS, upgrade)
    time_sample_s: float = 60.0
    ntp_interval_s: float = 3600.0
    ntp_servers: tuple[str, ...] = ("pool.ntp.org",)
    session_id: str | None = None
    session_name: str | None = None
    regime_intent: str | None = None
    regime: RegimeConfig = field(default_factory=RegimeConfig)
    spec: SymbolSpec | None = None  # tick/lot; default: config, else the exchange's exchangeInfo

    @property
    def instrument(self) -> Instrument:
        return Instrument(self.exchange, self.symbol)


@dataclass
class CaptureResult:
    session_id: str
    status: str  # "complete" | "failed"
    frames: int
    files: list[dict]
    session_json: list[Path]
    document: dict


class LiveCapture:
    """`await LiveCapture(cfg).run()` records for `cfg.duration_s` (or until `stop()`), then writes session.json."""

    def __init__(self, cfg: CaptureConfig) -> None:
        self.cfg = cfg
        cfg.exchange = Instrument.parse(cfg.symbol, cfg.exchange or None).exchange
        self.protocol = venue_protocol(cfg.exchange)
        cfg.ws_url = cfg.ws_url or self.protocol.ws_base
        cfg.rest_url = cfg.rest_url or self.protocol.rest_base
        self.bsym = binance_symbol(cfg.symbol, self.protocol)
        self.ssym = self.bsym.lower()
        self.session_id = cfg.session_id or f"{utc_stamp(time.time_ns())}-{secrets.token_hex(3)}"
        self.stream_names = [f"{self.ssym}@{s}" for s in cfg.streams]
        self.log = SessionLog(self.session_id, cfg.exchange, cfg.symbol, self.stream_names)
        self.clock = ClockTracker()
        self.latency = LatencyStats()
        self.physics = PhysicsMonitor(self.protocol)
        self.regimes = RegimeDetector(cfg.regime)
        self.tracker: BookTracker | None = None
        self._dirs: dict[str, Path] = {}
        self._stop = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._snapshot_task: asyncio.Task | None = None
        self._shutdown_seen = False
        self._last_trade_id = 0
        self._max_depth_u = 0
        self._attempts: collections.deque[float] = collections.deque()
        self._last_rx = 0.0  # monotonic seconds of the last frame or ping
        self._diff_recv: list[int] = []  # receive wall ns and E ms of each new diff: files -> exchange time
        self._diff_e: list[int] = []
        depth = [s for s in cfg.streams if s.startswith("depth") and not s[5:6].isdigit()]
        if len(depth) != 1:
            raise ValueError(f"capture streams {cfg.streams}: exactly one diff-depth stream is needed for the book")
        self._depth_stream = f"{self.ssym}@{depth[0]}"

    # ------------------------------------------------------------------------------------------------ public
    def stop(self) -> None:
        """Ask the capture to finish (thread-unsafe; from another thread use loop.call_soon_threadsafe)."""
        self._stop.set()

    @property
    def frames(self) -> int:
        return sum(self.log.frames.values())

    @property
    def stream_frames(self) -> int:
        """Market frames of the subscribed streams (not snapshots, control replies or serverShutdown)."""
        return sum(self.log.frames[s] for s in self.stream_names)

    def _no_frame_reason(self) -> str:
        url = self._url()
        if not self.log.connections:
            failures = self.log.connect_failures
            last = f"; last error: {failures[-1]['error']}" if failures else ""
            return (f"no frame recorded: could not connect to {url} in {self.cfg.duration_s:g} s "
                    f"({len(failures)} failed attempts{last})")
        return (f"no frame recorded: connected {len(self.log.connections)} time(s) to {url} but it sent no market "
                f"frame of {', '.join(self.stream_names)} in {self.cfg.duration_s:g} s")

    def session_dir(self, date: str) -> Path:
        if date not in self._dirs:
            self._dirs[date] = golden_dir(self.cfg.data_root, self.cfg.instrument.on(date)) / \
                f"session={self.session_id}"
        return self._dirs[date]

    async def run(self) -> CaptureResult:
        cfg = self.cfg
        writer = RotatingFrameWriter(self.session_dir, cfg.data_root, cfg.key, cfg.rotate_s, cfg.gzip_level,
                                     cfg.chunk_bytes)
        self.storage = StorageWorker(writer, cfg.max_queue, cfg.flush_s)
        status, error = "complete", ""
        logger.info("capture {} of {} for {:.0f} s into {} ({})", self.session_id, self.stream_names,
                    cfg.duration_s, cfg.data_root / "golden", "encrypted" if cfg.key else "PLAINTEXT")
        tasks: list[asyncio.Task] = []
        async with aiohttp.ClientSession() as http:
            self.http = http
            self.rest = RestClient(http, cfg.rest_url, weight_limit=self.protocol.weight_limit_1m,
                                   min_snapshot_interval_s=cfg.min_snapshot_interval_s, protocol=self.protocol)
            try:
                spec = cfg.spec or symbol_spec(cfg.instrument) or await self._spec_from_exchange()
                self.tracker = BookTracker(spec, rule_for(cfg.exchange))
                tasks = [asyncio.create_task(self._time_sampler(), name="capture-time"),
                         asyncio.create_task(self._ntp_sampler(), name="capture-ntp"),
                         asyncio.create_task(self._stop_after(cfg.duration_s), name="capture-timer")]
                await self._connection_loop()
            except BaseException as exc:  # a run termination (KeyboardInterrupt, cancel) still publishes files
                status = "failed" if isinstance(exc, Exception) else "interrupted"
                error = f"{type(exc).__name__}: {exc}"
                logger.error("capture {} {}: {}", self.session_id, status, error)
                raise
            finally:
                self._stop.set()
                for task in [*tasks, self._snapshot_task]:
                    if task is not None:
                        task.cancel()
                await asyncio.gather(*[t for t in [*tasks, self._snapshot_task] if t], return_exceptions=True)
                self.result = await self._finish(status, error)
        return self.result

    # ------------------------------------------------------------------------------------------------ network
    def _url(self) -> str:
        return f"{self.cfg.ws_url.rstrip('/')}/stream?streams={'/'.join(self.stream_names)}"

    def _backoff(self, failures: int) -> float:
        upper = min(self.cfg.reconnect_cap_s, self.cfg.reconnect_base_s * 2 ** failures)
        return upper / 2 + random.uniform(0, upper / 2)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            try:
                await asyncio.wait_for(self._stop.wait(), seconds)
            except TimeoutError:
                pass

    async def _respect_attempt_limit(self) -> None:
        now = time.monotonic()
        while self._attempts and self._attempts[0] < now - 300:
            self._attempts.popleft()
        if len(self._attempts) >= MAX_ATTEMPTS_PER_5MIN:
            await self._sleep(self._attempts[0] + 300 - now)
        self._attempts.append(time.monotonic())

    async def _connection_loop(self) -> None:
        failures = 0
        url = self._url()
        while not self._stop.is_set():
            await self._respect_attempt_limit()
            if self._stop.is_set():
                break
            try:
                ws = await self._connect(url)
                if ws is None:  # the capture ended while connecting
                    break
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                failures += 1
                delay = self._backoff(failures)
                self.log.add_connect_failure(url, f"{type(exc).__name__}: {exc}", delay)
                logger.warning("connect to {} failed ({}); retrying in {:.2f} s", url, exc, delay)
                await self._sleep(delay)
                continue
            conn = ConnectionRecord(len(self.log.connections) + 1, url, time.time_ns())
            self.log.connections.append(conn)
            self._ws, self._shutdown_seen = ws, False
            logger.info("connected ({}): {}", conn.id, url)
            watchdog = asyncio.create_task(self._watchdog(ws, conn), name="capture-watchdog")
            try:
                reason = await self._read(ws, conn)
                conn.reason = conn.reason or reason  # the watchdog names a silent peer before closing it
            finally:
                watchdog.cancel()
                if not ws.closed:
                    await ws.close()
                conn.closed_ns = time.time_ns()
                conn.close_code = conn.close_code if conn.close_code is not None else ws.close_code
                self._ws = None
            if self._stop.is_set():
                break
            failures = 0 if conn.frames else failures + 1
            delay = 0.0 if self._shutdown_seen else self._backoff(failures)
            self.log.add_reconnect(conn.reason, delay)
            logger.warning("connection {} ended: {}; reconnecting in {:.2f} s", conn.id, conn.reason, delay)
            await self._sleep(delay)

    async def _connect(self, url: str) -> aiohttp.ClientWebSocketResponse | None:
        """One connection attempt, at most `connect_timeout_s`; None when the capture is stopped meanwhile."""
        attempt = asyncio.ensure_future(self.http.ws_connect(url, autoping=False, heartbeat=None,
                                                             max_msg_size=16 << 20))
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({attempt, stopped}, timeout=self.cfg.connect_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if attempt in done:
            return attempt.result()
        attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)
        if self._stop.is_set():
            self.log.add_connect_failure(url, "no answer before the capture ended", 0.0)
            return None
        raise TimeoutError(f"no answer within {self.cfg.connect_timeout_s:g} s")

    async def _watchdog(self, ws: aiohttp.ClientWebSocketResponse, conn: ConnectionRecord) -> None:
        """Close a connection that delivered no frame and no ping for `silence_timeout_s` (a dead peer sends
        nothing, not even a close). A per-receive timeout would cost ~10 µs a frame; this costs nothing."""
        limit = self.cfg.silence_timeout_s
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            idle = time.monotonic() - self._last_rx
            if idle >= limit:
                conn.reason = f"silent for {idle:.1f} s (no frame, no ping)"
                await ws.close(code=1001, message=b"silent peer")
                return

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, conn: ConnectionRecord) -> str:
        submit = self.storage.submit
        route = self._route
        self._last_rx = time.monotonic()
        while True:
            msg = await ws.receive()
            wall, mono = time.time_ns(), time.monotonic_ns()
            self._last_rx = mono / 1e9
            kind = msg.type
            if kind is WSMsgType.TEXT:
                submit(wall, mono, msg.data)
                conn.frames += 1
                try:
                    route(msg.data, wall)
                except (ValueError, KeyError, TypeError, IndexError) as exc:  # stored already; keep recording
                    self._frame_error(exc, msg.data)
                if not conn.frames % 64:  # receive() does not suspend while frames are buffered: let the
                    await asyncio.sleep(0)  # snapshot and clock tasks run during bursts
                if self._shutdown_seen:
                    await ws.close()
                    return "serverShutdown"
            elif kind is WSMsgType.PING:
                await ws.pong(msg.data)
                conn.pings += 1
            elif kind in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                if self._stop.is_set():
                    return "capture finished"
                # the code the server sent (ws.close_code turns 1006 when the server drops TCP before our reply)
                code = msg.data if kind is WSMsgType.CLOSE else ws.close_code
                conn.close_code = code
                return f"closed by server (code {code}{', ' + str(msg.extra) if msg.extra else ''})"
            elif kind is WSMsgType.ERROR:
                return f"connection error: {ws.exception()!r}"
            elif kind is WSMsgType.BINARY:
                self.log.notes.append(f"unexpected binary frame of {len(msg.data)} bytes ignored")

    # ------------------------------------------------------------------------------------------------ frames
    def _route(self, text: str, wall: int) -> None:
        if not text.startswith('{"stream":"'):
            self.log.frames[CONTROL_COUNT_KEY] += 1
            if '"error"' in text:
                logger.warning("server error frame: {}", text[:200])
            return
        stream = text[11 : text.find('"', 11)]
        self.log.frames[stream] += 1
        if stream == self._depth_stream:
            self._on_depth(stream, json.loads(text)["data"], wall)
            return
        tail = stream[len(self.ssym) + 1 :] if stream.startswith(self.ssym + "@") else stream
        if tail == "bookTicker":
            assert self.tracker is not None
            self.tracker.on_ticker(ticker_update_id(text), text)
        elif tail == "trade":
            self._on_trade(stream, json.loads(text)["data"], wall)
        elif tail == "aggTrade":
            data = json.loads(text)["data"]
            self.physics.observe(stream, data["E"])
            self.latency.add(stream, wall, data["E"])
        elif stream == "!serverShutdown":
            logger.warning("serverShutdown received: reconnecting now")
            self._shutdown_seen = True

    def _frame_error(self, exc: Exception, frame: str) -> None:
        """A frame the capture cannot interpret: it is on disk as received; count it, say so, resync the book if
        it may have been a diff (the next diff then shows the gap)."""
        self.log.frames["<unreadable frame>"] += 1
        if len(self.log.frame_errors) < 50:
            self.log.frame_errors.append({"wall_ns": time.time_ns(), "error": f"{type(exc).__name__}: {exc}",
                                          "frame": frame[:200]})
        logger.error("unreadable frame ({}: {}): {}", type(exc).__name__, exc, frame[:200])

    def _on_depth(self, stream: str, data: dict, wall: int) -> None:
        tracker = self.tracker
        assert tracker is not None
        event_ms = data["E"]
        u = data["u"]
        if u > self._max_depth_u:  # first sight of these ids (not a duplicate or a replayed one)
            self._max_depth_u = u
            self._diff_recv.append(wall)
            self._diff_e.append(event_ms)
            self.physics.observe(stream, event_ms)
            self.latency.add(stream, wall, event_ms)
            self.regimes.observe_events(event_ms, len(data["b"]) + len(data["a"]))
        result = tracker.on_diff(data, wall)
        if result is DiffResult.APPLIED:
            bid, ask = tracker.book.best_bid()[0], tracker.book.best_ask()[0]
            if bid and ask:
                self.regimes.observe_spread(event_ms, int(ask - bid))
        if tracker.needs_snapshot and (self._snapshot_task is None or self._snapshot_task.done()):
            self._snapshot_task = asyncio.create_task(self._snapshot_loop(), name="capture-snapshot")

    def _on_trade(self, stream: str, data: dict, wall: int) -> None:
        t, event_ms = data["t"], data["E"]
        last = self._last_trade_id
        if last and t != last + 1:
            if t > last + 1:
                self.log.trade_gaps.append({"recv_wall_ns": wall, "from_id": last + 1, "to_id": t - 1,
                                            "missing_ids": t - last - 1})
                logger.warning("trade ids {}..{} missing", last + 1, t - 1)
            else:
                self.log.frames["<trade out of order or duplicate>"] += 1
                return
        self._last_trade_id = t
        self.physics.observe(stream, event_ms)
        self.latency.add(stream, wall, event_ms)
        self.regimes.observe_events(event_ms, 1)

    # ------------------------------------------------------------------------------------------------ REST tasks
    async def _snapshot_loop(self) -> None:
        tracker = self.tracker
        assert tracker is not None
        failures = 0
        while not self._stop.is_set() and tracker.needs_snapshot:
            try:
                reply = await self.rest.depth(self.bsym, self.cfg.snapshot_limit)
            except RestError as exc:
                failures += 1
                if exc.status not in (429, 418):  # rate limits wait in the client by Retry-After
                    await self._sleep(self._backoff(failures))
                continue
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                failures += 1
                logger.warning("depth snapshot request failed: {!r}", exc)
                await self._sleep(self._backoff(failures))
                continue
            wall, mono = time.time_ns(), time.monotonic_ns()  # its place in the capture's own sequence
            self.storage.submit(wall, mono, reply.text)
            self.log.frames[SNAPSHOT_COUNT_KEY] += 1
            tracker.on_snapshot(reply.text)

    async def _time_sampler(self) -> None:
        while not self._stop.is_set():
            try:
                t_send, server_ms, t_recv = await self.rest.server_time()
                self.clock.add(binance_time_sample(t_send, server_ms, t_recv))
            except (RestError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                logger.warning("server time sample failed: {!r}", exc)
            await self._sleep(self.cfg.time_sample_s)

    async def _ntp_sampler(self) -> None:
        while self.cfg.ntp_servers and not self._stop.is_set():
            for server in self.cfg.ntp_servers:
                sample = await asyncio.to_thread(ntp_sample, server)
                self.clock.add(sample)
                if not sample.error:
                    break
            await self._sleep(self.cfg.ntp_interval_s)

    async def _stop_after(self, seconds: float) -> None:
        await self._sleep(seconds)
        self._stop.set()
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()

    async def _spec_from_exchange(self) -> SymbolSpec:
        """Tick from exchangeInfo PRICE_FILTER; lot = the wire precision: spot 10^-baseAssetPrecision (book sizes can
        be finer than today's LOT_SIZE step: older resting orders keep theirs), USD-M 10^-quantityPrecision."""
        reply = await self.rest.get(self.protocol.exchange_info_path, {"symbol": self.bsym},
                                    self.protocol.exchange_info_weight)
        info = json.loads(reply.text)
        entry = next((s for s in info.get("symbols", []) if s.get("symbol") == self.bsym), None)
        if entry is None:
            raise ValueError(f"{self.cfg.symbol}: not listed in {self.cfg.rest_url} exchangeInfo")
        tick = next(f["tickSize"] for f in entry["filters"] if f["filterType"] == "PRICE_FILTER")
        precision = entry.get("quantityPrecision") if self.protocol.diff_has_prev_id else None
        lot = Decimal(1).scaleb(-int(precision if precision is not None else entry.get("baseAssetPrecision", 8)))
        logger.info("{}: tick {} and lot {} from exchangeInfo", self.cfg.symbol, Decimal(tick).normalize(), lot)
        return SymbolSpec(self.cfg.symbol, Decimal(tick).normalize(), lot, "exchangeInfo")

    def _exchange_span(self, first_recv_ns: int, last_recv_ns: int) -> tuple[int, int] | None:
        """Exchange-time span (E, ms) of the diffs received in [first, last]: maps a file onto regime windows
        whatever the clock offset or replay speed. None when no diff arrived in the file's span."""
        recv = self._diff_recv
        lo, hi = bisect.bisect_left(recv, first_recv_ns), bisect.bisect_right(recv, last_recv_ns)
        if lo >= hi:
            return None
        return min(self._diff_e[lo:hi]), max(self._diff_e[lo:hi])

    # ------------------------------------------------------------------------------------------------ finish
    async def _finish(self, status: str, error: str) -> CaptureResult:
        files = []
        try:
            files = await asyncio.to_thread(self.storage.close)
        except Exception as exc:  # noqa: BLE001 - the storage failure is the session's failure
            status, error = "failed", error or f"{type(exc).__name__}: {exc}"
            logger.error("capture storage: {}", exc)
            files = self.storage.writer.files
        if status == "complete" and not self.stream_frames:
            status, error = "failed", self._no_frame_reason()
            logger.error("capture {} failed: {}", self.session_id, error)
        ended = time.time_ns()
        offset = self.clock.offset_ns()
        segments = self.regimes.segments()
        files_by_date: dict[str, list[dict]] = {}
        for f in files:
            span = self._exchange_span(f.first_recv_ns, f.last_recv_ns)
            f.regimes = overlapping(segments, *span) if span else []
            date = utc_date(f.first_recv_ns)
            self.session_dir(date)
            files_by_date.setdefault(date, []).append(f.to_dict())
        if not self._dirs:
            self.session_dir(utc_date(self.log.started_ns))
        book = self.tracker.report() if self.tracker else {}
        gaps, resyncs = book.pop("gaps", []), book.pop("resyncs", [])
        extra = {
            "exchange_symbol": self.bsym,
            "rest_paths": {"depth": self.protocol.depth_path, "time": self.protocol.time_path},
            "sync_rule": rule_for(self.cfg.exchange).name,
            "ws_url": self.cfg.ws_url,
            "rest_url": self.cfg.rest_url,
            "session_name": self.cfg.session_name,
            "regime_intent": self.cfg.regime_intent,
            "regimes": segments,
            "encryption": ({"algorithm": "AES-256-GCM", "container": "LKCAPENC v1", "key_id": self.cfg.key.key_id.hex(),
                            "chunk_bytes": self.cfg.chunk_bytes} if self.cfg.key else {"algorithm": "none"}),
            "rotation_s": self.cfg.rotate_s,
            "book": book,
            "gaps": gaps,
            "resyncs": resyncs,
            "rest": self.rest.stats.to_dict() if hasattr(self, "rest") else {},
            "clock": self.clock.to_dict(),
            "latency": self.latency.summary(offset),
            "physics": self.physics.report(),
            "storage": {"max_backlog": self.storage.max_backlog, "queue_capacity": self.cfg.max_queue},
            "spec": self.tracker.spec.to_dict() if self.tracker else None,
        }
        doc = session_document(self.log, ended, status, error, extra)
        written = write_session_json(self._dirs, doc, files_by_date)
        logger.info("capture {} {}: {} frames in {} files, {} reconnects, {} gaps, {} resyncs", self.session_id,
                    status, self.frames, len(files), doc["reconnect_count"], len(doc["gaps"]), len(doc["resyncs"]))
        return CaptureResult(self.session_id, status, self.frames, [f.to_dict() for f in files], written, doc)
