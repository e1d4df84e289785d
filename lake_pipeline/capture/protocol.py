"""Binance wire-protocol facts, spot and USD-M futures, in one place for the capture, the converter and the simulator.

Endpoints, REST paths and weights, stream names, WebSocket limits and which payload fields a venue carries
(research binance.md §1, §1.7, §2.3; USD-M pages at developers.binance.com). Pure data and tiny functions: this
module imports nothing of ours, so `capture/` and `sim/` can both depend on it without depending on each other.

Venues are spelt like Crypto Lake (`BINANCE` spot, `BINANCE_FUTURES` USD-M), as in `lake_pipeline.instrument`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
"""Every REST reply names the IP's used weight in the current minute (both venues)."""

TRADE = "trade"
AGG_TRADE = "aggTrade"
BOOK_TICKER = "bookTicker"
DIFF_DEPTH = "depth"
PARTIAL_DEPTH_LEVELS = (5, 10, 20)

FUTURES_MARKET_TRADE = "MARKET"
"""USD-M `@trade` carries `X`: MARKET for order-book trades; INSURANCE_FUND and ADL are not order-book fills (their
prices are off the tick grid) and USD-M `@aggTrade` leaves them out ("Only market trades will be aggregated")."""


@dataclass(frozen=True)
class VenueProtocol:
    """One Binance venue's wire protocol."""

    exchange: str  # Crypto Lake's venue name
    rest_base: str
    ws_base: str
    depth_path: str
    time_path: str
    exchange_info_path: str
    exchange_info_weight: int
    depth_limits: tuple[int, ...]  # ascending upper bounds of the weight bands, the last is the largest limit
    depth_weights: tuple[int, ...]  # weight of each band
    depth_limits_exact: bool  # futures accepts only the listed limits; spot any value up to the largest
    default_depth_limit: int
    weight_limit_1m: int  # REQUEST_WEIGHT per minute per IP
    diff_depth_speeds: tuple[str, ...]  # "" (the bare `@depth`), "100ms", ...
    partial_depth_speeds: tuple[str, ...]
    max_streams: int  # per connection
    max_incoming_per_s: int  # client messages per second per connection (pings, pongs, JSON)
    ping_interval_s: float  # the server pings this often
    pong_timeout_s: float  # and disconnects without a pong within this
    diff_has_prev_id: bool  # depthUpdate carries `pu` (and `T`)
    snapshot_has_times: bool  # REST depth body carries `E` and `T`
    book_ticker_has_times: bool  # bookTicker carries `e`, `E`, `T`

    @property
    def max_depth_limit(self) -> int:
        return self.depth_limits[-1]

    def depth_limit(self, requested: int) -> int:
        """The limit the venue serves for `requested`: spot clamps to 5000; futures takes the largest listed
        limit not above it (at least the smallest)."""
        if not self.depth_limits_exact:
            return max(1, min(requested, self.max_depth_limit))
        i = bisect.bisect_right(self.depth_limits, requested)
        return self.depth_limits[max(i - 1, 0)]

    def depth_weight(self, limit: int) -> int:
        """Request weight of a depth snapshot of `limit` levels (already resolved with `depth_limit`)."""
        i = bisect.bisect_left(self.depth_limits, limit)
        return self.depth_weights[min(i, len(self.depth_weights) - 1)]

    def diff_depth_streams(self) -> tuple[str, ...]:
        """Diff-depth stream suffixes (after `<symbol>@`): `depth`, `depth@100ms`, ..."""
        return tuple(DIFF_DEPTH + (f"@{s}" if s else "") for s in self.diff_depth_speeds)

    def partial_depth_streams(self) -> tuple[str, ...]:
        return tuple(f"{DIFF_DEPTH}{n}" + (f"@{s}" if s else "")
                     for n in PARTIAL_DEPTH_LEVELS for s in self.partial_depth_speeds)

    def stream(self, symbol: str, suffix: str) -> str:
        """`btcusdt@depth@100ms` for `BTC-USDT-PERP` (or `BTCUSDT`) and `depth@100ms`: stream names are lowercase."""
        return f"{wire_symbol(symbol).lower()}@{suffix}"


SPOT = VenueProtocol(
    exchange="BINANCE",
    rest_base="https://api.binance.com",
    ws_base="wss://stream.binance.com:9443",
    depth_path="/api/v3/depth",
    time_path="/api/v3/time",
    exchange_info_path="/api/v3/exchangeInfo",
    exchange_info_weight=20,
    depth_limits=(100, 500, 1000, 5000),
    depth_weights=(5, 25, 50, 250),  # since 2023-10-19
    depth_limits_exact=False,
    default_depth_limit=100,
    weight_limit_1m=6000,  # since 2023-08-25
    diff_depth_speeds=("", "100ms", "1000ms"),
    partial_depth_speeds=("", "100ms", "1000ms"),
    max_streams=1024,
    max_incoming_per_s=5,
    ping_interval_s=20.0,  # since 2025-02
    pong_timeout_s=60.0,
    diff_has_prev_id=False,
    snapshot_has_times=False,
    book_ticker_has_times=False,
)

FUTURES = VenueProtocol(
    exchange="BINANCE_FUTURES",
    rest_base="https://fapi.binance.com",
    ws_base="wss://fstream.binance.com",
    depth_path="/fapi/v1/depth",
    time_path="/fapi/v1/time",
    exchange_info_path="/fapi/v1/exchangeInfo",
    exchange_info_weight=1,
    depth_limits=(5, 10, 20, 50, 100, 500, 1000),
    depth_weights=(2, 2, 2, 2, 5, 10, 20),
    depth_limits_exact=True,
    default_depth_limit=500,
    weight_limit_1m=2400,
    # `@depth` is 250 ms; `@depth@0ms` is undocumented but real (the hftbacktest 2024 recording, ~50 ms apart)
    diff_depth_speeds=("", "500ms", "100ms", "0ms"),
    partial_depth_speeds=("", "500ms", "100ms"),
    max_streams=200,
    max_incoming_per_s=10,
    ping_interval_s=180.0,
    pong_timeout_s=600.0,
    diff_has_prev_id=True,
    snapshot_has_times=True,
    book_ticker_has_times=True,
)

VENUES = {p.exchange: p for p in (SPOT, FUTURES)}
TIME_WEIGHT = 1
"""`/api/v3/time` and `/fapi/v1/time` both weigh 1."""


def venue_protocol(exchange: str) -> VenueProtocol:
    """The protocol of `BINANCE` or `BINANCE_FUTURES`; a clear error for a venue we do not speak."""
    try:
        return VENUES[exchange]
    except KeyError:
        raise ValueError(f"no Binance wire protocol for venue {exchange!r} (expected one of {sorted(VENUES)})") from None


def wire_symbol(symbol: str) -> str:
    """Crypto Lake's symbol -> Binance's: `BTC-USDT` and `BTC-USDT-PERP` -> `BTCUSDT` (USD-M perpetuals carry no
    suffix on the wire)."""
    base = symbol[: -len("-PERP")] if symbol.upper().endswith("-PERP") else symbol
    return base.replace("-", "").upper()


def stream_kind(suffix: str) -> str | None:
    """The golden reader's kind of a stream suffix on either venue (`trade`, `depth@0ms`, ...), None if unknown.

    Partial-book streams (`depth20@100ms`) are snapshots of the top N, not diffs: unknown here.
    """
    if suffix == TRADE:
        return "trades"
    if suffix == AGG_TRADE:
        return "agg_trades"
    if suffix == BOOK_TICKER:
        return "book_ticker"
    if any(suffix in p.diff_depth_streams() for p in VENUES.values()):
        return "depth"
    return None


def is_depth_stream(suffix: str) -> bool:
    """Any depth stream, diff or partial, known or not (`depth`, `depth@0ms`, `depth20@100ms`, `depth@250ms`)."""
    return suffix.startswith(DIFF_DEPTH)


_BARE_DEPTH_MS = {SPOT.exchange: 1000, FUTURES.exchange: 250}


def depth_interval_ms(protocol: VenueProtocol, speed: str) -> int | None:
    """Push interval of a depth stream with speed suffix `speed` ("" for the bare `@depth`): spot 1000 ms bare,
    USD-M 250 ms bare; `100ms` → 100; USD-M `0ms` (real time) → None, it has no fixed pace."""
    if not speed:
        return _BARE_DEPTH_MS[protocol.exchange]
    ms = int(speed.removesuffix("ms"))
    return ms or None
