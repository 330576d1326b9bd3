"""bandit, the security linter `make lint` runs, finds nothing in the package folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("leadradar", "features", "models", "training", "serving")


@pytest.mark.slow  # about 3 s on 2 cores: left out of `make test-fast`
def test_bandit_finds_no_issue_in_the_package():
    result = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-c", "pyproject.toml", "-f", "txt", "-r", *PACKAGE_DIRS],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
