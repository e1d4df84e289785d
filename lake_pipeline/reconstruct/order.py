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


def _seq(rows: Rows) -> np.ndarray:
    """sequence_number, or zeros for trades (which order by time and input order only)."""
    seq = rows.cols.get("sequence_number")
    return np.zeros(len(rows), np.int64) if seq is None else seq


def _order(rows: Rows) -> Rows:
    """Sort by (event time, sequence_number null last, input row)."""
    seq = _seq(rows)
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


class _Pending:
    """A stream's pending rows in reusable arrays: rows [head, tail) are pending, sorted by key.

    Why reusable: each chunk's rows used to be concatenated into fresh arrays, and first-touching fresh memory
    (page faults) cost as much as the copy itself on this VM class. Views handed out by `take` stay valid until
    the next `append` (the kernel consumes them before the next batch is read).
    """

    def __init__(self, empty: Rows) -> None:
        self.cols = {k: v.copy() for k, v in empty.cols.items()}
        self.head = 0
        self.tail = 0

    def __len__(self) -> int:
        return self.tail - self.head

    @property
    def capacity(self) -> int:
        return self.cols["time"].shape[0]

    def rows(self) -> Rows:
        return Rows({k: v[self.head:self.tail] for k, v in self.cols.items()})

    def append(self, batch: Rows) -> None:
        n, pending = len(batch), len(self)
        if self.tail + n > self.capacity:
            if pending + n <= self.capacity:  # room once the pending rows move to the front
                for v in self.cols.values():
                    v[:pending] = v[self.head:self.tail]
            else:
                size = (pending + n) * 3 // 2
                grown = {}
                for k, v in self.cols.items():
                    grown[k] = np.empty((size,) + v.shape[1:], v.dtype)
                    grown[k][:pending] = v[self.head:self.tail]
                self.cols = grown
            self.head, self.tail = 0, pending
        for k, v in self.cols.items():
            v[self.tail:self.tail + n] = batch.cols[k]
        self.tail += n

    def sort(self) -> None:
        """Re-establish (time, sequence_number, row) order over the pending rows (only after allowed disorder)."""
        ordered = _order(self.rows())
        for k, v in self.cols.items():
            v[self.head:self.tail] = ordered.cols[k]

    def take(self, n: int) -> Rows:
        out = Rows({k: v[self.head:self.head + n] for k, v in self.cols.items()})
        self.head += n
        return out


def _key(rows: Rows, i: int) -> tuple[int, int]:
    seq = rows.cols.get("sequence_number")
    s = int(seq[i]) if seq is not None else 0
    return int(rows.cols["time"][i]), SEQ_NULL_KEY if s == NULL_I64 else s


class Stream:
    """One table's pending rows (sorted by key, in reusable arrays) plus its read position."""

    def __init__(self, source: TableSource, batch_rows: int, max_disorder_ns: int) -> None:
        self.source = source
        self.batch_rows = int(batch_rows)
        self.max_disorder_ns = int(max_disorder_ns)
        self.loaded = 0
        self.runmax = NEG_INF
        self.origin_missing = 0
        self.buffer = _Pending(source.empty())
        self.read_rows = 0  # rows read by this process (re-reads included)

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
            self._add(batch)

    def _add(self, batch: Rows) -> None:
        in_order = _sorted_by_key(batch.cols["time"], _seq(batch))
        follows = not len(self.buffer) or _key(batch, 0) >= _key(self.buffer.rows(), len(self.buffer) - 1)
        self.buffer.append(batch)
        if not (in_order and follows):
            self.buffer.sort()

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
        return len(self.buffer)

    def count_before(self, h: int) -> int:
        b = self.buffer
        return int(np.searchsorted(b.cols["time"][b.head:b.tail], h, side="left"))

    def pop(self, n: int) -> Rows:
        """The first `n` pending rows (views, valid until the next batch is read)."""
        return self.buffer.take(n)

    def position(self) -> StreamPosition:
        rows = self.buffer.rows().cols["row"]
        low = int(rows.min()) if len(rows) else self.loaded
        return StreamPosition(self.loaded, self.runmax, low, self.origin_missing)

    def restore(self, pos: StreamPosition, horizon: int) -> None:
        """Rebuild the buffer of the checkpointed run: rows [low, loaded) with event time >= horizon."""
        self.loaded, self.runmax, self.origin_missing = pos.loaded, pos.runmax, pos.origin_missing
        pending, _ = self.source.read(pos.low, pos.loaded)
        self.read_rows += len(pending)
        keep = np.flatnonzero(pending.cols["time"] >= horizon)
        self.buffer = _Pending(self.source.empty())
        if len(keep):
            self.buffer.append(_order(pending.take(keep)))


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
