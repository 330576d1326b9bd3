"""How this process asks the kernel for memory: numpy's advice to back large arrays with huge pages is withdrawn,
and Arrow allocates from jemalloc rather than its default mimalloc.

numpy marks every array of 4 MB or more `MADV_HUGEPAGE`. Where the kernel defragments for such advice
(`/sys/kernel/mm/transparent_hugepage/defrag` is `madvise`, its default) and memory has fragmented with uptime,
each such array's first touch waits for the kernel to compact memory (numpy/numpy#31590). Measured on
a 2-core VM up 6.7 hours: a 10.6 M-event tiles build 69.9-70.6 s with the advice, 45.6-48.6 s without; a stack of
29 tile columns 4.8 s against 0.2 s. Set `NUMPY_MADVISE_HUGEPAGE=1` to keep numpy's advice (any value set is
left as it is).

With Arrow's mimalloc pool a build spent twice the system time (the kernel's work for the allocator; it took
fewer page faults, not more): the 10.6 M-event tiles build 36.1-38.1 s with mimalloc (17-20 s of system time)
against 28.7-32.3 s with jemalloc (6-10 s), fresh processes, interleaved, peak RSS 3.12-3.25 against 3.17-3.43 GB
(2026-12-04). `ARROW_DEFAULT_MEMORY_POOL` set by the user is left as it is (`mimalloc`, `system`).

numpy's arrays come from the C library's allocator, which keeps what is freed for the next request of its thread.
A build a partition of leads at a time frees a partition's arrays in several threads; `give_back_freed` between
partitions returns that memory to the system, so the next partition does not grow on top of it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from collections.abc import Callable

HUGEPAGE_VARIABLE = "NUMPY_MADVISE_HUGEPAGE"
POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
POOL = "jemalloc"  # built into pyarrow's Linux and macOS wheels, not its Windows ones


def no_huge_page_advice() -> None:
    """Withdraw numpy's huge-page advice for this process and the ones it starts, unless the variable is set."""
    if HUGEPAGE_VARIABLE in os.environ:
        return
    os.environ[HUGEPAGE_VARIABLE] = "0"  # read by numpy when imported, here or in a child process
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # imported before us: numpy's own switch, the one its import sets from the variable
        numpy._core.multiarray._set_madvise_hugepage(False)


def arrow_pool() -> None:
    """Arrow's allocations from jemalloc, for this process and the ones it starts, unless the variable is set or
    the platform's pyarrow has no jemalloc."""
    if POOL_VARIABLE in os.environ or sys.platform == "win32":
        return
    os.environ[POOL_VARIABLE] = POOL  # read by Arrow when it first allocates, here or in a child process
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:  # imported before us, and maybe allocated already: its default pool replaced
        try:
            pyarrow.set_memory_pool(pyarrow.jemalloc_memory_pool())
        except NotImplementedError:  # a pyarrow built without jemalloc keeps its own default
            del os.environ[POOL_VARIABLE]


def give_back_freed() -> None:
    """Return the memory the C library's allocator holds freed to the system (glibc's `malloc_trim`); nothing
    where the C library has no such call (musl, macOS, Windows)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # a C library without it
        return None
