"""Date x instrument partitions. Keys read `2024-08-08|BINANCE.BTC-USDT` (dimension names sort date < instrument;
the instrument key is `VENUE.SYMBOL`, lake_pipeline/instrument.py), so one deployment holds spot and futures.

The instruments: `$LAKE_INSTRUMENTS` (`BINANCE.BTC-USDT,BINANCE_FUTURES.BTC-USDT-PERP`), else the older
`$LAKE_SYMBOLS` (bare symbols, each on its default venue: `-PERP` is BINANCE_FUTURES, others BINANCE), else every
instrument of symbols.yaml.
"""

from __future__ import annotations

import os

import dagster as dg

from lake_pipeline.config import configured_instruments
from lake_pipeline.instrument import Instrument, Partition

START_DATE = os.environ.get("LAKE_START_DATE", "2024-01-01")
INSTRUMENTS_ENV = "LAKE_INSTRUMENTS"
SYMBOLS_ENV = "LAKE_SYMBOLS"


def instruments_from_env(environ: dict[str, str] | None = None) -> list[Instrument]:
    """The partitioned instruments (see the module docstring); a bad name raises ValueError naming the variable."""
    env = os.environ if environ is None else environ
    for name in (INSTRUMENTS_ENV, SYMBOLS_ENV):
        raw = env.get(name, "").strip()
        if raw:
            try:
                found = [Instrument.parse(t) for t in raw.split(",") if t.strip()]
            except ValueError as exc:
                raise ValueError(f"${name}: {exc}") from None
            return sorted(dict.fromkeys(found))
    return configured_instruments()


INSTRUMENTS = instruments_from_env()
instrument_partitions = dg.StaticPartitionsDefinition([i.key for i in INSTRUMENTS])
date_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE, end_offset=1)
instrument_date_partitions = dg.MultiPartitionsDefinition({"date": date_partitions,
                                                          "instrument": instrument_partitions})

# Backfills: every asset of the chain has the same policy, none. A backfill then makes one run per instrument-day
# holding the whole chain, tagged `dagster/partition`. `BackfillPolicy.multi_run(1)` would give the same runs but tag
# them with a one-key partition *range*, and Dagster 1.13 files asset-check evaluations of such runs without their
# partition (the UI shows each partition's checks as skipped); test_dagster_live.py checks that evaluations carry
# their partition. Mixed policies would split the chain into separate runs per policy (research dagster.md §1.7),
# so never add one to a single asset.


def partition_of(context) -> Partition:
    """The run's Partition, from an asset, op or check context. Checks-only runs launched by tag carry a plain
    string key `DATE|VENUE.SYMBOL` instead of a MultiPartitionKey (research dagster.md §1.7)."""
    try:
        kbd = context.multi_partition_key.keys_by_dimension
    except Exception:
        return Partition.parse(str(context.partition_key))
    return Instrument.parse(kbd["instrument"]).on(kbd["date"])


def partition_key(part: Partition) -> dg.MultiPartitionKey:
    """The Dagster key of `part` (its text form is `part.key`)."""
    return dg.MultiPartitionKey({"date": part.date, "instrument": part.instrument.key})
