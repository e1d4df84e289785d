"""The one Dagster code location: every asset, check, job, schedule and sensor of the pipeline."""

from __future__ import annotations

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from lake_pipeline.defs import acquisition as acquisition_defs  # noqa: E402
from lake_pipeline.defs import assessment as assessment_defs  # noqa: E402
from lake_pipeline.defs import lake as lake_defs  # noqa: E402
from lake_pipeline.resources import DataRoot  # noqa: E402

defs = dg.Definitions(
    assets=[*lake_defs.assets, *assessment_defs.assets],
    asset_checks=[*lake_defs.checks],
    jobs=[*acquisition_defs.jobs],
    schedules=[*acquisition_defs.schedules],
    resources={"data_root": DataRoot()},  # lake_source is bound on the raw assets (defs/acquisition.py)
)
