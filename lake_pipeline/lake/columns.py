"""Column resolution for lake files: which physical column plays each canonical role, and is its type usable.

Why: the same table exists under two naming sets (cryptofeed's stored names, lakeapi's loaded names; research
cryptolake.md §3, §9.1) and a silent rename must fail loudly (peer_lessons.md trap 4). Aliases come from
`schemas.COLUMN_ALIASES`, first match wins; columns outside the table's contract are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from lake_pipeline.lake.errors import LakeSchemaError
from lake_pipeline.schemas import BOOK_LEVEL_COLUMNS, COLUMN_ALIASES, LAKE_LOADED, LAKE_REQUIRED, LAKE_STORED, LAKE_TABLES

TIME_COLUMNS = ("origin_time", "received_time")
PRICE_COLUMNS = {
    "trades": ("price",),
    "book": tuple(c for c in BOOK_LEVEL_COLUMNS if c.endswith("_price")),
    "book_delta_v2": ("price",),
}
SIZE_COLUMNS = {
    "trades": ("quantity",),
    "book": tuple(c for c in BOOK_LEVEL_COLUMNS if c.endswith("_size")),
    "book_delta_v2": ("size",),
}


def _is_string(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_string(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t)


# Canonical column -> (accepted Arrow types, their description for the error message).
_TYPE_RULES: dict[str, tuple[Callable[[pa.DataType], bool], str]] = {
    "origin_time": (lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_timestamp(t),
                    "int64 ns, timestamp (any unit) or float seconds"),
    "sequence_number": (pa.types.is_integer, "integer"),
    "trade_id": (lambda t: pa.types.is_integer(t) or pa.types.is_floating(t) or _is_string(t),
                 "integer (or float / decimal string holding an integer)"),
    "side": (_is_string, "string buy/sell"),
    "side_is_bid": (pa.types.is_boolean, "bool"),
}
_TYPE_RULES["received_time"] = _TYPE_RULES["origin_time"]
_NUMBER_RULE = (_is_number, "float64 (or integer / decimal)")


def table_from_path(path: Path) -> str | None:
    """`…/{table}/exchange=E/symbol=S/dt=D/file.parquet` -> table, when that component is a known lake table."""
    parts = Path(path).parts
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("exchange=") and parts[i - 1] in LAKE_TABLES:
            return parts[i - 1]
    return None


def _aliases(canonical: str) -> tuple[str, ...]:
    return COLUMN_ALIASES.get(canonical, (canonical,))


def _expected_text(table: str) -> str:
    def names(schema: pa.Schema) -> str:
        cols = [n for n in schema.names if n not in ("exchange", "symbol")]
        if table == "book":  # 80 level columns: abbreviate
            cols = [c for c in cols if c not in BOOK_LEVEL_COLUMNS] + ["bid_0_price, bid_0_size … ask_19_size"]
        return ", ".join(cols)

    return f"stored variant: [{names(LAKE_STORED[table])}]; loaded variant: [{names(LAKE_LOADED[table])}]"


def resolve_columns(schema: pa.Schema, path: Path, table: str) -> dict[str, str]:
    """Canonical name -> physical column name for every column `table` requires; LakeSchemaError otherwise."""
    present = set(schema.names)
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for canonical in LAKE_REQUIRED[table]:
        found = next((name for name in _aliases(canonical) if name in present), None)
        if found is None:
            missing.append(" | ".join(_aliases(canonical)))
        else:
            resolved[canonical] = found
    if missing:
        shown = missing if len(missing) <= 12 else [*missing[:12], f"… ({len(missing)} in all)"]
        raise LakeSchemaError(
            f"{path}: not a Crypto Lake `{table}` file: missing column(s) {shown}. "
            f"Expected ({_expected_text(table)}). Found: {schema.names}"
        )
    for canonical, name in resolved.items():
        accepts, described = _TYPE_RULES.get(canonical, _NUMBER_RULE)
        if not accepts(schema.field(name).type):
            raise LakeSchemaError(
                f"{path}: column {name!r} (`{table}`.{canonical}) has type {schema.field(name).type}; expected {described}"
            )
    return resolved


def variant_of(resolved: dict[str, str]) -> str:
    """"loaded" when every aliased column uses lakeapi's name, "stored" when every one uses cryptofeed's, else "mixed"."""
    kinds = {"loaded" if name == _aliases(c)[0] else "stored" for c, name in resolved.items() if c in COLUMN_ALIASES}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def detect_variant(schema: pa.Schema, path: Path, table: str | None = None) -> str:
    """"stored" | "loaded" ("mixed" if one file mixes both naming sets); LakeSchemaError when neither resolves.

    The table comes from `table`, else from the path (`…/{table}/exchange=…`); if neither names one, the file
    must resolve as exactly one of the lake tables.
    """
    table = table or table_from_path(path)
    if table is not None:
        return variant_of(resolve_columns(schema, path, table))
    errors: list[str] = []
    matches: list[str] = []
    for candidate in LAKE_TABLES:
        try:
            matches.append(variant_of(resolve_columns(schema, path, candidate)))
        except LakeSchemaError as exc:
            errors.append(str(exc))
    if len(matches) == 1:
        return matches[0]
    raise LakeSchemaError(f"{path}: cannot tell which lake table this is; " + " / ".join(errors or ["ambiguous"]))
