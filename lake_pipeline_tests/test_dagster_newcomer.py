"""The first command a Dagster user types works from the repo root with no environment variable set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_definitions_validate_from_the_repo_root_with_a_clean_environment(tmp_path) -> None:
    dagster = Path(sys.executable).with_name("dagster")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no DAGSTER_HOME, no LAKE_* variables
    done = subprocess.run([str(dagster), "definitions", "validate"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "All code locations passed validation" in out and "DAGSTER_HOME" not in out.replace(
        "set the environment variable DAGSTER_HOME", "")
