"""Replay state carried across chunks: one int64 vector of named slots plus a few small arrays.

Everything the kernel needs to continue exactly where it stopped lives here (and in the book arrays), so a
checkpoint is `np.savez` of these arrays and a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lake_pipeline.lake.values import TIME_HOLE_S
from lake_pipeline.reconstruct.buffers import NULL_I64
from lake_pipeline.schemas import N_LEVELS

# ---- scalar slots ------------------------------------------------------------------------------------------------
ST_STRATEGY = 0  # index into strategies.STRATEGIES
ST_INIT = 1  # 1 once the book has been seeded from a valid snapshot
ST_LAST_SEQ = 2  # sequence_number of the last applied delta message (NULL_I64: none)
ST_LAST_MSG_TIME = 3  # event time of the last delta message (applied or not)
ST_SNAP_SEQ = 4  # sequence_number of the last snapshot the book was synchronised to
ST_CROSSED_SINCE = 5  # event time the book became crossed (NULL_I64: not crossed)
ST_GAP_PENDING = 6  # a gap was detected and no snapshot has recovered it yet
ST_NEXT_GRID = 7  # next book-state grid time to emit
ST_DAY_START = 8
ST_DAY_END = 9
ST_GRID_NS = 10
ST_HOLE_NS = 11  # time hole threshold between delta messages (snapshots for the snapshot strategies)
ST_RESEED_NS = 12  # re-seed when crossed longer than this
ST_PROV_N = 13  # provisional (trade-consumed) levels outstanding
ST_RING_N = 14  # delta rows ever pushed to the history ring
ST_LAST_TIME = 15  # event time of the last event processed
ST_LAST_SNAP_TIME = 16
ST_RESEED_PENDING = 17  # messages went missing: re-seed (not just resync) from the next valid snapshot
ST_DIRTY = 18  # the book changed since `last` (the latest book-state row) was taken
N_SLOTS = 20

# ---- counters (summed into the run summary) ------------------------------------------------------------------
COUNTERS = (
    "trades",
    "delta_rows",
    "delta_messages",
    "snapshots",
    "messages_applied",
    "messages_before_seed",
    "seeds",
    "resyncs",
    "reseeds",
    "snapshots_invalid",
    "snapshots_compared",
    "snapshots_with_drift",
    "drift_levels_sum",
    "drift_levels_max",
    "gaps_sequence_backwards",
    "gaps_time_hole",
    "gaps_crossed",
    "gaps_drift",
    "gaps_invalid_snapshot",
    "recoveries",
    "rows_reapplied",
    "history_too_short",
    "trades_consumed",
    "trades_not_consumed_cap",
    "provisional_reverted",
    "state_rows_grid",
    "state_rows_snapshot",
    "rows_crossed",
    "rows_gap_flagged",
)
C_BASE = N_SLOTS
(
    C_TRADES,
    C_DELTA_ROWS,
    C_DELTA_MSGS,
    C_SNAPSHOTS,
    C_MSGS_APPLIED,
    C_MSGS_PRESEED,
    C_SEEDS,
    C_RESYNCS,
    C_RESEEDS,
    C_SNAP_INVALID,
    C_SNAP_COMPARED,
    C_SNAP_DRIFT,
    C_DRIFT_SUM,
    C_DRIFT_MAX,
    C_GAP_SEQ,
    C_GAP_HOLE,
    C_GAP_CROSSED,
    C_GAP_DRIFT,
    C_GAP_INVALID,
    C_RECOVERIES,
    C_REAPPLIED,
    C_RING_SHORT,
    C_TRADES_CONSUMED,
    C_PROV_FULL,
    C_PROV_REVERTED,
    C_GRID_ROWS,
    C_SNAP_ROWS,
    C_ROWS_CROSSED,
    C_ROWS_GAP,
) = range(C_BASE, C_BASE + len(COUNTERS))
STATE_LEN = C_BASE + len(COUNTERS)

PROV_CAP = 1024
"""Provisionally consumed levels tracked at once: (is_bid, price, size before the trade); the next delta message
confirms or reverts every one of them, so only the trades of one 100 ms diff are outstanding (a real BTC sweep
touched 472 levels within one diff). Past the cap a trade consumes nothing (counted), so nothing stays wrong."""
RING_ROWS = 1 << 14
"""Applied delta rows kept to re-apply after a snapshot whose sequence_number is older than the book (~45 s of
BTC-USDT; a late-stamped snapshot lags by milliseconds). 512 KiB: small enough to stay in cache."""
RING_FIELDS = 4  # seq, is_bid, price, size
DRIFT_BINS = 4 * 20 + 2  # 0..80 levels, then "more"


@dataclass(frozen=True)
class ReplayParams:
    """Thresholds of the replay (DESIGN §5). Times in ns."""

    grid_ns: int = 100_000_000
    time_hole_ns: int = int(TIME_HOLE_S * 1e9)
    reseed_crossed_ns: int = 2_000_000_000

    def to_dict(self) -> dict[str, int]:
        return {"grid_ns": self.grid_ns, "time_hole_ns": self.time_hole_ns,
                "reseed_crossed_ns": self.reseed_crossed_ns}


@dataclass
class ReplayState:
    """The arrays the kernel mutates (besides the book)."""

    st: np.ndarray
    prov: np.ndarray
    ring: np.ndarray
    hist: np.ndarray
    last: np.ndarray  # the latest book-state row (lake column order), reused while the book is unchanged

    @classmethod
    def new(cls, strategy_code: int, day_start: int, day_end: int, params: ReplayParams) -> ReplayState:
        st = np.zeros(STATE_LEN, np.int64)
        st[ST_STRATEGY] = strategy_code
        for slot in (ST_LAST_SEQ, ST_LAST_MSG_TIME, ST_SNAP_SEQ, ST_CROSSED_SINCE, ST_LAST_TIME, ST_LAST_SNAP_TIME):
            st[slot] = NULL_I64
        st[ST_NEXT_GRID] = day_start
        st[ST_DAY_START] = day_start
        st[ST_DAY_END] = day_end
        st[ST_GRID_NS] = params.grid_ns
        st[ST_HOLE_NS] = params.time_hole_ns
        st[ST_RESEED_NS] = params.reseed_crossed_ns
        st[ST_DIRTY] = 1
        return cls(st, np.zeros((PROV_CAP, 3), np.int64), np.zeros((RING_ROWS, RING_FIELDS), np.int64),
                   np.zeros(DRIFT_BINS, np.int64), np.zeros(4 * N_LEVELS, np.int64))

    def checkpoint(self) -> dict[str, np.ndarray]:
        """Compact copy: the ring keeps only its filled rows."""
        filled = min(int(self.st[ST_RING_N]), RING_ROWS)
        return {"st": self.st.copy(), "prov": self.prov[: int(self.st[ST_PROV_N])].copy(),
                "ring": self.ring[:filled].copy(), "hist": self.hist.copy(), "last": self.last.copy()}

    @classmethod
    def restore(cls, arrays: dict[str, np.ndarray]) -> ReplayState:
        ring = np.zeros((RING_ROWS, RING_FIELDS), np.int64)
        ring[: arrays["ring"].shape[0]] = arrays["ring"]
        prov = np.zeros((PROV_CAP, 3), np.int64)
        prov[: arrays["prov"].shape[0]] = arrays["prov"]
        return cls(arrays["st"].copy(), prov, ring, arrays["hist"].copy(), arrays["last"].copy())

    def counters(self) -> dict[str, int]:
        return {name: int(self.st[C_BASE + i]) for i, name in enumerate(COUNTERS)}
