"""`import leadradar` withdraws numpy's huge-page advice and puts Arrow on jemalloc (leadradar/memory.py), whatever
was imported first, and leaves a value the user set."""

from __future__ import annotations

import os
import subprocess  # nosec B404 # a fresh interpreter, the only way to see what an import does to a process
import sys

import pytest

PROBE = "import numpy as np; print(int(np._core.multiarray._get_madvise_hugepage()))"


POOL = "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"
SET_BY_US = ("NUMPY_MADVISE_HUGEPAGE", "ARROW_DEFAULT_MEMORY_POOL")


def printed(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in SET_BY_US} | env
    done = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True)  # nosec B603
    return done.stdout.strip().splitlines()[-1]


def advice(code: str, **env: str) -> int:
    return int(printed(code, **env))


@pytest.mark.skipif(sys.platform != "linux", reason="numpy advises huge pages on Linux only")
def test_importing_leadradar_withdraws_numpys_huge_page_advice_unless_the_user_set_it():
    assert advice(PROBE) == 1  # numpy's own default on Linux: what the import changes
    assert advice("import leadradar; " + PROBE) == 0
    assert advice("import numpy; import leadradar; " + PROBE) == 0
    assert advice(f"import leadradar, subprocess, sys; subprocess.run([sys.executable, '-c', {PROBE!r}])") == 0
    assert advice("import leadradar; " + PROBE, NUMPY_MADVISE_HUGEPAGE="1") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="pyarrow's Windows wheels have no jemalloc")
def test_importing_leadradar_puts_arrow_on_jemalloc_unless_the_user_chose_a_pool():
    assert printed(POOL) == "mimalloc"  # pyarrow's own default: what the import changes
    assert printed("import leadradar; " + POOL) == "jemalloc"
    assert printed("import pyarrow as pa; pa.array([1, 2]); import leadradar; " + POOL) == "jemalloc"
    assert printed(f"import leadradar, subprocess, sys; subprocess.run([sys.executable, '-c', {POOL!r}])") == "jemalloc"
    assert printed("import leadradar; " + POOL, ARROW_DEFAULT_MEMORY_POOL="system") == "system"
