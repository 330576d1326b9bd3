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


FREED = """
import numpy as np, os
from leadradar.memory import give_back_freed
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
first = np.ones(1 << 20)
del first  # freeing a mapped 8 MB array raises glibc's threshold: 1 MB arrays then come from its heap
big, small = [], []
for _ in range(300):
    big.append(np.ones(1 << 17))  # 1 MB, touched
    small.append(np.ones(200))  # 1.6 kB (past numpy's cache of small ones) between: the heap's top stays in use
del big
held = rss_mb()
give_back_freed()
print(held, rss_mb())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc_trim")
def test_memory_freed_by_numpy_goes_back_to_the_system_between_partitions():
    held, after = map(int, printed(FREED).split())
    assert held - after > 200, (held, after)  # of the 300 MB freed
