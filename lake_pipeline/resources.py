"""Configurable Dagster resources: where the data lives (the venue of a step comes from its partition)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import dagster as dg

from lake_pipeline.config import DATA_ROOT_ENV, default_data_root
from lake_pipeline.instrument import Partition
from lake_pipeline.remote import is_remote, local_or_staged


class DataRoot(dg.ConfigurableResource):
    """The data root holding lake/, golden/, unified/, book_states/, reports/ (DESIGN §2).

    `path` is a local directory (default `$LAKE_DATA_ROOT`, else ./data) or an object-store URL such as
    `s3://bucket/prefix`; for S3-compatible stores (MinIO, moto) set `endpoint_url` or `$LAKE_S3_ENDPOINT_URL`,
    credentials come from the standard AWS environment. Assets reach the data through `staged(...)`, which is the
    local root itself for a local path and a staged local working copy for a URL (lake_pipeline/remote.py).
    """

    path: str = ""
    endpoint_url: str = ""

    def location(self) -> str:
        """The configured data root as given: `path`, else `$LAKE_DATA_ROOT`, else the local default."""
        return self.path.strip() or os.environ.get(DATA_ROOT_ENV, "").strip() or str(default_data_root())

    @property
    def is_remote(self) -> bool:
        return is_remote(self.location())

    def root(self) -> Path:
        """The local data root. For an object-store data root there is none: use `staged(...)`."""
        if self.is_remote:
            raise ValueError(f"data root {self.location()} is an object store: reach it through "
                             "DataRoot.staged(partition, reads=…, writes=…), not as a local path")
        return Path(self.location()).resolve()

    @contextlib.contextmanager
    def staged(self, part: Partition, *, reads: Iterable[str] = (), optional_reads: Iterable[str] = (),
               file_reads: Mapping[str, Iterable[str]] | None = None, writes: Iterable[str] = (),
               key: str | None = None) -> Iterator[Path]:
        """A local data root for one partition's step.

        Local data root: yields `root()`, nothing is copied. Object store: downloads the partitions of the zones in
        `reads` (required: a missing one fails naming its URL), `optional_reads` and the named files of the zones
        in `file_reads` ({zone: [file, …]}) into a private working copy, yields it, and after the block succeeds publishes the
        partitions of `writes` (old remote partition deleted, data files, markers last); on failure nothing."""
        with local_or_staged(self.location() if self.is_remote else self.root(), part,
                             endpoint_url=self.endpoint_url or None, reads=reads, optional_reads=optional_reads,
                             file_reads=file_reads, writes=writes, key=key) as root:
            yield root

    def for_ui(self, metadata: dict, local_root: Path) -> dict:
        """Metadata whose paths name the data root a person can open: for an object-store root, a path inside the
        step's working copy (deleted after the step) becomes the published `s3://…` URL of the same file."""
        if not self.is_remote:
            return metadata
        base, local = self.location().rstrip("/"), Path(local_root)
        out = {}
        for name, value in metadata.items():
            if isinstance(value, dg.PathMetadataValue) and Path(value.path).is_relative_to(local):
                value = dg.MetadataValue.path(f"{base}/{Path(value.path).relative_to(local).as_posix()}")
            out[name] = value
        return out

