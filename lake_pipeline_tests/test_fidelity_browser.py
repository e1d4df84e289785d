"""The HTML report in a real headless browser, offline: no console errors, no network, every figure drawn.

Uses Debian's chromium (`apt-get install chromium`) driven by the `playwright` package. Skips with the reason when
either is missing; under CI=true a missing browser is a failure, not a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lake_pipeline.cli import main
from lake_pipeline_tests import fidelity_fixtures as fxt
from lake_pipeline_tests.conftest import REPO_ROOT
from lake_pipeline_tests.requires import BROWSER_ARGS, chromium

ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    m = fxt.synthetic_market(120, seed=31)
    fxt.write_unified(m, root)
    fxt.write_golden_capture(m, fxt.golden_session_dir(root) / "cap.jsonl.gz")
    tol_path = fxt.fast_tolerances_file(tmp_path_factory.mktemp("tol"), reps=20)
    out = tmp_path_factory.mktemp("out")
    assert main(["fidelity", "--data-root", str(root), "--symbol", fxt.SYMBOL, "--date", fxt.DATE,
                 "--tolerances", str(tol_path), "--out", str(out)]) == 0
    return out / "fidelity.html"


def test_report_opens_offline_without_errors_and_draws_every_plot(report_html):
    executable = chromium()
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    external: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                    if msg.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

            def guard(route):
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    external.append(route.request.url)
                    route.abort()

            page.route("**/*", guard)
            page.goto(report_html.as_uri())
            page.wait_for_function("() => typeof Plotly !== 'undefined'")
            page.wait_for_timeout(500)
            figures = page.evaluate("""() => Array.from(document.querySelectorAll('div.plot')).map(d => ({
                id: d.id,
                svgs: d.querySelectorAll('.main-svg').length,
                drawn: d.querySelectorAll('g.trace, .heatmaplayer image, .js-plotly-path').length,
                traces: (d.data || []).length,
                full: (d._fullData || []).length }))""")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "fidelity_report.png"), full_page=True)
        finally:
            browser.close()
    assert not problems, problems
    assert not external, f"the report tried to load {external}"
    assert len(figures) >= 14, figures
    for f in figures:
        assert f["svgs"] >= 1 and f["traces"] >= 1 and f["full"] == f["traces"] and f["drawn"] >= 1, f
    assert (ARTIFACTS / "fidelity_report.png").stat().st_size > 50_000
