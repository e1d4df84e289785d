"""The one Dagster code location: every asset, check, job, schedule and sensor of the pipeline.

Each module under `defs/` exposes any of `assets`, `checks`, `jobs`, `schedules`, `sensors` (lists); this file
only collects them, so adding a domain means adding its module to DOMAINS.

The executor (how a run's steps execute) is chosen by configuration, not code: `$LAKE_EXECUTOR` is
`multiprocess` (default: Dagster's `multi_or_in_process_executor`, so run config may still pick `in_process`),
`in_process`, or `celery` (`dagster_celery.celery_executor`; needs the `celery` extra, a broker and
`dagster-celery worker start` processes -- deploy/README.md).
"""

import os
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
    handoff,
    lake,
    reconstruct,
)
from lake_pipeline.resources import DataRoot  # noqa: E402

DOMAINS = (lake, acquisition, assessment, reconstruct, fidelity, handoff, capture, automation, chain)


EXECUTOR_ENV = "LAKE_EXECUTOR"
EXECUTORS = ("multiprocess", "in_process", "celery")


def _collect(kind: str) -> list:
    return [item for module in DOMAINS for item in getattr(module, kind, [])]


def executor_from_env(value: str | None = None) -> dg.ExecutorDefinition | None:
    """The executor `$LAKE_EXECUTOR` names; None keeps Dagster's default (multiprocess, or in_process by run config).

    dagster_celery is imported only when chosen, so the default install does not need it.
    """
    choice = (os.environ.get(EXECUTOR_ENV, "") if value is None else value).strip().lower() or "multiprocess"
    if choice == "multiprocess":
        return None
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError as exc:
            raise ImportError(f"{EXECUTOR_ENV}=celery needs the dagster-celery package: "
                              "pip install -e '.[celery]' (see deploy/README.md)") from exc
        return celery_executor
    raise ValueError(f"{EXECUTOR_ENV}={choice!r} is not one of {', '.join(EXECUTORS)}")


defs = dg.Definitions(
    assets=_collect("assets"),
    asset_checks=_collect("checks"),
    jobs=_collect("jobs"),
    schedules=_collect("schedules"),
    sensors=_collect("sensors"),
    resources={"data_root": DataRoot()},  # lake_source is bound on the raw assets (defs/acquisition.py)
    executor=executor_from_env(),
)
