"""Every command ends bad input with a message and a stated exit code (lake_pipeline/exits.py), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lake_pipeline import exits
from lake_pipeline.cli import main
from lake_pipeline_tests.recon_support import DAY, SYM, random_partition, write_partition

REPO = Path(__file__).resolve().parent.parent


def _usage_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == exits.BAD_INPUT and "Traceback" not in err
    return err


@pytest.mark.parametrize(("argv", "says"), [
    (["reconstruct", "--symbol", SYM, "--date", DAY, "--chunk-rows", "0"], "'0' must be a positive integer"),
    (["assess", "--data-root", ".", "--symbol", SYM, "--date", DAY, "--hole-threshold-s", "-5"],
     "'-5' must be a positive number"),
    (["assess", "--data-root", ".", "--symbol", SYM, "--date", DAY, "--chunk-rows", "many"], "'many' is not an integer"),
    (["lake-from-capture", "--capture", "x.jsonl.gz", "--data-root", ".", "--symbol", SYM, "--tick", "abc"],
     "'abc' is not a decimal number"),
    (["lake-from-capture", "--capture", "x.jsonl.gz", "--data-root", ".", "--symbol", SYM, "--lot", "-0.1"],
     "'-0.1' must be a positive decimal"),
    (["acquire", "--source", ".", "--symbol", SYM, "--date", DAY, "--data-root", ".", "--concurrency", "0"],
     "'0' must be a positive integer"),
])
def test_values_that_cannot_be_meant_are_usage_errors(argv, says, capsys) -> None:
    assert says in _usage_error(argv, capsys)


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lake_pipeline.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=REPO, timeout=120)


@pytest.mark.parametrize(("content", "says"), [
    ("BTC-USDT: {tick: 0.01, lot: [", "the symbols file is not valid YAML"),
    ("BTC-USDT: {tick: abc, lot: 0.00001}\n", "BTC-USDT.tick: 'abc' is not a decimal number"),
    ("BTC-USDT: {tick: -0.01, lot: 0.00001}\n", "BTC-USDT.tick: -0.01 must be a positive number"),
    ("BTC-USDT: 0.01\n", "symbol 'BTC-USDT' needs a mapping with 'tick' and 'lot'"),
    ("BINANCE: {BTC-USDT: {tick: 0.01}}\n", "BINANCE.BTC-USDT needs tick and lot"),
    ("BINANCE: {BTC-USDT: {tick: x1, lot: 0.00001}}\n", "BINANCE.BTC-USDT.tick: 'x1' is not a decimal number"),
    ("- just\n- a list\n", "the symbols file must be a mapping at the top level"),
])
def test_bad_symbols_file_is_a_message_naming_it(content, says, data_root, tmp_path) -> None:
    write_partition(data_root, *random_partition(1, n_messages=10))
    symbols = tmp_path / "symbols.yaml"
    symbols.write_text(content)
    done = _run(["reconstruct", "--data-root", str(data_root), "--symbol", SYM, "--date", DAY, "--quiet"],
                LAKE_SYMBOLS_FILE=str(symbols))
    assert done.returncode == exits.BAD_INPUT, done.stderr
    assert f"{symbols}" in done.stderr and says in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("content", "says"), [
    ("version: 1\nmetrics: {spread: {tolerance: [", "the tolerance config is not valid YAML"),
    ("version: 1\nmetrics: {no_such_metric: {tolerance: 1}}\n", "unknown fidelity metric 'no_such_metric'"),
    ("version: 1\nmetrics: [1, 2]\n", "'metrics' must be a mapping"),
    ("just text\n", "must be a mapping at the top level"),
])
def test_bad_tolerance_file_is_a_message_naming_it(content, says, tmp_path) -> None:
    from lake_pipeline.fidelity import tolerances

    bad = tmp_path / "tolerances.yaml"
    bad.write_text(content)
    with pytest.raises(ValueError, match=str(bad)) as info:
        tolerances.load(bad)
    assert says in str(info.value)
    code, message = exits.describe(info.value)
    assert code == exits.BAD_INPUT and str(bad) in message


def test_disk_full_and_changed_input_have_their_own_codes() -> None:
    import errno

    code, message = exits.describe(OSError(errno.ENOSPC, "No space left on device", "/data/x.part"))
    assert code == exits.ENVIRONMENT and message.startswith("disk full writing /data/x.part")
    assert exits.describe(exits.InputChangedError("trades changed"))[0] == exits.INPUT_CHANGED
    assert exits.describe(PermissionError(errno.EACCES, "Permission denied", "/x"))[0] == exits.ENVIRONMENT
    assert exits.describe(EOFError("truncated gzip"))[0] == exits.BAD_INPUT
    assert exits.describe(KeyError("a bug"))[0] == exits.BUG


def test_parser_imports_no_heavy_module() -> None:
    """`lake-pipeline --help` must stay well under 0.5 s: building the parser imports none of the heavy stacks."""
    code = ("import sys; from lake_pipeline.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('numba', 'scipy', 'polars', 'dagster', 'pyarrow', 'aiohttp', 'plotly') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
