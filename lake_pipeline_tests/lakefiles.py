"""Small Crypto-Lake-layout parquet files for acquisition tests (stored cryptofeed variant, snappy, times in the day).

Independent of the simulator on purpose: acquisition tests only need structurally faithful files of chosen size.
"""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipeline.schemas import LAKE_LOADED, LAKE_STORED, N_LEVELS

NS = 1_000_000_000


def _times(date: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Exchange times on a ms grid passed through float seconds (the `…999936` artefact) and receive times after."""
    start_ms = int(dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC).timestamp() * 1000)
    ms = np.sort(rng.integers(start_ms, start_ms + 86_400_000 - 1_000, n))
    origin = (ms / 1000.0 * 1e9).astype(np.int64)
    received = origin + rng.integers(1_000_000, 50_000_000, n)
    return origin, received


def stored_table(table: str, date: str, n_rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    origin, received = _times(date, n_rows, rng)
    if table == "trades":
        cols = {
            "side": pa.array(np.where(rng.random(n_rows) < 0.5, "buy", "sell")),
            "amount": rng.integers(1, 100_000, n_rows) / 1e5,
            "price": rng.integers(6_000_000, 6_100_000, n_rows) / 100.0,
            "id": np.arange(n_rows, dtype=np.int64) + 1_000_000,
            "timestamp": origin,
            "receipt_timestamp": received,
        }
    elif table == "book":  # a valid two-sided book: one-tick spread around a random-walk mid, 20 levels each side
        cols = {"timestamp": origin, "receipt_timestamp": received,
                "sequence_number": np.arange(n_rows, dtype=np.int64) * 7 + 10_000}
        best_bid = 6_000_000 + np.cumsum(rng.integers(-3, 4, n_rows))
        for side, sign, start in (("bid", -1, best_bid), ("ask", 1, best_bid + 1)):
            for i in range(N_LEVELS):
                cols[f"{side}_{i}_price"] = (start + sign * i) / 100.0
                cols[f"{side}_{i}_size"] = rng.integers(1, 500_000, n_rows) / 1e5
    elif table == "book_delta_v2":
        cols = {"timestamp": origin, "receipt_timestamp": received,
                "sequence_number": np.arange(n_rows, dtype=np.int64) // 3 + 10_000,
                "side_is_bid": rng.random(n_rows) < 0.5,
                "price": rng.integers(6_000_000, 6_100_000, n_rows) / 100.0,
                "size": rng.integers(0, 100_000, n_rows) / 1e5}
    else:
        raise ValueError(table)
    return pa.Table.from_pydict(cols, schema=LAKE_STORED[table])


def loaded_table(table: str, date: str, n_rows: int, seed: int = 0) -> pa.Table:
    """The lakeapi-renamed variant of `stored_table` (timestamp[ns] times, dictionary exchange/symbol)."""
    stored = stored_table(table, date, n_rows, seed)
    names = {"timestamp": "origin_time", "receipt_timestamp": "received_time", "amount": "quantity", "id": "trade_id"}
    cols = {names.get(n, n): stored.column(n) for n in stored.column_names}
    cols["exchange"] = pa.array(["BINANCE"] * n_rows).dictionary_encode()
    cols["symbol"] = pa.array(["BTC-USDT"] * n_rows).dictionary_encode()
    schema = LAKE_LOADED[table]
    return pa.Table.from_arrays([cols[f.name].cast(f.type) for f in schema], schema=schema)


def parquet_bytes(table: pa.Table, row_group_size: int | None = None) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata({b"contains_gaps": b"Yes"}), buf, compression="snappy",
                   row_group_size=row_group_size)
    return buf.getvalue()


def lake_key(prefix: str, table: str, exchange: str, symbol: str, date: str, name: str) -> str:
    parts = [prefix.strip("/"), table, f"exchange={exchange}", f"symbol={symbol}", f"dt={date}", name]
    return "/".join(p for p in parts if p)
