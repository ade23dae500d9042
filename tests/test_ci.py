"""What CI relies on: browser tests that cannot run fail instead of passing as skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Any browser test will do: without a browser none of its fixtures may start.
BROWSER_TEST = "tests/e2e/test_auth.py::test_wrong_password_shows_error_then_login_lands_on_events"


def run_browser_test(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """One browser test in a pytest of its own, with Chromium pointed at a missing file."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("CI", "RACEHUB_REQUIRE_BROWSER", "PYTEST_XDIST_WORKER")}
    clean.update(RACEHUB_CHROMIUM=str(tmp_path / "no-chromium"), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", BROWSER_TEST, "-p", "no:cacheprovider", "-p",
         "no:xdist", "-rs", "-q"],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("env", [{"RACEHUB_REQUIRE_BROWSER": "1"}, {"CI": "true"}])
def test_browser_tests_fail_when_chromium_is_required_but_missing(
        tmp_path: Path, env: dict[str, str]) -> None:
    out = run_browser_test(tmp_path, **env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 error" in out.stdout and "skipped" not in out.stdout, out.stdout
    assert "no-chromium not installed" in out.stdout, out.stdout


def test_browser_tests_skip_with_the_reason_when_chromium_is_not_required(
        tmp_path: Path) -> None:
    out = run_browser_test(tmp_path, RACEHUB_REQUIRE_BROWSER="0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 skipped" in out.stdout, out.stdout
    assert "browser tests skipped: " in out.stdout and "no-chromium not installed" in out.stdout
