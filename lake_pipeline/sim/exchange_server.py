"""A local exchange server that speaks Binance's market-data protocol, spot or USD-M futures (the venue of the
replayed feed), on loopback (DESIGN §7, research §5, §1.7).

It replays one Feed (a real recording or a simulated session) on a single market timeline shared by every client,
as the real exchange does: a client that is disconnected misses what was pushed meanwhile. WebSocket: combined
`/stream?streams=a/b/c` and raw `/ws/<name>`, control messages, pings with a pong deadline, the 5 messages/s
limit, `timeUnit=MICROSECOND`, serverShutdown. REST: the depth snapshot (`/api/v3/depth`, USD-M `/fapi/v1/depth`
with `E` and `T`) generated at request time from the book the server rebuilds from the stream it pushes, `time`,
`ping`, `exchangeInfo`, the venue's weights, limits and 429/418 (`lake_pipeline.capture.protocol`). USD-M diffs carry
`pu`: a dropped diff breaks that chain, which a client must answer with a resync.
Faults (exchange_faults.Faults) are injected at fixed timeline positions so each test hits the same market moment.

Pacing: frame i is pushed `(recv_i - recv_0) / speed` after the start; `speed=0` pushes as fast as the subscribers
read (and the timeline waits while nobody is subscribed, so "as fast as possible" never outruns the only client).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from loguru import logger

from lake_pipeline.capture.protocol import WEIGHT_HEADER
from lake_pipeline.sim.derived_streams import (
    AggTradeBuilder,
    WindowDiffMerger,
    diff_payload,
    partial_depth,
    to_microseconds,
)
from lake_pipeline.sim.exchange_faults import Faults, ServerTiming
from lake_pipeline.sim.exchange_feed import KIND_DEPTH, KIND_TRADE, Feed, FeedFrame
from lake_pipeline.sim.exchange_info import exchange_info
from lake_pipeline.sim.exchange_limits import (
    MessageRate,
    WeightBudget,
    banned_body,
    too_many_requests_body,
)
from lake_pipeline.sim.exchange_protocol import (
    ProtocolError,
    Subscriptions,
    envelope,
    handle_control,
    parse_stream,
    payload_of,
    shutdown_frame,
)
from lake_pipeline.sim.replay_book import BookCursor, DepthDiff


@dataclass
class ServerStats:
    connections: int = 0
    frames_sent: int = 0  # to all connections together
    refused: int = 0
    frames_emitted: int = 0
    diffs_dropped: int = 0
    diffs_duplicated: int = 0
    disconnects: int = 0
    clean_closes: int = 0
    shutdowns: int = 0
    pong_timeouts: int = 0
    rate_limit_closes: int = 0
    depth_requests: int = 0
    snapshots: list[dict] = field(default_factory=list)  # {"lastUpdateId", "kind", "sent_diff_u"} per 200 reply


@dataclass(eq=False)
class Connection:
    """One client WebSocket: its subscriptions, what it was sent, and its ping/pong and message-rate state."""

    id: int
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    subs: Subscriptions
    micro: bool
    opened: float
    rate: MessageRate
    stats: ServerStats | None = None
    sent: list[str] | None = None
    frames_sent: int = 0
    unanswered_ping: bytes | None = None
    unanswered_since: float = 0.0
    close_reason: str = ""

    async def send(self, text: str) -> None:
        if self.ws.closed:
            return
        try:
            await self.ws.send_str(text)
        except (ConnectionError, RuntimeError):  # the peer went away mid-send; its handler cleans up
            return
        self.frames_sent += 1
        if self.stats is not None:
            self.stats.frames_sent += 1
        if self.sent is not None:
            self.sent.append(text)


class ExchangeServer:
    """The server. `await start()` binds 127.0.0.1:`port` (0 = any free port) and returns the port."""

    def __init__(self, feed: Feed, *, speed: float = 1.0, faults: Faults | None = None,
                 timing: ServerTiming | None = None, host: str = "127.0.0.1", port: int = 0,
                 record_sent: bool = False) -> None:
        self.faults = faults or Faults()
        self.feed = feed = feed.reordered(self.faults.reorder_ms) if self.faults.reorder_ms > 0 else feed
        self.speed = float(speed)
        self.protocol = feed.protocol
        self.timing = (timing or ServerTiming()).for_venue(self.protocol)
        self.host, self.port = host, port
        self.record_sent = record_sent
        self.stats = ServerStats()
        self.connections: dict[int, Connection] = {}
        self.closed_connections: list[Connection] = []
        self.book = feed.initial_book.copy()
        self._lag = BookCursor(feed.initial_book, feed.diffs, -self.faults.stale_lag_diffs)
        self._lead = BookCursor(feed.initial_book, feed.diffs, self.faults.early_lead_diffs)
        self._diff_index = -1  # index of the last diff applied to self.book
        self._position = 0  # next timeline frame
        self.budget = WeightBudget(self.timing.weight_limit, self.timing.weight_window_s,
                                   self.timing.ban_after_ignored_429, self.timing.ban_s)
        self._ids = itertools.count(1)
        self._routes: dict[str, list[Connection]] = {}
        self._windows: dict[int, tuple[WindowDiffMerger, list[tuple[str, int | None]]]] = {}
        self._per_diff_routes: list[tuple[str, int | None]] = []
        self._recorded_depth = next((f.stream for f in feed.frames if f.kind == KIND_DEPTH), "")
        recorded = parse_stream(self._recorded_depth, self.protocol)
        self._recorded_interval = recorded.interval_ms if recorded and recorded.interval_ms is not None else 100
        self._used_weight = 0
        self._has_subscriber = asyncio.Event()
        self.started = asyncio.Event()  # the timeline began
        self.finished = asyncio.Event()  # the timeline ended
        self._t0_mono = 0.0
        self._rec0 = feed.frames[0].recv_ns
        self._agg = AggTradeBuilder(futures=self.protocol.diff_has_prev_id)
        self._runner: web.AppRunner | None = None
        self._timeline: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._refuse_left = self.faults.refuse_connections
        self._stale_left = self.faults.stale_snapshots
        self._early_left = self.faults.early_snapshots
        self._force_429_left = self.faults.force_429
        self._dropped = set(self.faults.drop_diff_at)
        self._duplicated = set(self.faults.duplicate_diff_at)
        self._fast_forward(self.timing.start_frame)

    def _fast_forward(self, n_frames: int) -> None:
        """Run the market silently through the first `n_frames` (books and cursors advance, nothing is sent)."""
        for frame in self.feed.frames[:n_frames]:
            if frame.diff is not None:
                self._diff_index += 1
                self.book.apply(frame.diff)
                self._lag.advance(self._diff_index)
                self._lead.advance(self._diff_index)
        self._position = min(n_frames, len(self.feed.frames))
        if self._position:
            self._rec0 = self.feed.frames[min(self._position, len(self.feed.frames) - 1)].recv_ns

    # ------------------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/stream", self._ws_handler)
        app.router.add_get("/ws", self._ws_handler)
        app.router.add_get("/ws/{name}", self._ws_handler)
        protocol = self.protocol
        app.router.add_get(protocol.depth_path, self._depth)
        app.router.add_get(protocol.time_path, self._time)
        app.router.add_get(protocol.time_path.rsplit("/", 1)[0] + "/ping", self._ping)
        app.router.add_get(protocol.exchange_info_path, self._exchange_info)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._timeline = asyncio.create_task(self._run_timeline(), name="exchange-timeline")
        logger.info("exchange server ({}) on {}:{} replaying {} ({} frames, {:.0f} s, speed {}, faults {})",
                    self.protocol.exchange, self.host, self.port, self.feed.source or self.feed.symbol,
                    len(self.feed.frames), self.feed.duration_s(), self.speed, self.faults.describe() or "none")
        return self.port

    async def stop(self) -> None:
        if self._timeline:
            self._timeline.cancel()
        for conn in list(self.connections.values()):
            await conn.ws.close(code=1001, message=b"server stopping")
        for task in list(self._tasks):
            task.cancel()
        if self._runner:
            await self._runner.cleanup()

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------------------------------------ clock
    def timeline_recv_ns(self) -> int:
        """The recorded receive time the timeline has reached (the replayed market's "now")."""
        if not self.started.is_set():
            return self._rec0
        if self.speed > 0:
            return self._rec0 + int((time.monotonic() - self._t0_mono) * self.speed * 1e9)
        frames = self.feed.frames
        return frames[min(self._position, len(frames) - 1)].recv_ns

    def exchange_time_ms(self) -> int:
        """The exchange clock (consistent with the replayed `E` fields)."""
        return (self.timeline_recv_ns() + self.feed.clock_shift_ns) // 1_000_000

    # ------------------------------------------------------------------------------------------------ timeline
    async def _run_timeline(self) -> None:
        frames = self.feed.frames
        await self._has_subscriber.wait()
        self._t0_mono = time.monotonic()
        self.started.set()
        loop_yield = 0
        while self._position < len(frames):
            i = self._position
            frame = frames[i]
            if self.speed > 0:
                delay = self._t0_mono + (frame.recv_ns - self._rec0) / 1e9 / self.speed - time.monotonic()
                if delay > 0.0005:
                    await asyncio.sleep(delay)
            elif not self._has_subscriber.is_set():
                await self._has_subscriber.wait()
            await self._connection_faults(i)
            await self._emit(frame)
            self.stats.frames_emitted += 1
            self._position = i + 1
            loop_yield += 1
            if loop_yield >= 64:  # let handlers (REST, control messages, pings) run at max speed too
                loop_yield = 0
                await asyncio.sleep(0)
        await self._close_windows()
        self.finished.set()
        logger.info("exchange server: feed finished after {} frames", self.stats.frames_emitted)
        if self.timing.end_of_feed == "close":
            await self._close_all(1000, b"", "end of feed")

    async def _emit(self, frame: FeedFrame) -> None:
        copies = 1
        if frame.kind == KIND_DEPTH and frame.diff is not None:
            self._diff_index += 1
            k = self._diff_index
            self.book.apply(frame.diff)
            self._lag.advance(k)
            self._lead.advance(k)
            await self._derived_depth(frame)
            if k in self._dropped:
                self.stats.diffs_dropped += 1
                return
            if k in self._duplicated:
                self.stats.diffs_duplicated += 1
                copies = 2
        elif frame.kind == KIND_TRADE:
            await self._derived_trade(frame)
        for conn in self._routes.get(frame.stream, ()):
            for _ in range(copies):
                await conn.send(self._render(conn, frame.stream, frame.text, recorded=True))

    def _render(self, conn: Connection, stream: str, text: str, recorded: bool) -> str:
        """The frame as this connection must see it (combined or raw, ms or µs). `recorded` texts are envelopes."""
        if not conn.micro and conn.subs.combined:
            return text if recorded else envelope(stream, text)
        payload = payload_of(text) if recorded else text
        if conn.micro:
            payload = to_microseconds(payload)
        return envelope(stream, payload) if conn.subs.combined else payload

    async def _publish(self, stream: str, payload: str) -> None:
        for conn in self._routes.get(stream, ()):
            await conn.send(self._render(conn, stream, payload, recorded=False))

    async def _derived_trade(self, frame: FeedFrame) -> None:
        name = f"{self.feed.stream_symbol}@aggTrade"
        if name in self._routes:
            done = self._agg.add(json.loads(frame.text)["data"])
            if done:
                await self._publish(name, done)

    async def _derived_depth(self, frame: FeedFrame) -> None:
        diff = frame.diff
        assert diff is not None
        for merger, routes in self._windows.values():
            done = merger.add(diff)
            if done is not None:
                await self._publish_depth(routes, done)
        await self._publish_depth(self._per_diff_routes, diff)

    async def _close_windows(self) -> None:
        """At the end of the feed the last window of each derived stream closes, as time moves on at the exchange:
        its merged diff (and last aggTrade) go out, so a subscriber ends on the server's book."""
        for merger, routes in self._windows.values():
            done = merger.flush()
            if done is not None:
                await self._publish_depth(routes, done)
        name = f"{self.feed.stream_symbol}@aggTrade"
        if name in self._routes and (last := self._agg.flush()):
            await self._publish(name, last)

    async def _publish_depth(self, routes: list[tuple[str, int | None]], diff: DepthDiff) -> None:
        for name, levels in routes:
            payload = diff_payload(diff, self.feed.symbol) if levels is None else \
                partial_depth(self.book, levels, diff, self.feed.symbol)
            await self._publish(name, payload)

    async def _connection_faults(self, i: int) -> None:
        f = self.faults
        if i in f.disconnect_at:
            self.stats.disconnects += 1
            for conn in list(self.connections.values()):
                conn.close_reason = f"injected disconnect at frame {i}"
                if conn.transport is not None:
                    conn.transport.abort()
            if f.refuse_after_disconnect:
                self._refuse_left = f.refuse_connections
        if i in f.clean_close_at:
            self.stats.clean_closes += 1
            await self._close_all(1000, b"", f"injected clean close at frame {i}")
        if i in f.shutdown_at:
            self.stats.shutdowns += 1
            notified = list(self.connections.values())
            for conn in notified:
                await conn.send(shutdown_frame(self.exchange_time_ms(), conn.subs.combined))
            await asyncio.sleep(self.timing.shutdown_grace_s)
            await self._close_all(1000, b"", f"serverShutdown at frame {i}", notified)

    async def _close_all(self, code: int, message: bytes, reason: str, conns: list[Connection] | None = None) -> None:
        """Close `conns` (default: every open connection); a client that reconnected meanwhile is left alone."""
        for conn in list(self.connections.values()) if conns is None else conns:
            conn.close_reason = reason
            await conn.ws.close(code=code, message=message)

    # ------------------------------------------------------------------------------------------------ websocket
    def _reroute(self) -> None:
        routes: dict[str, list[Connection]] = {}
        for conn in self.connections.values():
            for name in conn.subs.streams:
                routes.setdefault(name, []).append(conn)
        self._routes = routes
        parsed = [p for p in (parse_stream(n, self.protocol) for n in routes)
                  if p is not None and p.symbol == self.feed.stream_symbol and p.interval_ms is not None
                  and p.name != self._recorded_depth]
        # depth streams other than the recorded one are derived from its diffs: slower ones merged per window of
        # exchange time (diffs, and partial books at that pace), the others at every recorded diff
        per_window: dict[int, list[tuple[str, int | None]]] = {}
        self._per_diff_routes = []
        for p in parsed:
            if p.interval_ms > self._recorded_interval:
                per_window.setdefault(p.interval_ms, []).append((p.name, p.levels))
            else:
                self._per_diff_routes.append((p.name, p.levels))
        self._windows = {ms: (self._windows[ms][0] if ms in self._windows else WindowDiffMerger(ms), names)
                         for ms, names in per_window.items()}
        if routes:
            self._has_subscriber.set()
        else:
            self._has_subscriber.clear()

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        if self._refuse_left > 0:
            self._refuse_left -= 1
            self.stats.refused += 1  # an HTTP error instead of the upgrade: every client sees it (no silent retry)
            return web.json_response({"code": -1001, "msg": "Internal error; unable to process your request. "
                                                           "Please try again."}, status=503)
        subs = Subscriptions(combined=request.path == "/stream", protocol=self.protocol)
        names = request.query.get("streams", "")
        names_list = [n for n in names.split("/") if n] if request.path == "/stream" else []
        if request.path.startswith("/ws/"):
            names_list = [request.match_info["name"]]
        try:
            subs.add(names_list)
        except ProtocolError as err:
            return web.json_response({"code": -1100 if err.code == 2 else err.code, "msg": err.msg}, status=400)
        time_unit = request.query.get("timeUnit", "MILLISECOND").upper()
        if time_unit not in ("MILLISECOND", "MICROSECOND"):
            return web.json_response({"code": -1100, "msg": f"Invalid timeUnit: {time_unit}"}, status=400)
        ws = web.WebSocketResponse(autoping=False, heartbeat=None, compress=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Connection(next(self._ids), ws, request.transport, subs, time_unit == "MICROSECOND", time.monotonic(),
                          MessageRate(self.timing.max_client_msgs_per_s), self.stats,
                          [] if self.record_sent else None)
        self.connections[conn.id] = conn
        self.stats.connections += 1
        self._reroute()
        pinger = asyncio.create_task(self._pinger(conn), name=f"pinger-{conn.id}")
        self._tasks.add(pinger)
        try:
            await self._receive_loop(conn)
        finally:
            pinger.cancel()
            self._tasks.discard(pinger)
            self.connections.pop(conn.id, None)
            self.closed_connections.append(conn)
            self._reroute()
            logger.debug("connection {} closed ({}), {} frames sent", conn.id, conn.close_reason or "by client",
                         conn.frames_sent)
        return ws

    async def _receive_loop(self, conn: Connection) -> None:
        ws = conn.ws
        async for msg in ws:
            if not conn.rate.hit(time.monotonic()):
                self.stats.rate_limit_closes += 1
                conn.close_reason = "too many requests"
                await ws.close(code=1008, message=b"Too many requests")
                return
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(handle_control(msg.data, conn.subs))
                self._reroute()
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                if not self.faults.ignore_pongs and msg.data == conn.unanswered_ping:
                    conn.unanswered_ping = None
            elif msg.type == WSMsgType.BINARY:
                await ws.send_str(ProtocolError(3, "Invalid JSON: binary frames are not accepted").frame())

    async def _pinger(self, conn: Connection) -> None:
        t = self.timing
        next_ping = conn.opened + t.ping_interval_s
        while not conn.ws.closed:
            now = time.monotonic()
            deadline = conn.unanswered_since + t.pong_timeout_s if conn.unanswered_ping is not None else float("inf")
            if now >= deadline:
                self.stats.pong_timeouts += 1
                conn.close_reason = "pong timeout"
                await conn.ws.close(code=1008, message=b"Pong timeout")
                return
            if now - conn.opened >= t.max_connection_age_s:
                conn.close_reason = "connection age limit"
                await conn.send(shutdown_frame(self.exchange_time_ms(), conn.subs.combined))
                await asyncio.sleep(t.shutdown_grace_s)
                await conn.ws.close(code=1000)
                return
            if now >= next_ping:
                payload = str(self.exchange_time_ms()).encode()
                try:
                    await conn.ws.ping(payload)
                except (ConnectionError, RuntimeError):
                    return
                if conn.unanswered_ping is None:
                    conn.unanswered_since = now
                conn.unanswered_ping = payload
                next_ping = now + t.ping_interval_s
            await asyncio.sleep(max(0.001, min(next_ping, deadline, conn.opened + t.max_connection_age_s) - now))

    # ------------------------------------------------------------------------------------------------ REST
    def _reply(self, body: dict | str, status: int, used: int, retry_after: int = 0) -> web.Response:
        headers = {WEIGHT_HEADER: str(used), "X-MBX-USED-WEIGHT": str(used)}
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        return web.Response(text=text, status=status, headers=headers, content_type="application/json")

    def _limited(self, weight: int, force_429_for: float = 0.0) -> web.Response | None:
        verdict = self.budget.charge(weight, time.monotonic(), force_429_for)
        if verdict.status == 429:
            return self._reply(too_many_requests_body(self.budget.limit), 429, verdict.used_weight,
                               verdict.retry_after)
        if verdict.status == 418:
            until = int(time.time() * 1000) + verdict.retry_after * 1000
            return self._reply(banned_body(until), 418, verdict.used_weight, verdict.retry_after)
        self._used_weight = verdict.used_weight
        return None

    async def _depth(self, request: web.Request) -> web.Response:
        self.stats.depth_requests += 1
        symbol = request.query.get("symbol", "")
        if not symbol:
            return self._reply({"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                                      "or malformed."}, 400, self.budget._used)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return self._reply({"code": -1100, "msg": "Illegal characters found in parameter 'limit'; legal range "
                                                      "is '^[0-9]{1,20}$'."}, 400, self.budget._used)
        limit = self.protocol.depth_limit(limit)
        force = 0.0
        if self._force_429_left > 0:
            self._force_429_left -= 1
            force = self.faults.retry_after_s
        limited = self._limited(self.protocol.depth_weight(limit), force)
        if limited is not None:
            return limited
        if symbol != self.feed.symbol:
            return self._reply({"code": -1121, "msg": "Invalid symbol."}, 400, self._used_weight)
        body = self._snapshot(limit)
        used = self._used_weight
        if self.faults.slow_rest_s > 0:
            await asyncio.sleep(self.faults.slow_rest_s)
        return self._reply(body, 200, used)

    def _snapshot(self, limit: int) -> str:
        """The depth body taken now: stale (lagging book), early (leading book) or current (maybe labelled inside
        the next diff, as real snapshots are: `U <= L < u` of a diff that continues the book). USD-M bodies carry
        `E` (now) and `T` (the book's last transaction time)."""
        sent_u = self.book.update_id
        if self._stale_left > 0:
            self._stale_left -= 1
            book, kind, label = self._lag.book, "stale", None
        elif self._early_left > 0:
            self._early_left -= 1
            book, kind, label = self._lead.book, "early", None
        else:
            book, kind, label = self.book, "current", None
            nxt = self._diff_index + 1
            if self.timing.snapshot_position == "inside_next" and nxt < len(self.feed.diffs):
                d = self.feed.diffs[nxt]
                if d.last_id > d.first_id and d.continues(book.update_id):
                    label, kind = (d.first_id + d.last_id) // 2, "inside_next"
        event_ms = self.exchange_time_ms() if self.protocol.snapshot_has_times else None
        body = book.snapshot_body(limit, label, event_ms)
        self.stats.snapshots.append({"lastUpdateId": label or book.update_id, "kind": kind, "sent_diff_u": sent_u})
        return body

    async def _time(self, request: web.Request) -> web.Response:
        limited = self._limited(1)
        return limited or self._reply({"serverTime": self.exchange_time_ms()}, 200, self._used_weight)

    async def _ping(self, request: web.Request) -> web.Response:
        return self._limited(1) or self._reply({}, 200, self._used_weight)

    async def _exchange_info(self, request: web.Request) -> web.Response:
        limited = self._limited(self.protocol.exchange_info_weight)
        if limited is not None:
            return limited
        wanted = [request.query["symbol"]] if "symbol" in request.query else []
        if "symbols" in request.query:
            wanted = json.loads(request.query["symbols"])
        info = exchange_info(wanted, self.budget.limit, self.exchange_time_ms(),
                             futures=self.protocol.diff_has_prev_id)
        return self._reply(info, 200, self._used_weight)

    # ------------------------------------------------------------------------------------------------ for tests
    def served_frames(self) -> list[str]:
        """Every frame pushed to every connection, in connection order (needs `record_sent=True`)."""
        conns = sorted([*self.closed_connections, *self.connections.values()], key=lambda c: c.id)
        return [text for c in conns for text in (c.sent or [])]


class ServerThread:
    """Runs an ExchangeServer on its own event loop in a daemon thread (tests and benchmarks).

    `call(fn)` runs a coroutine function on the server's loop and returns its result.
    """

    def __init__(self, make_server: Callable[[], ExchangeServer]) -> None:
        self._make = make_server
        self.loop = asyncio.new_event_loop()
        self.server: ExchangeServer | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="exchange-server", daemon=True)

    def __enter__(self) -> ExchangeServer:
        self._thread.start()

        async def boot() -> ExchangeServer:
            server = self._make()
            await server.start()
            return server

        self.server = asyncio.run_coroutine_threadsafe(boot(), self.loop).result(timeout=30)
        return self.server

    def call(self, fn: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout=timeout)

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.call(self.server.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
