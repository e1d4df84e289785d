"""Runtime configuration: the data root and per-instrument tick/lot sizes (`symbols.yaml`, keyed by venue).

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

from lake_pipeline.instrument import Instrument, default_venue

DATA_ROOT_ENV = "LAKE_DATA_ROOT"
SYMBOLS_FILE_ENV = "LAKE_SYMBOLS_FILE"


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


def _entry(name: str, entry: object, source: Path) -> dict:
    if not isinstance(entry, dict) or "tick" not in entry or "lot" not in entry:
        what = f"{name} needs tick and lot" if "." in name else f"symbol {name!r} needs a mapping with 'tick' and 'lot'"
        raise ValueError(f"{source}: {what}, found {entry!r}")
    return entry


def _by_venue(table: dict, source: Path) -> dict[Instrument, tuple[str, dict]]:
    """`{VENUE: {SYMBOL: {tick, lot[, step]}}}` -> {Instrument: (name as written, entry)}. A file in the older flat
    layout (`{SYMBOL: {tick, lot}}`) still loads: each symbol goes to its default venue."""
    out: dict[Instrument, tuple[str, dict]] = {}
    for name, value in table.items():
        name = str(name)
        if not isinstance(value, dict) or "tick" in value or "lot" in value:  # flat layout: SYMBOL -> spec
            out[Instrument(default_venue(name), name)] = (name, _entry(name, value, source))
            continue
        for symbol, entry in value.items():
            out[Instrument(name, str(symbol))] = (f"{name}.{symbol}", _entry(f"{name}.{symbol}", entry, source))
    return out


@lru_cache(maxsize=1)
def _configured() -> dict[Instrument, tuple[Path, str, dict]]:
    """instrument -> (file it comes from, its name there, its entry), from the shipped symbols.yaml and
    $LAKE_SYMBOLS_FILE (which overrides)."""
    paths = [Path(__file__).with_name("symbols.yaml")]
    if os.environ.get(SYMBOLS_FILE_ENV):
        paths.append(Path(os.environ[SYMBOLS_FILE_ENV]))
    table: dict[Instrument, tuple[Path, str, dict]] = {}
    for path in paths:
        for instrument, (name, entry) in _by_venue(read_yaml_mapping(path, "the symbols file"), path).items():
            table[instrument] = (path, name, entry)
    return table


def symbol_spec(instrument: Instrument) -> SymbolSpec | None:
    """The configured spec of `instrument`, or None when it is not in config (caller infers from data).
    The same symbol may trade with different tick/lot on two venues, so the venue is part of the lookup."""
    found = _configured().get(instrument)
    if found is None:
        return None
    path, name, entry = found
    tick, lot = (positive_decimal(entry[k], f"{path}: {name}.{k}") for k in ("tick", "lot"))
    step = positive_decimal(entry["step"], f"{path}: {name}.step") if "step" in entry else None
    return SymbolSpec(instrument.symbol, tick, lot, "config", step)


def configured_instruments() -> list[Instrument]:
    return sorted(_configured())
