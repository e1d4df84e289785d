"""The names of what we partition by: an instrument (venue + symbol) and a partition (instrument + date).

One value names a partition wherever code passes it on (venue, symbol, date), instead of loose
`(root, exchange, symbol, date)` arguments. Venues and symbols are spelt the way Crypto Lake spells them
(`exchange=BINANCE_FUTURES/symbol=BTC-USDT-PERP`), so zone paths stay Crypto Lake's hive layout.

Text forms (the CLI, `symbols.yaml`, Dagster keys):
- instrument: `BINANCE_FUTURES.BTC-USDT-PERP` (venue, a dot, the symbol). A bare symbol is accepted where the venue
  follows from it: `-PERP` symbols are `BINANCE_FUTURES`, others `BINANCE` (spot).
- partition: `2024-08-08|BINANCE_FUTURES.BTC-USDT-PERP`, the Dagster multi-partition key (date, then instrument).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as _date
from pathlib import Path

SPOT = "BINANCE"
FUTURES = "BINANCE_FUTURES"
VENUES = (SPOT, FUTURES)
"""Venues whose wire protocol we speak (capture, local server). Other Crypto Lake venues are read as lake data."""

_VENUE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]*$")


def default_venue(symbol: str) -> str:
    """Crypto Lake's venue for a bare Binance symbol: perpetuals (`-PERP`) trade on USD-M futures."""
    return FUTURES if symbol.upper().endswith("-PERP") else SPOT


@dataclass(frozen=True, order=True)
class Instrument:
    """A venue and a symbol, as Crypto Lake names them (`BINANCE`, `BTC-USDT`)."""

    exchange: str
    symbol: str

    def __post_init__(self) -> None:
        if not _VENUE_RE.match(self.exchange or ""):
            raise ValueError(f"exchange {self.exchange!r}: expected Crypto Lake's venue name, e.g. BINANCE or BINANCE_FUTURES")
        if not _SYMBOL_RE.match(self.symbol or ""):
            raise ValueError(f"symbol {self.symbol!r}: expected Crypto Lake's symbol, e.g. BTC-USDT or BTC-USDT-PERP")

    @property
    def key(self) -> str:
        """`BINANCE_FUTURES.BTC-USDT-PERP`: the instrument dimension's Dagster key and the CLI's text form."""
        return f"{self.exchange}.{self.symbol}"

    @property
    def is_futures(self) -> bool:
        return self.exchange == FUTURES

    @classmethod
    def parse(cls, text: str, exchange: str | None = None) -> Instrument:
        """`VENUE.SYMBOL`, or a bare symbol with `exchange` (else the symbol's default venue)."""
        text = text.strip()
        venue, dot, symbol = text.partition(".")
        if dot:
            if exchange and exchange != venue:
                raise ValueError(f"instrument {text!r} names venue {venue}, but --exchange is {exchange}")
            return cls(venue, symbol)
        return cls(exchange or default_venue(text), text)

    def on(self, date: str) -> Partition:
        return Partition(self.exchange, self.symbol, date)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, order=True)
class Partition:
    """One instrument on one UTC date: the unit every stage reads and writes (`exchange=E/symbol=S/dt=D`)."""

    exchange: str
    symbol: str
    date: str

    def __post_init__(self) -> None:
        Instrument(self.exchange, self.symbol)  # validates both names
        try:
            _date.fromisoformat(self.date)
        except (TypeError, ValueError):
            raise ValueError(f"date {self.date!r}: expected YYYY-MM-DD") from None
        if len(self.date) != 10:
            raise ValueError(f"date {self.date!r}: expected YYYY-MM-DD")

    @property
    def instrument(self) -> Instrument:
        return Instrument(self.exchange, self.symbol)

    @property
    def hive(self) -> str:
        """`exchange=E/symbol=S/dt=D`, Crypto Lake's partition path below a zone."""
        return f"exchange={self.exchange}/symbol={self.symbol}/dt={self.date}"

    def dir(self, root: Path | str, zone: str) -> Path:
        """`<root>/<zone>/exchange=E/symbol=S/dt=D`; `zone` may contain slashes (`lake/ready/trades`)."""
        return Path(root) / zone / self.hive

    @property
    def key(self) -> str:
        """`2024-08-08|BINANCE.BTC-USDT`: the Dagster multi-partition key (dimensions sort date < instrument)."""
        return f"{self.date}|{self.instrument.key}"

    @classmethod
    def parse(cls, key: str) -> Partition:
        """The inverse of `key`."""
        date, bar, inst = key.partition("|")
        if not bar:
            raise ValueError(f"partition key {key!r}: expected DATE|VENUE.SYMBOL, e.g. 2024-08-08|BINANCE.BTC-USDT")
        return Instrument.parse(inst).on(date)

    def __str__(self) -> str:
        return f"{self.exchange} {self.symbol} {self.date}"
