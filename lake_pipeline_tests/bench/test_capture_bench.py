"""Benchmark (marker `bench`): frames/s LiveCapture sustains on one core, gzip + AES-256-GCM, against the exchange
server at max speed in its own process (on the other core when there are two).

Prints: wall-clock frames/s with the capture pinned to one core, the capture's CPU-seconds (both its threads), hence
frames per CPU-second, and how busy the server process was (if it was saturated, the figure is a lower bound).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lake_pipeline.capture.keys import CaptureKey
from lake_pipeline.capture.live import CaptureConfig, LiveCapture
from lake_pipeline_tests.conftest import REPO_ROOT, realdata_dir

pytestmark = [pytest.mark.bench, pytest.mark.realdata]

SPOT = ("btcusdt_20240808.gz", "btcusdt_20240809.gz")
FRAMES = 99_566  # stream frames the server pushes from the two files (the 3 pre-snapshot diffs are pre-roll)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_server(cpu: int | None) -> tuple[subprocess.Popen, str]:
    files = [str(realdata_dir() / "hftbacktest" / "spot" / f) for f in SPOT]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lake_pipeline.cli", "exchange-server", "--port", "0", "--speed", "0", "--replay",
         *files], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"ws://127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        pytest.fail(f"exchange server did not start: {line!r}")
    return proc, f"127.0.0.1:{match[1]}"


def test_bench_capture_frames_per_second(tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    two = len(cpus) >= 2
    server, host = _start_server(cpus[1] if two else None)
    previous = os.sched_getaffinity(0)
    try:
        if two:
            os.sched_setaffinity(0, {cpus[0]})
        cfg = CaptureConfig(symbol="BTC-USDT", data_root=tmp_path, duration_s=600, ws_url=f"ws://{host}",
                            rest_url=f"http://{host}", key=CaptureKey(os.urandom(32), "bench"), ntp_servers=(),
                            time_sample_s=60)
        capture = LiveCapture(cfg)

        async def main() -> tuple[float, float, float, float]:
            task = asyncio.create_task(capture.run())
            while capture.frames < 1:
                await asyncio.sleep(0.001)
            t0, cpu0, srv0 = time.perf_counter(), time.process_time(), _cpu_s(server.pid)
            while capture.frames < FRAMES and not task.done():
                await asyncio.sleep(0.01)
            wall, cpu, srv = time.perf_counter() - t0, time.process_time() - cpu0, _cpu_s(server.pid) - srv0
            capture.stop()
            t1 = time.perf_counter()
            await task  # drain the storage queue, publish files, write session.json
            return wall, cpu, srv, time.perf_counter() - t1

        wall, cpu, srv, drain = asyncio.run(main())
    finally:
        os.sched_setaffinity(0, previous)
        server.terminate()
        server.wait(10)
    result = capture.result
    doc = result.document
    stream_frames = sum(v for k, v in doc["frames"]["per_stream"].items() if not k.startswith("<"))
    size = sum(f["bytes"] for f in result.files)
    plain = sum(f["plain_bytes"] for f in result.files)
    print(f"\ncapture: {stream_frames:,} frames in {wall:.2f} s wall = {stream_frames / wall:,.0f} frames/s "
          f"({'pinned to one core; server on the other' if two else 'single CPU shared with the server'})")
    print(f"capture CPU {cpu:.2f} s (reader + storage threads) = {stream_frames / cpu:,.0f} frames per CPU-second; "
          f"server CPU {srv:.2f} s ({srv / wall:.0%} of its core)")
    print(f"storage: {plain / 1e6:.1f} MB of lines -> {size / 1e6:.1f} MB gzip+AES-GCM ({plain / size:.1f}x); "
          f"max backlog {doc['storage']['max_backlog']:,} frames; drain + publish {drain:.2f} s")
    print(f"book: {doc['book']['book_checks']['checked']} bookTicker checkpoints, "
          f"{doc['book']['book_checks']['mismatched']} mismatches; gaps {len(doc['gaps'])}")
    assert stream_frames == FRAMES and doc["book"]["book_checks"]["mismatched"] == 0 and doc["gaps"] == []
