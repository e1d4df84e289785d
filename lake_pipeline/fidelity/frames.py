"""Canonical intermediate frames: what every fidelity metric reads, whichever side the data came from.

Adapters (`adapters.py`) turn golden captures and the reconstruction's unified events / book states into these
small polars frames; the metric code never sees the raw formats, so the same code measures both sides.
Everything is int64: times in ns since the epoch (UTC, exchange time), prices in ticks, sizes in lots.

| frame    | columns                                                                     | convention                       |
|----------|-----------------------------------------------------------------------------|----------------------------------|
| bbo      | time_ns, update_id, bid_px, bid_sz, ask_px, ask_sz                          | state after each book message    |
| quotes   | update_id, bid_px, bid_sz, ask_px, ask_sz                                   | golden bookTicker (real time)    |
| trades   | time_ns, trade_id, price, qty, is_buy (taker buy)                           | one row per source row (golden:  |
|          |                                                                             | fill; lake: aggTrade or fill)    |
| agg_trades | same as trades, trade_id = aggregate id `a`                               | golden `@aggTrade`, if recorded  |
| ladder   | time_ns, bid_{k}_price, bid_{k}_size, ask_…  (k = 0..19; null = no level)   | top-20 on a time grid            |
| drift    | time_ns, drift_levels                                                       | reconstruction's snapshots       |
| messages | time_ns, first_id, last_id, gap                                             | one row per book message         |
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

import polars as pl

from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS, N_LEVELS

BBO_SCHEMA = {"time_ns": pl.Int64, "update_id": pl.Int64, "bid_px": pl.Int64, "bid_sz": pl.Int64,
              "ask_px": pl.Int64, "ask_sz": pl.Int64}
QUOTES_SCHEMA = {k: v for k, v in BBO_SCHEMA.items() if k != "time_ns"}
TRADES_SCHEMA = {"time_ns": pl.Int64, "trade_id": pl.Int64, "price": pl.Int64, "qty": pl.Int64, "is_buy": pl.Boolean}
LADDER_SCHEMA = {"time_ns": pl.Int64, **{c: pl.Int64 for c in BOOK_LEVEL_COLUMNS}}
DRIFT_SCHEMA = {"time_ns": pl.Int64, "drift_levels": pl.Int32}
MESSAGES_SCHEMA = {"time_ns": pl.Int64, "first_id": pl.Int64, "last_id": pl.Int64, "gap": pl.Boolean}
# the reconstruction's messages also say whether a gap flag is a snapshot resync with measured drift (expected
# with 20-level lake snapshots: levels deeper than the seed appear; gated by the drift family, not integrity)
RECON_MESSAGES_SCHEMA = {**MESSAGES_SCHEMA, "snapshot_resync": pl.Boolean}

BBO_COLS = ("bid_px", "bid_sz", "ask_px", "ask_sz")
NS_PER_MS = 1_000_000
FLOAT_NOISE_NS = 1_000
"""Lake times are float seconds of millisecond exchange times (…141999872 for …142 ms): within 1 µs of a ms = that ms."""


def snap_ms(t: pl.Expr) -> pl.Expr:
    """Times within FLOAT_NOISE_NS of a millisecond → that millisecond; others unchanged."""
    near = (t + NS_PER_MS // 2) // NS_PER_MS * NS_PER_MS
    return pl.when((t - near).abs() <= FLOAT_NOISE_NS).then(near).otherwise(t)


def empty(schema: dict) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: dict, what: str) -> pl.DataFrame:
    """Select and cast to a canonical schema; a missing column is a ValueError naming the frame."""
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected {list(schema)}")
    return df.select([pl.col(c).cast(t) for c, t in schema.items()])


@dataclass(frozen=True)
class InputFile:
    """Provenance of one input: path, sha256 (None for a part listed but not read), rows, bytes."""

    path: str
    sha256: str | None
    rows: int | None
    bytes: int


@dataclass
class MarketView:
    """One side of a comparison (golden, reconstruction or a reference) as canonical frames.

    `start_ns`/`end_ns` is the window the data claims to cover; `bbo_convention` says how the BBO was sampled,
    because sampling conventions change the numbers (research §2.8) and both sides must share one.
    """

    label: str
    tick: Decimal
    lot: Decimal
    bbo: pl.DataFrame
    trades: pl.DataFrame
    start_ns: int
    end_ns: int
    ladder: pl.DataFrame | None = None
    drift: pl.DataFrame | None = None
    messages: pl.DataFrame | None = None
    quotes: pl.DataFrame | None = None
    agg_trades: pl.DataFrame | None = None
    bbo_convention: str = "after each book message"
    inputs: list[InputFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def restrict(self, t0_ns: int, t1_ns: int) -> MarketView:
        """The same view cut to [t0_ns, t1_ns); quotes are kept (they are aligned by update id, not time)."""

        def cut(df: pl.DataFrame | None) -> pl.DataFrame | None:
            if df is None:
                return None
            return df.filter((pl.col("time_ns") >= t0_ns) & (pl.col("time_ns") < t1_ns))

        return replace(self, bbo=cut(self.bbo), trades=cut(self.trades), agg_trades=cut(self.agg_trades),
                       ladder=cut(self.ladder),
                       drift=cut(self.drift), messages=cut(self.messages),
                       start_ns=max(self.start_ns, int(t0_ns)), end_ns=min(self.end_ns, int(t1_ns)))

    @property
    def duration_s(self) -> float:
        return max(0.0, (self.end_ns - self.start_ns) / 1e9)


def ladder_arrays(ladder: pl.DataFrame, side: str):
    """(prices, sizes) as (T × 20) int64 numpy arrays for one side; missing levels are price −1, size 0."""
    px = ladder.select([pl.col(f"{side}_{k}_price").fill_null(-1) for k in range(N_LEVELS)]).to_numpy()
    sz = ladder.select([pl.col(f"{side}_{k}_size").fill_null(0) for k in range(N_LEVELS)]).to_numpy()
    return px, sz
