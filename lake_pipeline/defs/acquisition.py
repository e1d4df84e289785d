"""Dagster side of acquisition: the `LakeSource` resource, the acquire-before-describe hook of the raw lake assets,
their retry policy, the daily job + schedule for yesterday's partitions.

Backfills over date ranges become one run per (date, instrument), each acquiring its partition (see partitions.py for
why the chain has no explicit BackfillPolicy).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.partitions import INSTRUMENTS, instrument_date_partitions, partition_key
from lake_pipeline.schemas import LAKE_TABLES

SOURCE_ENV = "LAKE_SOURCE_URL"
ENDPOINT_ENV = "LAKE_SOURCE_ENDPOINT_URL"
ANONYMOUS_ENV = "LAKE_SOURCE_ANONYMOUS"

ACQUIRE_RETRY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
"""Step retries for what the in-process retries (lake/retry.py) could not ride out: a source down for minutes.
Deterministic failures (missing day, invalid data, access denied, no ready files) are raised as
`dg.Failure(allow_retries=False)` so the policy never waits on them."""


@contextlib.contextmanager
def data_errors_fail_without_retry() -> Iterator[None]:
    """Bad or absent data (FileNotFoundError, ValueError incl. the lake reader's errors) fails the step at once."""
    try:
        yield
    except (FileNotFoundError, ValueError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


class LakeSource(dg.ConfigurableResource):
    """Where raw lake partitions are acquired from: `url` is `s3://bucket/prefix` or a local directory in lake
    layout. Set it in run config (`resources: lake_source: config: url: …`) or, when that is empty, through
    `$LAKE_SOURCE_URL` / `$LAKE_SOURCE_ENDPOINT_URL` / `$LAKE_SOURCE_ANONYMOUS=1`, read when the step runs.
    Neither set means no acquisition: the raw assets then only validate and describe what is already in the
    ready zone (written by the simulator, the capture converter or copied by hand)."""

    url: str = ""
    endpoint_url: str = ""
    anonymous: bool = False
    concurrency: int = 4
    time_tolerance_s: float = 300.0

    def resolved(self) -> LakeSource:
        """This source, or the one the environment names when `url` is empty."""
        if self.url.strip() or not os.environ.get(SOURCE_ENV, "").strip():
            return self
        return LakeSource(url=os.environ[SOURCE_ENV].strip(), endpoint_url=os.environ.get(ENDPOINT_ENV, ""),
                          anonymous=os.environ.get(ANONYMOUS_ENV, "").lower() in ("1", "true", "yes"),
                          concurrency=self.concurrency, time_tolerance_s=self.time_tolerance_s)

    @property
    def configured(self) -> bool:
        return bool(self.url.strip())


DEFAULT_LAKE_SOURCE = LakeSource()
"""Bound on the raw assets (`resource_defs`), so they run where no `lake_source` is provided; configure it by
run config or environment, never by a second `lake_source` in `Definitions(resources=…)` (that would conflict)."""


def acquire_for_asset(context: dg.AssetExecutionContext, source: LakeSource, data_root: Path, part: Partition,
                      table: str) -> dict:
    """Acquire the partition when a source is configured; metadata for the materialization.

    Missing at the source and failed validation are facts about the data: they fail the run without retries.
    Transient source errors propagate, so the asset's RetryPolicy retries the run step with backoff.
    """
    source = source.resolved()
    if not source.configured:
        return {"acquisition": "none (no LakeSource configured)"}
    from lake_pipeline.lake.acquire import MISSING, acquire_partition
    from lake_pipeline.lake.source import SourceAccessError
    from lake_pipeline.lake.validate import ValidationError

    try:
        result = acquire_partition(source.url, part, table, data_root,
                                   endpoint_url=source.endpoint_url or None, anonymous=source.anonymous,
                                   concurrency=source.concurrency, tolerance_s=source.time_tolerance_s,
                                   progress=False)
    except ValidationError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False,
                         metadata={"validation_report": dg.MetadataValue.path(str(exc.report_path))}) from exc
    except SourceAccessError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    if result.status == MISSING:
        raise dg.Failure(description=f"{table} {part}: missing at source {result.source}",
                         allow_retries=False, metadata={"acquisition": MISSING})
    context.log.info(result.summary())
    return {"acquisition": result.status, "acquired_from": result.source,
            "fetched_bytes": int(result.fetched_bytes), "acquire_seconds": round(result.seconds, 3)}


ACQUIRED_ASSETS = [dg.AssetKey(["lake", t]) for t in LAKE_TABLES] + [dg.AssetKey("data_assessment")]

lake_acquisition_job = dg.define_asset_job(
    "lake_acquisition_job",
    selection=dg.AssetSelection.assets(*ACQUIRED_ASSETS),
    partitions_def=instrument_date_partitions,
    description="Acquire, validate and describe the raw lake tables of a partition, then assess them.",
)


def yesterday_schedule(job=lake_acquisition_job, instruments: list[Instrument] | None = None,
                       cron: str = "30 2 * * *") -> dg.ScheduleDefinition:
    """Daily at 02:30 UTC (Crypto Lake delivers T+1): one RunRequest per instrument for yesterday's partition."""

    @dg.schedule(name="daily_lake_acquisition", job=job, cron_schedule=cron, execution_timezone="UTC")
    def _schedule(context: dg.ScheduleEvaluationContext):
        day = (context.scheduled_execution_time.astimezone(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
        for instrument in instruments if instruments is not None else INSTRUMENTS:
            part = instrument.on(day)
            yield dg.RunRequest(run_key=f"lake-{part.key}", partition_key=partition_key(part))

    return _schedule


jobs = [lake_acquisition_job]
schedules = [yesterday_schedule()]
