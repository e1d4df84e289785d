"""Real BTCUSDT recording: the naive-design counterexamples of research §2 do not FAIL here, plausible magnitudes,
and the end-to-end real-data case (enabled by the lead once the reconstructor lands)."""

from __future__ import annotations

import json

import pytest

from lake_pipeline.config import symbol_spec
from lake_pipeline.fidelity import adapters, calibrate, golden_book, tolerances
from lake_pipeline.fidelity.runner import compare_views
from lake_pipeline.fidelity.scoring import FAIL
from lake_pipeline.instrument import Instrument, Partition

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def golden(request):
    files = request.getfixturevalue("btc_recording")
    return adapters.read_golden_session(files, symbol_spec(Instrument.parse("BTC-USDT")), label="real BTCUSDT", rebuild_book=False)


@pytest.fixture(scope="module")
def btc_recording(realdata):  # module-scoped twin of the conftest fixture
    return [realdata / "hftbacktest" / "spot" / f"btcusdt_2024080{d}.gz" for d in (8, 9)]


@pytest.fixture(scope="module")
def realdata():
    from lake_pipeline_tests.conftest import realdata_dir

    return realdata_dir()


def test_real_session_gives_research_magnitudes(golden):
    assert golden.trades.height == 19_904 and golden.quotes.height == 73_174
    assert golden.duration_s == pytest.approx(650.6, abs=1)
    from lake_pipeline.fidelity.hawkes import taker_orders

    fills = golden.trades.height / taker_orders(golden.trades).height
    assert fills == pytest.approx(2.8, abs=0.2)  # research §4.3: 2.8 fills per taker order (spot)


def test_halves_of_one_real_session_do_not_fail_although_naive_ks_rejects(golden):
    """Research §2.1: first vs second half of the same session — K-S p ≈ 1e-8 on trade sizes, so the naive
    'p > 0.05' gate FAILS a perfect reconstruction. The effect-size design with calibrated tolerances must not."""
    first, second = calibrate.windows(golden, 2)
    tol = tolerances.load()
    tol.bootstrap = {**tol.bootstrap, "reps": 100}
    results, _, info = compare_views(second, first, tol, golden_is_capture=False)
    assert info["tier_b_paired"] is False
    tier_b = [r for r in results if r.tier == "B"]
    assert len(tier_b) == 18 and all(r.value is not None for r in tier_b)
    assert not [(r.name, r.value, r.tolerance) for r in tier_b if r.status == FAIL]
    size = next(r for r in tier_b if r.name == "trade_size_ks")
    assert size.details["ks_pvalue"] < 1e-4  # the naive gate would have failed here
    assert size.value == pytest.approx(0.044, abs=0.01)  # research §2.1: D = 0.044
    pvalues = [r.details["ks_pvalue"] for r in tier_b if "ks_pvalue" in r.details]
    assert min(pvalues) < 0.05


def test_tier_a_on_real_data_rebuilt_golden_book_vs_bookticker(btc_recording):
    """Tier A on the real recording before the reconstructor exists: the golden book rebuilt by the official sync
    on the shared engine, treated as a reconstruction, against the real bookTicker (largest u' <= u).

    6,490 of 6,492 update-aligned checkpoints agree exactly. The 2 others fall inside one fast sell sweep
    (~$17 in 100 ms): the bookTicker shows a bid level created at update …171 that the diff batch ending at …174
    never lists — Binance's two streams disagree transiently. This is the capture-side floor the declared
    tolerance of 0.999 leaves room for; requiring 100 % would fail a correct replay."""
    from dataclasses import replace

    from lake_pipeline.capture.golden import read_golden

    spec = symbol_spec(Instrument.parse("BTC-USDT"))
    frames = read_golden(btc_recording, spec)
    golden = adapters.golden_view(frames, spec, label="bookTicker")
    ladder, bbo = golden_book.rebuild_golden_book(frames)
    rebuilt = replace(golden, label="rebuilt book", bbo=bbo, ladder=ladder, quotes=None)
    tol = tolerances.load()
    tol.bootstrap = {**tol.bootstrap, "reps": 50}
    results, _, info = compare_views(rebuilt, golden, tol)
    rows = {r.name: r for r in results}
    bbo_rate = rows["bbo_update_match_rate"]
    assert info["tier_a_available"] and bbo_rate.details["checkpoints"] == 6492
    assert bbo_rate.value == pytest.approx(6490 / 6492) and bbo_rate.status == "PASS"
    assert [m["update_id"] for m in bbo_rate.details["first_mismatches"]] == [50093478174, 50093480542]
    assert rows["trade_match_rate"].value == 1.0 and rows["depth_rel_l1_error"].value == 0.0
    assert rows["bbo_lag_ms"].value == 0.0
    assert not [r.name for r in results if r.status == FAIL]


def test_shipped_tolerances_were_calibrated_on_this_recording(golden):
    t = tolerances.load()
    shas = {f["sha256"] for s in t.calibration["sessions"] for f in s["files"]}
    assert {f.sha256 for f in golden.inputs} <= shas
    assert len(t.calibration["sessions"]) >= 2  # every real recording we can read, plus simulated regimes


def _assert_passes_without_false_alarms(data_root, capture, part: Partition) -> dict:
    """lake-from-capture was run; reconstruct `part`, report it against its own capture, and check the verdict."""
    from lake_pipeline import paths
    from lake_pipeline.cli import main

    session = paths.golden_dir(data_root, part) / "session=real"
    session.mkdir(parents=True)
    for f in capture:
        (session / f.name).symlink_to(f)
    args = ["--data-root", str(data_root), "--exchange", part.exchange, "--symbol", part.symbol, "--date", part.date]
    assert main(["reconstruct", *args]) == 0
    assert main(["fidelity", *args]) == 0
    out = paths.fidelity_dir(data_root, part)
    doc = json.loads((out / "fidelity.json").read_text())
    rows = {m["name"]: m for m in doc["metrics"]}
    assert doc["status"] == "PASS" and doc["score"] >= 0.5, (part, doc["status_reason"])
    assert not [n for n, m in rows.items() if m["status"] in ("WARN", "FAIL")], part
    assert rows["bbo_update_match_rate"]["value"] >= 0.999
    assert rows["recon_sequence_breaks"]["value"] == 0
    assert doc["headline_rule"] in (out / "fidelity.md").read_text()
    assert "tolerances v" in doc["calibration"]
    return rows


def test_real_recording_end_to_end_passes_without_false_alarms(btc_recording, data_root):
    """Issue 11: both partitions of the correctly reconstructed real recording PASS with a headline >= 0.5 and no
    WARN/FAIL row (the 08-09 partition starts mid-session: seeded from a 20-level row, its deeper-level resyncs are
    expected events, reported not gated)."""
    from lake_pipeline.cli import main

    assert main(["lake-from-capture", "--capture", *map(str, btc_recording), "--data-root", str(data_root),
                 "--symbol", "BTC-USDT"]) == 0
    for date in ("2024-08-08", "2024-08-09"):
        rows = _assert_passes_without_false_alarms(data_root, btc_recording, Partition("BINANCE", "BTC-USDT", date))
        assert rows["recon_sequence_breaks"]["details"]["expected_total"] > 0  # reported, not gated


def test_real_usdm_recording_end_to_end_passes_without_false_alarms(realdata, data_root):
    from lake_pipeline.cli import main

    capture = [realdata / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"]
    assert main(["lake-from-capture", "--capture", *map(str, capture), "--data-root", str(data_root),
                 "--symbol", "BTC-USDT-PERP"]) == 0
    _assert_passes_without_false_alarms(data_root, capture, Partition("BINANCE_FUTURES", "BTC-USDT-PERP",
                                                                      "2024-08-08"))
