"""The one Dagster code location: every asset, check, job, schedule and sensor of the pipeline.

Each module under `defs/` exposes any of `assets`, `checks`, `jobs`, `schedules`, `sensors` (lists); this file
only collects them, so adding a domain means adding its module to DOMAINS.
"""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from lake_pipeline.defs import (  # noqa: E402
    acquisition,
    assessment,
    automation,
    capture,
    chain,
    fidelity,
    lake,
    reconstruct,
)
from lake_pipeline.resources import DataRoot  # noqa: E402

DOMAINS = (lake, acquisition, assessment, reconstruct, fidelity, capture, automation, chain)


def _collect(kind: str) -> list:
    return [item for module in DOMAINS for item in getattr(module, kind, [])]


defs = dg.Definitions(
    assets=_collect("assets"),
    asset_checks=_collect("checks"),
    jobs=_collect("jobs"),
    schedules=_collect("schedules"),
    sensors=_collect("sensors"),
    resources={"data_root": DataRoot()},  # lake_source is bound on the raw assets (defs/acquisition.py)
)
