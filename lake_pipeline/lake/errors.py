"""Errors for bad lake input. All are ValueErrors whose message names the file (or partition) at fault."""

from __future__ import annotations

import re
from pathlib import Path

_POLARS_NOTE = "\n\nThis error occurred in the following expression"


class LakeReadError(ValueError):
    """Base class: a lake file or partition cannot be read faithfully."""


class LakeSchemaError(LakeReadError):
    """A file's columns or column types match neither lake variant (stored cryptofeed names / lakeapi names)."""


class CorruptFileError(LakeReadError):
    """A file is not readable parquet (truncated download, garbage bytes)."""


class BadValueError(LakeReadError):
    """A value in a row is invalid: implausible time, missing received_time, unknown trade side, …

    Built with `at(...)`. The constructor takes the message alone because polars re-creates an exception raised
    inside a UDF from its message (appending the failing expression); `path`, `column` and `file_row` are
    therefore parsed back from the message, and polars' appended note is dropped (the message says it all).
    """

    _PATTERN = re.compile(r"^(?P<path>.+?): column (?P<q>['\"])(?P<column>.*?)(?P=q), row (?P<row>\d+) \(0-based")

    def __init__(self, message: str):
        message = str(message).split(_POLARS_NOTE)[0]
        super().__init__(message)
        found = self._PATTERN.match(message)
        self.path = Path(found["path"]) if found else None
        self.column = found["column"] if found else None
        self.file_row = int(found["row"]) if found else None

    @classmethod
    def at(cls, path: Path, column: str, file_row: int, value: object, problem: str) -> BadValueError:
        return cls(f"{path}: column {column!r}, row {file_row} (0-based, in this file): value {value!r} {problem}")


class OffGridError(BadValueError):
    """A price/size is not on the symbol's tick/lot grid (beyond float tolerance)."""
