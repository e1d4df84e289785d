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


def read_yaml_mapping(path: Path, what: str) -> dict:
    """A YAML file whose top level is a mapping (empty file: {}); a ValueError naming the file otherwise."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: {what} is not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: {what} is not a text file ({exc})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: {what} must be a mapping at the top level, found {type(doc).__name__}")
    return doc


def positive_decimal(value: object, where: str) -> Decimal:
    """`value` as an exact positive Decimal ("0.01", 0.01), else a ValueError naming `where`."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{where}: {value!r} is not a decimal number") from None
    if not number.is_finite() or number <= 0:
        raise ValueError(f"{where}: {value!r} must be a positive number")
    return number


@lru_cache(maxsize=1)
def _configured() -> dict[str, tuple[Path, dict]]:
    """symbol -> (file it comes from, its entry), from the shipped symbols.yaml and $LAKE_SYMBOLS_FILE."""
    paths = [Path(__file__).with_name("symbols.yaml")]
    if os.environ.get("LAKE_SYMBOLS_FILE"):
        paths.append(Path(os.environ["LAKE_SYMBOLS_FILE"]))
    table: dict[str, tuple[Path, dict]] = {}
    for path in paths:
        for symbol, entry in read_yaml_mapping(path, "the symbols file").items():
            if not isinstance(entry, dict) or "tick" not in entry or "lot" not in entry:
                raise ValueError(f"{path}: symbol {symbol!r} needs a mapping with 'tick' and 'lot', found {entry!r}")
            table[str(symbol)] = (path, entry)
    return table


def symbol_spec(symbol: str) -> SymbolSpec | None:
    """The configured spec for `symbol`, or None when the symbol is not in config (caller infers from data)."""
    found = _configured().get(symbol)
    if found is None:
        return None
    path, entry = found
    tick, lot = (positive_decimal(entry[k], f"{path}: {symbol}.{k}") for k in ("tick", "lot"))
    step = positive_decimal(entry["step"], f"{path}: {symbol}.step") if "step" in entry else None
    return SymbolSpec(symbol, tick, lot, "config", step)


def configured_symbols() -> list[str]:
    return sorted(_configured())
