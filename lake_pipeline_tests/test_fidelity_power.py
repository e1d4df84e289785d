"""The report's power on the real BTCUSDT spot recording: the correct reconstruction PASSES, every injected defect
is caught by the family that should notice it (reduced table by default, the full one under `-m slow`)."""

from __future__ import annotations

import pytest

from lake_pipeline.cli import main
from lake_pipeline.fidelity import defects, power
from lake_pipeline.instrument import Partition

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def target():
    from lake_pipeline_tests.conftest import realdata_dir

    spot = realdata_dir() / "hftbacktest" / "spot"
    return power.Target(tuple(spot / f"btcusdt_2024080{d}.gz" for d in (8, 9)),
                        Partition("BINANCE", "BTC-USDT", "2024-08-09"))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("power")


def _check(rows: list[power.Row], chosen: list[defects.Defect]) -> None:
    print("\n" + power.table(rows))
    correct, *broken = rows
    assert correct.defect == power.CORRECT and correct.status == "PASS" and correct.score >= 0.5, correct
    assert not correct.flagged, correct.flagged  # no WARN/FAIL row from artefacts of correct data
    assert [r.defect for r in broken] == [d.name for d in chosen]
    for r, d in zip(broken, chosen, strict=True):
        assert r.status == "FAIL" if d.severity == defects.SEVERE else r.status in ("WARN", "FAIL"), r
        assert set(r.flagged) & set(d.families), (r.defect, r.flagged, d.families)
        assert r.caught
        if r.status == "FAIL":
            assert r.score < 0.5  # the headline rule: FAIL <=> a critical score below 0.5


def test_reduced_confusion_table_on_the_real_recording(target, work):
    chosen = defects.get(quick=True)
    assert len(chosen) >= 8 and {d.stage for d in chosen} == {defects.OUTPUT, defects.INPUT}
    _check(power.run(target, work, chosen, reps=40), chosen)


@pytest.mark.slow
def test_full_confusion_table_with_another_seed(target, work):
    """Every defect of the catalogue, rows and phases drawn from another seed: the kinds are caught, not one draw."""
    chosen = defects.get()
    assert len(chosen) >= 12 and sum(d.stage == defects.INPUT for d in chosen) >= 3
    _check(power.run(target, work, chosen, seed=11, reps=100), chosen)


def test_power_cli_lists_defects_and_rejects_unknown_ones(capsys, target, tmp_path):
    assert main(["fidelity", "power", "--capture", *map(str, target.capture), "--date", target.part.date,
                 "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(d.name in listed for d in defects.CATALOG)
    assert main(["fidelity", "power", "--capture", *map(str, target.capture), "--date", target.part.date,
                 "--work", str(tmp_path), "--defects", "no_such_defect"]) == 2
    assert "unknown defect(s) ['no_such_defect']" in capsys.readouterr().err
