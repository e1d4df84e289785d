"""Arrow schemas: the one source of truth for lake inputs, golden frames, and our outputs.

Readers validate against these, writers cast to them, tests compare against them. Column names follow
DESIGN §3 (two lake variants: cryptofeed's stored names and lakeapi's loaded names) and §4 (unified event,
book states).
"""

from __future__ import annotations

import pyarrow as pa

N_LEVELS = 20
"""Levels per side in the lake `book` table and in our `book_states` output."""

DECIMAL = pa.decimal128(38, 18)
"""Output price/size type. Produced only at writers; the engine works in int64 ticks/lots."""

TS_NS_UTC = pa.timestamp("ns", tz="UTC")
DICT_STR = pa.dictionary(pa.int32(), pa.string())

LAKE_TABLES = ("trades", "book", "book_delta_v2")

EVENT_TRADE = "TRADE"
EVENT_SNAPSHOT = "BOOK_SNAPSHOT"
EVENT_DELTA = "BOOK_DELTA"
EVENT_TYPES = (EVENT_TRADE, EVENT_SNAPSHOT, EVENT_DELTA)

# book_flags bits (DESIGN §4)
FLAG_UNINITIALISED = 1 << 0
FLAG_CROSSED = 1 << 1
FLAG_GAP = 1 << 2
FLAG_TRADE_CONSUMED = 1 << 3


def book_level_columns(prefix_order: tuple[str, ...] = ("bid", "ask")) -> list[str]:
    """`bid_0_price, bid_0_size, …, bid_19_size, ask_0_price, …, ask_19_size`: the whole bid block first (lake order)."""
    cols: list[str] = []
    for side in prefix_order:
        for i in range(N_LEVELS):
            cols += [f"{side}_{i}_price", f"{side}_{i}_size"]
    return cols


BOOK_LEVEL_COLUMNS = book_level_columns()

# ---------------------------------------------------------------------------------------------------------------
# Crypto Lake tables, "stored" variant: what is physically in the parquet files (cryptofeed names, int64 ns times).
# ---------------------------------------------------------------------------------------------------------------
LAKE_STORED = {
    "trades": pa.schema(
        [
            ("side", pa.string()),
            ("amount", pa.float64()),
            ("price", pa.float64()),
            ("id", pa.int64()),
            ("timestamp", pa.int64()),
            ("receipt_timestamp", pa.int64()),
        ]
    ),
    "book": pa.schema(
        [("timestamp", pa.int64()), ("receipt_timestamp", pa.int64()), ("sequence_number", pa.int64())]
        + [(c, pa.float64()) for c in BOOK_LEVEL_COLUMNS]
    ),
    "book_delta_v2": pa.schema(
        [
            ("timestamp", pa.int64()),
            ("receipt_timestamp", pa.int64()),
            ("sequence_number", pa.int64()),
            ("side_is_bid", pa.bool_()),
            ("price", pa.float64()),
            ("size", pa.float64()),
        ]
    ),
}

# ---------------------------------------------------------------------------------------------------------------
# Crypto Lake tables, "loaded" variant: lakeapi.load_data() names (renamed columns, datetime64[ns] times,
# categorical exchange/symbol). Users who saved lakeapi frames to parquet produce this.
# ---------------------------------------------------------------------------------------------------------------
TS_NS_NAIVE = pa.timestamp("ns")
LAKE_LOADED = {
    "trades": pa.schema(
        [
            ("side", DICT_STR),
            ("quantity", pa.float64()),
            ("price", pa.float64()),
            ("trade_id", pa.int64()),
            ("origin_time", TS_NS_NAIVE),
            ("received_time", TS_NS_NAIVE),
            ("exchange", DICT_STR),
            ("symbol", DICT_STR),
        ]
    ),
    "book": pa.schema(
        [("origin_time", TS_NS_NAIVE), ("received_time", TS_NS_NAIVE), ("sequence_number", pa.int64())]
        + [(c, pa.float64()) for c in BOOK_LEVEL_COLUMNS]
        + [("exchange", DICT_STR), ("symbol", DICT_STR)]
    ),
    "book_delta_v2": pa.schema(
        [
            ("origin_time", TS_NS_NAIVE),
            ("received_time", TS_NS_NAIVE),
            ("sequence_number", pa.int64()),
            ("side_is_bid", pa.bool_()),
            ("price", pa.float64()),
            ("size", pa.float64()),
            ("exchange", DICT_STR),
            ("symbol", DICT_STR),
        ]
    ),
}

# Canonical (loaded) name -> accepted physical names, first match wins (research cryptolake.md §9.1).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "origin_time": ("origin_time", "timestamp"),
    "received_time": ("received_time", "receipt_timestamp"),
    "quantity": ("quantity", "amount"),
    "trade_id": ("trade_id", "id"),
}

# Columns each table must provide after alias resolution (canonical names).
LAKE_REQUIRED: dict[str, tuple[str, ...]] = {
    "trades": ("side", "quantity", "price", "trade_id", "origin_time", "received_time"),
    "book": ("origin_time", "received_time", "sequence_number", *BOOK_LEVEL_COLUMNS),
    "book_delta_v2": ("origin_time", "received_time", "sequence_number", "side_is_bid", "price", "size"),
}

# ---------------------------------------------------------------------------------------------------------------
# Normalised lake frames: what lake.read hands to every later stage (int64 ns UTC times, int64 ticks/lots).
# origin_time is null where the source had null / <= 0. `row` is the row index within the partition (input order).
# ---------------------------------------------------------------------------------------------------------------
NORMALISED = {
    "trades": pa.schema(
        [
            ("origin_time", pa.int64()),
            ("received_time", pa.int64()),
            ("trade_id", pa.int64()),
            ("side_is_buy", pa.bool_()),
            ("price", pa.int64()),
            ("quantity", pa.int64()),
            ("row", pa.int64()),
        ]
    ),
    "book": pa.schema(
        [("origin_time", pa.int64()), ("received_time", pa.int64()), ("sequence_number", pa.int64())]
        + [(c, pa.int64()) for c in BOOK_LEVEL_COLUMNS]
        + [("row", pa.int64())]
    ),
    "book_delta_v2": pa.schema(
        [
            ("origin_time", pa.int64()),
            ("received_time", pa.int64()),
            ("sequence_number", pa.int64()),
            ("side_is_bid", pa.bool_()),
            ("price", pa.int64()),
            ("size", pa.int64()),
            ("row", pa.int64()),
        ]
    ),
}

# ---------------------------------------------------------------------------------------------------------------
# Outputs (DESIGN §4): the Unified Market Event stream and the top-20 book states.
# ---------------------------------------------------------------------------------------------------------------
UNIFIED_EVENT = pa.schema(
    [
        pa.field("event_time", TS_NS_UTC, nullable=False),
        pa.field("received_time", TS_NS_UTC),
        pa.field("event_type", DICT_STR, nullable=False),
        pa.field("exchange", DICT_STR, nullable=False),
        pa.field("symbol", DICT_STR, nullable=False),
        pa.field("sequence_number", pa.int64()),
        pa.field("trade_id", pa.int64()),
        pa.field("side", DICT_STR),
        pa.field("price", DECIMAL),
        pa.field("quantity", DECIMAL),
        pa.field("best_bid_price", DECIMAL),
        pa.field("best_bid_quantity", DECIMAL),
        pa.field("best_ask_price", DECIMAL),
        pa.field("best_ask_quantity", DECIMAL),
        pa.field("book_flags", pa.int32(), nullable=False),
        pa.field("drift_levels", pa.int32()),
    ]
)

BOOK_STATE = pa.schema(
    [pa.field("event_time", TS_NS_UTC, nullable=False)] + [pa.field(c, DECIMAL) for c in BOOK_LEVEL_COLUMNS]
)
