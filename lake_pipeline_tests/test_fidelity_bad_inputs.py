"""Bad inputs to the report give a FAIL row that names the problem, or a clear error naming the partition with
exit 2 — never a bare Python error (issue 11: duplicated trades used to stop the report with "The weights and
list don't have the same length.")."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from lake_pipeline import paths
from lake_pipeline.cli import main
from lake_pipeline.fidelity import power
from lake_pipeline.instrument import Partition
from lake_pipeline_tests import fidelity_fixtures as fxt

ARGS = ["--symbol", fxt.SYMBOL, "--date", fxt.DATE]
PARTITION = Partition(fxt.EXCHANGE, fxt.SYMBOL, fxt.DATE)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("base")
    fxt.write_unified(fxt.synthetic_market(120, seed=31), root)
    return root


@pytest.fixture(scope="module")
def fast_tolerances(tmp_path_factory) -> Path:
    return fxt.fast_tolerances_file(tmp_path_factory.mktemp("tol"), reps=20)


def _variant(base: Path, root: Path, events=lambda e: e, states=lambda s: s, golden: fxt.Market | None = None):
    """A copy of the base reconstruction with its events / book states rewritten, optionally with a golden capture."""
    for where, change in ((paths.unified_dir, events), (paths.book_states_dir, states)):
        df, schema = power.read_parts(where(base, PARTITION))
        power.write_parts(where(base, PARTITION), where(root, PARTITION), change(df), schema)
    if golden is not None:
        fxt.write_golden_capture(golden, fxt.golden_session_dir(root) / "cap.jsonl.gz")
    return root


def _report(root: Path, tol: Path, capsys) -> tuple[int, dict | None, str]:
    rc = main(["fidelity", "--data-root", str(root), *ARGS, "--tolerances", str(tol)])
    out = paths.fidelity_dir(root, PARTITION) / "fidelity.json"
    return rc, json.loads(out.read_text()) if rc == 0 else None, capsys.readouterr().err


def _row(doc: dict, name: str) -> dict:
    return next(m for m in doc["metrics"] if m["name"] == name)


def _is_trade() -> pl.Expr:
    return pl.col("event_type").cast(pl.String) == "TRADE"


def test_duplicated_rows_fail_on_trade_duplicates_not_a_crash(base, tmp_path, fast_tolerances, capsys):
    twice = _variant(base, tmp_path, lambda e: pl.concat([e, e]).sort("event_time", maintain_order=True),
                     golden=fxt.synthetic_market(120, seed=31))
    rc, doc, _ = _report(twice, fast_tolerances, capsys)
    assert rc == 0 and doc["status"] == "FAIL" and doc["score"] < 0.5
    dup = _row(doc, "trade_duplicates")
    trades = fxt.synthetic_market(120, seed=31).trades.height
    assert dup["status"] == "FAIL" and dup["value"] == trades and "trade_duplicates" in doc["deciding_metrics"]
    assert _row(doc, "trade_match_rate")["value"] == 1.0  # every golden trade is there (twice)


def test_day_without_trades_fails_with_and_without_a_golden_capture(base, tmp_path, fast_tolerances, capsys):
    no_trades = _variant(base, tmp_path / "solo", lambda e: e.filter(~_is_trade()))
    rc, doc, _ = _report(no_trades, fast_tolerances, capsys)
    assert rc == 0 and doc["status"] == "FAIL" and doc["deciding_metrics"] == ["missing_streams"]
    assert _row(doc, "missing_streams")["details"]["missing"] == ["trades"]
    paired = _variant(base, tmp_path / "paired", lambda e: e.filter(~_is_trade()),
                      golden=fxt.synthetic_market(120, seed=31))
    rc, doc, _ = _report(paired, fast_tolerances, capsys)
    assert rc == 0 and doc["status"] == "FAIL" and _row(doc, "trade_match_rate")["value"] == 0.0


def test_one_sided_book_fails(base, tmp_path, fast_tolerances, capsys):
    def no_asks(e: pl.DataFrame) -> pl.DataFrame:
        return e.with_columns([pl.lit(None, e.schema[c]).alias(c) for c in ("best_ask_price", "best_ask_quantity")])

    rc, doc, _ = _report(_variant(base, tmp_path, no_asks), fast_tolerances, capsys)
    assert rc == 0 and doc["status"] == "FAIL"
    assert _row(doc, "missing_streams")["details"]["missing"] == ["two-sided book"]


def test_empty_partition_is_a_clear_error_naming_it(base, tmp_path, fast_tolerances, capsys):
    rc, _, err = _report(_variant(base, tmp_path, lambda e: e.head(0), lambda s: s.head(0)), fast_tolerances, capsys)
    assert rc == 2 and "Traceback" not in err
    assert f"unified partition {paths.unified_dir(tmp_path, PARTITION)} holds no events" in err


def test_golden_session_that_does_not_overlap_is_a_clear_error(base, tmp_path, fast_tolerances, capsys):
    later = fxt.synthetic_market(60, seed=32, t0=fxt.T0 + 3600 * 10**9)  # same date, an hour after the partition
    rc, _, err = _report(_variant(base, tmp_path, golden=later), fast_tolerances, capsys)
    assert rc == 2 and "Traceback" not in err
    assert f"partition {fxt.DATE}|{fxt.EXCHANGE}.{fxt.SYMBOL}: golden session" in err
    assert "they overlap for 0.0 s (< 10 s)" in err and "--reference" in err
