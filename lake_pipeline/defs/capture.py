"""Golden samples in Dagster: the `golden_samples` asset, the bounded capture job, and the sensor that launches it.

The sensor only decides and launches (research dagster.md §4): from the session config it requests one bounded run
per active session and duration slot (run_key = session/instrument/slot, so a tick never launches a slot twice),
never a second run for an instrument that already has one in flight, and it starts STOPPED so a deploy cannot
start captures.
The run records for the session's duration and materialises the partition with what it wrote; the job carries
`dagster/max_runtime` (duration + margin) so run monitoring kills a capture that hangs.
For a past date the asset cannot record (capture is live); it describes the sessions already on disk, or records
that there are none (0 sessions) so that the fidelity report downstream still runs, without Tier A.
"""

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.partitions import INSTRUMENTS, instrument_date_partitions, partition_key, partition_of
from lake_pipeline.resources import DataRoot

SESSIONS_ENV = "LAKE_CAPTURE_SESSIONS"
DEFAULT_DURATION_S = 3600.0
RUNTIME_MARGIN_S = 900.0
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


class CaptureRunConfig(dg.Config):
    """One bounded capture run (the sensor fills it from the session config)."""

    duration_s: float = DEFAULT_DURATION_S
    session_name: str = ""
    regime_intent: str = ""
    rotate_s: float = 3600.0
    streams: list[str] = ["trade", "depth@100ms", "bookTicker"]
    ws_url: str = ""  # default: Binance spot
    rest_url: str = ""
    plaintext: bool = False  # testing only: store without encryption
    ntp: bool = True


def _capture(context: dg.AssetExecutionContext, config: CaptureRunConfig, root: Path,
             instrument: Instrument) -> dict:
    import asyncio

    from lake_pipeline.capture.keys import load_key
    from lake_pipeline.capture.live import CaptureConfig, LiveCapture
    from lake_pipeline.capture.session_config import load_session_config

    cfg = CaptureConfig(symbol=instrument.symbol, data_root=root, duration_s=config.duration_s,
                        exchange=instrument.exchange,
                        streams=tuple(config.streams), key=None if config.plaintext else load_key(),
                        rotate_s=config.rotate_s, session_name=config.session_name or None,
                        regime_intent=config.regime_intent or None)
    if config.ws_url:
        cfg.ws_url = config.ws_url
    if config.rest_url:
        cfg.rest_url = config.rest_url
    if not config.ntp:
        cfg.ntp_servers = ()
    if os.environ.get(SESSIONS_ENV):
        cfg.regime = load_session_config(Path(os.environ[SESSIONS_ENV])).regime
    context.log.info(f"capturing {instrument} for {config.duration_s:.0f} s from {cfg.ws_url}")
    result = asyncio.run(LiveCapture(cfg).run())
    return result.document | {"files": result.files, "session_json": [str(p) for p in result.session_json]}


def _sessions_on_disk(root: Path, part: Partition) -> list[dict]:
    from lake_pipeline.paths import golden_dir

    directory = golden_dir(root, part)
    docs = []
    for path in sorted(directory.glob("session=*/session.json")):
        doc = json.loads(path.read_text())
        docs.append(doc | {"session_json": [str(path)]})
    return docs


def _metadata(docs: list[dict]) -> dict:
    frames = sum(d["frames"]["total"] for d in docs)
    files = [f for d in docs for f in d.get("files", [])]
    last = docs[-1]
    regimes = sorted({r["regime"] for d in docs for r in d.get("regimes", [])})
    return {
        "dagster/row_count": frames,
        "sessions": len(docs),
        "session_id": last["session_id"],
        "status": last["status"],
        "files": len(files),
        "bytes": sum(f["bytes"] for f in files),
        "gaps": sum(len(d.get("gaps", [])) for d in docs),
        "trade_gaps": sum(d.get("trade_gap_count", 0) for d in docs),
        "resyncs": sum(len(d.get("resyncs", [])) for d in docs),
        "reconnects": sum(d.get("reconnect_count", 0) for d in docs),
        "book_check_mismatches": sum(d.get("book", {}).get("book_checks", {}).get("mismatched", 0) for d in docs),
        "physics_ok": all(d.get("physics", {}).get("ok", False) for d in docs),
        "regimes": ", ".join(regimes),
        "frames_per_stream": dg.MetadataValue.json(last["frames"]["per_stream"]),
        "path": dg.MetadataValue.path(str(Path(last["session_json"][0]).parent.parent)),
    }


@dg.asset(
    partitions_def=instrument_date_partitions,
    group_name="golden",
    kinds={"jsonl"},
    description="Live Binance golden samples for one instrument-day: encrypted, rotated frame files plus session.json "
                "(gaps, resyncs, clock, latency, regimes). Today's partition records a bounded session; a past "
                "partition describes the sessions already captured.",
)
def golden_samples(context: dg.AssetExecutionContext, config: CaptureRunConfig, data_root: DataRoot) -> dg.MaterializeResult:
    part = partition_of(context)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    with data_root.staged(part, optional_reads=["golden"], writes=["golden"] if part.date == today else []) as root:
        if part.date == today:
            doc = _capture(context, config, root, part.instrument)
            if doc["status"] != "complete":
                raise dg.Failure(f"capture {doc['session_id']} of {part.instrument} failed: {doc['error']}",
                                 metadata=_metadata([doc]))
            docs = [doc]
        else:
            docs = _sessions_on_disk(root, part)
    if not docs:
        # Nothing was captured that day, and a past day cannot be recorded now. Failing would also skip the
        # fidelity report of the same run, which works without golden data (Tier A marked unavailable), so the
        # asset records that the partition has no sessions instead.
        why = (f"no golden sessions for {part.instrument} on {part.date} under {data_root.location()}/golden "
               f"(a live capture can only record today's partition, {today}); the fidelity report runs without "
               "Tier A")
        context.log.warning(why)
        return dg.MaterializeResult(metadata={"dagster/row_count": 0, "sessions": 0, "status": "none",
                                              "reason": why})
    return dg.MaterializeResult(metadata=data_root.for_ui(_metadata(docs), root))


golden_capture_job = dg.define_asset_job(
    "golden_capture_job",
    selection=[golden_samples],
    partitions_def=instrument_date_partitions,
    tags={"pipeline": "golden_capture", "dagster/max_runtime": str(int(DEFAULT_DURATION_S + RUNTIME_MARGIN_S))},
    description="One bounded live capture of one instrument (launched by golden_capture_sensor).",
)


def capture_run_requests(plan, now: datetime, busy: set[str],
                         instruments: list[Instrument] | None = None) -> list[dg.RunRequest]:
    """Run requests for the sessions active at `now`: one per instrument not already in flight (`busy` holds
    instrument keys), keyed by duration slot.

    Each run's `dagster/max_runtime` is its own duration plus a margin (the job's tag covers manual launches).
    """
    instruments = INSTRUMENTS if instruments is None else instruments
    today = now.astimezone(UTC).strftime("%Y-%m-%d")
    requests: list[dg.RunRequest] = []
    taken = set(busy)
    for session in plan.active(now):
        key = session.instrument.key
        if key in taken or session.instrument not in instruments:
            continue
        duration = session.duration_s
        slot = int(now.timestamp() // duration)
        taken.add(key)
        requests.append(dg.RunRequest(
            run_key=f"golden-{session.name}-{key}-{slot}",
            partition_key=partition_key(session.instrument.on(today)),
            run_config=dg.RunConfig(ops={"golden_samples": CaptureRunConfig(
                duration_s=duration, session_name=session.name, regime_intent=session.regime_intent,
                rotate_s=session.rotate_s, streams=list(session.streams), ws_url=session.ws_url or "",
                rest_url=session.rest_url or "")}),
            tags={"capture_session": session.name, "dagster/max_runtime": str(int(duration + RUNTIME_MARGIN_S))},
        ))
    return requests


@dg.sensor(job=golden_capture_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description=f"Launches bounded golden capture runs for the sessions of ${SESSIONS_ENV} that are active now.")
def golden_capture_sensor(context: dg.SensorEvaluationContext):
    from lake_pipeline.capture.session_config import load_session_config

    path = os.environ.get(SESSIONS_ENV)
    if not path:
        return dg.SkipReason(f"${SESSIONS_ENV} is not set: no capture sessions configured")
    plan = load_session_config(Path(path))
    in_flight = context.instance.get_runs(filters=dg.RunsFilter(job_name=golden_capture_job.name, statuses=IN_FLIGHT))
    busy = {r.tags.get("dagster/partition/instrument") for r in in_flight} - {None}
    requests = capture_run_requests(plan, datetime.fromtimestamp(time.time(), UTC), busy)  # type: ignore[arg-type]
    if not requests:
        active = [s.name for s in plan.active(datetime.now(UTC))]
        return dg.SkipReason(f"nothing to launch: active sessions {active}, instruments in flight {sorted(busy)}")
    return requests


assets = [golden_samples]
jobs = [golden_capture_job]
sensors = [golden_capture_sensor]
