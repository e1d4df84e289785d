"""The three reconstruction strategies (DESIGN §5) and how one is chosen for a partition.

* `full_event_replay`: seed from the first valid snapshot, apply deltas message by message, trades consume
  liquidity provisionally, every later snapshot measures drift then resynchronises. Needs `book_delta_v2`.
* `snapshot_anchored`: the book is the last valid snapshot with trade consumption applied since (no deltas).
* `origin_time_sort`: stable merge by event time; the book is the last snapshot as given.

Choice order: the caller's `--strategy`, else the assessment report's `recommended_strategy`, else
`full_event_replay` when the partition has deltas and `snapshot_anchored` otherwise. The reasons travel into the
summary so a reader can see why a partition was built the way it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from lake_pipeline.instrument import Partition
from lake_pipeline.paths import assessment_dir

FULL_EVENT_REPLAY = "full_event_replay"
SNAPSHOT_ANCHORED = "snapshot_anchored"
ORIGIN_TIME_SORT = "origin_time_sort"
STRATEGIES = (FULL_EVENT_REPLAY, SNAPSHOT_ANCHORED, ORIGIN_TIME_SORT)
"""Index in this tuple = the strategy code the replay kernel branches on."""

NEEDS_DELTAS = frozenset({FULL_EVENT_REPLAY})


@dataclass(frozen=True)
class StrategyChoice:
    name: str
    source: str  # "caller" | "assessment" | "default"
    reasons: list[str] = field(default_factory=list)

    @property
    def code(self) -> int:
        return STRATEGIES.index(self.name)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "source": self.source, "reasons": list(self.reasons)}


def check_strategy(name: str, where: str) -> str:
    if name not in STRATEGIES:
        raise ValueError(f"{where}: unknown reconstruction strategy {name!r}; expected one of {STRATEGIES}")
    return name


def read_assessment(data_root: Path, part: Partition) -> dict | None:
    """The partition's assessment.json, or None when the assessment has not run."""
    path = assessment_dir(Path(data_root), part) / "assessment.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: assessment report is not valid JSON ({exc})") from exc


def choose_strategy(data_root: Path, part: Partition, *, override: str | None,
                    has_deltas: bool) -> StrategyChoice:
    """Caller override > assessment recommendation > default by data availability (logged with the reason)."""
    if override:
        choice = StrategyChoice(check_strategy(override, "--strategy"), "caller", ["chosen by the caller"])
    else:
        report = read_assessment(data_root, part)
        recommended = (report or {}).get("recommended_strategy")
        if recommended:
            where = str(assessment_dir(Path(data_root), part) / "assessment.json")
            reasons = [str(r) for r in (report.get("strategy_reasons") or [])] or ["recommended by the assessment"]
            choice = StrategyChoice(check_strategy(recommended, where), "assessment", reasons)
        elif has_deltas:
            choice = StrategyChoice(FULL_EVENT_REPLAY, "default",
                                    ["no assessment report; book_delta_v2 is present, so replay every delta"])
        else:
            choice = StrategyChoice(SNAPSHOT_ANCHORED, "default",
                                    ["no assessment report and no book_delta_v2: anchor the book on snapshots"])
    if choice.name in NEEDS_DELTAS and not has_deltas:
        raise FileNotFoundError(
            f"strategy {choice.name} ({choice.source}) needs book_delta_v2 but the partition "
            f"{part.hive} has none"
        )
    logger.info("{}: strategy {} ({}): {}", part, choice.name, choice.source,
                "; ".join(choice.reasons))
    return choice
