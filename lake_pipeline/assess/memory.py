"""Memory needed to reconstruct the partition at a given chunk size, from bytes per row MEASURED on real samples.

The reconstructor holds a chunk of normalised input rows (lake.read frames: int64 ticks/lots) and the unified
output rows built from it. Bytes per row are measured — the first `sample_rows` rows of each table, normalised
exactly as the reconstructor reads them, and a sample batch of the unified output schema — not taken from type
widths. Estimate = chunk_rows × (input B/row, weighted by each table's share of the day's rows + output B/row)
× WORKING_COPIES (the sorted/merged copy next to the chunk read). The whole day held at once is shown beside it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa

from lake_pipeline.assess.inputs import TableInput
from lake_pipeline.instrument import Partition
from lake_pipeline.schemas import UNIFIED_EVENT

WORKING_COPIES = 2.0
SAMPLE_ROWS = 100_000


def unified_bytes_per_row(n: int = 10_000) -> float:
    """Arrow in-memory bytes per unified event row, measured on a batch with every column populated."""
    rng = np.random.default_rng(0)
    ts = pa.array(rng.integers(1, 2**60, n), pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    cols = []
    for field in UNIFIED_EVENT:
        t = field.type
        if pa.types.is_timestamp(t):
            cols.append(ts)
        elif pa.types.is_dictionary(t):
            cols.append(pa.array(["BOOK_DELTA", "TRADE"] * (n // 2)).dictionary_encode())
        elif pa.types.is_decimal(t):
            cols.append(pa.array(rng.integers(1, 10**9, n), pa.int64()).cast(t))
        else:
            cols.append(pa.array(rng.integers(0, 2**30, n), t))
    return pa.Table.from_arrays(cols, schema=UNIFIED_EVENT).nbytes / n


def _gib(b: float) -> float:
    return round(b / 2**30, 3)


def memory_estimate(data_root: Path, part: Partition, tables: dict[str, TableInput],
                    chunk_rows: int, sample_rows: int = SAMPLE_ROWS) -> dict:
    from lake_pipeline.lake.read import LakeReadError, scan_table

    per_table: dict[str, dict] = {}
    for name, t in tables.items():
        if not t.present:
            continue
        try:
            sample = scan_table(data_root, part, name).head(sample_rows).collect()
        except (LakeReadError, FileNotFoundError, ValueError) as exc:
            per_table[name] = {"rows": t.rows, "error": str(exc)}
            continue
        per_table[name] = {"rows": t.rows, "sample_rows": sample.height,
                           "bytes_per_row": round(sample.estimated_size() / max(sample.height, 1), 1)}
    measured = {k: v for k, v in per_table.items() if "bytes_per_row" in v}
    total_rows = sum(v["rows"] for v in measured.values())
    if not total_rows:
        return {"chunk_rows": chunk_rows, "tables": per_table, "error": "no table could be sampled"}
    input_bpr = sum(v["rows"] * v["bytes_per_row"] for v in measured.values()) / total_rows
    output_bpr = unified_bytes_per_row()
    chunk_bytes = chunk_rows * (input_bpr + output_bpr) * WORKING_COPIES
    day_bytes = sum(v["rows"] * v["bytes_per_row"] for v in measured.values())
    return {
        "chunk_rows": chunk_rows,
        "tables": per_table,
        "input_bytes_per_row": round(input_bpr, 1),
        "output_bytes_per_row": round(output_bpr, 1),
        "working_copies": WORKING_COPIES,
        "estimated_chunk_bytes": int(chunk_bytes),
        "estimated_chunk_gib": _gib(chunk_bytes),
        "whole_day_input_gib": _gib(day_bytes),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
