"""Simulator determinism: the same arguments give byte-identical files; another seed gives other data."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from lake_pipeline.cli import main as cli_main
from lake_pipeline.instrument import Partition
from lake_pipeline.sim import simulate

ARGS = dict(part=Partition("BINANCE", "BTC-USDT", "2024-08-08"), hours=0.03, faults=("dropped-delta", "crossed-snapshot", "time-hole"))


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    simulate(a, seed=42, **ARGS)
    simulate(b, seed=42, **ARGS)
    simulate(c, seed=43, **ARGS)
    da, db, dc = _digests(a), _digests(b), _digests(c)
    assert len(da) == 7  # 3 lake files, bbo + faults.json, one golden hour file + session.json; no temp leftovers
    assert da == db
    shared = {k.replace("sim-43", "sim-42") for k in dc} & set(da)
    lake = [k for k in shared if k.startswith("lake/") or "frames-" in k or k.endswith("bbo.parquet")]
    assert len(lake) == 5 and all(da[k] != dc[k.replace("sim-42", "sim-43")] for k in lake)


def test_rerun_replaces_the_partitions_whole(tmp_path: Path) -> None:
    simulate(tmp_path, seed=1, **ARGS)
    first = _digests(tmp_path)
    simulate(tmp_path, seed=2, **{**ARGS, "faults": ()})
    second = _digests(tmp_path)
    lake_keys = [k for k in first if k.startswith("lake/")]
    assert lake_keys and all(k in second and second[k] != first[k] for k in lake_keys)
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


def test_cli_prints_rows_per_second(tmp_path: Path, capsys) -> None:
    rc = cli_main(["simulate", "--data-root", str(tmp_path), "--hours", "0.01", "--seed", "9", "--quiet",
                   "--lake-variant", "loaded", "--golden-hours", "0"])
    out = capsys.readouterr().out
    assert rc == 0 and "rows/s" in out and "book_delta_v2" in out
    assert not (tmp_path / "golden").exists()
    assert cli_main(["simulate", "--data-root", str(tmp_path), "--hours", "0.01", "--faults", "bogus"]) == 2
    assert "unknown fault" in capsys.readouterr().err


def test_another_process_writes_the_same_bytes(tmp_path: Path) -> None:
    """No hidden process state (numba's global RNG, hash seeds, uninitialised memory) leaks into the files."""
    here = tmp_path / "here"
    simulate(here, seed=77, **ARGS)
    there = tmp_path / "there"
    cmd = [sys.executable, "-m", "lake_pipeline.cli", "simulate", "--data-root", str(there),
           "--hours", str(ARGS["hours"]), "--seed", "77", "--faults", ",".join(ARGS["faults"]), "--quiet"]
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    assert _digests(here) == _digests(there)
