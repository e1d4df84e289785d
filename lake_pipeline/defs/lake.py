"""Raw Crypto Lake tables as partitioned assets: each validates and describes its ready-zone files."""

import contextlib

import dagster as dg

from lake_pipeline.defs.acquisition import (
    ACQUIRE_RETRY,
    DEFAULT_LAKE_SOURCE,
    LakeSource,
    acquire_for_asset,
    data_errors_fail_without_retry,
)
from lake_pipeline.defs.metadata import column_schema
from lake_pipeline.instrument import Partition
from lake_pipeline.partitions import instrument_date_partitions, partition_of
from lake_pipeline.resources import DataRoot
from lake_pipeline.schemas import LAKE_TABLES


def _raw_asset(table: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=table,
        key_prefix=["lake"],
        group_name="lake",
        partitions_def=instrument_date_partitions,
        kinds={"parquet"},
        retry_policy=ACQUIRE_RETRY,
        resource_defs={"lake_source": DEFAULT_LAKE_SOURCE},
        description=f"Crypto Lake `{table}` for one instrument-day in the ready zone, validated against the known "
        "schemas "
        "(acquired from the configured LakeSource first, when there is one).",
    )
    def _asset(context: dg.AssetExecutionContext, data_root: DataRoot, lake_source: LakeSource) -> dg.MaterializeResult:
        from lake_pipeline.lake.read import describe_partition

        part = partition_of(context)
        with _staged_ready(data_root, lake_source, part, table) as root:
            acquired = acquire_for_asset(context, lake_source, root, part, table)
            with data_errors_fail_without_retry():
                info = describe_partition(root, part, table)
        return dg.MaterializeResult(metadata=data_root.for_ui({**_metadata(info), **acquired}, root))

    return _asset


@contextlib.contextmanager
def _staged_ready(data_root: DataRoot, lake_source: LakeSource, part: Partition, table: str):
    """The data root for one raw table. With an object-store data root: a configured source acquires into the
    staged ready zone and the (changed) partition is published; without one the ready partition must already be
    there and is only downloaded and described (missing: a no-retry failure naming its URL)."""
    zone = f"lake/ready/{table}"
    if lake_source.resolved().configured:
        with data_root.staged(part, optional_reads=[zone], writes=[zone]) as root:
            yield root
    else:
        with data_errors_fail_without_retry(), data_root.staged(part, reads=[zone]) as root:
            yield root


def _metadata(info: dict) -> dict:
    md: dict = {
        "dagster/row_count": int(info["rows"]),
        "bytes": int(info["bytes"]),
        "files": len(info["files"]),
        "path": dg.MetadataValue.path(str(info["path"])),
        "schema_variant": info["variant"],
        "first_time": info.get("first_time") or "",
        "last_time": info.get("last_time") or "",
        "symbol_spec": dg.MetadataValue.json(info["spec"]),  # tick/lot, and whether configured or inferred
        "dagster/column_schema": column_schema(info["schema"].items()),
    }
    return md


assets = [_raw_asset(t) for t in LAKE_TABLES]
checks: list = []
