"""Crash safety: a run SIGKILLed anywhere and started again ends with output identical, row for row, to an
uninterrupted run; a killed run publishes nothing half-done."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lake_pipeline.instrument import Instrument, Partition
from lake_pipeline.paths import book_states_dir, unified_dir
from lake_pipeline.reconstruct.run import reconstruct_partition, work_dir
from lake_pipeline.reconstruct.wal import CRASH_ENV
from lake_pipeline_tests.recon_support import DAY, EX, SYM, book_states, random_partition, unified, write_partition

CHUNK_ROWS = 60


def _cli(root: Path, chunk_rows: int, crash: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                      env.get("PYTHONPATH")]))
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.Popen(
        [sys.executable, "-m", "lake_pipeline.cli", "reconstruct", "--data-root", str(root), "--symbol", SYM,
         "--date", DAY, "--chunk-rows", str(chunk_rows), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    """An uninterrupted run on a ~1,500-row random market (about 25 chunks)."""
    root = tmp_path_factory.mktemp("wal_ref") / "data"
    write_partition(root, *random_partition(21, n_messages=400))
    reconstruct_partition(root, Partition(EX, SYM, DAY), chunk_rows=CHUNK_ROWS)
    return root, unified(root), book_states(root)


def _fresh_copy(reference_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(reference_root / "lake", root / "lake")
    return root


def _assert_identical(root: Path, reference, wal_gone: bool = True) -> None:
    _, ref_unified, ref_states = reference
    assert unified(root).equals(ref_unified)  # every row and column, in order
    assert book_states(root).equals(ref_states)
    assert not work_dir(root, Partition(EX, SYM, DAY)).exists() or not wal_gone


@pytest.mark.parametrize("crash", [
    "after-unified:3", "after-checkpoint:0", "after-done:11", "after-trash", "after-states:7",
    "after-publish-states", "after-publish-unified",  # the windows between publishing book_states and unified
])
def test_sigkill_at_each_commit_step_then_resume(reference, tmp_path, crash) -> None:
    root = _fresh_copy(reference[0], tmp_path)
    killed = _cli(root, CHUNK_ROWS, crash)
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    if crash in ("after-publish-unified", "after-trash"):
        _assert_identical(root, reference, wal_gone=crash == "after-trash")  # published whole before the kill
    else:
        assert not (unified_dir(root, Partition(EX, SYM, DAY)) / "_SUCCESS").exists()  # nothing published as complete
        if crash != "after-publish-states":
            assert not book_states_dir(root, Partition(EX, SYM, DAY)).exists()
    resumed = _cli(root, CHUNK_ROWS)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()[-2000:]
    _assert_identical(root, reference)


def test_changed_input_discards_the_log(reference, tmp_path) -> None:
    root = _fresh_copy(reference[0], tmp_path)
    killed = _cli(root, CHUNK_ROWS, "after-done:5")
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL and work_dir(root, Partition(EX, SYM, DAY)).exists()
    write_partition(root, *random_partition(22, n_messages=100))  # the inputs changed since the crash
    summary = reconstruct_partition(root, Partition(EX, SYM, DAY), chunk_rows=CHUNK_ROWS)
    assert summary.chunks["resumed_after_chunk"] == -1  # started over, nothing mixed in
    fresh = tmp_path / "fresh"
    write_partition(fresh, *random_partition(22, n_messages=100))
    reconstruct_partition(fresh, Partition(EX, SYM, DAY), chunk_rows=CHUNK_ROWS)
    assert unified(root).equals(unified(fresh))


def test_resume_reports_where_it_resumed(reference, tmp_path) -> None:
    root = _fresh_copy(reference[0], tmp_path)
    _cli(root, CHUNK_ROWS, "after-done:9").communicate(timeout=120)
    summary = reconstruct_partition(root, Partition(EX, SYM, DAY), chunk_rows=CHUNK_ROWS)
    assert summary.chunks["resumed_after_chunk"] == 9
    _assert_identical(root, reference)


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path) -> None:
    """Simulator data, killed at random wall-clock moments (seeded) until a run completes; then compared in full.
    Still `slow`: on a loaded 2-core machine the number of kills before a run completes depends on timing (a resumed
    run can finish inside its random deadline), so it is not reliable enough for the default suite. The deterministic
    kill at every commit step (test_sigkill_at_each_commit_step_then_resume) is."""
    from lake_pipeline.sim.simulate import simulate

    ref = tmp_path / "ref"
    simulate(ref, Instrument.parse(SYM).on(DAY), 0.1, 5, faults=["time-hole", "crossed-snapshot"], golden_hours=0)
    t0 = time.perf_counter()
    done = _cli(ref, 4_000)
    assert done.wait(timeout=600) == 0
    duration = time.perf_counter() - t0
    expected = (ref, unified(ref), book_states(ref))
    root = tmp_path / "data"
    shutil.copytree(ref / "lake", root / "lake")
    rng = random.Random(1234)
    kills = 0
    while kills < 50:
        proc = _cli(root, 4_000)
        try:
            proc.wait(timeout=rng.uniform(0.15, 0.8) * duration)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
        break
    assert kills >= 3
    _assert_identical(root, expected)
