"""Configurable Dagster resources: where the data lives and which exchange the partitions belong to."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from lake_pipeline.config import DEFAULT_EXCHANGE, default_data_root


class DataRoot(dg.ConfigurableResource):
    """The data root holding lake/, golden/, unified/, book_states/, reports/ (DESIGN §2)."""

    path: str = ""
    exchange: str = DEFAULT_EXCHANGE

    def root(self) -> Path:
        return Path(self.path).resolve() if self.path else default_data_root()
