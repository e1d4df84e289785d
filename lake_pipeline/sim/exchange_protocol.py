"""Binance WebSocket market-stream protocol (spot and USD-M): stream names and control messages (research binance.md
§1.1, §1.3, §1.7).

Pure functions, no network: the exchange server feeds them the client's text frames and sends back what they return,
so the protocol can be tested (and read) on its own. Error replies are wrapped with the request id exactly as they
appear on the wire: `{"error":{"code":2,"msg":"Invalid request: ..."},"id":2}`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from lake_pipeline.capture.protocol import SPOT, VenueProtocol, depth_interval_ms

_SYMBOL = r"[a-z0-9]{2,30}"
_STREAM_RE = re.compile(
    rf"^(?P<symbol>{_SYMBOL})@(?P<kind>trade|aggTrade|bookTicker|depth(?P<levels>5|10|20)?)"
    r"(?:@(?P<speed>\d+ms))?$"
)
_ID_STR_RE = re.compile(r"^[A-Za-z0-9]{1,36}$")
_INT64 = (-(2**63), 2**63 - 1)

SHUTDOWN_STREAM = "!serverShutdown"


@dataclass(frozen=True)
class StreamName:
    """A parsed market stream name such as `btcusdt@depth20@100ms`."""

    name: str
    symbol: str  # lowercase, as in the stream name
    kind: str  # trade | aggTrade | bookTicker | depth | depthN
    levels: int | None  # 5 / 10 / 20 for partial book streams
    interval_ms: int | None  # push interval of depth streams (spot `@depth` 1000, `@100ms` 100; USD-M `@0ms` 0:
    # every engine update, real time)


def parse_stream(name: str, protocol: VenueProtocol = SPOT) -> StreamName | None:
    """The parsed stream, or None when `name` is not a valid market stream name of `protocol`'s venue (stream names are
    lowercase; each venue has its own depth speeds; `@0ms` exists for USD-M diffs only)."""
    m = _STREAM_RE.match(name)
    if m is None:
        return None
    kind = m["kind"]
    speed = m["speed"]
    if kind in ("trade", "aggTrade", "bookTicker"):
        return None if speed is not None else StreamName(name, m["symbol"], kind, None, None)
    levels = int(m["levels"]) if m["levels"] else None
    speeds = protocol.diff_depth_speeds if levels is None else protocol.partial_depth_speeds
    if (speed or "") not in speeds:
        return None
    return StreamName(name, m["symbol"], "depth" if levels is None else kind, levels,
                      depth_interval_ms(protocol, speed or "") or 0)


class ProtocolError(ValueError):
    """A client request the server answers with an error frame (`code` as documented, `msg` as on the wire)."""

    def __init__(self, code: int, msg: str, request_id: object = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.request_id = request_id

    def frame(self) -> str:
        return json.dumps({"error": {"code": self.code, "msg": self.msg}, "id": self.request_id}, separators=(",", ":"))


def _valid_id(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT64[0] <= value <= _INT64[1]
    return isinstance(value, str) and bool(_ID_STR_RE.match(value))


@dataclass
class Subscriptions:
    """One connection's subscribed streams and properties (`combined` wraps payloads in the stream envelope)."""

    streams: dict[str, StreamName] = field(default_factory=dict)  # insertion order = subscription order
    combined: bool = True
    protocol: VenueProtocol = SPOT

    def add(self, names: list[str]) -> None:
        parsed = [parse_stream(n, self.protocol) if isinstance(n, str) else None for n in names]
        bad = [n for n, p in zip(names, parsed, strict=True) if p is None]
        if bad:
            raise ProtocolError(2, "Invalid request: invalid stream")
        if len(self.streams.keys() | set(names)) > self.protocol.max_streams:
            raise ProtocolError(2, f"Invalid request: too many streams (max {self.protocol.max_streams})")
        for p in parsed:
            assert p is not None
            self.streams[p.name] = p

    def remove(self, names: list[str]) -> None:
        for n in names:
            if not isinstance(n, str) or parse_stream(n, self.protocol) is None:
                raise ProtocolError(2, "Invalid request: invalid stream")
        for n in names:
            self.streams.pop(n, None)


def handle_control(text: str, subs: Subscriptions) -> str:
    """Apply one client control message to `subs` and return the reply frame (result or wrapped error).

    Supports SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY/GET_PROPERTY `combined` (research §1.3).
    """
    try:
        msg = json.loads(text)
    except ValueError as exc:
        return ProtocolError(3, f"Invalid JSON: {exc}").frame()
    if not isinstance(msg, dict):
        return ProtocolError(3, "Invalid JSON: expected an object").frame()
    request_id = msg.get("id")
    try:
        if "id" not in msg or not _valid_id(request_id):
            raise ProtocolError(2, "Invalid request: request ID must be an integer, a string of at most 36 "
                                   "alphanumerics, or null")
        result = _dispatch(msg, subs)
    except ProtocolError as err:
        err.request_id = request_id if _valid_id(request_id) else None
        return err.frame()
    return json.dumps({"result": result, "id": request_id}, separators=(",", ":"))


def _dispatch(msg: dict, subs: Subscriptions) -> object:
    method = msg.get("method")
    params = msg.get("params", [])
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list):
            raise ProtocolError(2, "Invalid request: params must be an array of stream names")
        (subs.add if method == "SUBSCRIBE" else subs.remove)(params)
        return None
    if method == "LIST_SUBSCRIPTIONS":
        return list(subs.streams)
    if method in ("SET_PROPERTY", "GET_PROPERTY"):
        if not isinstance(params, list) or not params or params[0] != "combined":
            raise ProtocolError(0, "Unknown property")
        if method == "GET_PROPERTY":
            return subs.combined
        if len(params) != 2 or not isinstance(params[1], bool):
            raise ProtocolError(1, "Invalid value type: expected Boolean")
        subs.combined = params[1]
        return None
    raise ProtocolError(2, "Invalid request: unknown method")


def envelope(stream: str, payload_json: str) -> str:
    """The combined-stream frame `{"stream":…,"data":…}` around an already-serialised payload."""
    return f'{{"stream":"{stream}","data":{payload_json}}}'


def payload_of(frame: str) -> str:
    """The raw payload text inside a combined-stream frame (what a `/ws/<name>` connection receives)."""
    if frame.startswith('{"stream":"'):
        cut = frame.find('","data":', 11)
        if cut > 0 and frame.endswith("}"):
            return frame[cut + 9 : -1]
    return json.dumps(json.loads(frame)["data"], separators=(",", ":"))


def shutdown_frame(event_time_ms: int, combined: bool) -> str:
    payload = json.dumps({"e": "serverShutdown", "E": event_time_ms}, separators=(",", ":"))
    return envelope(SHUTDOWN_STREAM, payload) if combined else payload
