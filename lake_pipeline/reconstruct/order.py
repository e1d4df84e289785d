"""Streaming k-way merge of the three lake tables into chunks, in memory bounded by the chunk size.

Each table is read in fixed, aligned batches of rows. Inside a table, event times may step back by at most
`max_disorder_ns` (a row whose origin_time is missing falls back to its later received_time, for instance); every
row is checked against that promise as it is read, and a row that breaks it stops the run with an error naming
the file and row. Because of the promise, no row still unread can be earlier than

    horizon(table) = (largest event time read so far) - max_disorder_ns,

so every buffered row with event time < H = min over tables of horizon(table) can be emitted now, in final
order: the emitted set of each table is a prefix of its buffer sorted by (event time, sequence_number, input
order), and the kernel merges the three prefixes. A chunk is "all rows < H" once enough rows are ready; since
all rows of one delta message share their event time, a chunk boundary never splits a message.

Resumability: emitted rows of a table are exactly its rows with event time < H read so far, so a checkpoint needs
only H and, per table, the read position, the largest time read and the lowest unemitted row; a resumed run
re-reads that row range and drops what is < H, which reproduces the buffers of the uninterrupted run exactly.
The whole plan depends only on the data and the parameters (batch boundaries are aligned to absolute rows), so
chunk k of a resumed run is chunk k of the original run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from lake_pipeline.reconstruct.buffers import NULL_I64
from lake_pipeline.reconstruct.source import BOOK, Rows, TableSource

INF = np.iinfo(np.int64).max
NEG_INF = np.iinfo(np.int64).min
SEQ_NULL_KEY = INF  # a missing sequence_number sorts after every known one at equal time


class DisorderError(ValueError):
    """A table's event times go back further than the merge can absorb; names the file and row."""


@njit(cache=True)
def _sorted_by_key(time: np.ndarray, seq: np.ndarray) -> bool:
    """True when rows are ordered by (time, seq with null last); input order is the final tie-break already."""
    for i in range(1, time.shape[0]):
        if time[i] < time[i - 1]:
            return False
        if time[i] == time[i - 1]:
            a = INF if seq[i - 1] == NULL_I64 else seq[i - 1]
            b = INF if seq[i] == NULL_I64 else seq[i]
            if b < a:
                return False
    return True


def _order(rows: Rows) -> Rows:
    """Sort by (event time, sequence_number null last, input row)."""
    seq = rows.cols.get("sequence_number")
    if seq is None:
        seq = np.zeros(len(rows), np.int64)
    if _sorted_by_key(rows.cols["time"], seq):
        return rows
    key = np.where(seq == NULL_I64, SEQ_NULL_KEY, seq)
    return rows.take(np.lexsort((rows.cols["row"], key, rows.cols["time"])))


@dataclass
class StreamPosition:
    """What a checkpoint records per table."""

    loaded: int  # rows [0, loaded) have been read
    runmax: int  # largest event time among them (NEG_INF: none)
    low: int  # lowest input row not yet emitted (== loaded when nothing is pending)
    origin_missing: int  # rows read whose event time fell back to received_time

    def to_dict(self) -> dict[str, int]:
        return {"loaded": self.loaded, "runmax": self.runmax, "low": self.low, "origin_missing": self.origin_missing}


def _last_key(rows: Rows) -> tuple[int, int]:
    seq = rows.cols.get("sequence_number")
    s = int(seq[-1]) if seq is not None else 0
    return int(rows.cols["time"][-1]), SEQ_NULL_KEY if s == NULL_I64 else s


def _first_key(rows: Rows) -> tuple[int, int]:
    seq = rows.cols.get("sequence_number")
    s = int(seq[0]) if seq is not None else 0
    return int(rows.cols["time"][0]), SEQ_NULL_KEY if s == NULL_I64 else s


class Stream:
    """One table's pending rows (a list of sorted parts, in order) plus its read position.

    Parts avoid re-copying the buffer on every batch: a batch that continues the order is appended as is; only a
    batch that steps back across the boundary (allowed disorder) forces a merge of the pending rows.
    """

    def __init__(self, source: TableSource, batch_rows: int, max_disorder_ns: int) -> None:
        self.source = source
        self.batch_rows = int(batch_rows)
        self.max_disorder_ns = int(max_disorder_ns)
        self.loaded = 0
        self.runmax = NEG_INF
        self.origin_missing = 0
        self.parts: list[Rows] = []
        self.read_rows = 0  # rows read by this process (re-reads included), for the progress bar

    @property
    def exhausted(self) -> bool:
        return self.loaded >= self.source.total_rows

    def horizon(self) -> int:
        """No row still unread has an event time below this."""
        if self.exhausted:
            return INF
        if self.runmax == NEG_INF:
            return NEG_INF
        return self.runmax - self.max_disorder_ns

    def load_batch(self) -> None:
        """Read the next aligned batch, check its times against the disorder promise, add it to the buffer."""
        start = self.loaded
        stop = min((start // self.batch_rows + 1) * self.batch_rows, self.source.total_rows)
        batch, missing = self.source.read(start, stop)
        self._check_disorder(batch)
        self.loaded = stop
        self.origin_missing += missing
        self.read_rows += len(batch)
        if len(batch):
            self.runmax = max(self.runmax, int(batch.cols["time"].max()))
            self._add(_order(batch))

    def _add(self, batch: Rows) -> None:
        if self.parts and _first_key(batch) < _last_key(self.parts[-1]):
            self.parts = [_order(Rows.concat([*self.parts, batch]))]
        else:
            self.parts.append(batch)

    def _check_disorder(self, batch: Rows) -> None:
        t = batch.cols["time"]
        if not len(t):
            return
        first = self.runmax if self.runmax != NEG_INF else t[0]
        prior = np.maximum.accumulate(np.concatenate(([first], t[:-1])))
        bad = np.flatnonzero(t < prior - self.max_disorder_ns)
        if len(bad):
            i = int(bad[0])
            row = int(batch.cols["row"][i])
            f = self.source.file_of(row)
            raise DisorderError(
                f"{f.path}: event times go backwards at row {row - f.offset} (0-based, in this file): "
                f"{int(t[i])} ns is {(int(prior[i]) - int(t[i])) / 1e9:.3f} s before an earlier row's "
                f"{int(prior[i])} ns; the merge absorbs at most {self.max_disorder_ns / 1e9:g} s "
                f"(the {self.source.table} table must be in event-time order)"
            )

    @property
    def pending(self) -> int:
        return sum(len(p) for p in self.parts)

    def count_before(self, h: int) -> int:
        return sum(int(np.searchsorted(p.cols["time"], h, side="left")) for p in self.parts)

    def pop(self, n: int) -> Rows:
        """The first `n` pending rows as one contiguous block (a copy only when they span parts)."""
        taken: list[Rows] = []
        while n > 0:
            head = self.parts[0]
            if len(head) <= n:
                taken.append(self.parts.pop(0))
                n -= len(head)
            else:
                taken.append(head.take(slice(0, n)))
                self.parts[0] = head.take(slice(n, None))
                n = 0
        return Rows.concat(taken) if taken else self.source.empty()

    def position(self) -> StreamPosition:
        low = min((int(p.cols["row"].min()) for p in self.parts), default=self.loaded)
        return StreamPosition(self.loaded, self.runmax, low, self.origin_missing)

    def restore(self, pos: StreamPosition, horizon: int) -> None:
        """Rebuild the buffer of the checkpointed run: rows [low, loaded) with event time >= horizon."""
        self.loaded, self.runmax, self.origin_missing = pos.loaded, pos.runmax, pos.origin_missing
        pending, _ = self.source.read(pos.low, pos.loaded)
        self.read_rows += len(pending)
        keep = np.flatnonzero(pending.cols["time"] >= horizon)
        self.parts = [_order(pending.take(keep))] if len(keep) else []


@dataclass
class ChunkPlan:
    horizon: int  # rows with event time < horizon are in the chunk (INF: everything left)
    counts: tuple[int, int, int]  # rows per stream

    @property
    def final(self) -> bool:
        return self.horizon == INF

    @property
    def rows(self) -> int:
        return sum(self.counts)


def plan_chunk(streams: list[Stream], chunk_rows: int, time_cap: int) -> ChunkPlan:
    """Read until at least `chunk_rows` rows are ready (or nothing more can become ready before `time_cap`).

    `time_cap` bounds the chunk's time span (so its book-state grid rows stay bounded too).
    """
    while True:
        horizons = [s.horizon() for s in streams]
        h_streams = min(horizons)
        counts = tuple(s.count_before(min(h_streams, time_cap)) for s in streams)
        if h_streams == INF and sum(counts) == sum(s.pending for s in streams):
            return ChunkPlan(INF, counts)  # type: ignore[arg-type]  # everything read and it all fits: the end
        if h_streams >= time_cap or sum(counts) >= chunk_rows:
            return ChunkPlan(min(h_streams, time_cap), counts)  # type: ignore[arg-type]
        streams[horizons.index(h_streams)].load_batch()


def stream_batch_rows(table: str, chunk_rows: int) -> int:
    """Batch size per table: wide snapshot rows (83 columns) are read in smaller batches."""
    return max(1, chunk_rows // 16) if table == BOOK else max(1, chunk_rows // 4)
