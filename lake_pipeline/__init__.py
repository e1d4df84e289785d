"""lake_pipeline: Crypto Lake + Binance golden samples -> unified market event stream + fidelity report.

Domain packages (lake, assess, capture, book, reconstruct, fidelity, sim) know nothing of Dagster;
`defs/` holds the thin Dagster wrappers and `cli.py` runs every component without Dagster.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__version__ = "0.1.0"


def _key_numba_cache_on_sources() -> None:
    """Point NUMBA_CACHE_DIR at a folder keyed on a hash of this package's sources.

    Numba's on-disk cache checks only the cached function's own file (numba#1833): a kernel that calls the book
    engine from another module would keep running stale compiled engine code after the engine changed. Keying the
    folder on every source file makes any change start a fresh cache. Must run before numba is imported.
    """
    pkg = Path(__file__).resolve().parent
    digest = hashlib.sha1()
    for path in sorted(pkg.rglob("*.py")):
        digest.update(path.relative_to(pkg).as_posix().encode())
        digest.update(path.read_bytes())
    base = os.environ.get("LAKE_NUMBA_CACHE_BASE") or os.environ.get("NUMBA_CACHE_DIR")
    if not base:
        base = str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lake_pipeline" / "numba")
    os.environ["LAKE_NUMBA_CACHE_BASE"] = base  # children derive from the same base, not from our keyed folder
    os.environ["NUMBA_CACHE_DIR"] = str(Path(base) / digest.hexdigest()[:16])


_key_numba_cache_on_sources()
