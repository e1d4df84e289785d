"""The pipeline under a real `dagster dev` (webserver + daemons): a GraphQL backfill of two partitions, one spot
(`BINANCE.BTC-USDT`) and one USD-M futures (`BINANCE_FUTURES.BTC-USDT-PERP`), through the whole asset chain, then
the UI in headless Chromium.

One server per module (start-up costs ~10-20 s): a temporary data root with the two simulated partitions, its
`dagster_home` prepared like `lake-pipeline demo` does (copy of the repo's dagster.yaml: SQLite, QueuedRunCoordinator,
run limits), `dagster dev -w workspace.yaml` in its own process group, killed as a group at teardown.
The backfill goes through the queue and the backfill daemon like a user's would; the daemon iterates every 30 s, which
dominates the wall time. Runs execute in process (`runConfigData`): the multiprocess executor costs ~5 s per step.

Timings and screenshots go to $LAKE_ARTEFACT_DIR (default <repo>/data/artefacts/ui/).
The browser test uses Debian's chromium driven by the `playwright` package and skips with the reason when either is
missing; under CI=true that is a failure.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest

from lake_pipeline import paths
from lake_pipeline.instrument import Partition
from lake_pipeline_tests import requires
from lake_pipeline_tests.conftest import REPO_ROOT
from lake_pipeline_tests.dagster_live import LiveDagster, processes_with_env
from lake_pipeline_tests.requires import BROWSER_ARGS

SEEDS = {Partition("BINANCE", "BTC-USDT", "2024-08-08"): 11,  # partition -> simulator seed
         Partition("BINANCE_FUTURES", "BTC-USDT-PERP", "2024-08-08"): 12}
HOURS = 0.05
PARTITIONS = sorted(p.key for p in SEEDS)  # multi-partition keys "<date>|<VENUE.SYMBOL>" (dimensions sorted)
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
STARTUP_TIMEOUT_S = float(os.environ.get("LAKE_LIVE_STARTUP_TIMEOUT_S", 120))
# typical 55-65 s: up to 30 s to the backfill daemon's next tick, ~10 s of runs, another tick to see them finish
BACKFILL_TIMEOUT_S = float(os.environ.get("LAKE_LIVE_BACKFILL_TIMEOUT_S", 240))

pytestmark = pytest.mark.timeout(600)


def artefact_dir() -> Path:
    path = Path(os.environ.get("LAKE_ARTEFACT_DIR", REPO_ROOT / "data" / "artefacts" / "ui"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _graph():
    from lake_pipeline.definitions import defs

    return defs.resolve_asset_graph()


def backfill_targets() -> list[list[str]]:
    """Every materializable asset of the Definitions (all share the date × instrument partitions).

    golden_samples is included: for a past date it describes the sessions already on disk (the simulator writes
    one for spot, none for futures), so it needs no live exchange.
    """
    from lake_pipeline.partitions import instrument_date_partitions

    graph = _graph()
    keys = sorted(graph.materializable_asset_keys, key=lambda k: k.path)
    for key in keys:
        assert graph.get(key).partitions_def == instrument_date_partitions, f"{key} is not date × instrument partitioned"
    return [list(k.path) for k in keys]


def check_names_by_asset() -> dict[tuple[str, ...], list[str]]:
    out: dict[tuple[str, ...], list[str]] = {}
    for ck in _graph().asset_check_keys:
        out.setdefault(tuple(ck.asset_key.path), []).append(ck.name)
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from lake_pipeline.demo import prepare_dagster_home
    from lake_pipeline.sim import simulate

    root = tmp_path_factory.mktemp("live_data")
    for part, seed in SEEDS.items():
        simulate(root, part, hours=HOURS, seed=seed)
    home = prepare_dagster_home(root)
    # hermetic: the default partition start, no acquisition from a configured source, no capture sessions
    server = LiveDagster(REPO_ROOT, home, {"LAKE_DATA_ROOT": str(root), "LAKE_START_DATE": "2024-01-01"},
                         log_path=root / "dagster_dev.log",
                         unset=("LAKE_INSTRUMENTS", "LAKE_SYMBOLS", "LAKE_SYMBOLS_FILE", "LAKE_SOURCE_URL",
                                "LAKE_SOURCE_ENDPOINT_URL", "LAKE_CAPTURE_SESSIONS"))
    server.start(timeout_s=STARTUP_TIMEOUT_S)
    server.data_root = root  # type: ignore[attr-defined]
    print(f"\ndagster dev ready on {server.url} after {server.startup_s:.1f} s (DAGSTER_HOME={home})")
    try:
        yield server
    finally:
        outcome = server.stop()
        leftovers = processes_with_env("DAGSTER_HOME", str(home))
        print(f"\ndagster dev stopped in {outcome.get('stop_s', 0):.1f} s "
              f"({'SIGKILL needed' if outcome.get('killed') else 'clean SIGINT shutdown'})")
        assert not outcome.get("survivors") and not leftovers, \
            f"processes survived teardown: {outcome.get('survivors')} {leftovers}"


@pytest.fixture(scope="module")
def backfill(live):
    """Launch the backfill of both partitions over every asset and wait for it to finish (asserted in the tests)."""
    targets = backfill_targets()
    t0 = time.perf_counter()
    backfill_id = live.launch_backfill(PARTITIONS, targets, title="test_dagster_live", run_config=IN_PROCESS)
    result = live.wait_backfill(backfill_id, timeout_s=BACKFILL_TIMEOUT_S)
    wall_s = time.perf_counter() - t0
    runs = result["runs"]
    run_s = [r["endTime"] - r["startTime"] for r in runs if r["startTime"] and r["endTime"]]
    timings = {"backfill_id": backfill_id, "partitions": PARTITIONS, "assets": ["/".join(p) for p in targets],
               "backfill_wall_s": round(wall_s, 1), "server_startup_s": round(live.startup_s, 1),
               "runs": len(runs), "longest_run_s": round(max(run_s, default=0.0), 1)}
    (artefact_dir() / "dagster_live_timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"\nbackfill {backfill_id} of {len(PARTITIONS)} partitions × {len(targets)} assets: {result['status']} "
          f"in {wall_s:.1f} s wall ({len(runs)} runs, longest {max(run_s, default=0.0):.1f} s)")
    return {"id": backfill_id, "result": result, "wall_s": wall_s, "targets": targets}


def _run_partitions(run: dict) -> set[str]:
    tags = {t["key"]: t["value"] for t in run["tags"]}
    if "dagster/partition" in tags:
        return {tags["dagster/partition"]}
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    return {start, end} - {None} if start == end else {f"{start}...{end}"}


def test_backfill_of_a_spot_and_a_futures_partition_through_every_asset(live, backfill):
    result, targets = backfill["result"], backfill["targets"]
    runs = result["runs"]
    why = f"{live.failures(runs)}\n{live.log_tail()}"
    assert result["status"] == "COMPLETED_SUCCESS", f"backfill {result['status']}: {result['error']}\n{why}"
    assert result["error"] is None
    assert sorted(result["partitionNames"]) == PARTITIONS
    assert runs and all(r["status"] == "SUCCESS" for r in runs), ([(r["runId"], r["status"]) for r in runs], why)
    covered = set().union(*(_run_partitions(r) for r in runs))
    assert covered == set(PARTITIONS), covered  # one run per instrument-day, no ranges
    assert len(runs) == len(PARTITIONS), [r["runId"] for r in runs]  # the whole chain in each (no policy split)

    statuses = {tuple(s["assetKey"]["path"]): s for s in result["assetBackfillData"]["assetBackfillStatuses"]}
    assert sorted(statuses) == sorted(tuple(p) for p in targets)
    for key, s in statuses.items():
        assert (s["numPartitionsTargeted"], s["numPartitionsMaterialized"], s["numPartitionsFailed"],
                s["numPartitionsInProgress"]) == (2, 2, 0, 0), (key, s)
    for path in targets:
        assert live.materialized_partitions(path, PARTITIONS) == set(PARTITIONS), path

    root = live.data_root
    for part in SEEDS:
        for directory in (paths.unified_dir(root, part), paths.book_states_dir(root, part)):
            assert (directory / "_SUCCESS").is_file(), directory
            assert sorted(p.name for p in directory.glob("part-*.parquet")), directory
        assessment = paths.assessment_dir(root, part)
        assessed = json.loads((assessment / "assessment.json").read_text())
        assert (assessed["exchange"], assessed["symbol"], assessed["date"]) == (part.exchange, part.symbol, part.date)
        assert (assessment / "assessment.md").stat().st_size > 0
        fidelity = paths.fidelity_dir(root, part)
        doc = json.loads((fidelity / "fidelity.json").read_text())
        assert doc["partition"] == {"exchange": part.exchange, "symbol": part.symbol, "date": part.date}
        # both venues have a simulated golden session (the futures one in USD-M frames): Tier A on each
        assert doc["comparison"]["tier_a_available"] and doc["metrics"]
        # an exact replay of the simulator: the paired families pass; the overall verdict is the worst critical
        # metric, capped at WARN when a critical one is not available (fidelity/scoring.py)
        assert all(doc["families"][f] == "PASS" for f in ("integrity", "bbo", "depth", "drift")), doc["families"]
        rank = {"PASS": 0, "WARN": 1, "FAIL": 2}
        critical = [m["status"] for m in doc["metrics"] if m["critical"]]
        available = [s for s in critical if s in rank]
        worst = max(available, key=rank.get)
        if worst == "PASS" and len(available) < len(critical):
            worst = "WARN"
        assert doc["status"] == worst, (doc["status"], critical)
        assert (fidelity / "fidelity.html").stat().st_size > 10_000
        assert (fidelity / "fidelity.md").stat().st_size > 0

    # Every asset check ran in the run that materialised its asset, for each partition, and recorded an evaluation
    # (matched by run id here; test_check_evaluations_carry_their_partition checks the partition they are filed under).
    checks = check_names_by_asset()
    assert checks, "the Definitions have no asset checks"
    for asset_path, names in checks.items():
        runs_by_partition = {}
        for partition in PARTITIONS:
            mats = live.graphql(
                """query M($key: AssetKeyInput!, $p: [String!]) { assetOrError(assetKey: $key) {
                     ... on Asset { assetMaterializations(partitions: $p, limit: 1) { runId } } } }""",
                {"key": {"path": list(asset_path)}, "p": [partition]})["assetOrError"]["assetMaterializations"]
            runs_by_partition[partition] = mats[0]["runId"]
        summary = []
        for name in names:
            executions = live.graphql(
                """query C($key: AssetKeyInput!, $check: String!) {
                     assetCheckExecutions(assetKey: $key, checkName: $check, limit: 50) {
                       runId status partition evaluation { success severity partition } } }""",
                {"key": {"path": list(asset_path)}, "check": name})["assetCheckExecutions"]
            for partition, run_id in runs_by_partition.items():
                evaluated = [e for e in executions if e["runId"] == run_id and e["evaluation"] is not None]
                assert evaluated, (f"no evaluation of check {name} on {'/'.join(asset_path)} in run {run_id} "
                                   f"({partition}): {executions}")
                e = evaluated[0]
                assert e["status"] in ("SUCCEEDED", "FAILED"), e
                summary.append(f"{name}[{partition.split('|')[1]}]={'pass' if e['evaluation']['success'] else 'fail'}")
        print(f"\nasset checks on {'/'.join(asset_path)}: {', '.join(summary)}")


def test_check_evaluations_carry_their_partition(live, backfill):
    """Each partition's check evaluations are filed under that partition, so the UI shows them on the partition.

    Dagster 1.13.27 files them with partition=None (and marks the planned per-partition execution SKIPPED) when the
    run carries one-key range tags, which is what an asset backfill gives assets with a BackfillPolicy; the chain has
    none for this reason (partitions.py)."""
    for asset_path, names in check_names_by_asset().items():
        for name in names:
            for partition in PARTITIONS:
                executions = live.check_executions(list(asset_path), name, partition)
                assert any(e["evaluation"] is not None and e["evaluation"]["partition"] == partition
                           for e in executions), (name, partition, executions)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Checked before the server starts, so a run without a browser skips without paying for the backfill."""
    return requires.chromium()


def test_ui_shows_asset_graph_partition_and_checks(chromium, live, backfill):
    from playwright.sync_api import expect, sync_playwright

    graph = _graph()
    labels = sorted({k.path[-1] for k in graph.materializable_asset_keys})  # the lineage graph shows the last part
    checks = check_names_by_asset()
    asset_path, check_names = ("unified_events",), checks[("unified_events",)]
    partition = PARTITIONS[0]
    live.graphql("mutation { setNuxSeen }")  # the "join the community" dialog would cover the page on localhost
    out = artefact_dir()
    shots = {name: out / f"{name}.png" for name in ("asset_lineage", "partition", "partition_futures", "checks")}
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            context.set_default_timeout(30_000)
            # hermetic: only the local server
            context.route("**/*", lambda route: route.continue_()
                          if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")) else route.abort())
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # global asset lineage, every group expanded (⌥E is the UI's "Expand all groups")
            page.goto(f"{live.url}/asset-groups")
            expect(page.get_by_text("Global asset lineage")).to_be_visible()
            for group in sorted({graph.get(k).group_name for k in graph.materializable_asset_keys}):
                expect(page.get_by_text(group, exact=True).first).to_be_visible()
            page.keyboard.press("Alt+e")
            for label in labels:
                expect(page.get_by_text(label, exact=True).first).to_be_visible()
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots["asset_lineage"]))

            # one partition of unified_events: its materialization, with the run that made it
            query = urllib.parse.urlencode({"view": "partitions", "partition": partition})
            page.goto(f"{live.url}/assets/{'/'.join(asset_path)}?{query}")
            expect(page.get_by_text(partition, exact=True).first).to_be_visible()
            expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
            expect(page.get_by_text("dagster/row_count", exact=True)).to_be_visible()
            page.screenshot(path=str(shots["partition"]), full_page=True)

            # the futures partition on the same page: the instrument dimension lists both venues
            futures = next(k for k in PARTITIONS if "BINANCE_FUTURES." in k)
            query = urllib.parse.urlencode({"view": "partitions", "partition": futures})
            page.goto(f"{live.url}/assets/{'/'.join(asset_path)}?{query}")
            expect(page.get_by_text(futures, exact=True).first).to_be_visible()
            expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
            expect(page.get_by_text("dagster/row_count", exact=True)).to_be_visible()
            for key in PARTITIONS:
                assert page.get_by_text(key.split("|")[1], exact=True).count(), key
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots["partition_futures"]), full_page=True)

            # the checks tab: every check of the asset
            page.goto(f"{live.url}/assets/{'/'.join(asset_path)}?view=checks")
            expect(page.get_by_text(f"Checks ({len(check_names)})")).to_be_visible()
            for name in check_names:
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            page.screenshot(path=str(shots["checks"]), full_page=True)
        finally:
            browser.close()
    for path in shots.values():
        assert path.stat().st_size > 20_000, path
        print(f"\nscreenshot {path}")
    assert not errors, errors
