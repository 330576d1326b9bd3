"""`import leadradar` withdraws numpy's huge-page advice (leadradar/memory.py), whatever was imported first, and
leaves a value the user set."""

from __future__ import annotations

import os
import subprocess  # nosec B404 # a fresh interpreter, the only way to see what an import does to a process
import sys

import pytest

PROBE = "import numpy as np; print(int(np._core.multiarray._get_madvise_hugepage()))"


def advice(code: str, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"} | env
    done = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True)  # nosec B603
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="numpy advises huge pages on Linux only")
def test_importing_leadradar_withdraws_numpys_huge_page_advice_unless_the_user_set_it():
    assert advice(PROBE) == 1  # numpy's own default on Linux: what the import changes
    assert advice("import leadradar; " + PROBE) == 0
    assert advice("import numpy; import leadradar; " + PROBE) == 0
    assert advice(f"import leadradar, subprocess, sys; subprocess.run([sys.executable, '-c', {PROBE!r}])") == 0
    assert advice("import leadradar; " + PROBE, NUMPY_MADVISE_HUGEPAGE="1") == 1
