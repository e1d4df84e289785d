"""Exit codes of every `lake-pipeline` command, and how an exception becomes a message and one of them.

| code | meaning |
|---|---|
| 0 | done |
| 1 | a bug: an unexpected exception (its traceback is shown, please report it); `fidelity --fail-on`: the verdict failed |
| 2 | bad input or usage: arguments, config files, lake files, captures (the message names file/field/row) |
| 3 | missing at the source: a partition the source does not have (acquire); a capture that recorded no market frame |
| 4 | an input changed during the run (nothing was published: run again) |
| 5 | environment: disk full, permission denied, other I/O failures (partial files were removed or resume) |
| 130 | interrupted (Ctrl-C) |
"""

from __future__ import annotations

import errno
import sys

OK, BUG, BAD_INPUT, MISSING, INPUT_CHANGED, ENVIRONMENT, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class InputChangedError(RuntimeError):
    """An input file was replaced or modified while a run read it; nothing was published."""


def _is_bad_input(exc: BaseException) -> bool:
    import decimal
    import zlib

    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return True
    if isinstance(exc, (ValueError, EOFError, zlib.error, decimal.InvalidOperation)):
        return True
    yaml = sys.modules.get("yaml")
    if yaml is not None and isinstance(exc, yaml.YAMLError):
        return True
    polars = sys.modules.get("polars")
    return polars is not None and isinstance(exc, polars.exceptions.PolarsError)


def describe(exc: BaseException) -> tuple[int, str]:
    """(exit code, one-paragraph message) for an exception that ends a command; (BUG, "") for a real bug."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    if isinstance(exc, InputChangedError):
        return INPUT_CHANGED, f"{exc} (nothing was published; run again)"
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        where = f" writing {exc.filename}" if exc.filename else ""
        return ENVIRONMENT, (f"disk full{where} ({exc.strerror}); partial files of this run were removed or are "
                             "resumed by a re-run: free some space and run the command again")
    if _is_bad_input(exc):
        return BAD_INPUT, str(exc)
    if isinstance(exc, RuntimeError):
        return BAD_INPUT, str(exc)
    if isinstance(exc, OSError):
        return ENVIRONMENT, f"{type(exc).__name__}: {exc}"
    return BUG, ""
