"""The order-book engine: an L2 book over int64 ticks/lots with numba kernels over flat arrays.

`engine` holds the njit primitives other kernels call on `(bid, ask, meta)` (and re-exports the meta slots of
`layout`); `OrderBook` is the Python handle.
"""

from lake_pipeline.book import engine
from lake_pipeline.book.engine import *  # noqa: F403 - every primitive and meta slot listed in engine.__all__
from lake_pipeline.book.handle import CHECKPOINT_VERSION, BookStateError, OrderBook

__all__ = [*engine.__all__, "CHECKPOINT_VERSION", "BookStateError", "OrderBook"]
