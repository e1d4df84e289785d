"""`GET /api/v3/exchangeInfo` fixture: the real 2021 spot exchangeInfo recorded by cryptofeed, else a small built-in.

The real file (`shared/realdata/binance/cryptofeed/BINANCE.0`) is read at runtime and never copied into the repo.
Its 2021 REQUEST_WEIGHT limit (1200/min) is replaced by the server's configured budget so clients that read limits
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


def exchange_info(symbols: list[str], weight_limit: int, server_time_ms: int, extra_symbols: list[dict] = ()) -> dict:
    """exchangeInfo restricted to `symbols` (all when empty), with the server's time and weight limit."""
    fixture = _load_fixture(str(shared_realdata_dir() / "cryptofeed" / "BINANCE.0"))
    base = fixture or {"timezone": "UTC", "rateLimits": [], "exchangeFilters": [], "symbols": [_BUILTIN_SYMBOL]}
    info = dict(base)  # shallow: nested entries are shared with the cache and never mutated
    info["symbols"] = list(base["symbols"])
    info["serverTime"] = server_time_ms
    info["rateLimits"] = [r for r in info.get("rateLimits", []) if r.get("rateLimitType") != "REQUEST_WEIGHT"] + [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": weight_limit}]
    known = {s["symbol"] for s in info["symbols"]}
    info["symbols"] += [s for s in extra_symbols if s["symbol"] not in known]
    if symbols:
        wanted = set(symbols)
        info["symbols"] = [s for s in info["symbols"] if s["symbol"] in wanted]
    return info


def minimal_symbol_entry(symbol: str, tick: str, lot: str) -> dict:
    """A built-in entry for a symbol the fixture lacks (simulated symbols)."""
    entry = json.loads(json.dumps(_BUILTIN_SYMBOL))
    entry["symbol"] = symbol
    entry["filters"][0]["tickSize"] = tick
    entry["filters"][1]["stepSize"] = lot
    return entry
