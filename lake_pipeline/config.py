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


def _by_venue(table: dict, source: Path) -> dict[Instrument, dict]:
    """`{VENUE: {SYMBOL: {tick, lot[, step]}}}` -> {Instrument: entry}. A file in the older flat layout
    (`{SYMBOL: {tick, lot}}`) still loads: each symbol goes to its default venue."""
    out: dict[Instrument, dict] = {}
    for name, value in (table or {}).items():
        if not isinstance(value, dict):
            raise ValueError(f"{source}: entry {name!r} is not a mapping")
        if "tick" in value:  # flat layout: SYMBOL -> spec
            out[Instrument(default_venue(name), name)] = value
            continue
        for symbol, entry in value.items():
            if not isinstance(entry, dict) or "tick" not in entry or "lot" not in entry:
                raise ValueError(f"{source}: {name}.{symbol} needs tick and lot")
            out[Instrument(name, symbol)] = entry
    return out


@lru_cache(maxsize=1)
def _configured() -> dict[Instrument, dict]:
    path = Path(__file__).with_name("symbols.yaml")
    table = _by_venue(yaml.safe_load(path.read_text()), path)
    extra = os.environ.get(SYMBOLS_FILE_ENV)
    if extra:
        table.update(_by_venue(yaml.safe_load(Path(extra).read_text()), Path(extra)))
    return table


def symbol_spec(instrument: Instrument) -> SymbolSpec | None:
    """The configured spec of `instrument`, or None when it is not in config (caller infers from data).
    The same symbol may trade with different tick/lot on two venues, so the venue is part of the lookup."""
    entry = _configured().get(instrument)
    if entry is None:
        return None
    step = Decimal(str(entry["step"])) if "step" in entry else None
    return SymbolSpec(instrument.symbol, Decimal(str(entry["tick"])), Decimal(str(entry["lot"])), "config", step)


def configured_instruments() -> list[Instrument]:
    return sorted(_configured())
