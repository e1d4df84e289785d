"""Declarative automation: the chain downstream of the raw lake tables runs by itself when new raw data lands.

The daily acquisition schedule materialises *yesterday's* raw tables, but the date dimension runs to today
(`end_offset=1`, so live capture can write the open day). Dagster's `eager()` only looks at the latest time window
(today), so it would never react to yesterday's data: the condition here is `eager()` widened to the last
`LOOKBACK` of dates. Older dates are left to backfills, so a wipe or a config change never floods the queue.
`golden_samples` is ignored as a trigger of `fidelity_report`: golden data is optional evidence (Tier A), and a
partition without a capture must still get its report.
"""

import datetime as dt

import dagster as dg

LOOKBACK = dt.timedelta(days=2)
GOLDEN = dg.AssetKey("golden_samples")


def downstream_of_new_data() -> dg.AutomationCondition:
    """`eager()` for the recent dates: run once the parents are all present and one of them was updated."""
    eager = dg.AutomationCondition.eager()
    return eager.replace(dg.AutomationCondition.in_latest_time_window(),
                         dg.AutomationCondition.in_latest_time_window(LOOKBACK))


def report_condition() -> dg.AutomationCondition:
    """As above, but a missing or updated golden sample neither blocks nor triggers the fidelity report."""
    return downstream_of_new_data().ignore(dg.AssetSelection.assets(GOLDEN))


chain_automation_sensor = dg.AutomationConditionSensorDefinition(
    "chain_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Evaluates the automation conditions of data_assessment, unified_events and fidelity_report "
                f"(new raw lake data of the last {LOOKBACK.days} dates -> the rest of the chain).",
)

sensors = [chain_automation_sensor]
