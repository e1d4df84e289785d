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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
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
from lake_pipeline.memory import release_free_memory
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
from lake_pipeline.fidelity.golden_book import rebuild_golden_book
from lake_pipeline.fidelity.hawkes import MS
from lake_pipeline.fidelity.message_runs import message_runs
from lake_pipeline.schemas import (
    BOOK_LEVEL_COLUMNS,
    EVENT_SNAPSHOT,
    EVENT_TRADE,
    FLAG_GAP,
    FLAG_UNINITIALISED,
)

UNIFIED_COLUMNS = ["event_time", "event_type", "sequence_number", "trade_id", "side", "price", "quantity",
                   "best_bid_price", "best_bid_quantity", "best_ask_price", "best_ask_quantity", "book_flags",
                   "drift_levels"]


READ_THREADS = 2  # the machine's cores; parquet parts of one partition are read this many at a time


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
    fast = _units_exact_division(arr, unit)
    if fast is not None:
        return fast
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
    valid = _valid_mask(rescaled)
    if np.any((high != (low >> 63)) & valid):
        raise FidelityInputError(f"{where}: column {column} holds values beyond the int64 range of {unit:f} units")
    if m != 1 and np.any((low % m != 0) & valid):
        raise _off_grid(arr, unit, where, column)
    return pa.array(low // m if m != 1 else low.copy(), mask=None if rescaled.null_count == 0 else ~valid)


def _valid_mask(arr: pa.Array) -> np.ndarray:
    """Per value: is it non-null (bool numpy array)?"""
    return ~np.asarray(arr.is_null(), dtype=bool) if arr.null_count else np.ones(len(arr), bool)


@functools.cache
def _exact_division_kernel():
    """numba kernel (compiled once, cached on disk): per value, the float64 estimate of storage / d rounded, and
    whether that quotient times d equals the 128-bit storage exactly (32-bit limb product, two's complement)."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def divide(low, high, valid, d, out):
        m32 = np.uint64(0xFFFFFFFF)
        s32 = np.uint64(32)
        b0 = np.uint64(d) & m32
        b1 = np.uint64(d) >> s32
        for i in range(low.size):
            if not valid[i]:
                out[i] = 0
                continue
            lw = np.uint64(low[i])
            x = (np.float64(high[i]) * 18446744073709551616.0 + np.float64(lw)) / np.float64(d)
            if not abs(x) < 4611686018427387904.0:
                return False
            q = np.int64(np.rint(x))
            a = np.uint64(-q) if q < 0 else np.uint64(q)
            a0 = a & m32
            a1 = a >> s32
            p00 = a0 * b0
            p01 = a0 * b1
            p10 = a1 * b0
            mid = (p00 >> s32) + (p01 & m32) + (p10 & m32)
            lo = (p00 & m32) | ((mid & m32) << s32)
            hi = a1 * b1 + (p01 >> s32) + (p10 >> s32) + (mid >> s32)
            if q < 0:
                hi = ~hi + (np.uint64(1) if lo == 0 else np.uint64(0))
                lo = ~lo + np.uint64(1)
            if lo != lw or np.int64(hi) != high[i]:
                return False
            out[i] = q
        return True

    return divide


def _units_exact_division(arr: pa.Array, unit: Decimal) -> pa.Array | None:
    """Fast path of `units_array`: the decimal128 storage integer divided by unit·10^scale, estimated in float64
    and then proven exact (the 128-bit product of the quotient and the divisor equals the storage, for every
    non-null value). None whenever that proof fails (off grid, beyond int64, other types): the caller then takes
    the checked Arrow path, which raises the error naming the value. Same values, a few times less CPU than the cast."""
    if not pa.types.is_decimal128(arr.type) or len(arr) == 0:
        return None
    divisor = unit.scaleb(arr.type.scale)
    if divisor <= 0 or divisor != divisor.to_integral_value() or divisor >= 2**62:
        return None
    d = int(divisor)
    words = np.frombuffer(arr.buffers()[1], dtype=np.int64)[2 * arr.offset: 2 * (arr.offset + len(arr))]
    low, high = words[0::2], words[1::2]
    valid = _valid_mask(arr)
    q = np.empty(len(arr), np.int64)
    if not _exact_division_kernel()(low.view(np.uint64), high, valid, d, q):
        return None
    valid = None if arr.null_count == 0 else valid
    return pa.array(q, mask=None if valid is None else ~valid)


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


def _read_unified_part(path: Path, spec: SymbolSpec) -> dict[str, pl.DataFrame]:
    """One unified part → trades, and per book message its last row (BBO after the message) with the message's
    gap / snapshot / drift flags.

    A full day is ~30 M delta rows, so nothing is grouped or converted per row: the integer columns (event types as
    their dictionary codes) go through one numba pass (`message_runs`), and only the ~1 M message-final rows and
    the trade rows of the decimal columns are gathered and converted. The column groups are read one after the
    other and dropped once gathered, so a reading thread holds about one part's BBO columns at a time."""
    light = _read_part(path, lambda: pq.read_table(
        path, columns=["event_time", "event_type", "sequence_number", "book_flags", "drift_levels", "side"],
        use_threads=False).unify_dictionaries())
    codes, names = _dictionary_codes(light.column("event_type"))
    flags = _int_numpy(light.column("book_flags"), 0)
    runs = message_runs(codes, _code_of(names, EVENT_TRADE), _code_of(names, EVENT_SNAPSHOT),
                        _int_numpy(light.column("sequence_number"), -1), flags, FLAG_GAP,
                        _int_numpy(light.column("drift_levels"), -1))
    time_ns = _int_numpy(light.column("event_time").cast(pa.int64()), 0)
    side_codes, side_names = _dictionary_codes(light.column("side"))
    del light, codes
    trades = _read_part(path, lambda: pl.read_parquet(path, columns=["trade_id", "price", "quantity"],
                                                      parallel="none"))[runs.trade_rows]
    trades = trades.select(
        pl.Series("time_ns", time_ns[runs.trade_rows]), "trade_id", "price", pl.col("quantity").alias("qty"),
        pl.Series("is_buy", side_codes[runs.trade_rows] == _code_of(side_names, "buy")))
    trades = _to_units(_to_units(trades, ["price"], spec.tick, str(path)), ["qty"], spec.lot, str(path))
    final = _read_part(path, lambda: pl.read_parquet(path, columns=["best_bid_price", "best_bid_quantity",
                                                                    "best_ask_price", "best_ask_quantity"],
                                                     parallel="none"))[runs.last_row]
    book = pl.DataFrame({
        "time_ns": time_ns[runs.last_row], "update_id": runs.update_id,
        "bid_px": final["best_bid_price"], "bid_sz": final["best_bid_quantity"],
        "ask_px": final["best_ask_price"], "ask_sz": final["best_ask_quantity"],
        "gap": runs.gap, "uninit": (flags[runs.last_row] & FLAG_UNINITIALISED) != 0, "snapshot": runs.snapshot,
        "drift_levels": pl.Series(runs.drift_levels, dtype=pl.Int32).set(pl.Series(runs.drift_levels < 0), None),
    }, schema_overrides={"bid_px": _DECIMAL, "bid_sz": _DECIMAL, "ask_px": _DECIMAL, "ask_sz": _DECIMAL})
    book = _to_units(book, ["bid_px", "ask_px"], spec.tick, str(path))
    book = _to_units(book, ["bid_sz", "ask_sz"], spec.lot, str(path))
    return {"trades": trades, "book": book}


def _read_part(path: Path, read):
    """`read()`, with a parquet or I/O error turned into a FidelityInputError naming the file."""
    try:
        return read()
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
        raise FidelityInputError(f"{path}: cannot read unified events ({exc})") from exc


_DECIMAL = pl.Decimal(38, 18)


def _dictionary_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """A dictionary column (dictionaries unified across chunks) → int32 codes (-1 for null) and the dictionary."""
    if not pa.types.is_dictionary(column.type):  # plain strings (another writer): one dictionary for all chunks
        column = pa.chunked_array([column.combine_chunks().dictionary_encode()])
    if column.num_chunks == 0:
        return np.empty(0, np.int32), []
    codes = np.concatenate([c.indices.fill_null(-1).to_numpy(zero_copy_only=False) for c in column.chunks])
    return codes.astype(np.int32, copy=False), column.chunks[0].dictionary.to_pylist()


def _code_of(names: list[str], name: str) -> int:
    return names.index(name) if name in names else -2


def _int_numpy(column: pa.ChunkedArray, fill: int) -> np.ndarray:
    """An integer column as one numpy array, nulls replaced by `fill`."""
    if column.null_count:
        column = column.fill_null(fill)
    return column.to_numpy()


def _merge_split_messages(book: pl.DataFrame) -> pl.DataFrame:
    """A message split across two parts appears twice in a row: keep its last state, OR its gap and snapshot
    flags, keep its last recorded drift. Splits happen only at part boundaries (a few dozen rows a day), so only
    those rows are touched."""
    ids = book["update_id"].to_numpy()
    cont = np.flatnonzero(ids[1:] == ids[:-1]) + 1  # rows continuing the message of the row before
    if cont.size == 0:
        return book
    gap, snap = book["gap"].to_numpy().copy(), book["snapshot"].to_numpy().copy()
    drift = book["drift_levels"]
    drift_valid = drift.is_not_null().to_numpy()
    drift_values = drift.fill_null(0).to_numpy().copy()
    for j in cont:  # ascending, so a message split three ways accumulates into its last row
        gap[j] |= gap[j - 1]
        snap[j] |= snap[j - 1]
        if not drift_valid[j] and drift_valid[j - 1]:
            drift_values[j], drift_valid[j] = drift_values[j - 1], True
    keep = np.ones(book.height, bool)
    keep[cont - 1] = False
    merged = book.with_columns(
        gap=pl.Series(gap), snapshot=pl.Series(snap),
        drift_levels=pl.Series(drift_values, dtype=pl.Int32).set(pl.Series(~drift_valid), None))
    return merged.filter(pl.Series(keep))


def _row_groups_in(pf: pq.ParquetFile, window: tuple[int, int]) -> list[int] | None:
    """Row groups whose event_time statistics may overlap [t0, t1) ns; None when the statistics cannot tell (then
    the whole file is read). A full day has ~30 book-state parts and a golden hour overlaps one or two of them."""
    meta = pf.metadata
    i = pf.schema_arrow.get_field_index("event_time")
    if i < 0 or '"timeUnit":"nanoseconds"' not in pf.schema.column(i).logical_type.to_json().replace(" ", ""):
        return None
    keep = []
    for g in range(meta.num_row_groups):
        st = meta.row_group(g).column(i).statistics
        if st is None or not st.has_min_max or st.physical_type != "INT64":
            return None
        if st.max_raw >= window[0] and st.min_raw < window[1]:
            keep.append(g)
    return keep


def read_book_states(directory: Path, spec: SymbolSpec,
                     window: tuple[int, int] | None = None) -> tuple[pl.DataFrame, list[InputFile]]:
    """book_states parts → canonical ladder (ticks/lots; price null where a level is absent), optionally only
    the rows in `window` [t0, t1) ns (parts and row groups outside it are skipped from their statistics, unread;
    every part is still listed in the inputs, with its sha256 when it was read)."""
    frames, inputs = [], []
    filters = None
    if window is not None:
        lo, hi = (pa.scalar(int(t), pa.timestamp("ns", tz="UTC")) for t in window)
        filters = [("event_time", ">=", lo), ("event_time", "<", hi)]
    for p in _parts(directory, "book_states"):
        try:
            pf = pq.ParquetFile(p)
            groups = None if window is None else _row_groups_in(pf, window)
            if groups == []:  # listed, not read: hashing the ~30 unread parts of a day cost more than reading
                inputs.append(InputFile(str(p), None, pf.metadata.num_rows, p.stat().st_size))
                continue
            inputs.append(describe_file(p, pf.metadata.num_rows))
            t = pq.read_table(p, columns=["event_time", *BOOK_LEVEL_COLUMNS], filters=filters)
        except (pa.ArrowException, OSError) as exc:
            raise FidelityInputError(f"{p}: cannot read book states ({exc})") from exc
        cols = {"time_ns": pl.from_arrow(t.column("event_time").cast(pa.int64()))}
        for c in BOOK_LEVEL_COLUMNS:
            unit = spec.tick if c.endswith("_price") else spec.lot
            cols[c] = pl.from_arrow(units_array(t.column(c), unit, str(p), c))
        frames.append(conform(pl.DataFrame(cols), LADDER_SCHEMA, f"{p} (book states)"))
    if not frames:
        return empty(LADDER_SCHEMA), inputs
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
    # parts are independent and their decoding (parquet, numpy, numba) releases the GIL: two at a time, in order
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for got, described in pool.map(lambda p: (_read_unified_part(p, spec), describe_file(p)), parts):
            trades.append(got["trades"])
            books.append(got["book"])
            inputs.append(described)
    release_free_memory()  # what the reading threads decoded, before the day's frames are assembled
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


@dataclass(frozen=True)
class PartitionLadder:
    """A partition's top-20 book states (None when it has none), their input files and a note saying why not."""

    ladder: pl.DataFrame | None
    inputs: list[InputFile]
    notes: list[str]


def read_ladder(data_root: Path, part: Partition, spec: SymbolSpec,
                window: tuple[int, int] | None = None) -> PartitionLadder:
    """The partition's top-20 book states (only those in `window` when given) for per-level depth."""
    bdir = paths.book_states_dir(data_root, part)
    if not (bdir.is_dir() and any(bdir.glob("part-*.parquet"))):
        return PartitionLadder(None, [], [f"no book states at {bdir}: per-level depth not available"])
    ladder, inputs = read_book_states(bdir, spec, window)
    return PartitionLadder(ladder, inputs, [])


def attach_ladder(view: MarketView, got: PartitionLadder) -> MarketView:
    return replace(view, ladder=got.ladder, inputs=[*view.inputs, *got.inputs], notes=[*view.notes, *got.notes])


def with_ladder(view: MarketView, data_root: Path, part: Partition,
                window: tuple[int, int] | None = None) -> MarketView:
    """The view with the partition's top-20 book states (only those in `window` when given) for per-level depth."""
    spec = SymbolSpec(part.symbol, view.tick, view.lot, "view")
    return attach_ladder(view, read_ladder(data_root, part, spec, window))


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


def golden_view(frames, spec: SymbolSpec, *, label: str = "golden", inputs: list[InputFile] | None = None,
                rebuild_book: bool = True) -> MarketView:
    """A golden capture (GoldenFrames read WITH a SymbolSpec) as a MarketView."""
    trades, quotes, messages = golden_trades(frames), golden_quotes(frames), golden_messages(frames)
    notes: list[str] = []
    rebuilt = rebuild_golden_book(frames) if rebuild_book else None
    ladder = None
    if rebuilt is None:
        notes.append("golden depth ladder not rebuilt (disabled)")
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
