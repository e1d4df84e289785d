"""One job for the whole chain of a partition except the live capture: what a user backfills from the UI's Jobs page.

`golden_samples` is left out because a past date cannot be recorded (it only describes sessions already on disk);
the fidelity report runs without it and says that Tier A is unavailable. `hftbacktest_export` is left out because a
backtest export is made on demand (a day is ~2 GB).
"""

import dagster as dg

from lake_pipeline.defs.automation import GOLDEN
from lake_pipeline.defs.handoff import HFTBACKTEST_EXPORT
from lake_pipeline.partitions import instrument_date_partitions

chain_job = dg.define_asset_job(
    "chain_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(GOLDEN, HFTBACKTEST_EXPORT),
    partitions_def=instrument_date_partitions,
    description="Raw lake tables -> data_assessment -> unified_events (+ book states) -> fidelity_report, with the "
                "fidelity checks, for the selected date x instrument partitions.",
)

jobs = [chain_job]
