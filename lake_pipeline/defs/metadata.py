"""Metadata helpers shared by the asset wrappers (what a person sees in the UI's asset pages)."""

from collections.abc import Iterable

import dagster as dg


def column_schema(columns: Iterable[tuple[str, object]]) -> dg.TableSchema:
    """`dagster/column_schema` from (name, type) pairs: a pyarrow schema's fields or a polars schema's items."""
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in columns])
