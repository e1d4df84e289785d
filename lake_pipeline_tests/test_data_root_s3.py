"""A data root on S3 (issue 7): the same assets and domain code run with `DataRoot(path="s3://…")`, staged through a
local working copy by lake_pipeline/remote.py, against a real moto S3 server on loopback.

Unit tests of the staging module (failure uploads nothing, markers go last, a re-publish replaces, a missing input
names its URL), then the whole in-process chain on a simulated partition: local data root vs S3 data root.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from lake_pipeline import paths, remote
from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.partitions import partition_key
from lake_pipeline.remote import RemotePartitionMissing, RemoteRoot, is_remote
from lake_pipeline.resources import DataRoot
from lake_pipeline_tests.s3_support import aws_env, bucket, moto_endpoint, s3_client  # noqa: F401 — fixtures

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

EX, SYM, DAY = "BINANCE", "BTC-USDT", "2024-08-08"
KEY = partition_key(Partition(EX, SYM, DAY))
PREFIX = "lake-data"


def _keys(endpoint: str, bucket: str, prefix: str = "") -> dict[str, dict]:
    """key -> object summary for everything under `prefix` (paginated, so duplicates would show)."""
    client, out = s3_client(endpoint), {}
    seen: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            seen.append(obj["Key"])
            out[obj["Key"]] = obj
    assert len(seen) == len(set(seen)), "duplicate keys in the listing"
    return out


class RecordingFs:
    """The real s3fs filesystem, with the order of mutating calls recorded (our own code path is not mocked)."""

    def __init__(self, fs):
        self._fs = fs
        self.calls: list[tuple[str, object]] = []

    def __getattr__(self, name):
        return getattr(self._fs, name)

    def put_file(self, lpath, rpath, **kw):
        self.calls.append(("put", rpath))
        return self._fs.put_file(lpath, rpath, **kw)

    def rm(self, path, *args, **kw):
        self.calls.append(("rm", list(path) if isinstance(path, list) else [path]))
        return self._fs.rm(path, *args, **kw)


def _remote(moto_endpoint: str, bucket: str, tmp_path: Path, fs=None) -> RemoteRoot:
    return RemoteRoot(f"s3://{bucket}/{PREFIX}", endpoint_url=moto_endpoint, work_dir=tmp_path / "work", fs=fs)


def _write_partition(root: Path, zone: str, files: dict[str, bytes]) -> Path:
    d = Partition(EX, SYM, DAY).dir(root, zone)
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    return d


# -- the staging module ---------------------------------------------------------------------------------------------

def test_is_remote_and_local_data_root_is_not_copied(tmp_path: Path) -> None:
    assert is_remote("s3://b/p") and is_remote("S3://b") and is_remote("gs://b/p") and is_remote("memory://x")
    assert not is_remote("/data") and not is_remote("data") and not is_remote("file:///data") and not is_remote("")
    res = DataRoot(path=str(tmp_path))
    with res.staged(Partition(EX, SYM, DAY), reads=["unified"], writes=["reports/fidelity"]) as root:
        assert root == tmp_path.resolve()  # the data root itself: no working copy, nothing required
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="object store"):
        DataRoot(path="s3://bucket/prefix").root()


def test_failure_inside_the_block_uploads_nothing(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    rr = _remote(moto_endpoint, bucket, tmp_path)
    with rr.staged(Partition(EX, SYM, DAY), writes=["unified"]) as root:  # an old, complete version
        _write_partition(root, "unified", {"part-00000.parquet": b"old", "_SUCCESS": b""})
    before = _keys(moto_endpoint, bucket)
    assert sorted(k.rsplit("/", 1)[-1] for k in before) == ["_SUCCESS", "part-00000.parquet"]

    with pytest.raises(RuntimeError, match="boom"):
        with rr.staged(Partition(EX, SYM, DAY), writes=["unified", "book_states"]) as root:
            _write_partition(root, "unified", {"part-00000.parquet": b"new", "part-00001.parquet": b"new",
                                               "_SUCCESS": b""})
            _write_partition(root, "book_states", {"part-00000.parquet": b"new", "_SUCCESS": b""})
            raise RuntimeError("boom")
    after = _keys(moto_endpoint, bucket)
    assert after.keys() == before.keys()  # nothing new, nothing deleted
    for k in after:
        assert after[k]["ETag"] == before[k]["ETag"]
    # the working copy is kept for inspection / WAL resume
    assert (paths.unified_dir(root, Partition(EX, SYM, DAY)) / "part-00001.parquet").exists()


def test_publish_replaces_and_uploads_marker_last(moto_endpoint: str, bucket: str, tmp_path: Path) -> None:
    rr = _remote(moto_endpoint, bucket, tmp_path)
    with rr.staged(Partition(EX, SYM, DAY), writes=["unified"]) as root:
        _write_partition(root, "unified", {f"part-0000{i}.parquet": b"old" for i in range(3)} | {"_SUCCESS": b""})
    assert len(_keys(moto_endpoint, bucket)) == 4

    fs = RecordingFs(rr.fs)
    rr2 = _remote(moto_endpoint, bucket, tmp_path, fs=fs)
    stats = remote.StageStats()
    with rr2.staged(Partition(EX, SYM, DAY), writes=["unified"], stats=stats) as root:
        _write_partition(root, "unified", {"_SUCCESS": b"", "_summary.json": b"{}", "part-00000.parquet": b"new",
                                           "sub/part-00001.parquet": b"new"})
    kinds = [c[0] for c in fs.calls]
    assert kinds == ["rm", "rm", "put", "put", "put", "put"], fs.calls  # old markers, old data, then the uploads
    assert [Path(p).name for p in fs.calls[0][1]] == ["_SUCCESS"]  # the old marker goes first
    puts = [Path(c[1]).name for c in fs.calls if c[0] == "put"]
    assert puts[-1] == "_SUCCESS" and puts[-2] == "_summary.json", puts  # data, JSON documents, marker LAST
    keys = _keys(moto_endpoint, bucket)
    names = sorted(k.split("dt=2024-08-08/", 1)[1] for k in keys)
    assert names == ["_SUCCESS", "_summary.json", "part-00000.parquet", "sub/part-00001.parquet"]  # replaced whole
    assert stats.uploaded_files == 4 and stats.deleted_files == 4
    marker = next(k for k in keys if k.endswith("_SUCCESS"))
    assert all(keys[marker]["LastModified"] >= v["LastModified"] for v in keys.values())
    assert not root.exists()  # the working copy is removed after a successful publish


def test_unchanged_output_is_not_reuploaded_and_mtimes_are_remote(moto_endpoint: str, bucket: str,
                                                                  tmp_path: Path) -> None:
    rr = _remote(moto_endpoint, bucket, tmp_path)
    with rr.staged(Partition(EX, SYM, DAY), writes=["golden"]) as root:
        _write_partition(root, "golden", {"session=a/session.json": b"{}", "session=a/frames.jsonl.gz": b"x"})
    time.sleep(1.1)
    fs = RecordingFs(rr.fs)
    rr2 = _remote(moto_endpoint, bucket, tmp_path, fs=fs)
    with rr2.staged(Partition(EX, SYM, DAY), optional_reads=["golden"], writes=["golden"]) as root:
        f = paths.golden_dir(root, Partition(EX, SYM, DAY)) / "session=a" / "session.json"
        remote_mtime = next(v["LastModified"] for k, v in _keys(moto_endpoint, bucket).items()
                            if k.endswith("session.json")).timestamp()
        assert abs(f.stat().st_mtime - remote_mtime) < 1e-3  # the remote write time, not the download time
    assert fs.calls == []  # read, described, nothing changed: no delete, no upload
    with rr.staged(Partition(EX, SYM, DAY), file_reads={"golden": ["session=a/session.json", "session=b/absent.json"]}) as root:
        got = paths.golden_dir(root, Partition(EX, SYM, DAY))
        assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()) == ["session=a/session.json"]


def test_missing_remote_input_names_the_url(moto_endpoint: str, bucket: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(remote.WORK_DIR_ENV, str(tmp_path / "work"))  # a failed step keeps its working copy
    rr = _remote(moto_endpoint, bucket, tmp_path)
    url = f"s3://{bucket}/{PREFIX}/lake/ready/trades/exchange={EX}/symbol={SYM}/dt={DAY}/"
    with pytest.raises(RemotePartitionMissing, match=url.replace("?", r"\?")) as err:
        with rr.staged(Partition(EX, SYM, DAY), reads=["lake/ready/trades"], writes=["reports/assessment"]):
            raise AssertionError("the block must not run")
    assert isinstance(err.value, FileNotFoundError)
    assert _keys(moto_endpoint, bucket) == {}

    # through Dagster: the raw asset fails at once (no retry) with that URL
    from lake_pipeline.defs.lake import assets as raw_assets

    trades = next(a for a in raw_assets if a.key.path[-1] == "trades")
    with dg.instance_for_test() as instance:
        result = dg.materialize([trades], partition_key=KEY, instance=instance, raise_on_error=False,
                                resources={"data_root": DataRoot(path=f"s3://{bucket}/{PREFIX}",
                                                                 endpoint_url=moto_endpoint)})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert url in str(failure.event_specific_data.error.message) or url in str(failure.event_specific_data)


# -- the whole chain --------------------------------------------------------------------------------------------------

def _chain() -> list:
    """Every asset and check of the code location; golden_samples for a past date describes sessions on disk, so
    nothing here needs a live exchange."""
    from lake_pipeline.definitions import defs

    return [*defs.assets, *defs.asset_checks]


def _materialize(resource: DataRoot) -> tuple[dg.ExecuteInProcessResult, float]:
    with dg.instance_for_test() as instance:
        t0 = time.perf_counter()
        result = dg.materialize(_chain(), partition_key=KEY, instance=instance, resources={"data_root": resource})
        return result, time.perf_counter() - t0


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    from lake_pipeline.sim import simulate

    root = tmp_path_factory.mktemp("sim")
    simulate(root, Instrument.parse(SYM).on(DAY), hours=0.05, seed=7)
    return root


@pytest.fixture(scope="module")
def local_run(simulated: Path, tmp_path_factory) -> dict:
    import shutil

    root = tmp_path_factory.mktemp("local") / "data"
    shutil.copytree(simulated, root)
    result, wall = _materialize(DataRoot(path=str(root)))
    assert result.success
    doc = json.loads((paths.fidelity_dir(root, Partition(EX, SYM, DAY)) / "fidelity.json").read_text())
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths.unified_dir(root, Partition(EX, SYM, DAY)).glob("part-*"))
    return {"doc": doc, "rows": rows, "wall": wall, "checks": _check_outcomes(result),
            "unified_md_rows": _unified_rows(result)}


def _check_outcomes(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _unified_rows(result: dg.ExecuteInProcessResult) -> int:
    (mat,) = result.asset_materializations_for_node("unified_events")
    return int(mat.metadata["dagster/row_count"].value)


def _upload_inputs(simulated: Path, endpoint: str, bucket: str) -> int:
    """The simulated raw lake tables and golden capture, as an acquisition and a capture would have left them."""
    client, sent = s3_client(endpoint), 0
    for zone in ("lake/ready", "golden"):
        for f in sorted((simulated / zone).rglob("*")):
            if f.is_file():
                client.upload_file(str(f), bucket, f"{PREFIX}/{f.relative_to(simulated).as_posix()}")
                sent += f.stat().st_size
    return sent


def test_whole_chain_on_s3_matches_local(simulated: Path, local_run: dict, moto_endpoint: str, bucket: str,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(remote.WORK_DIR_ENV, str(tmp_path / "work"))
    monkeypatch.delenv("LAKE_DATA_ROOT", raising=False)
    _upload_inputs(simulated, moto_endpoint, bucket)
    resource = DataRoot(path=f"s3://{bucket}/{PREFIX}", endpoint_url=moto_endpoint)
    t0 = dict(remote.TOTALS)
    result, wall = _materialize(resource)
    assert result.success
    moved = {k: remote.TOTALS[k] - t0[k] for k in t0}

    keys = _keys(moto_endpoint, bucket, PREFIX + "/")
    part = f"exchange={EX}/symbol={SYM}/dt={DAY}"

    def names(zone: str) -> list[str]:
        return sorted(k.split(f"{part}/", 1)[1] for k in keys if k.startswith(f"{PREFIX}/{zone}/{part}/"))

    assert "_SUCCESS" in names("unified") and any(n.startswith("part-") for n in names("unified"))
    assert "_SUCCESS" in names("book_states") and any(n.startswith("part-") for n in names("book_states"))
    assert names("reports/assessment") == ["assessment.json", "assessment.md"]
    assert {"fidelity.html", "fidelity.json"} <= set(names("reports/fidelity"))
    assert not any("/_work/" in k or "/lake/staging/" in k for k in keys)  # local-only scratch never published

    client = s3_client(moto_endpoint)
    doc = json.loads(client.get_object(Bucket=bucket, Key=f"{PREFIX}/reports/fidelity/{part}/fidelity.json")
                     ["Body"].read())
    assert doc["status"] == local_run["doc"]["status"]
    assert doc["score"] == pytest.approx(local_run["doc"]["score"])
    rows = 0
    for n in names("unified"):
        if n.startswith("part-"):
            body = client.get_object(Bucket=bucket, Key=f"{PREFIX}/unified/{part}/{n}")["Body"].read()
            rows += pq.ParquetFile(io.BytesIO(body)).metadata.num_rows
    assert rows == local_run["rows"] == _unified_rows(result) == local_run["unified_md_rows"] > 0
    assert _check_outcomes(result) == local_run["checks"] and len(local_run["checks"]) > 0
    assert not any((tmp_path / "work").rglob("*.parquet"))  # working copies removed after success
    # the UI's paths name the published objects, not the deleted working copy
    shown = {f"{node}.{name}": value.path for node in ("unified_events", "fidelity_report", "data_assessment",
                                                         "lake__trades")
             for m in result.asset_materializations_for_node(node) for name, value in m.metadata.items()
             if isinstance(value, dg.PathMetadataValue)}
    assert shown["fidelity_report.html"] == f"s3://{bucket}/{PREFIX}/reports/fidelity/{part}/fidelity.html"
    assert shown["unified_events.path"].rstrip("/") == f"s3://{bucket}/{PREFIX}/unified/{part}"
    assert all(v.startswith(f"s3://{bucket}/{PREFIX}/") for v in shown.values()), shown

    # re-materialise: every output replaced in place, same objects, no duplicates, markers rewritten
    result2, wall2 = _materialize(resource)
    assert result2.success
    keys2 = _keys(moto_endpoint, bucket, PREFIX + "/")
    assert sorted(keys2) == sorted(keys)
    success = f"{PREFIX}/unified/{part}/_SUCCESS"
    assert keys2[success]["LastModified"] >= keys[success]["LastModified"]

    # the checks compare remote write times: unified re-published after the report makes the report stale
    from lake_pipeline.defs import fidelity as fd
    from lake_pipeline.definitions import defs

    time.sleep(1.1)
    unified = next(a for a in defs.assets if a.key == dg.AssetKey("unified_events"))
    with dg.instance_for_test() as instance:
        assert dg.materialize([unified], partition_key=KEY, instance=instance,
                              resources={"data_root": resource}).success
        job = dg.Definitions(assets=[unified, *fd.assets], asset_checks=fd.checks, jobs=fd.jobs,
                             resources={"data_root": resource}).resolve_job_def("fidelity_checks_job")
        checks = job.execute_in_process(instance=instance, tags={"dagster/partition": KEY})  # checks-only run
    evals = checks.get_asset_check_evaluations()
    assert evals and not any(e.passed for e in evals)
    assert all("is older than the unified events" in (e.description or "") for e in evals), evals[0].description
    print(f"\nchain wall time: local {local_run['wall']:.1f} s, S3 {wall:.1f} s (re-run {wall2:.1f} s); "
          f"S3 objects {len(keys)}; first S3 run moved {moved}")


def test_raw_assets_acquire_into_the_s3_data_root_then_only_describe(moto_endpoint: str, bucket: str,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A configured LakeSource acquires into the staged ready zone and the partition is published to the S3 data
    root (manifest last); a second run finds it there (manifest matches the source): downloaded, described, not
    re-uploaded."""
    from lake_pipeline.defs.lake import assets as raw_assets
    from lake_pipeline.lake.acquire import MANIFEST
    from lake_pipeline_tests.lakefiles import parquet_bytes, stored_table

    monkeypatch.setenv(remote.WORK_DIR_ENV, str(tmp_path / "work"))
    day = "2024-03-05"
    src = tmp_path / "src"
    for table in ("trades", "book", "book_delta_v2"):
        folder = src / table / f"exchange={EX}" / f"symbol={SYM}" / f"dt={day}"
        folder.mkdir(parents=True)
        (folder / "1.snappy.parquet").write_bytes(parquet_bytes(stored_table(table, day, 300)))
    resource = DataRoot(path=f"s3://{bucket}/{PREFIX}", endpoint_url=moto_endpoint)

    def run() -> dg.ExecuteInProcessResult:
        with dg.instance_for_test() as instance:
            return dg.materialize(raw_assets, partition_key=partition_key(Partition(EX, SYM, day)), instance=instance,
                                  resources={"data_root": resource},
                                  run_config={"resources": {"lake_source": {"config": {"url": str(src)}}}})

    first = run()
    assert first.success
    keys = _keys(moto_endpoint, bucket)
    for table in ("trades", "book", "book_delta_v2"):
        ready = f"{PREFIX}/lake/ready/{table}/exchange={EX}/symbol={SYM}/dt={day}/"
        assert {k[len(ready):] for k in keys if k.startswith(ready)} == {"1.snappy.parquet", MANIFEST}
        assert keys[ready + MANIFEST]["LastModified"] >= keys[ready + "1.snappy.parquet"]["LastModified"]
        md = first.asset_materializations_for_node(f"lake__{table}")[0].metadata
        assert md["acquisition"].value == "acquired" and md["dagster/row_count"].value == 300
    before = dict(remote.TOTALS)
    second = run()
    assert second.success
    for table in ("trades", "book", "book_delta_v2"):
        md = second.asset_materializations_for_node(f"lake__{table}")[0].metadata
        assert md["acquisition"].value != "acquired" and md["dagster/row_count"].value == 300
    assert remote.TOTALS["uploaded_files"] == before["uploaded_files"]  # already there: nothing re-published
    assert remote.TOTALS["downloaded_files"] > before["downloaded_files"]
    assert {k: v["ETag"] for k, v in _keys(moto_endpoint, bucket).items()} == {k: v["ETag"] for k, v in keys.items()}


def test_cli_assess_and_reconstruct_take_an_s3_data_root(simulated: Path, moto_endpoint: str, bucket: str,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    from lake_pipeline.cli import main

    monkeypatch.setenv(remote.WORK_DIR_ENV, str(tmp_path / "work"))
    monkeypatch.setenv(remote.ENDPOINT_ENV, moto_endpoint)
    _upload_inputs(simulated, moto_endpoint, bucket)
    url = f"s3://{bucket}/{PREFIX}"
    common = ["--data-root", url, "--symbol", SYM, "--date", DAY]
    assert main(["assess", *common]) == 0
    assert main(["reconstruct", *common, "--quiet"]) == 0
    keys = _keys(moto_endpoint, bucket, PREFIX + "/")
    part = f"exchange={EX}/symbol={SYM}/dt={DAY}"
    for name in ("reports/assessment/{}/assessment.json", "unified/{}/_SUCCESS", "book_states/{}/_SUCCESS"):
        assert f"{PREFIX}/" + name.format(part) in keys
    # an absent partition: exit code 2 and the URL in the message, nothing published
    capsys.readouterr()
    assert main(["reconstruct", "--data-root", url, "--symbol", SYM, "--date", "2024-08-09", "--quiet"]) == 2
    assert f"{url}/lake/ready/trades/exchange={EX}/symbol={SYM}/dt=2024-08-09/ does not exist" in capsys.readouterr().err
    assert _keys(moto_endpoint, bucket, PREFIX + "/").keys() == keys.keys()
