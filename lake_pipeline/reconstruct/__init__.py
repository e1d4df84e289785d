"""Chronological Event Replay: lake tables of one symbol-day -> unified market events + top-20 book states.

Entry point: `lake_pipeline.reconstruct.run.reconstruct_partition(data_root, part: Partition, *, strategy=None,
chunk_rows=...) -> ReconstructSummary` (CLI: `lake-pipeline reconstruct`; Dagster: `defs/reconstruct.py`).

Modules: `source` (row-range lake reads) and `levels` (fast book levels) -> `order` (streaming k-way merge into
chunks) -> `kernel` (numba replay, the three strategies) with `state` -> `buffers` -> `writer` / `dec128` (decimal
Parquet) -> `wal` (chunk commits, crash recovery, publication); `strategies` picks the strategy, `summary` reports.
Kept import-free so `lake-pipeline --help` does not load numba.
"""
