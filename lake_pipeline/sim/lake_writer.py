"""Streaming writers for the simulated Crypto Lake tables (either column variant), chunk by chunk.

Columns are handed over under the stored (cryptofeed) names with int64 ns times; the writer renames them and
converts times to `timestamp[ns]` for the lakeapi "loaded" variant, adds the categorical exchange/symbol columns,
and stamps the file's key-value metadata `contains_gaps=Yes` like every real lake file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipeline import schemas

LAKE_FILE = "1.snappy.parquet"
"""The file name real Crypto Lake partitions use."""
VARIANTS = ("stored", "loaded")
FILE_METADATA = {b"contains_gaps": b"Yes"}
_TIME_COLUMNS = {"timestamp": "origin_time", "receipt_timestamp": "received_time"}
_LOADED_NAMES = {**_TIME_COLUMNS, "amount": "quantity", "id": "trade_id"}


def lake_schema(table: str, variant: str) -> pa.Schema:
    if variant not in VARIANTS:
        raise ValueError(f"lake variant must be one of {VARIANTS}, got {variant!r}")
    return (schemas.LAKE_STORED if variant == "stored" else schemas.LAKE_LOADED)[table]


def units_to_float(units: np.ndarray, unit_e8: int) -> np.ndarray:
    """Integer ticks/lots -> the float64 nearest to the exact decimal (one correctly rounded division)."""
    return (np.asarray(units, dtype=np.int64) * unit_e8) / 1e8


def _constant_dictionary(value: str, n: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


class LakeTableWriter:
    """One open parquet file of one lake table; `write(columns)` appends a row group."""

    def __init__(self, directory: Path, table: str, variant: str, exchange: str, symbol: str) -> None:
        self.table, self.variant, self.exchange, self.symbol = table, variant, exchange, symbol
        self.schema = lake_schema(table, variant)
        self.path = Path(directory) / LAKE_FILE
        self.rows = 0
        self._writer = pq.ParquetWriter(self.path, self.schema.with_metadata(FILE_METADATA), compression="snappy")

    def write(self, stored_columns: dict[str, np.ndarray]) -> None:
        """Columns under stored names (times as int64 ns, side as 'buy'/'sell' strings)."""
        n = len(next(iter(stored_columns.values())))
        if n == 0:
            return
        arrays = []
        for field in self.schema:
            if field.name in ("exchange", "symbol"):
                arrays.append(_constant_dictionary(self.exchange if field.name == "exchange" else self.symbol, n))
                continue
            stored = next((k for k, v in _LOADED_NAMES.items() if v == field.name), field.name)
            values = stored_columns[stored]
            if pa.types.is_dictionary(field.type):
                arrays.append(pa.array(values, type=pa.string()).dictionary_encode().cast(field.type))
            else:
                arrays.append(pa.array(values, type=field.type))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema.with_metadata(FILE_METADATA)))
        self.rows += n

    def close(self) -> None:
        self._writer.close()
