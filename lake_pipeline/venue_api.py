"""What differs between Binance spot and USD-M futures on the wire: hosts, REST paths, weights, limits, streams.

The capture (client) and the local exchange server (sim) both read these facts here, so the two cannot disagree and
neither imports the other. Sources: research binance.md §1.4-§1.7, §2.3, the real USD-M exchangeInfo
(`realdata/binance/cryptofeed/BINANCE_FUTURES.0`: REQUEST_WEIGHT 2400/min) and recording (`@depth@0ms`, `pu`, `T`).
USD-M depth weights (2/5/10/20 by limit, max limit 1000) are Binance's USD-M REST documentation as remembered,
not yet in research binance.md [unverified].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lake_pipeline.instrument import FUTURES, SPOT


def spot_depth_weight(limit: int) -> int:
    """`GET /api/v3/depth` weight for an (already clamped) `limit` (5/25/50/250 since 2023-10-19)."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def futures_depth_weight(limit: int) -> int:
    """`GET /fapi/v1/depth` weight: limit 5-50 → 2, 100 → 5, 500 → 10, 1000 → 20."""
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


@dataclass(frozen=True)
class VenueApi:
    """One venue's market-data API as both our client and our server speak it."""

    exchange: str  # Crypto Lake's venue name
    ws_url: str
    rest_url: str
    rest_prefix: str  # "/api/v3" | "/fapi/v1": depth, time, ping, exchangeInfo live below it
    depth_weight: Callable[[int], int]
    max_depth_limit: int
    weight_limit: int  # REQUEST_WEIGHT per minute per IP
    exchange_info_weight: int
    max_client_msgs_per_s: int  # incoming WebSocket messages per connection
    max_streams: int  # per connection
    ping_interval_s: float  # the server pings this often ...
    pong_timeout_s: float  # ... and closes a connection that has not answered within this
    diff_speeds_ms: dict[str | None, int]  # `@depth[@speed]` suffix → push interval (None = no suffix)
    default_streams: tuple[str, ...]  # what the capture records by default (suffixes after "<symbol>@")
    futures: bool

    @property
    def depth_path(self) -> str:
        return f"{self.rest_prefix}/depth"

    @property
    def time_path(self) -> str:
        return f"{self.rest_prefix}/time"

    @property
    def ping_path(self) -> str:
        return f"{self.rest_prefix}/ping"

    @property
    def exchange_info_path(self) -> str:
        return f"{self.rest_prefix}/exchangeInfo"

    def wire_symbol(self, symbol: str) -> str:
        """Crypto Lake symbol → Binance's (`BTC-USDT` → `BTCUSDT`; USD-M perpetuals drop `-PERP`)."""
        s = symbol.upper()
        if s.endswith("-PERP"):
            if not self.futures:
                raise ValueError(f"{symbol}: a -PERP symbol is a USD-M futures market, not {self.exchange}")
            s = s[: -len("-PERP")]
        return s.replace("-", "").replace("/", "")

    def lake_symbol(self, wire: str, quote: str = "USDT") -> str:
        """Binance's symbol → Crypto Lake's (`BTCUSDT` → `BTC-USDT`, or `BTC-USDT-PERP` on USD-M)."""
        wire = wire.upper()
        base = wire[: -len(quote)] if wire.endswith(quote) and len(wire) > len(quote) else wire
        name = f"{base}-{quote}" if base != wire else wire
        return f"{name}-PERP" if self.futures else name


SPOT_API = VenueApi(
    exchange=SPOT, ws_url="wss://stream.binance.com:9443", rest_url="https://api.binance.com", rest_prefix="/api/v3",
    depth_weight=spot_depth_weight, max_depth_limit=5000, weight_limit=6000, exchange_info_weight=20,
    max_client_msgs_per_s=5, max_streams=1024, ping_interval_s=20.0, pong_timeout_s=60.0,
    diff_speeds_ms={None: 1000, "1000ms": 1000, "100ms": 100},
    default_streams=("trade", "depth@100ms", "bookTicker"), futures=False)

FUTURES_API = VenueApi(
    exchange=FUTURES, ws_url="wss://fstream.binance.com", rest_url="https://fapi.binance.com",
    rest_prefix="/fapi/v1", depth_weight=futures_depth_weight, max_depth_limit=1000, weight_limit=2400,
    exchange_info_weight=1, max_client_msgs_per_s=10, max_streams=200, ping_interval_s=180.0, pong_timeout_s=600.0,
    diff_speeds_ms={None: 250, "500ms": 500, "100ms": 100, "0ms": 0},
    default_streams=("trade", "depth@100ms", "bookTicker"), futures=True)

_APIS = {SPOT: SPOT_API, FUTURES: FUTURES_API}


def venue_api(exchange: str) -> VenueApi:
    """The API of `exchange` (BINANCE or BINANCE_FUTURES); a clear error for a venue we do not speak."""
    try:
        return _APIS[exchange]
    except KeyError:
        raise ValueError(f"exchange {exchange!r}: capture and the local exchange server speak "
                         f"{' and '.join(_APIS)} only") from None
