"""What some tests need from the machine (a browser, PostgreSQL, a package, the real recordings).

Where it is absent the test skips and says why (a user's clone); under CI=true it fails instead, because CI installs
everything the suite needs (`.ci/run`), so a skip there would hide a broken install step.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

# Debian's chromium package, driven by playwright; these flags keep it headless, offline and quiet.
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run"]


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason`, or fail with it under CI=true."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def chromium() -> str:
    """Path of the chromium executable playwright should launch ($LAKE_CHROMIUM, /usr/bin/chromium, or PATH)."""
    configured = os.environ.get("LAKE_CHROMIUM", "/usr/bin/chromium")
    path = configured if Path(configured).exists() else shutil.which("chromium")
    if path is None:
        unavailable(f"chromium not found at {configured} or on PATH (apt-get install -y chromium, or set "
                    "LAKE_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the playwright Python package is not installed (test extra)")
    return path
