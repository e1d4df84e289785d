"""`exchangeInfo` fixture: the real 2021 spot (`/api/v3`) or USD-M (`/fapi/v1`) exchangeInfo recorded by cryptofeed,
else a small built-in.

The real files (`shared/realdata/binance/cryptofeed/BINANCE.0`, `BINANCE_FUTURES.0`) are read at runtime and never
copied into the repo. Their 2021 REQUEST_WEIGHT limits (spot 1200/min) are replaced by the server's configured budget
so clients that read limits
from exchangeInfo see the ones the server enforces.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from loguru import logger

_BUILTIN_SYMBOL = {
    "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8, "quoteAsset": "USDT",
    "quotePrecision": 8, "quoteAssetPrecision": 8, "orderTypes": ["LIMIT", "MARKET"], "isSpotTradingAllowed": True,
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
    ],
    "permissions": ["SPOT"],
}
_BUILTIN_FUTURES_SYMBOL = {
    "symbol": "BTCUSDT", "pair": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING", "baseAsset": "BTC",
    "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
    "quotePrecision": 8, "orderTypes": ["LIMIT", "MARKET"],
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
    ],
}


def shared_realdata_dir() -> Path:
    """`$LAKE_SHARED_DIR/realdata/binance`, default `../shared/realdata/binance` beside the repository."""
    base = os.environ.get("LAKE_SHARED_DIR") or str(Path(__file__).resolve().parents[2].parent / "shared")
    return Path(base) / "realdata" / "binance"


@lru_cache(maxsize=2)
def _load_fixture(path: str) -> dict | None:
    p = Path(path)
    if not p.is_file():
        return None
    first = p.open("r", encoding="utf-8").readline()
    _, sep, body = first.partition(": ")  # "<url> -> <ts>: <json>"
    if not sep:
        logger.warning("{}: unexpected exchangeInfo fixture line; using the built-in one", p)
        return None
    return json.loads(body)


def exchange_info(symbols: list[str], weight_limit: int, server_time_ms: int, futures: bool = False) -> dict:
    """exchangeInfo restricted to `symbols` (all when empty), with the server's time and weight limit."""
    name = "BINANCE_FUTURES.0" if futures else "BINANCE.0"
    fixture = _load_fixture(str(shared_realdata_dir() / "cryptofeed" / name))
    builtin = _BUILTIN_FUTURES_SYMBOL if futures else _BUILTIN_SYMBOL
    base = fixture or {"timezone": "UTC", "rateLimits": [], "exchangeFilters": [], "symbols": [builtin]}
    info = dict(base)  # shallow: nested entries are shared with the cache and never mutated
    info["symbols"] = list(base["symbols"])
    info["serverTime"] = server_time_ms
    info["rateLimits"] = [r for r in info.get("rateLimits", []) if r.get("rateLimitType") != "REQUEST_WEIGHT"] + [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_limit}]
    if symbols:
        wanted = set(symbols)
        info["symbols"] = [s for s in info["symbols"] if s["symbol"] in wanted]
    return info
