"""Runtime configuration: the data root and per-symbol tick/lot sizes.

Tick and lot are kept as `Decimal` (exact) and as an integer scale so conversions between float lake values,
int64 ticks/lots and decimal128 outputs never go through binary floating point guesses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import yaml

DEFAULT_EXCHANGE = "BINANCE"
DATA_ROOT_ENV = "LAKE_DATA_ROOT"


def default_data_root() -> Path:
    """`$LAKE_DATA_ROOT`, else `./data` (the repo's git-ignored default)."""
    return Path(os.environ.get(DATA_ROOT_ENV, "data")).resolve()


@dataclass(frozen=True)
class SymbolSpec:
    """Price tick and size lot of one symbol; `source` says whether it came from config or was inferred."""

    symbol: str
    tick: Decimal
    lot: Decimal
    source: str = "config"
    step: Decimal | None = None
    """Order-size step (LOT_SIZE.stepSize) when coarser than `lot`, the unit of the integer representation."""

    @property
    def order_step(self) -> Decimal:
        return self.step if self.step is not None else self.lot

    def to_dict(self) -> dict[str, str]:
        """Fixed-point strings ("0.00000001", never "1E-8") so metadata reads like the exchange's own filters."""
        d = {"symbol": self.symbol, "tick": f"{self.tick:f}", "lot": f"{self.lot:f}", "source": self.source}
        if self.step is not None:
            d["step"] = f"{self.step:f}"
        return d


@lru_cache(maxsize=1)
def _configured() -> dict[str, dict[str, str]]:
    path = Path(__file__).with_name("symbols.yaml")
    extra = os.environ.get("LAKE_SYMBOLS_FILE")
    table = yaml.safe_load(path.read_text()) or {}
    if extra:
        table.update(yaml.safe_load(Path(extra).read_text()) or {})
    return table


def symbol_spec(symbol: str) -> SymbolSpec | None:
    """The configured spec for `symbol`, or None when the symbol is not in config (caller infers from data)."""
    entry = _configured().get(symbol)
    if entry is None:
        return None
    step = Decimal(str(entry["step"])) if "step" in entry else None
    return SymbolSpec(symbol, Decimal(str(entry["tick"])), Decimal(str(entry["lot"])), "config", step)


def configured_symbols() -> list[str]:
    return sorted(_configured())
