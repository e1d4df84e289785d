"""Acquisition throughput on loopback: a ~120 MB multipart object (8 MiB parts, like Crypto Lake's) from moto's S3
server, end to end (list, ranged GETs, sha256 + ETag, every row group decoded, atomic publish).

Run: `make bench` or `pytest lake_pipeline_tests/bench/test_bench_acquire.py -m bench -s`. Prints what it measures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from lake_pipeline.instrument import Partition
from lake_pipeline.lake.acquire import acquire_partition
from lake_pipeline.lake.download import download_objects
from lake_pipeline.lake.source import open_source
from lake_pipeline.lake.validate import validate_file
from lake_pipeline_tests.lakefiles import lake_key, parquet_bytes, stored_table
from lake_pipeline_tests.s3_support import aws_env, put_object, s3_client  # noqa: F401 — fixtures

EX, SYM, DAY = "BINANCE", "BTC-USDT", "2024-03-05"
ROWS = int(os.environ.get("LAKE_BENCH_ACQUIRE_ROWS", "240000"))


@pytest.fixture
def moto_process(aws_env):
    """moto's S3 server in its own process (in-process it would share our GIL and understate throughput)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.bench
def test_bench_acquire_throughput(moto_process, tmp_path):
    moto_endpoint = moto_process
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    data = parquet_bytes(stored_table("book", DAY, ROWS, seed=1), row_group_size=50_000)
    key = lake_key("market-data/cryptofeed", "book", EX, SYM, DAY, "1.snappy.parquet")
    put_object(moto_endpoint, bucket, key, data, part_size=8 << 20)
    mb = len(data) / 1e6
    source_url = f"s3://{bucket}/market-data/cryptofeed"
    print(f"\nobject: {mb:.1f} MB, {ROWS:,} book rows, 8 MiB multipart")
    client = s3_client(moto_endpoint)
    t0 = time.perf_counter()
    client.get_object(Bucket=bucket, Key=key)["Body"].read()
    print(f"ceiling, one plain GET of the whole object: {mb / (time.perf_counter() - t0):6.1f} MB/s")
    t0 = time.perf_counter()
    for start in range(0, len(data), 8 << 20):
        client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{min(len(data), start + (8 << 20)) - 1}")[
            "Body"].read()
    print(f"plain sequential 8 MiB ranged GETs: {mb / (time.perf_counter() - t0):6.1f} MB/s "
          "(moto reads the whole object for every range request)")
    for chunk_mib, concurrency in ((8, 1), (8, 4), (32, 1), (32, 4)):
        root = tmp_path / f"c{chunk_mib}-{concurrency}"
        src = open_source(source_url, endpoint_url=moto_endpoint, max_connections=concurrency)
        [obj] = src.list_partition(Partition(EX, SYM, DAY), "book")
        t0 = time.perf_counter()
        [staged] = download_objects(src, [obj], root / "staging", concurrency=concurrency,
                                    chunk_bytes=chunk_mib << 20, progress=False)
        t_dl = time.perf_counter() - t0
        t0 = time.perf_counter()
        check = validate_file(obj, staged.path, "book", DAY, part_size=src.part_size(obj))
        t_val = time.perf_counter() - t0
        assert check.ok and check.etag_check == "multipart", check.errors
        print(f"chunks {chunk_mib:2d} MiB, concurrency {concurrency}: download {mb / t_dl:6.1f} MB/s ({t_dl:.2f} s); "
              f"validate {mb / t_val:6.1f} MB/s ({t_val:.2f} s)")
    t0 = time.perf_counter()
    result = acquire_partition(source_url, Partition(EX, SYM, DAY), "book", tmp_path / "e2e", endpoint_url=moto_endpoint,
                               progress=False)
    total = time.perf_counter() - t0
    assert result.status == "acquired" and result.bytes == len(data)
    print(f"end to end (concurrency 4: list, download, sha256+ETag, decode every row group, publish): "
          f"{mb / total:.1f} MB/s ({total:.2f} s)")
