"""The `--exchange` / `--symbol` pair every CLI command shares, and the Instrument / Partition it names.

`--exchange` defaults to the symbol's venue (`-PERP` symbols trade on BINANCE_FUTURES, others on BINANCE);
`--symbol` also accepts `VENUE.SYMBOL`. A bad name is a ValueError naming the field, which `lake-pipeline` turns
into its message and exit code 2.
"""

from __future__ import annotations

import argparse

from lake_pipeline.instrument import Instrument, Partition

EXCHANGE_HELP = "Crypto Lake venue, e.g. BINANCE (spot) or BINANCE_FUTURES (USD-M); default: the symbol's venue"


def add_instrument_args(p: argparse.ArgumentParser, *, symbol_default: str | None = None,
                        symbol_required: bool = True) -> None:
    """Add `--exchange` and `--symbol` to a command."""
    p.add_argument("--exchange", default=None, help=EXCHANGE_HELP)
    required = symbol_required and symbol_default is None
    p.add_argument("--symbol", default=symbol_default, required=required,
                   help="Crypto Lake symbol, e.g. BTC-USDT or BTC-USDT-PERP (or VENUE.SYMBOL)"
                        + (f"; default {symbol_default}" if symbol_default else ""))


def instrument_arg(args: argparse.Namespace, symbol: str | None = None) -> Instrument:
    """The Instrument of `--symbol` (or `symbol`) on `--exchange`."""
    return Instrument.parse(symbol or args.symbol, args.exchange or None)


def partition_arg(args: argparse.Namespace, date: str | None = None) -> Partition:
    """The Partition of `--exchange`, `--symbol` and `--date` (or `date`)."""
    return instrument_arg(args).on(date or args.date)
