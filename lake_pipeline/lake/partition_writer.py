"""Stream rows of one lake table into its ready-zone date partitions, published atomically at the end.

Rows arrive in batches from a streaming producer and may belong to several UTC dates (a capture file rolls over
by receive time, while partitions follow exchange time). Each (table, date) partition is built in a temporary
directory beside its final path (`atomic.atomic_dir`) with one open parquet writer; `close()` publishes every
partition, an exception discards them all, so readers never see a half-written partition. A killed run leaves
its hidden temp directories behind; `clean_stale_temps` (called by the converter at start) removes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipeline import paths
from lake_pipeline.atomic import atomic_dir, write_json_atomic
from lake_pipeline.instrument import Instrument

NS_PER_DAY = 86_400 * 10**9
PART_FILE = "part-00000.parquet"
MANIFEST = "_manifest.json"  # the same name acquire writes: what made the partition


def utc_date_of_ns(ns: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=int(ns // NS_PER_DAY))).isoformat()


class LakePartitionWriter:
    """Writes `pa.Table` batches of one lake table, split by the UTC date of `date_column` (int64 ns)."""

    def __init__(self, data_root: Path, table: str, instrument: Instrument, schema: pa.Schema,
                 date_column: str = "timestamp", compression: str = "zstd") -> None:
        self.data_root, self.table, self.instrument = Path(data_root), table, instrument
        self.schema, self.date_column, self.compression = schema, date_column, compression
        self.rows: dict[str, int] = {}
        self._stack = contextlib.ExitStack()
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._temps: dict[str, Path] = {}

    @property
    def directory(self) -> Path:
        """`lake/ready/{table}/exchange=E/symbol=S`: where the date partitions (and killed runs' temps) live."""
        return self.final_dir("1970-01-01").parent

    def final_dir(self, day: str) -> Path:
        return paths.lake_ready(self.data_root, self.instrument.on(day), self.table)

    @property
    def days(self) -> list[str]:
        """Dates with a partition under construction (written to, or opened empty by `ensure`)."""
        return sorted(self._writers)

    def ensure(self, day: str) -> None:
        """Open `day`'s partition even if no row falls on it, so a date gets every table (0 rows is a fact)."""
        self._writer(day)
        self.rows.setdefault(day, 0)

    def write(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:
            return
        batch = batch.cast(self.schema)
        days = batch.column(self.date_column).to_numpy() // NS_PER_DAY
        unique = np.unique(days)
        for day in unique:
            key = utc_date_of_ns(int(day) * NS_PER_DAY)
            part = batch if len(unique) == 1 else batch.filter(pa.array(days == day))
            self._writer(key).write_table(part)
            self.rows[key] = self.rows.get(key, 0) + part.num_rows

    def _writer(self, day: str) -> pq.ParquetWriter:
        if day not in self._writers:
            tmp = self._stack.enter_context(atomic_dir(self.final_dir(day)))
            self._temps[day] = tmp
            writer = pq.ParquetWriter(tmp / PART_FILE, self.schema, compression=self.compression)
            self._stack.callback(writer.close)  # LIFO: the file is closed before its directory is published
            self._writers[day] = writer
        return self._writers[day]

    def close(self, manifest: Callable[[str, str], dict] | None = None) -> None:
        """Publish every partition written to; `manifest(table, day)` goes beside the data as `_manifest.json`."""
        if manifest is not None:
            for day, tmp in self._temps.items():
                write_json_atomic(tmp / MANIFEST, manifest(self.table, day))
        self._stack.close()

    def abort(self, exc: BaseException) -> None:
        """Discard every partition under construction (the final directories stay as they were)."""
        self._stack.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> LakePartitionWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)
