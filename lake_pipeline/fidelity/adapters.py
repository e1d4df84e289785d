"""Adapters: golden captures and the reconstruction's outputs → canonical `MarketView`s (see `frames.py`).

Reconstruction side: `unified/…/part-*.parquet` (schemas.UNIFIED_EVENT) and `book_states/…` (schemas.BOOK_STATE),
read part by part with only the needed columns; decimal128 prices/sizes become int64 ticks/lots (a value off the
grid is an error naming the file and column). The BBO is the state after the last row of each book message,
stamped on the exchange millisecond its float-seconds lake time stands for (`frames.snap_ms`), like the golden E.

Golden side: `capture.golden.read_golden` frames. The BBO follows the SAME convention as the reconstruction —
the golden bookTicker with the largest u' ≤ u of each depth diff, stamped with the diff's exchange time E — so a
diff-based reconstruction is not penalised for intra-batch quotes it cannot see (research §3.1). The golden depth
ladder is rebuilt with the official sync (`capture.sync.BookSync`) on the shared engine (`book.OrderBook`).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from loguru import logger

from lake_pipeline import paths
from lake_pipeline.config import SymbolSpec, symbol_spec
from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.fidelity.frames import (
    BBO_SCHEMA,
    DRIFT_SCHEMA,
    LADDER_SCHEMA,
    MESSAGES_SCHEMA,
    RECON_MESSAGES_SCHEMA,
    QUOTES_SCHEMA,
    TRADES_SCHEMA,
    InputFile,
    MarketView,
    conform,
    empty,
    snap_ms,
)
from lake_pipeline.fidelity.hawkes import MS
from lake_pipeline.schemas import (
    BOOK_LEVEL_COLUMNS,
    EVENT_SNAPSHOT,
    EVENT_TRADE,
    FLAG_GAP,
    FLAG_UNINITIALISED,
    N_LEVELS,
)

UNIFIED_COLUMNS = ["event_time", "event_type", "sequence_number", "trade_id", "side", "price", "quantity",
                   "best_bid_price", "best_bid_quantity", "best_ask_price", "best_ask_quantity", "book_flags",
                   "drift_levels"]


class FidelityInputError(ValueError):
    """An input the fidelity report cannot use; the message names the file, partition or field."""


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def describe_file(path: Path, rows: int | None = None) -> InputFile:
    if rows is None and path.suffix == ".parquet":
        rows = pq.ParquetFile(path).metadata.num_rows
    return InputFile(str(path), sha256_of(path), rows, path.stat().st_size)


def units_array(arr: pa.Array | pa.ChunkedArray, unit: Decimal, where: str, column: str) -> pa.Array:
    """decimal128 values → int64 multiples of `unit`, exactly, at Arrow speed; nulls stay null.

    `unit` = m·10^e: a safe cast to scale −e makes Arrow itself reject any value with digits below the unit's
    (a value off the grid), the low 64 bits of the rescaled int128 storage are then the integer (the high word
    must be its sign extension), and a non-power-of-ten m is divided out with a remainder check.
    """
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    sign, digits, exp = unit.normalize().as_tuple()
    m = int("".join(map(str, digits)))
    scale = max(0, -exp)
    if exp > 0:
        m *= 10**exp
    try:
        rescaled = pc.cast(arr, pa.decimal128(38, scale))
    except pa.ArrowInvalid:
        raise _off_grid(arr, unit, where, column) from None
    start = 2 * rescaled.offset
    words = np.frombuffer(rescaled.buffers()[1], dtype=np.int64)[start: start + 2 * len(rescaled)]
    low, high = words[0::2], words[1::2]
    valid = ~np.asarray(rescaled.is_null(), dtype=bool) if rescaled.null_count else np.ones(len(rescaled), bool)
    if np.any((high != (low >> 63)) & valid):
        raise FidelityInputError(f"{where}: column {column} holds values beyond the int64 range of {unit:f} units")
    if m != 1 and np.any((low % m != 0) & valid):
        raise _off_grid(arr, unit, where, column)
    return pa.array(low // m if m != 1 else low.copy(), mask=None if rescaled.null_count == 0 else ~valid)


def _off_grid(arr: pa.Array, unit: Decimal, where: str, column: str) -> FidelityInputError:
    """Name the first value off the grid (slow path, only on error)."""
    for v in arr.to_pylist():
        if v is not None and (Decimal(v) / unit) % 1 != 0:
            return FidelityInputError(f"{where}: column {column} value {Decimal(v).normalize():f} is off the grid "
                                      f"of {unit:f}")
    return FidelityInputError(f"{where}: column {column} is off the grid of {unit:f}")


def _to_units(df: pl.DataFrame, cols: list[str], unit: Decimal, where: str) -> pl.DataFrame:
    """Decimal columns of a polars frame → int64 multiples of `unit` (see `units_array`)."""
    return df.with_columns([pl.from_arrow(units_array(df[c].to_arrow(), unit, where, c)).alias(c) for c in cols])


def _parts(directory: Path, what: str) -> list[Path]:
    files = sorted(directory.glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no {what} parts (part-*.parquet) in {directory}")
    return files


# ---------------------------------------------------------------------------------------------------------------
# Reconstruction
# ---------------------------------------------------------------------------------------------------------------


def _infer_unit(series: pl.Series) -> Decimal:
    """Coarsest power-of-ten grid every non-null, non-zero value lies on (exact: decimal exponents of a sample)."""
    values = [v for v in series.drop_nulls().head(200_000).to_list() if v]
    if not values:
        return Decimal(1).scaleb(-18)
    return Decimal(1).scaleb(min(Decimal(v).normalize().as_tuple().exponent for v in values))


def recon_spec(instrument: Instrument, unified_parts: list[Path]) -> SymbolSpec:
    """Configured tick/lot, else inferred from the first part's prices and sizes (logged, recorded in provenance)."""
    spec = symbol_spec(instrument)
    if spec is not None:
        return spec
    symbol = instrument.symbol
    df = pl.read_parquet(unified_parts[0], columns=["price", "quantity", "best_bid_price", "best_bid_quantity"])
    tick = min(_infer_unit(df["price"]), _infer_unit(df["best_bid_price"]))
    lot = min(_infer_unit(df["quantity"]), _infer_unit(df["best_bid_quantity"]))
    logger.info("fidelity: {} not in symbol config; inferred tick {} lot {} from {}", symbol, tick, lot,
                unified_parts[0])
    return SymbolSpec(symbol, tick, lot, "inferred")


def _runs_of(df: pl.DataFrame, key: pl.Expr):
    """Group consecutive rows with the same key (one book message), keeping their order; agg drops `msg`."""
    return df.with_columns(msg=(key != key.shift(1)).fill_null(True).cum_sum()).group_by("msg", maintain_order=True)


def _read_unified_part(path: Path, spec: SymbolSpec) -> dict[str, pl.DataFrame]:
    """One unified part → trades, and per book message its last row (BBO after the message) with the message's
    gap / snapshot / drift flags.

    A full day is ~30 M delta rows, so nothing is grouped or converted per row: message boundaries come from the
    integer columns (numpy), and only the ~1 M message-final rows and the trade rows are gathered and converted."""
    try:
        light = pl.read_parquet(path, columns=["event_time", "event_type", "sequence_number", "book_flags",
                                               "drift_levels"])
        best = pl.read_parquet(path, columns=["best_bid_price", "best_bid_quantity", "best_ask_price",
                                              "best_ask_quantity"])
        trades = (pl.scan_parquet(path).filter(pl.col("event_type") == EVENT_TRADE)
                  .select(pl.col("event_time").dt.epoch("ns").alias("time_ns"), "trade_id", "price",
                          pl.col("quantity").alias("qty"), (pl.col("side") == "buy").alias("is_buy")).collect())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise FidelityInputError(f"{path}: cannot read unified events ({exc})") from exc
    trades = _to_units(_to_units(trades, ["price"], spec.tick, str(path)), ["qty"], spec.lot, str(path))
    kind = light["event_type"]
    book_rows = np.flatnonzero((kind != EVENT_TRADE).to_numpy())
    seq = light["sequence_number"].to_numpy()[book_rows]
    if book_rows.size == 0:
        return {"trades": trades, "book": _to_units(_to_units(_empty_book(), ["bid_px", "ask_px"], spec.tick,
                                                                          str(path)), ["bid_sz", "ask_sz"], spec.lot,
                                                               str(path))}
    starts = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1]])
    last = book_rows[np.r_[starts[1:] - 1, book_rows.size - 1]]
    flags = light["book_flags"].to_numpy()[book_rows]
    snap = (kind == EVENT_SNAPSHOT).to_numpy()[book_rows]
    drift = light["drift_levels"].fill_null(-1).to_numpy()[book_rows]
    drift_msg = np.maximum.reduceat(drift, starts)
    final = best[last]
    book = pl.DataFrame({
        "time_ns": light["event_time"].dt.epoch("ns").to_numpy()[last], "update_id": seq[starts],
        "bid_px": final["best_bid_price"], "bid_sz": final["best_bid_quantity"],
        "ask_px": final["best_ask_price"], "ask_sz": final["best_ask_quantity"],
        "gap": np.logical_or.reduceat((flags & FLAG_GAP) != 0, starts),
        "uninit": (light["book_flags"].to_numpy()[last] & FLAG_UNINITIALISED) != 0,
        "snapshot": np.logical_or.reduceat(snap, starts),
        "drift_levels": pl.Series(drift_msg, dtype=pl.Int32).set(pl.Series(drift_msg < 0), None),
    })
    book = _to_units(book, ["bid_px", "ask_px"], spec.tick, str(path))
    book = _to_units(book, ["bid_sz", "ask_sz"], spec.lot, str(path))
    return {"trades": trades, "book": book}


def _empty_book() -> pl.DataFrame:
    dec = pl.Decimal(38, 18)
    return pl.DataFrame(schema={"time_ns": pl.Int64, "update_id": pl.Int64, "bid_px": dec, "bid_sz": dec,
                                "ask_px": dec, "ask_sz": dec, "gap": pl.Boolean, "uninit": pl.Boolean,
                                "snapshot": pl.Boolean, "drift_levels": pl.Int32})


def _merge_split_messages(book: pl.DataFrame) -> pl.DataFrame:
    """A message split across two parts appears twice in a row: keep its last state, OR its gap flags."""
    return _runs_of(book, pl.col("update_id")).agg(
        pl.all().exclude("gap", "snapshot", "drift_levels").last(), pl.col("gap").any(), pl.col("snapshot").any(),
        pl.col("drift_levels").drop_nulls().last(),
    ).drop("msg")


def read_book_states(directory: Path, spec: SymbolSpec,
                     window: tuple[int, int] | None = None) -> tuple[pl.DataFrame, list[InputFile]]:
    """book_states parts → canonical ladder (ticks/lots; price null where a level is absent), optionally only
    the rows in `window` [t0, t1) ns (row groups outside are skipped by the parquet reader)."""
    frames, inputs = [], []
    filters = None
    if window is not None:
        lo, hi = (pa.scalar(int(t), pa.timestamp("ns", tz="UTC")) for t in window)
        filters = [("event_time", ">=", lo), ("event_time", "<", hi)]
    for p in _parts(directory, "book_states"):
        try:
            t = pq.read_table(p, columns=["event_time", *BOOK_LEVEL_COLUMNS], filters=filters)
        except (pa.ArrowException, OSError) as exc:
            raise FidelityInputError(f"{p}: cannot read book states ({exc})") from exc
        cols = {"time_ns": pl.from_arrow(t.column("event_time").cast(pa.int64()))}
        for c in BOOK_LEVEL_COLUMNS:
            unit = spec.tick if c.endswith("_price") else spec.lot
            cols[c] = pl.from_arrow(units_array(t.column(c), unit, str(p), c))
        frames.append(conform(pl.DataFrame(cols), LADDER_SCHEMA, f"{p} (book states)"))
        inputs.append(describe_file(p))
    return pl.concat(frames).sort("time_ns", maintain_order=True), inputs


def unified_parts(data_root: Path, part: Partition) -> list[Path]:
    """The published parts of a unified partition (FileNotFoundError naming the partition otherwise)."""
    udir = paths.unified_dir(data_root, part)
    parts = _parts(udir, "unified event")
    if not (udir / "_SUCCESS").exists():
        raise FileNotFoundError(f"unified partition {udir} is not published (no _SUCCESS marker)")
    return parts


def recon_view(data_root: Path, part: Partition, label: str = "reconstruction", *,
               ladder_window: tuple[int, int] | None = None, load_ladder: bool = True) -> MarketView:
    """The reconstruction of one partition as a MarketView (window = first to last event time).

    The top-20 book states are only needed for the paired depth comparison: `load_ladder=False` skips them (see
    `with_ladder`) and `ladder_window` reads only the golden capture's stretch of the day."""
    udir = paths.unified_dir(data_root, part)
    parts = unified_parts(data_root, part)
    spec = recon_spec(part.instrument, parts)
    trades, books, inputs = [], [], []
    for p in parts:
        got = _read_unified_part(p, spec)
        trades.append(got["trades"])
        books.append(got["book"])
        inputs.append(describe_file(p))
    book = _merge_split_messages(pl.concat(books))
    trade_df = conform(pl.concat(trades), TRADES_SCHEMA, f"{udir} (trades)").sort("time_ns", "trade_id",
                                                                                      maintain_order=True)
    times = [df["time_ns"] for df in (book, trade_df) if df.height]
    if not times:
        raise FidelityInputError(f"unified partition {udir} holds no events")
    start = int(min(t.min() for t in times))
    end = int(max(t.max() for t in times)) + 1
    valid = book.filter(~pl.col("uninit") & pl.col("bid_px").is_not_null() & pl.col("ask_px").is_not_null())
    notes = [f"tick {spec.tick}, lot {spec.lot} ({spec.source})"]
    view = MarketView(
        label=label, tick=spec.tick, lot=spec.lot,
        bbo=conform(valid.with_columns(snap_ms(pl.col("time_ns"))), BBO_SCHEMA, f"{udir} (bbo)"),
        trades=trade_df, start_ns=start, end_ns=end, ladder=None,
        drift=conform(book.filter(pl.col("snapshot") & pl.col("drift_levels").is_not_null()), DRIFT_SCHEMA,
                      f"{udir} (drift)"),
        messages=conform(book.with_columns(first_id=pl.lit(None, pl.Int64), last_id=pl.col("update_id"),
                                           snapshot_resync=pl.col("snapshot") & (pl.col("drift_levels") > 0)
                                           .fill_null(False)),
                         RECON_MESSAGES_SCHEMA, f"{udir} (messages)"),
        inputs=inputs, notes=notes,
    )
    return with_ladder(view, data_root, part, ladder_window) if load_ladder else view


def with_ladder(view: MarketView, data_root: Path, part: Partition,
                window: tuple[int, int] | None = None) -> MarketView:
    """The view with the partition's top-20 book states (only those in `window` when given) for per-level depth."""
    bdir = paths.book_states_dir(data_root, part)
    if not (bdir.is_dir() and any(bdir.glob("part-*.parquet"))):
        return replace(view, notes=[*view.notes, f"no book states at {bdir}: per-level depth not available"])
    spec = SymbolSpec(part.symbol, view.tick, view.lot, "view")
    ladder, more = read_book_states(bdir, spec, window)
    return replace(view, ladder=ladder, inputs=[*view.inputs, *more])



# ---------------------------------------------------------------------------------------------------------------
# Golden
# ---------------------------------------------------------------------------------------------------------------


def golden_trades(frames) -> pl.DataFrame:
    t = frames.trades.select(
        (pl.col("T") * MS).alias("time_ns"), pl.col("t").alias("trade_id"), "price", "qty",
        (~pl.col("is_buyer_maker")).alias("is_buy"))
    return conform(t, TRADES_SCHEMA, "golden trades").sort("time_ns", "trade_id", maintain_order=True)


def golden_agg_trades(frames) -> pl.DataFrame | None:
    """`@aggTrade` rows (trade_id = aggregate id `a`, time = `T`), or None when the capture has none."""
    a = frames.agg_trades
    if a.height == 0:
        return None
    t = a.select((pl.col("T") * MS).alias("time_ns"), pl.col("a").alias("trade_id"), "price", "qty",
                 (~pl.col("is_buyer_maker")).alias("is_buy"))
    return conform(t, TRADES_SCHEMA, "golden aggTrades").sort("time_ns", "trade_id", maintain_order=True)


def golden_quotes(frames) -> pl.DataFrame:
    q = frames.book_ticker.select(pl.col("u").alias("update_id"), "bid_px", pl.col("bid_qty").alias("bid_sz"),
                                  "ask_px", pl.col("ask_qty").alias("ask_sz"))
    return conform(q, QUOTES_SCHEMA, "golden bookTicker").sort("update_id", maintain_order=True)


def golden_messages(frames) -> pl.DataFrame:
    """Depth diffs; `gap`: the diff does not continue the previous one (spot U != u + 1, USD-M pu != u)."""
    from lake_pipeline.capture.replay import recorded_rule
    from lake_pipeline.capture.sync import FUTURES_RULE

    previous = pl.col("u").shift(1)
    follows = pl.col("pu") == previous if recorded_rule(frames) is FUTURES_RULE else pl.col("U") == previous + 1
    m = frames.depth.select((pl.col("E") * MS).alias("time_ns"), pl.col("U").alias("first_id"),
                            pl.col("u").alias("last_id"), (~follows).fill_null(False).alias("gap"))
    return conform(m, MESSAGES_SCHEMA, "golden depth diffs")


def golden_bbo_from_quotes(messages: pl.DataFrame, quotes: pl.DataFrame) -> pl.DataFrame:
    """BBO after each depth diff: the bookTicker with the largest u' ≤ u, at the diff's exchange time."""
    j = messages.select("time_ns", pl.col("last_id").alias("update_id")).sort("update_id").join_asof(
        quotes, on="update_id", strategy="backward")
    return conform(j.drop_nulls(), BBO_SCHEMA, "golden bbo").sort("time_ns", "update_id", maintain_order=True)


def rebuild_golden_book(frames) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """Top-20 ladder and BBO after every applied diff, from the official sync on the shared book engine.

    None when the engine is not installed (then per-level depth is reported as not available, never guessed).
    """
    try:
        from lake_pipeline.book import OrderBook
    except ImportError:
        return None
    from lake_pipeline.capture.replay import book_events, feed, recorded_rule
    from lake_pipeline.capture.sync import BookSync

    book = OrderBook()
    rows: list[np.ndarray] = []
    times: list[int] = []
    ids: list[int] = []

    def record(diff) -> None:
        bp, bs, ap, as_ = book.top(N_LEVELS)
        rows.append(np.stack([bp, bs, ap, as_]))
        times.append(int(diff.meta.exchange_ms) * MS)
        ids.append(int(diff.last_id))

    sync = BookSync(book, on_applied=record, rule=recorded_rule(frames))
    for event in book_events(frames):
        feed(sync, event)
    if not rows:
        return empty(LADDER_SCHEMA), empty(BBO_SCHEMA)
    a = np.stack(rows)  # (T, 4, 20)
    cols: dict[str, np.ndarray] = {"time_ns": np.asarray(times, dtype=np.int64)}
    for si, side in ((0, "bid"), (2, "ask")):
        for k in range(N_LEVELS):
            px = a[:, si, k]
            cols[f"{side}_{k}_price"] = np.where(px > 0, px, -1)
            cols[f"{side}_{k}_size"] = a[:, si + 1, k]
    ladder = pl.DataFrame(cols).with_columns(
        [pl.when(pl.col(c) < 0).then(None).otherwise(pl.col(c)).alias(c) for c in cols if c.endswith("_price")])
    bbo = pl.DataFrame({"time_ns": cols["time_ns"], "update_id": np.asarray(ids, dtype=np.int64),
                        "bid_px": a[:, 0, 0], "bid_sz": a[:, 1, 0], "ask_px": a[:, 2, 0], "ask_sz": a[:, 3, 0]})
    bbo = bbo.filter((pl.col("bid_px") > 0) & (pl.col("ask_px") > 0))
    return conform(ladder, LADDER_SCHEMA, "golden ladder"), conform(bbo, BBO_SCHEMA, "golden book bbo")


def golden_view(frames, spec: SymbolSpec, *, label: str = "golden", inputs: list[InputFile] | None = None,
                rebuild_book: bool = True) -> MarketView:
    """A golden capture (GoldenFrames read WITH a SymbolSpec) as a MarketView."""
    trades, quotes, messages = golden_trades(frames), golden_quotes(frames), golden_messages(frames)
    notes: list[str] = []
    rebuilt = rebuild_golden_book(frames) if rebuild_book else None
    ladder = None
    if rebuilt is None:
        notes.append("golden depth ladder not rebuilt (lake_pipeline.book.OrderBook unavailable or disabled)")
    else:
        ladder = rebuilt[0]
    if quotes.height:
        bbo = golden_bbo_from_quotes(messages, quotes)
        convention = "golden bookTicker (largest u' <= u) at each depth diff's exchange time E"
    elif rebuilt is not None:
        bbo = rebuilt[1]
        convention = "golden book rebuilt from snapshot + diffs, after each diff"
        notes.append("no bookTicker stream: golden BBO taken from the rebuilt book")
    else:
        bbo = empty(BBO_SCHEMA)
        convention = "none"
    times = [s for s in (messages["time_ns"], trades["time_ns"]) if s.len()]
    if not times:
        raise FidelityInputError("golden capture holds no depth diffs and no trades")
    start = int(min(s.min() for s in times))
    end = int(max(s.max() for s in times)) + 1
    return MarketView(label, spec.tick, spec.lot, bbo, trades, start, end, ladder=ladder, drift=None,
                      messages=messages, quotes=quotes, agg_trades=golden_agg_trades(frames),
                      bbo_convention=convention, inputs=inputs or [], notes=notes)


def golden_session_files(session_dir: Path) -> list[Path]:
    """Capture files of a session, in name order (hourly rotation names sort chronologically)."""
    files = sorted(p for p in Path(session_dir).iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.name != "session.json"
                   and (".jsonl" in p.name or p.suffix in (".gz", ".enc")))
    if not files:
        raise FileNotFoundError(f"no capture files in golden session {session_dir}")
    return files


def read_golden_session(paths_: list[Path], spec: SymbolSpec, *, label: str = "golden",
                        rebuild_book: bool = True) -> MarketView:
    """Read capture files with the golden reader and adapt them (provenance: sha256 and bytes of every file).

    The last few sessions read are kept, keyed by every file's resolved path, size and mtime: reports on many
    reconstructions of one period (the power benchmark, a re-run) parse and rebuild the capture once."""
    key = tuple((str(Path(p).resolve()), Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in paths_)
    view = _golden_session_cached(key, spec, rebuild_book)
    inputs = [replace(f, path=str(p)) for p, f in zip(paths_, view.inputs, strict=True)]
    return replace(view, label=label, inputs=inputs)


@functools.lru_cache(maxsize=2)
def _golden_session_cached(files: tuple[tuple[str, int, int], ...], spec: SymbolSpec,
                           rebuild_book: bool) -> MarketView:
    from lake_pipeline.capture.golden import read_golden

    paths_ = [Path(f[0]) for f in files]
    frames = read_golden(paths_, spec)
    inputs = [describe_file(p) for p in paths_]
    return golden_view(frames, spec, inputs=inputs, rebuild_book=rebuild_book)


def find_golden_session(data_root: Path, part: Partition, session: str | None) -> Path | None:
    """The golden session directory for the partition: the named one, else the one holding the most bytes."""
    base = paths.golden_dir(data_root, part)
    if session:
        d = base / f"session={session}"
        if not d.is_dir():
            raise FileNotFoundError(f"golden session {session!r} not found under {base}")
        return d
    sessions = [d for d in base.glob("session=*") if d.is_dir()] if base.is_dir() else []
    if not sessions:
        return None
    return max(sessions, key=lambda d: (sum(f.stat().st_size for f in d.iterdir() if f.is_file()), d.name))
