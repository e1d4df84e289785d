"""Golden capture reader: `<recv_ns> [<recv_mono_ns>] <raw frame>` lines -> typed polars frames, one per kind.

The format is hftbacktest's collector format (`<ns> <frame>`, one gzip file per symbol and UTC day) extended by
our own capture with an optional monotonic-clock column. The frame is the text exactly as received: a combined
stream envelope `{"stream":..,"data":..}` or a raw REST depth snapshot body `{"lastUpdateId":..}`.

Layers (so the capture issue can slot decryption in without touching parsing):
  `open_capture(path)`   bytes source: detects gzip by magic bytes (later also the encrypted container)
  `iter_frames(paths)`   (recv_ns, recv_mono_ns | None, frame bytes) in capture order
  `iter_golden(paths)`   GoldenFrames per block of whole lines (bounded memory)
  `read_golden(paths)`   all blocks concatenated
  `stream_counts(paths)` frames per stream name, without decoding JSON

Venues: spot and USD-M futures frames are read alike; the futures-only fields are optional columns (null on spot):
depth `T` and `pu`, bookTicker `E`/`T`, the REST snapshot's `E`/`T`, the trade's `X`. Futures trades whose `X` is
not MARKET (INSURANCE_FUND, ADL: not order-book fills, prices off the tick grid) are left out of `trades` and
counted in `GoldenFrames.skipped`.

Exactness: without a `SymbolSpec` prices and quantities stay the exact decimal strings Binance sent; with one they
are converted to int64 ticks / lots by exact integer digit arithmetic (`units.strings_to_units`), and a value off
the tick/lot grid is an error naming the file, line and value. Line splitting, stream classification and JSON
decoding run vectorised in polars per block and kind: a per-line Python loop with `json.loads` measured ~3x slower
(orjson is not in the environment). One symbol per capture (REST snapshots name none); a second is an error.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl

from lake_pipeline.capture.encryption import MAGIC as ENCRYPTED_MAGIC
from lake_pipeline.capture.encryption import open_plaintext
from lake_pipeline.capture.protocol import AGG_TRADE, BOOK_TICKER, FUTURES, FUTURES_MARKET_TRADE, SPOT, TRADE, stream_kind
from lake_pipeline.capture.units import strings_to_units
from lake_pipeline.config import SymbolSpec

GZIP_MAGIC = b"\x1f\x8b"
SNAPSHOT_STREAM = "<rest snapshot>"
OTHER_STREAM = "<other>"
DEFAULT_BLOCK_BYTES = 8 << 20  # plain-text bytes per parsing block (~30k lines of real BTC capture)

KINDS = ("trades", "agg_trades", "depth", "book_ticker", "snapshots")

# stream-name suffix (after "<symbol>@") -> kind, both venues. `@depth20@100ms` (partial book) is not a diff: unknown.
_STREAM_KINDS = {
    suffix: stream_kind(suffix)
    for suffix in (TRADE, AGG_TRADE, BOOK_TICKER, *SPOT.diff_depth_streams(), *FUTURES.diff_depth_streams())
}

_LEVELS = pl.List(pl.List(pl.String))

# kind -> payload fields to decode: (json key, output column, type). "px"/"qty" are decimal strings converted with
# the spec's tick / lot; "levels" ([[price, qty], ...]) expands into <prefix>_px and <prefix>_qty list columns.
_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "trades": (("E", "E", "int"), ("T", "T", "int"), ("t", "t", "int"), ("p", "price", "px"), ("q", "qty", "qty"),
               ("m", "is_buyer_maker", "bool"), ("X", "X", "str")),
    "agg_trades": (("E", "E", "int"), ("T", "T", "int"), ("a", "a", "int"), ("f", "f", "int"), ("l", "l", "int"),
                   ("p", "price", "px"), ("q", "qty", "qty"), ("m", "is_buyer_maker", "bool")),
    "depth": (("E", "E", "int"), ("T", "T", "int"), ("U", "U", "int"), ("u", "u", "int"), ("pu", "pu", "int"),
              ("b", "bid", "levels"), ("a", "ask", "levels")),
    "book_ticker": (("u", "u", "int"), ("E", "E", "int"), ("T", "T", "int"), ("b", "bid_px", "px"),
                    ("B", "bid_qty", "qty"), ("a", "ask_px", "px"), ("A", "ask_qty", "qty")),
    "snapshots": (("lastUpdateId", "last_update_id", "int"), ("E", "E", "int"), ("T", "T", "int"),
                  ("bids", "bid", "levels"), ("asks", "ask", "levels")),
}
# Output columns only USD-M carries (null on spot): never required.
_OPTIONAL: dict[str, frozenset[str]] = {
    "trades": frozenset({"X"}),
    "agg_trades": frozenset(),
    "depth": frozenset({"T", "pu"}),
    "book_ticker": frozenset({"E", "T"}),
    "snapshots": frozenset({"E", "T"}),
}
_JSON_TYPES = {"int": pl.Int64, "bool": pl.Boolean, "str": pl.String, "px": pl.String, "qty": pl.String,
               "levels": _LEVELS}
_HEAD_COLUMNS = {"frame_no": pl.Int64, "recv_ns": pl.Int64, "recv_mono_ns": pl.Int64}


class CaptureFormatError(ValueError):
    """A capture line that cannot be read; the message names the file and the 1-based line number."""


# ---------------------------------------------------------------------------------------------------------------
# Byte source and line layer
# ---------------------------------------------------------------------------------------------------------------
def open_capture(path: str | Path) -> BinaryIO:
    """Binary stream of the capture's plain text; gzip is detected by its magic bytes, not by the file name.

    An encrypted capture (`capture.encryption`) is detected by its magic too and decrypted on the fly.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(len(ENCRYPTED_MAGIC))
    if magic == ENCRYPTED_MAGIC:  # AES-256-GCM container; key from capture.keys.load_key (env / key file)
        return open_plaintext(path)
    if magic[: len(GZIP_MAGIC)] == GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _iter_line_blocks(path: Path, block_bytes: int) -> Iterator[tuple[int, list[bytes]]]:
    """(line number of the first line, whole lines) blocks of about `block_bytes` bytes of plain text.

    A truncated or corrupt gzip stream is a CaptureFormatError naming the file and the last whole line read.
    """
    line_no = 1
    carry = b""
    with open_capture(path) as stream:
        while block := _read(stream, block_bytes, path, line_no):
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            if lines:
                yield line_no, lines
                line_no += len(lines)
    if carry:
        yield line_no, [carry]


def _read(stream: BinaryIO, size: int, path: Path, line_no: int) -> bytes:
    try:
        return stream.read(size)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise CaptureFormatError(
            f"{path}: compressed stream is truncated or corrupt after line {line_no - 1} ({exc}); "
            "was the capture still being written, or the copy cut short?"
        ) from None


_HEAD_RE = r"^\s*(\d{1,19})(?:\s+(\d{1,19}))?\s*$"
_STREAM_RE = r'^\{"stream":"([^"]*)"'


def _parse_lines(lines: list[bytes], path: Path, first_line_no: int) -> pl.DataFrame:
    """Split a block of lines into line_no, recv_ns, recv_mono_ns, frame (str), stream; blank lines are skipped.

    Vectorised in polars: the per-line Python loop was the reader's bottleneck. A line without a frame or with
    malformed timestamps is an error naming the file and line.
    """
    try:
        text = pl.Series("line", lines, dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError:
        bad = next(i for i, line in enumerate(lines) if not _is_utf8(line))
        raise CaptureFormatError(f"{path}:{first_line_no + bad}: not UTF-8 text: {lines[bad][:80]!r}") from None
    start = pl.col("line").str.find("{", literal=True)
    head = pl.col("line").str.slice(0, start)
    df = (
        text.to_frame()
        .with_row_index("line_no", offset=first_line_no)
        .filter(pl.col("line").str.strip_chars() != "")
        .with_columns(head_ok=start.is_not_null() & head.str.contains(_HEAD_RE).fill_null(False))
    )
    if not df["head_ok"].all():
        row = df.row(df["head_ok"].arg_min(), named=True)
        raise CaptureFormatError(
            f"{path}:{row['line_no']}: expected '<recv_ns> [<recv_mono_ns>] {{...frame...}}', got {row['line'][:80]!r}"
        )
    stamps = head.str.extract_groups(_HEAD_RE)
    return df.select(
        pl.col("line_no").cast(pl.Int64),
        stamps.struct.field("1").cast(pl.Int64).alias("recv_ns"),
        stamps.struct.field("2").cast(pl.Int64).alias("recv_mono_ns"),
        pl.col("line").str.slice(start).str.strip_chars_end().alias("frame"),
    ).with_columns(
        pl.when(pl.col("frame").str.starts_with('{"lastUpdateId"'))
        .then(pl.lit(SNAPSHOT_STREAM))
        .otherwise(pl.col("frame").str.extract(_STREAM_RE, 1).fill_null(OTHER_STREAM))
        .alias("stream")
    )


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode()
    except UnicodeDecodeError:
        return False
    return True


def _iter_parsed(paths: Iterable[str | Path], block_bytes: int) -> Iterator[tuple[Path, pl.DataFrame]]:
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"capture file not found: {path}")
        for first_line_no, lines in _iter_line_blocks(path, block_bytes):
            yield path, _parse_lines(lines, path, first_line_no)


def iter_frames(
    paths: Iterable[str | Path], block_bytes: int = DEFAULT_BLOCK_BYTES
) -> Iterator[tuple[int, int | None, bytes]]:
    """(recv_ns, recv_mono_ns | None, raw frame) for every line of the files, in order."""
    for _, parsed in _iter_parsed(paths, block_bytes):
        for recv_ns, mono, frame in parsed.select("recv_ns", "recv_mono_ns", "frame").iter_rows():
            yield recv_ns, mono, frame.encode()


def stream_counts(paths: Iterable[str | Path], block_bytes: int = DEFAULT_BLOCK_BYTES) -> dict[str, int]:
    """Frames per stream name (REST snapshots under `SNAPSHOT_STREAM`, non-stream frames under `OTHER_STREAM`)."""
    counts: Counter[str] = Counter()
    for _, parsed in _iter_parsed(paths, block_bytes):
        counts.update(_count(parsed))
    return dict(counts)


def _count(parsed: pl.DataFrame) -> dict[str, int]:
    return dict(parsed["stream"].value_counts().iter_rows())


def _kind_expr() -> pl.Expr:
    """stream name -> kind (null for unknown streams)."""
    suffix = pl.col("stream").str.splitn("@", 2).struct.field("field_1")
    kind = suffix.replace_strict(_STREAM_KINDS, default=None, return_dtype=pl.String)
    return pl.when(pl.col("stream") == SNAPSHOT_STREAM).then(pl.lit("snapshots")).otherwise(kind)


# ---------------------------------------------------------------------------------------------------------------
# Typed frames
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class GoldenFrames:
    """One polars frame per kind (columns: frame_no, recv_ns, recv_mono_ns, then the payload) + frames per stream.

    `frame_no` is the frame's position in the whole capture (all files, in order), so kinds can be merged back
    into capture order. Depth/snapshot levels are list columns `bid_px, bid_qty, ask_px, ask_qty` (one list
    per frame, in wire order): strings without a spec, int64 ticks/lots with one.
    """

    trades: pl.DataFrame
    agg_trades: pl.DataFrame
    depth: pl.DataFrame
    book_ticker: pl.DataFrame
    snapshots: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # frames read but left out, by reason
    source: str = ""  # the capture file of this block (iter_golden); "" for a concatenation

    def frame(self, kind: str) -> pl.DataFrame:
        return getattr(self, kind)

    @classmethod
    def empty(cls, spec: SymbolSpec | None = None) -> GoldenFrames:
        return cls(**{kind: pl.DataFrame(schema=frame_schema(kind, spec is not None)) for kind in KINDS})

    @classmethod
    def concat(cls, parts: Sequence[GoldenFrames], spec: SymbolSpec | None = None) -> GoldenFrames:
        if not parts:
            return cls.empty(spec)
        counts: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        for part in parts:
            counts.update(part.counts)
            skipped.update(part.skipped)
        frames = {kind: pl.concat([p.frame(kind) for p in parts], rechunk=True) for kind in KINDS}
        return cls(**frames, counts=dict(counts), skipped=dict(skipped))


def frame_schema(kind: str, exact_units: bool) -> dict[str, pl.DataType]:
    """Output schema of one kind: int64 ticks/lots when converted with a spec, exact decimal strings otherwise."""
    scalar = pl.Int64 if exact_units else pl.String
    schema: dict[str, pl.DataType] = dict(_HEAD_COLUMNS)
    for _, out, typ in _FIELDS[kind]:
        if typ == "levels":
            schema[f"{out}_px"] = schema[f"{out}_qty"] = pl.List(scalar)
        else:
            schema[out] = scalar if typ in ("px", "qty") else _JSON_TYPES[typ]
    return schema


def _json_dtype(kind: str) -> pl.Struct:
    payload = pl.Struct({key: _JSON_TYPES[typ] for key, _, typ in _FIELDS[kind]})
    return payload if kind == "snapshots" else pl.Struct({"data": payload})


def _first_bad_json(rows: pl.DataFrame, path: Path) -> CaptureFormatError:
    for line_no, frame in rows.select("line_no", "frame").iter_rows():
        try:
            json.loads(frame)
        except ValueError as exc:
            return CaptureFormatError(f"{path}:{line_no}: invalid JSON frame ({exc}): {frame[:80]!r}")
    return CaptureFormatError(f"{path}:{rows['line_no'][0]}..: a frame does not match the expected payload types")


def _decode(kind: str, rows: pl.DataFrame, path: Path, spec: SymbolSpec | None,
            skipped: Counter[str]) -> pl.DataFrame:
    """Decode the frames (`rows` of one kind from `_parse_lines`) into the typed frame; check fields and grid.

    Futures trades that are not MARKET fills are dropped here (before the grid check) and counted in `skipped`.
    """
    try:
        decoded = rows["frame"].str.json_decode(_json_dtype(kind))
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise _first_bad_json(rows, path) from exc
    payload = decoded if kind == "snapshots" else decoded.struct.field("data")
    columns: list[pl.Expr] = []
    units: dict[str, str] = {}  # column -> "px" (converted with the tick) or "qty" (with the lot)
    for key, out, typ in _FIELDS[kind]:
        if typ != "levels":
            columns.append(pl.col(key).alias(out))
            if typ in ("px", "qty"):
                units[out] = typ
            continue
        for i, suffix in enumerate(("px", "qty")):
            columns.append(pl.col(key).list.eval(pl.element().list.get(i, null_on_oob=True)).alias(f"{out}_{suffix}"))
            units[f"{out}_{suffix}"] = suffix
    frame = pl.concat(
        [rows.select("frame_no", "recv_ns", "recv_mono_ns"), payload.struct.unnest().select(columns)],
        how="horizontal",
    )
    line_nos = rows["line_no"]
    if kind == "trades":
        off_book = frame["X"].is_not_null() & (frame["X"] != FUTURES_MARKET_TRADE)
        if off_book.any():
            skipped.update({f"trade X={x}": n for x, n in frame.filter(off_book)["X"].value_counts().iter_rows()})
            frame, line_nos = frame.filter(~off_book), line_nos.filter(~off_book)
    _check_complete(frame, kind, line_nos, path)
    if spec is not None:
        converted = frame.with_columns(
            strings_to_units(frame[name], spec.tick if typ == "px" else spec.lot) for name, typ in units.items()
        )
        holes = _holes(converted.select(list(units)))
        if holes.any():
            bad = holes.arg_max()
            name = next(c for c in units if _holes(converted[bad].select(c))[0])
            value = frame[name][bad]
            if isinstance(value, pl.Series):  # a level list: name the first offending element
                value = value[converted[name][bad].is_null().arg_max()]
            raise CaptureFormatError(
                f"{path}:{line_nos[bad]}: {kind}.{name} value {value!r} is off the "
                f"tick/lot grid of {spec.symbol} (tick {spec.tick:f}, lot {spec.lot:f}) or malformed"
            )
        frame = converted
    return frame.cast(frame_schema(kind, spec is not None))  # type: ignore[arg-type]


def _holes(frame: pl.DataFrame) -> pl.Series:
    """Per row: is any column null, or any list column holding a null element?"""
    exprs = [
        pl.col(c).is_null() | pl.col(c).list.eval(pl.element().is_null()).list.any()
        if isinstance(dtype, pl.List)
        else pl.col(c).is_null()
        for c, dtype in frame.schema.items()
    ]
    return frame.select(pl.any_horizontal(exprs).alias("hole"))["hole"]


def _check_complete(frame: pl.DataFrame, kind: str, line_nos: pl.Series, path: Path) -> None:
    """Every payload field (and both elements of every level) is required; name the first line lacking one."""
    required = [c for c in frame.columns if c != "recv_mono_ns" and c not in _OPTIONAL[kind]]
    holes = _holes(frame.select(required))
    if holes.any():
        row = holes.arg_max()
        missing = [c for c in required if frame[c][row] is None]
        raise CaptureFormatError(f"{path}:{line_nos[row]}: {kind} frame lacks {missing or 'a level element'}")


def _check_symbol(parsed: pl.DataFrame, seen: set[str], path: Path) -> None:
    """One symbol per capture: REST snapshots carry no symbol, so a mixed file could not be synced."""
    symbols = parsed.filter(pl.col("kind").is_not_null() & (pl.col("kind") != "snapshots")).select(
        "line_no", pl.col("stream").str.splitn("@", 2).struct.field("field_0").alias("symbol")
    )
    if symbols.is_empty():
        return
    if not seen:
        seen.add(symbols["symbol"][0])
    other = symbols.filter(~pl.col("symbol").is_in(list(seen)))
    if not other.is_empty():
        raise CaptureFormatError(
            f"{path}:{other['line_no'][0]}: stream of symbol {other['symbol'][0]!r} in a capture of "
            f"{sorted(seen)}; one symbol per capture is expected"
        )


def iter_golden(
    paths: Iterable[str | Path],
    spec: SymbolSpec | None = None,
    kinds: Iterable[str] = KINDS,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> Iterator[GoldenFrames]:
    """Typed frames block by block (about `block_bytes` of text each, whole lines, never spanning two files).

    Memory is bounded by the block size; `frame_no` continues across blocks and files.
    """
    wanted = frozenset(kinds)
    if unknown := wanted - set(KINDS):
        raise ValueError(f"unknown kinds {sorted(unknown)}; expected some of {KINDS}")
    symbols: set[str] = set()
    frame_no = 0
    for path, parsed in _iter_parsed(paths, block_bytes):
        parsed = parsed.with_columns(
            pl.int_range(frame_no, frame_no + parsed.height, dtype=pl.Int64).alias("frame_no"), _kind_expr().alias("kind")
        )
        frame_no += parsed.height
        _check_symbol(parsed, symbols, path)
        skipped: Counter[str] = Counter()
        frames = {
            kind: _decode(kind, rows, path, spec, skipped)
            if kind in wanted and not (rows := parsed.filter(pl.col("kind") == kind)).is_empty()
            else pl.DataFrame(schema=frame_schema(kind, spec is not None))
            for kind in KINDS
        }
        yield GoldenFrames(**frames, counts=_count(parsed), skipped=dict(skipped), source=str(path))


def read_golden(
    paths: Iterable[str | Path],
    spec: SymbolSpec | None = None,
    kinds: Iterable[str] = KINDS,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> GoldenFrames:
    """All frames of the capture files (in order) as one GoldenFrames; parsing streams block by block."""
    return GoldenFrames.concat(list(iter_golden(paths, spec, kinds, block_bytes)), spec)


__all__ = [
    "CaptureFormatError",
    "GoldenFrames",
    "KINDS",
    "OTHER_STREAM",
    "SNAPSHOT_STREAM",
    "frame_schema",
    "iter_frames",
    "iter_golden",
    "open_capture",
    "read_golden",
    "stream_counts",
]
