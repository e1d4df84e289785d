"""A real `dagster dev` (webserver + daemon + code server) for tests, driven through its GraphQL API.

`dagster dev` runs in its own session (process group). Stopping it: SIGINT to the leader, which tells the webserver and
daemon to shut down through their IPC pipes; whatever is still alive after that (code servers, run workers) gets
SIGKILL as a group. SIGINT is reset to its default in the child first: a shell that started pytest in the background
leaves SIGINT ignored, Python then installs no KeyboardInterrupt handler, and dagster maps SIGTERM onto that same
(ignored) handler, so the server would shrug off both (research dagster.md §1.5).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

TERMINAL_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

LAUNCH_BACKFILL = """mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}"""

BACKFILL_STATUS = """query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id status numPartitions partitionNames
      error { message }
      runs(limit: 100) { runId status startTime endTime tags { key value } }
      assetBackfillData {
        assetBackfillStatuses {
          __typename
          ... on AssetPartitionsStatusCounts {
            assetKey { path } numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized
            numPartitionsFailed
          }
        }
      }
    }
    ... on BackfillNotFoundError { message }
    ... on PythonError { message stack }
  }
}"""

CHECK_EXECUTIONS = """query Checks($key: AssetKeyInput!, $check: String!, $partition: String) {
  assetCheckExecutions(assetKey: $key, checkName: $check, partition: $partition, limit: 10) {
    runId status partition
    evaluation { success severity description partition }
  }
}"""

MATERIALIZATIONS = """query Mats($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset { assetMaterializations(partitions: $partitions, limit: 20) { partition runId } }
  }
}"""


RUN_FAILURES = """query Failures($runId: ID!) {
  logsForRun(runId: $runId, limit: 1000) {
    __typename
    ... on EventConnection { events { __typename
      ... on ExecutionStepFailureEvent { stepKey message error { message } }
      ... on RunFailureEvent { message } } }
  }
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_setup() -> None:
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class LiveDagster:
    """One `dagster dev -w workspace.yaml` on 127.0.0.1:<port>, logging to `log_path`."""

    def __init__(self, repo_root: Path, dagster_home: Path, env: dict[str, str], log_path: Path,
                 port: int | None = None, unset: tuple[str, ...] = ()) -> None:
        self.repo_root, self.home, self.log_path = Path(repo_root), Path(dagster_home), Path(log_path)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if k not in unset}
        self.env = {**inherited, **env, "DAGSTER_HOME": str(self.home)}
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None

    # -- process ------------------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> LiveDagster:
        dagster = Path(sys.executable).with_name("dagster")
        cmd = [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)]
        t0 = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.repo_root, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, preexec_fn=_child_setup)
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - t0
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Until the code location is loaded and the backfill and run-queue daemons have a heartbeat."""
        query = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
                       locationOrLoadError { __typename ... on PythonError { message } } } } }
                     instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"""
        state = "no answer from the webserver yet"

        def ready() -> bool:
            nonlocal state
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"dagster dev exited with {self.proc.returncode} during start-up\n"
                                     f"{self.log_tail()}")
            try:
                data = self.graphql(query, timeout_s=5)
            except (OSError, urllib.error.URLError, json.JSONDecodeError, RuntimeError) as exc:
                state = f"webserver not answering: {exc}"
                return False
            entries = data["workspaceOrError"].get("locationEntries", [])
            errors = [e["locationOrLoadError"] for e in entries
                      if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
            if errors:
                raise AssertionError(f"code location failed to load: {errors[0]['message']}\n{self.log_tail()}")
            loaded = [e["name"] for e in entries if e["loadStatus"] == "LOADED"
                      and (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"]
            daemons = {d["daemonType"]: d["healthy"] for d in data["instance"]["daemonHealth"]["allDaemonStatuses"]}
            state = f"locations loaded {loaded} of {[e['name'] for e in entries]}, daemons {daemons}"
            return bool(loaded) and daemons.get("BACKFILL") is True and daemons.get("QUEUED_RUN_COORDINATOR") is True

        self.poll(ready, timeout_s, lambda: f"dagster dev not ready: {state}", interval_s=0.5)

    def stop(self, grace_s: float = 30.0) -> dict:
        """SIGINT the leader, wait for the group to go, SIGKILL what is left. Returns how it went."""
        if self.proc is None:
            return {}
        pgid, t0, killed = self.proc.pid, time.perf_counter(), False
        if self.proc.poll() is None:
            os.kill(pgid, signal.SIGINT)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and (self.proc.poll() is None or _group_alive(pgid)):
            time.sleep(0.2)
        if self.proc.poll() is None or _group_alive(pgid):
            killed = True
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            for _ in range(50):
                if not _group_alive(pgid):
                    break
                time.sleep(0.1)
        outcome = {"returncode": self.proc.returncode, "killed": killed, "stop_s": time.perf_counter() - t0,
                   "survivors": _group_members(pgid)}
        self.proc = None
        return outcome

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return f"--- last {min(lines, len(text))} lines of {self.log_path} ---\n" + "\n".join(text[-lines:])

    # -- GraphQL --------------------------------------------------------------------------------------------------

    def graphql(self, query: str, variables: dict | None = None, timeout_s: float = 30.0) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            doc = json.load(resp)
        if doc.get("errors"):
            raise RuntimeError(f"GraphQL errors: {doc['errors']}")
        return doc["data"]

    def poll(self, done: Callable[[], bool], timeout_s: float, what: Callable[[], str],
             interval_s: float = 1.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f} s: {what()}\n{self.log_tail()}")
            time.sleep(interval_s)

    def launch_backfill(self, partition_names: list[str], asset_paths: list[list[str]], title: str,
                        run_config: dict | None = None) -> str:
        params: dict = {"partitionNames": partition_names, "assetSelection": [{"path": p} for p in asset_paths],
                        "title": title, "tags": [{"key": "launched_by", "value": "lake_pipeline_tests"}]}
        if run_config is not None:
            params["runConfigData"] = run_config
        res = self.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        if res["__typename"] != "LaunchBackfillSuccess":
            raise AssertionError(f"launchPartitionBackfill: {res}\n{self.log_tail()}")
        return res["backfillId"]

    def backfill(self, backfill_id: str) -> dict:
        res = self.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if res["__typename"] != "PartitionBackfill":
            raise AssertionError(f"partitionBackfillOrError({backfill_id}): {res}")
        return res

    def wait_backfill(self, backfill_id: str, timeout_s: float) -> dict:
        """Poll until the backfill reaches a terminal status and none of its runs is still going."""
        last: dict = {}

        def done() -> bool:
            nonlocal last
            last = self.backfill(backfill_id)
            runs_done = all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in last["runs"])
            return last["status"] in TERMINAL_BACKFILL and runs_done

        def what() -> str:
            runs = [(r["runId"][:8], r["status"]) for r in last.get("runs", [])]
            return f"backfill {backfill_id} status {last.get('status')}, runs {runs}"

        self.poll(done, timeout_s, what, interval_s=1.0)
        return last

    def failures(self, runs: list[dict]) -> str:
        """Step and run failure messages of the runs that did not succeed (for assertion messages)."""
        out = []
        for run in runs:
            if run["status"] == "SUCCESS":
                continue
            try:
                logs = self.graphql(RUN_FAILURES, {"runId": run["runId"]})["logsForRun"]
            except (OSError, RuntimeError) as exc:
                out.append(f"run {run['runId']} {run['status']}: logs unavailable ({exc})")
                continue
            for event in logs.get("events", []):
                if event["__typename"] == "ExecutionStepFailureEvent":
                    out.append(f"run {run['runId']} step {event['stepKey']}: {(event['error'] or {}).get('message')}")
                elif event["__typename"] == "RunFailureEvent":
                    out.append(f"run {run['runId']}: {event['message']}")
        return "\n".join(out)

    def check_executions(self, asset_path: list[str], check_name: str, partition: str) -> list[dict]:
        return self.graphql(CHECK_EXECUTIONS, {"key": {"path": asset_path}, "check": check_name,
                                               "partition": partition})["assetCheckExecutions"]

    def materialized_partitions(self, asset_path: list[str], partitions: list[str]) -> set[str]:
        res = self.graphql(MATERIALIZATIONS, {"key": {"path": asset_path}, "partitions": partitions})["assetOrError"]
        if res["__typename"] != "Asset":
            return set()
        return {m["partition"] for m in res["assetMaterializations"]}


def _group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of process group `pgid`, as 'pid cmdline' strings."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            state, proc_pgid = fields[0], int(fields[2])
            if proc_pgid != pgid or state == "Z":
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError, IndexError):
            continue
        found.append(f"{entry.name} {cmd}")
    return found


def _group_alive(pgid: int) -> bool:
    return bool(_group_members(pgid))


def processes_with_env(name: str, value: str) -> list[str]:
    """Live processes (ours: others' environ is unreadable) whose environment has `name=value`: catches a
    child that left the process group."""
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2:].split()[0] == "Z":
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
        found.append(f"{entry.name} {cmd}")
    return found
