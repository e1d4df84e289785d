"""Acquisition against a real S3 endpoint on loopback (moto server mode) and against a local directory."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake_pipeline.cli import main as cli_main
from lake_pipeline.instrument import Partition
from lake_pipeline.lake.acquire import MANIFEST, VALIDATION_REPORT, acquire_partition
from lake_pipeline.lake.download import read_sidecar
from lake_pipeline.lake.retry import RetryPolicy, TransientSourceError
from lake_pipeline.lake.source import SourceAccessError
from lake_pipeline.lake.validate import ValidationError
from lake_pipeline.paths import lake_ready, lake_staging
from lake_pipeline_tests.lakefiles import lake_key, loaded_table, parquet_bytes, stored_table
from lake_pipeline_tests.s3_support import (  # noqa: F401 — fixtures
    aws_env,
    bucket,
    moto_endpoint,
    proxy,
    put_object,
    s3_client,
)

EX, SYM, DAY = "BINANCE", "BTC-USDT", "2024-03-05"
FAST_RETRY = RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05)
REPO = Path(__file__).resolve().parent.parent


def _put(endpoint: str, bucket: str, table: str, data: bytes, *, date: str = DAY, name: str = "1.snappy.parquet",
         prefix: str = "market-data/cryptofeed", part_size: int | None = None) -> str:
    return put_object(endpoint, bucket, lake_key(prefix, table, EX, SYM, date, name), data, part_size=part_size)


def _acquire(bucket: str, endpoint: str, data_root: Path, table: str = "trades", date: str = DAY, **kw):
    kw.setdefault("retry", FAST_RETRY)
    kw.setdefault("progress", False)
    return acquire_partition(f"s3://{bucket}/market-data/cryptofeed", Partition(EX, SYM, date), table, data_root,
                             endpoint_url=endpoint, **kw)


def test_acquire_one_partition_writes_exact_manifest(bucket, proxy, moto_endpoint, data_root):
    table = stored_table("trades", DAY, 30_000, seed=1)
    data = parquet_bytes(table, row_group_size=10_000)
    etag = _put(moto_endpoint, bucket, "trades", data)
    # lakeapi's listing cache and a foreign file in the partition directory are ignored
    _put(moto_endpoint, bucket, "trades", b"\x1f\x8b not parquet", name="contents.json.gz")

    result = _acquire(bucket, proxy.url, data_root, chunk_bytes=64 * 1024, concurrency=3)

    ready = lake_ready(data_root, Partition(EX, SYM, DAY), "trades")
    assert result.status == "acquired" and result.ready_dir == ready
    assert sorted(p.name for p in ready.iterdir()) == ["1.snappy.parquet", MANIFEST]
    assert (ready / "1.snappy.parquet").read_bytes() == data
    assert result.fetched_bytes == len(data) == proxy.body_bytes("1.snappy.parquet")
    assert len(proxy.gets("1.snappy.parquet")) == -(-len(data) // (64 * 1024))  # one ranged GET per chunk
    assert not lake_staging(data_root, Partition(EX, SYM, DAY), "trades").exists()

    manifest = json.loads((ready / MANIFEST).read_text())
    acquired_at = manifest.pop("acquired_at")
    assert acquired_at.endswith("Z") and acquired_at[:4] == time.strftime("%Y", time.gmtime())
    recv = table.column("receipt_timestamp").to_numpy()
    url = f"s3://{bucket}/market-data/cryptofeed/trades/exchange={EX}/symbol={SYM}/dt={DAY}/1.snappy.parquet"
    assert manifest == {
        "table": "trades", "exchange": EX, "symbol": SYM, "date": DAY,
        "source": f"s3://{bucket}/market-data/cryptofeed", "schema_variant": "stored",
        "rows": 30_000, "bytes": len(data), "time_tolerance_s": 300.0, "tool": "lake_pipeline 0.1.0",
        "value_repairs": {},
        "files": [{
            "name": "1.snappy.parquet", "source_url": url, "bytes": len(data), "etag": etag, "version": etag,
            "etag_check": "md5", "sha256": hashlib.sha256(data).hexdigest(), "schema_variant": "stored",
            "rows": 30_000, "row_groups": 3,
            "first_received_time": _iso(int(recv.min())), "last_received_time": _iso(int(recv.max())),
        }],
    }
    assert etag == hashlib.md5(data).hexdigest()

    # a re-run costs one listing: nothing is fetched, ready is untouched
    before = len(proxy.seen)
    again = _acquire(bucket, proxy.url, data_root)
    assert again.status == "up_to_date" and again.fetched_bytes == 0
    assert [s.method for s in proxy.seen[before:]] == ["GET"] and "list-type=2" in proxy.seen[-1].path
    # --force re-fetches and republishes
    forced = _acquire(bucket, proxy.url, data_root, force=True)
    assert forced.status == "acquired" and forced.fetched_bytes == len(data)


def _iso(ns: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ns // 10**9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9:09d}Z"


def test_multipart_etag_is_recomputed_from_the_part_size(bucket, moto_endpoint, data_root):
    data = parquet_bytes(stored_table("book", DAY, 9_000, seed=2), row_group_size=3_000)
    etag = _put(moto_endpoint, bucket, "book", data, part_size=5 << 20)
    assert etag.endswith(f"-{-(-len(data) // (5 << 20))}")
    result = _acquire(bucket, moto_endpoint, data_root, table="book", chunk_bytes=1 << 20)
    assert result.manifest["files"][0]["etag_check"] == "multipart"
    assert result.manifest["files"][0]["row_groups"] == 3


def test_transient_503_and_mid_body_reset_are_retried(bucket, proxy, moto_endpoint, data_root):
    data = parquet_bytes(stored_table("trades", DAY, 20_000, seed=3))
    _put(moto_endpoint, bucket, "trades", data)
    chunk = 256 * 1024
    proxy.faults.queue = ["503", ("reset", 100_000), "503"]
    result = _acquire(bucket, proxy.url, data_root, chunk_bytes=chunk, concurrency=1)
    assert (lake_ready(data_root, Partition(EX, SYM, DAY), "trades") / "1.snappy.parquet").read_bytes() == data
    gets = proxy.gets("1.snappy.parquet")
    assert [g.status for g in gets[:3]] == [503, 206, 503]
    # the reset chunk continued from the byte it reached: 100,000 bytes are not fetched twice
    assert gets[3].headers["range"] == f"bytes=100000-{chunk - 1}"
    assert result.fetched_bytes == len(data) == proxy.body_bytes("1.snappy.parquet")


def test_persistent_server_errors_fail_with_a_transient_error_naming_the_object(bucket, proxy, moto_endpoint,
                                                                                data_root):
    from lake_pipeline.lake.retry import TransientSourceError

    _put(moto_endpoint, bucket, "trades", parquet_bytes(stored_table("trades", DAY, 1_000)))
    proxy.faults.queue = ["503"] * 10
    with pytest.raises(TransientSourceError, match=r"GET s3://.*1\.snappy\.parquet bytes 0-.*after 4 attempts"):
        _acquire(bucket, proxy.url, data_root)
    assert not lake_ready(data_root, Partition(EX, SYM, DAY), "trades").exists()


RESUME_SCRIPT = """
import sys
from pathlib import Path
from lake_pipeline.instrument import Partition
from lake_pipeline.lake.acquire import acquire_partition
acquire_partition(sys.argv[1], Partition("BINANCE", "BTC-USDT", sys.argv[2]), "book", Path(sys.argv[3]),
                  endpoint_url=sys.argv[4], chunk_bytes=256 * 1024, concurrency=2, progress=False)
"""


def test_resume_after_kill_fetches_only_the_remainder(bucket, proxy, moto_endpoint, data_root, aws_env):
    data = parquet_bytes(stored_table("book", DAY, 8_000, seed=4))
    _put(moto_endpoint, bucket, "book", data)
    proxy.faults.rate_bps = 600_000  # slow enough to kill mid-transfer
    staging = lake_staging(data_root, Partition(EX, SYM, DAY), "book")
    env = {**os.environ, **aws_env, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", RESUME_SCRIPT, f"s3://{bucket}/market-data/cryptofeed", DAY,
                              str(data_root), proxy.url], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            meta = read_sidecar(staging, "1.snappy.parquet")
            if meta and len(meta["done"]) >= 4:
                break
            assert child.poll() is None, "download finished before it could be interrupted"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    meta = read_sidecar(staging, "1.snappy.parquet")
    assert not meta["complete"] and (staging / "1.snappy.parquet.part").exists()
    chunk = 256 * 1024
    recorded = sum(min(len(data), (i + 1) * chunk) - i * chunk for i in meta["done"])
    assert 0 < recorded < len(data)

    proxy.faults.rate_bps = None
    proxy.seen.clear()
    result = _acquire(bucket, proxy.url, data_root, table="book", chunk_bytes=chunk)
    assert result.fetched_bytes == len(data) - recorded == proxy.body_bytes("1.snappy.parquet")
    fetched_starts = {int(g.headers["range"].split("=")[1].split("-")[0]) for g in proxy.gets("1.snappy.parquet")}
    assert fetched_starts.isdisjoint({i * chunk for i in meta["done"]})
    assert (lake_ready(data_root, Partition(EX, SYM, DAY), "book") / "1.snappy.parquet").read_bytes() == data


def test_changed_object_restarts_the_partial_download(bucket, proxy, moto_endpoint, data_root):
    old = parquet_bytes(stored_table("trades", DAY, 20_000, seed=5))
    _put(moto_endpoint, bucket, "trades", old)
    proxy.faults.queue = ["503"] * 4  # first chunk gives up; later chunks land: a partial download remains
    with pytest.raises(TransientSourceError, match=r"GET s3://.*1\.snappy\.parquet bytes 0-65535: still failing after 4 attempts.*ServiceUnavailable"):
        _acquire(bucket, proxy.url, data_root, chunk_bytes=64 * 1024, concurrency=1)
    staging = lake_staging(data_root, Partition(EX, SYM, DAY), "trades")
    assert read_sidecar(staging, "1.snappy.parquet") is not None
    new = parquet_bytes(stored_table("trades", DAY, 20_000, seed=6))
    _put(moto_endpoint, bucket, "trades", new)
    proxy.seen.clear()
    result = _acquire(bucket, proxy.url, data_root, chunk_bytes=64 * 1024)
    assert result.fetched_bytes == len(new) == proxy.body_bytes("1.snappy.parquet")
    assert (lake_ready(data_root, Partition(EX, SYM, DAY), "trades") / "1.snappy.parquet").read_bytes() == new


def _corrupted(data: bytes) -> bytes:
    """Garbage over the first page header of row group 1 (bit rot in the object itself, not in transit)."""
    at = pq.ParquetFile(pa.BufferReader(data)).metadata.row_group(1).column(2).data_page_offset
    return data[:at] + b"\xff" * 32 + data[at + 32:]


BAD_OBJECTS = {
    "corrupted": (_corrupted, r"row group 1 of 3 unreadable"),
    "truncated": (lambda d: d[: len(d) * 2 // 3], r"Parquet footer unreadable \(truncated or not a Parquet file\)"),
    "wrong-schema": (None, r"schema is not a known `trades` schema \(stored: missing columns \['amount', 'id'\]"),
    "empty": (lambda d: b"", r"empty object \(0 bytes\)"),
}


@pytest.mark.parametrize("kind", sorted(BAD_OBJECTS))
def test_bad_object_is_rejected_with_a_clear_error_and_ready_untouched(kind, bucket, moto_endpoint, data_root):
    good = parquet_bytes(stored_table("trades", DAY, 30_000, seed=7), row_group_size=10_000)
    _put(moto_endpoint, bucket, "trades", good)
    first = _acquire(bucket, moto_endpoint, data_root)
    ready = lake_ready(data_root, Partition(EX, SYM, DAY), "trades")
    manifest_before = (ready / MANIFEST).read_text()

    make, reason = BAD_OBJECTS[kind]
    if make is None:  # right table, wrong columns
        bad = parquet_bytes(stored_table("trades", DAY, 100).rename_columns(
            ["side", "qty", "price", "trade", "timestamp", "receipt_timestamp"]))
    else:
        bad = make(good)
    _put(moto_endpoint, bucket, "trades", bad)
    with pytest.raises(ValidationError) as info:
        _acquire(bucket, moto_endpoint, data_root)
    url = f"s3://{bucket}/market-data/cryptofeed/trades/exchange={EX}/symbol={SYM}/dt={DAY}/1.snappy.parquet"
    msg = str(info.value)
    assert url in msg
    assert any(e.startswith(url + ": ") for e in info.value.errors)
    import re

    assert re.search(reason, msg), msg
    # ready keeps the earlier good partition, byte for byte
    assert first.status == "acquired"
    assert (ready / MANIFEST).read_text() == manifest_before
    assert (ready / "1.snappy.parquet").read_bytes() == good
    report = json.loads((lake_staging(data_root, Partition(EX, SYM, DAY), "trades") / VALIDATION_REPORT).read_text())
    assert report["valid"] is False and report["errors"] == info.value.errors


def test_bad_object_never_reaches_an_empty_ready_zone_and_cli_exits_2(bucket, moto_endpoint, data_root, capsys):
    data = parquet_bytes(stored_table("trades", DAY, 2_000))
    _put(moto_endpoint, bucket, "trades", data[: len(data) // 2])
    rc = cli_main(["acquire", "--source", f"s3://{bucket}/market-data/cryptofeed", "--table", "trades",
                   "--symbol", SYM, "--date", DAY, "--data-root", str(data_root), "--endpoint-url", moto_endpoint,
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "1.snappy.parquet: Parquet footer unreadable" in err
    assert not (data_root / "lake" / "ready").exists()


def test_corruption_in_transit_of_a_whole_object_get_is_caught_by_its_checksum_and_refetched(
        bucket, proxy, moto_endpoint, data_root):
    data = parquet_bytes(stored_table("trades", DAY, 20_000, seed=8))
    _put(moto_endpoint, bucket, "trades", data)
    proxy.faults.queue = [("flip", 1000)]
    result = _acquire(bucket, proxy.url, data_root, chunk_bytes=len(data))  # one GET: S3 sends the object's CRC
    assert [g.status for g in proxy.gets("1.snappy.parquet")] == [206, 206]
    assert result.fetched_bytes == 2 * len(data)
    assert (lake_ready(data_root, Partition(EX, SYM, DAY), "trades") / "1.snappy.parquet").read_bytes() == data


def test_corruption_in_transit_of_a_range_fails_the_etag_and_a_rerun_refetches(bucket, proxy, moto_endpoint,
                                                                              data_root):
    data = parquet_bytes(stored_table("trades", DAY, 20_000, seed=8))
    _put(moto_endpoint, bucket, "trades", data)
    proxy.faults.queue = [("flip", 1000)]  # ranged GETs carry no whole-object checksum: only the ETag sees it
    with pytest.raises(ValidationError, match=r"1\.snappy\.parquet: ETag mismatch: source [0-9a-f]{32}, content gives"):
        _acquire(bucket, proxy.url, data_root, chunk_bytes=64 * 1024)
    assert not lake_ready(data_root, Partition(EX, SYM, DAY), "trades").exists()
    # the bad bytes are not kept as "complete": the next run fetches the object again and succeeds
    result = _acquire(bucket, proxy.url, data_root, chunk_bytes=64 * 1024)
    assert result.status == "acquired" and result.fetched_bytes == len(data)
    assert (lake_ready(data_root, Partition(EX, SYM, DAY), "trades") / "1.snappy.parquet").read_bytes() == data


def test_times_outside_the_partition_date_are_rejected(bucket, moto_endpoint, data_root):
    table = stored_table("book_delta_v2", "2024-03-06", 500)  # the next day's data filed under DAY
    _put(moto_endpoint, bucket, "book_delta_v2", parquet_bytes(table))
    end_ns = 1709683200 * 10**9 + 300 * 10**9  # 2024-03-06T00:00Z + tolerance
    n_out = int((table.column("receipt_timestamp").to_numpy() >= end_ns).sum())
    assert 450 < n_out < 500
    with pytest.raises(ValidationError, match=rf"{n_out} `receipt_timestamp` values outside dt=2024-03-05 ± 300 s"):
        _acquire(bucket, moto_endpoint, data_root, table="book_delta_v2")


def test_rows_a_little_past_midnight_are_within_the_tolerance(bucket, moto_endpoint, data_root):
    table = stored_table("trades", DAY, 500)
    recv = table.column("receipt_timestamp").to_numpy().copy()
    recv[-1] = 1709683200 * 10**9 + 120 * 10**9  # 00:02 on the next day: late capture of the day's last trade
    table = table.set_column(5, "receipt_timestamp", pa.array(recv))
    _put(moto_endpoint, bucket, "trades", parquet_bytes(table))
    result = _acquire(bucket, moto_endpoint, data_root)
    assert result.manifest["files"][0]["last_received_time"] == "2024-03-06T00:02:00.000000000Z"
    with pytest.raises(ValidationError, match=r"1 `receipt_timestamp` values outside dt=2024-03-05 ± 60 s"):
        _acquire(bucket, moto_endpoint, data_root, tolerance_s=60, force=True)


def test_mixed_schema_variants_in_one_partition_are_rejected(bucket, moto_endpoint, data_root):
    _put(moto_endpoint, bucket, "trades", parquet_bytes(stored_table("trades", DAY, 100)), name="a.parquet")
    _put(moto_endpoint, bucket, "trades", parquet_bytes(loaded_table("trades", DAY, 100)), name="b.parquet")
    with pytest.raises(ValidationError, match=r"files mix schema variants: a.parquet=stored, b.parquet=loaded"):
        _acquire(bucket, moto_endpoint, data_root)


def test_loaded_variant_and_several_files_are_accepted(bucket, moto_endpoint, data_root):
    for i, name in enumerate(["part-0.parquet", "part-1.parquet"]):
        _put(moto_endpoint, bucket, "book_delta_v2", parquet_bytes(loaded_table("book_delta_v2", DAY, 400, seed=i)),
             name=name)
    result = _acquire(bucket, moto_endpoint, data_root, table="book_delta_v2")
    assert result.manifest["schema_variant"] == "loaded"
    assert [f["name"] for f in result.manifest["files"]] == ["part-0.parquet", "part-1.parquet"]
    assert result.rows == 800


def test_anonymous_access_to_a_public_bucket(moto_endpoint, proxy, data_root, monkeypatch):
    name = "sample-crypto-lake-public"
    admin = s3_client(moto_endpoint)
    admin.create_bucket(Bucket=name)
    admin.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]}]}))
    data = parquet_bytes(stored_table("trades", DAY, 1_000))
    put_object(moto_endpoint, name, lake_key("", "trades", EX, SYM, DAY, "1.snappy.parquet"), data)
    # no credentials anywhere: the signed path must fail clearly, the anonymous one must work
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    kw = dict(endpoint_url=proxy.url, progress=False, retry=FAST_RETRY)
    with pytest.raises(SourceAccessError, match=r"no AWS credentials found .* pass --anonymous"):
        acquire_partition(f"s3://{name}", Partition(EX, SYM, DAY), "trades", data_root, **kw)
    result = acquire_partition(f"s3://{name}", Partition(EX, SYM, DAY), "trades", data_root, anonymous=True, **kw)
    assert result.status == "acquired" and result.rows == 1_000
    assert proxy.seen and all("authorization" not in s.headers for s in proxy.seen)


def test_missing_day_is_reported_as_missing_not_as_an_error(bucket, moto_endpoint, data_root, capsys):
    for day in ("2024-03-04", "2024-03-06"):
        _put(moto_endpoint, bucket, "trades", parquet_bytes(stored_table("trades", day, 200)), date=day)
    result = _acquire(bucket, moto_endpoint, data_root, date=DAY)
    assert result.status == "missing" and result.ready_dir is None
    rc = cli_main(["acquire", "--source", f"s3://{bucket}/market-data/cryptofeed", "--table", "trades",
                   "--symbol", SYM, "--date", "2024-03-04..2024-03-06", "--data-root", str(data_root),
                   "--endpoint-url", moto_endpoint, "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 3
    assert "summary: 2 ready, 1 missing, 0 invalid" in out
    assert f"missing: trades exchange={EX}/symbol={SYM}/dt={DAY}" in out
    assert lake_ready(data_root, Partition(EX, SYM, "2024-03-06"), "trades").joinpath(MANIFEST).exists()
    assert not lake_ready(data_root, Partition(EX, SYM, DAY), "trades").exists()


def test_local_directory_source(tmp_path, data_root, capsys):
    src = tmp_path / "lake-copy"
    files = {}
    for table in ("trades", "book", "book_delta_v2"):
        folder = src / table / f"exchange={EX}" / f"symbol={SYM}" / f"dt={DAY}"
        folder.mkdir(parents=True)
        files[table] = parquet_bytes(stored_table(table, DAY, 300))
        (folder / "random_name.parquet").write_bytes(files[table])
        (folder / "contents.json.gz").write_bytes(b"ignored")
    rc = cli_main(["acquire", "--source", str(src), "--symbol", SYM, "--date", DAY, "--data-root", str(data_root),
                   "--no-progress"])
    assert rc == 0, capsys.readouterr()
    for table, data in files.items():
        ready = lake_ready(data_root, Partition(EX, SYM, DAY), table)
        assert (ready / "random_name.parquet").read_bytes() == data
        manifest = json.loads((ready / MANIFEST).read_text())
        assert manifest["files"][0]["etag_check"] == "none" and manifest["source"] == str(src)
        assert pq.read_table(ready / "random_name.parquet").equals(pq.read_table(pa.BufferReader(data)))
    assert "summary: 3 ready, 0 missing, 0 invalid" in capsys.readouterr().out


def test_object_replaced_during_the_download_is_detected_by_its_etag(bucket, moto_endpoint, data_root):
    from lake_pipeline.lake.download import download_objects
    from lake_pipeline.lake.source import ObjectChangedError, open_source

    _put(moto_endpoint, bucket, "trades", parquet_bytes(stored_table("trades", DAY, 5_000, seed=1)))
    src = open_source(f"s3://{bucket}/market-data/cryptofeed", endpoint_url=moto_endpoint, retry=FAST_RETRY)
    [listed] = src.list_partition(Partition(EX, SYM, DAY), "trades")
    _put(moto_endpoint, bucket, "trades", parquet_bytes(stored_table("trades", DAY, 5_000, seed=2)))  # new ETag
    staging = lake_staging(data_root, Partition(EX, SYM, DAY), "trades")
    with pytest.raises(ObjectChangedError, match=r"GET s3://.*1\.snappy\.parquet.*changed at the source"):
        download_objects(src, [listed], staging, chunk_bytes=16 * 1024, progress=False)
    assert read_sidecar(staging, "1.snappy.parquet") is None and not (staging / "1.snappy.parquet.part").exists()


def test_object_deleted_after_listing_is_a_clear_access_error(bucket, moto_endpoint, data_root):
    from lake_pipeline.lake.download import download_objects
    from lake_pipeline.lake.source import open_source

    key = lake_key("market-data/cryptofeed", "trades", EX, SYM, DAY, "1.snappy.parquet")
    _put(moto_endpoint, bucket, "trades", parquet_bytes(stored_table("trades", DAY, 500)))
    src = open_source(f"s3://{bucket}/market-data/cryptofeed", endpoint_url=moto_endpoint, retry=FAST_RETRY)
    [listed] = src.list_partition(Partition(EX, SYM, DAY), "trades")
    s3_client(moto_endpoint).delete_object(Bucket=bucket, Key=key)
    with pytest.raises(SourceAccessError, match=r"GET s3://.*1\.snappy\.parquet: NoSuchKey \(HTTP 404\)"):
        download_objects(src, [listed], lake_staging(data_root, Partition(EX, SYM, DAY), "trades"), progress=False)


def test_missing_bucket_is_a_tool_error_not_a_missing_day(moto_endpoint, aws_env, data_root):
    with pytest.raises(SourceAccessError, match=r"list s3://no-such-lake-bucket/.*NoSuchBucket \(HTTP 404\)"):
        acquire_partition("s3://no-such-lake-bucket/x", Partition(EX, SYM, DAY), "trades", data_root, endpoint_url=moto_endpoint,
                          retry=FAST_RETRY, progress=False)


def _local_source(root: Path, table: str, data: bytes, name: str = "1.parquet") -> Path:
    folder = root / table / f"exchange={EX}" / f"symbol={SYM}" / f"dt={DAY}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return root


@pytest.mark.parametrize(("kind", "reason"), [
    ("duplicated", r"1\.parquet: trade id 1000000 at row 100 \(0-based\) repeats row 0 of .*1\.parquet: trade ids must be unique"),
    ("price-0", r"1\.parquet: column 'price', row 7 \(0-based\): value 0\.0 is not a price: prices must be > 0"),
    ("negative-size", r"1\.parquet: column 'amount', row 3 \(0-based\): value -0\.5 is negative"),
])
def test_bad_values_keep_a_partition_out_of_ready(kind, reason, tmp_path, data_root, capsys):
    table = stored_table("trades", DAY, 100, seed=3)
    if kind == "duplicated":  # every trade twice, row for row
        table = pa.concat_tables([table, table])
    elif kind == "price-0":
        table = table.set_column(2, "price", pa.array([0.0 if i == 7 else p for i, p in enumerate(table["price"].to_pylist())]))
    else:
        table = table.set_column(1, "amount", pa.array([-0.5 if i == 3 else a for i, a in enumerate(table["amount"].to_pylist())]))
    src = _local_source(tmp_path / "src", "trades", parquet_bytes(table))
    with pytest.raises(ValidationError, match=reason):
        acquire_partition(str(src), Partition(EX, SYM, DAY), "trades", data_root, progress=False)
    assert not lake_ready(data_root, Partition(EX, SYM, DAY), "trades").exists()
    rc = cli_main(["acquire", "--source", str(src), "--table", "trades", "--symbol", SYM, "--date", DAY,
                   "--data-root", str(data_root), "--no-progress"])
    assert rc == 2 and "INVALID" in capsys.readouterr().err


def test_repeated_delta_rows_are_counted_in_the_manifest(tmp_path, data_root):
    table = stored_table("book_delta_v2", DAY, 50, seed=4)
    rows = table.to_pylist()
    table = pa.Table.from_pylist(rows[:10] + [rows[9], rows[9]] + rows[10:], schema=table.schema)
    src = _local_source(tmp_path / "src", "book_delta_v2", parquet_bytes(table))
    result = acquire_partition(str(src), Partition(EX, SYM, DAY), "book_delta_v2", data_root, progress=False)
    assert result.manifest["value_repairs"] == {"duplicate_delta_rows_dropped": 2}


def test_source_that_is_a_file_is_named_as_such(tmp_path, data_root, capsys):
    not_a_dir = tmp_path / "trades.parquet"
    not_a_dir.write_bytes(b"x")
    rc = cli_main(["acquire", "--source", str(not_a_dir), "--symbol", SYM, "--date", DAY,
                   "--data-root", str(data_root), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and f"lake source {not_a_dir} is a file, not a directory" in err and "Traceback" not in err


def test_disk_full_removes_the_partial_download_and_exits_5(tmp_path, data_root, capsys, monkeypatch):
    """ENOSPC from the kernel (simulated at os.pwrite: a real full disk needs a small filesystem we cannot mount)."""
    import errno

    from lake_pipeline.lake import download

    src = _local_source(tmp_path / "src", "trades", parquet_bytes(stored_table("trades", DAY, 5_000, seed=8)))
    staging = lake_staging(data_root, Partition(EX, SYM, DAY), "trades")
    staging.mkdir(parents=True)
    (staging / "gone-from-source.parquet.part").write_bytes(b"\0" * 4096)  # left by an earlier run

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download.os, "pwrite", full)
    rc = cli_main(["acquire", "--source", str(src), "--table", "trades", "--symbol", SYM, "--date", DAY,
                   "--data-root", str(data_root), "--no-progress", "--chunk-mib", "0.01"])
    err = capsys.readouterr().err
    assert rc == 5 and "disk full" in err and "Traceback" not in err
    assert not list(staging.glob("*.part")) and not list(staging.glob("*.download.json"))
    monkeypatch.undo()
    assert cli_main(["acquire", "--source", str(src), "--table", "trades", "--symbol", SYM, "--date", DAY,
                     "--data-root", str(data_root), "--no-progress"]) == 0



def test_a_killed_publication_leaves_nothing_after_the_next_start(tmp_path, data_root):
    """A writer SIGKILLed between building the temp partition and the rename leaves `.dt=….tmp-*` with partial
    Parquet; the next acquire of that table removes it (atomic.clean_stale_temps: the dead writer's pid)."""
    part = Partition(EX, SYM, DAY)
    src = _local_source(tmp_path / "src", "trades", parquet_bytes(stored_table("trades", DAY, 300, seed=9)))
    ready = lake_ready(data_root, part, "trades")
    ready.parent.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = ready.with_name(f".{ready.name}.tmp-{dead.stdout.strip()}-deadbeef")
    leftover.mkdir()
    (leftover / "1.parquet").write_bytes(b"PAR1 partial")
    acquire_partition(str(src), part, "trades", data_root, progress=False)
    assert sorted(p.name for p in ready.parent.iterdir()) == [ready.name]
