"""How this process asks the kernel for memory: numpy's advice to back large arrays with huge pages is withdrawn.

numpy marks every array of 4 MB or more `MADV_HUGEPAGE`. Where the kernel defragments for such advice
(`/sys/kernel/mm/transparent_hugepage/defrag` is `madvise`, its default) and memory has fragmented with uptime,
each such array's first touch waits for the kernel to compact memory (numpy/numpy#31590). Measured on
a 2-core VM up 6.7 hours: a 10.6 M-event tiles build 69.9-70.6 s with the advice, 45.6-48.6 s without; a stack of
29 tile columns 4.8 s against 0.2 s. Set `NUMPY_MADVISE_HUGEPAGE=1` to keep numpy's advice (any value set is
left as it is).
"""

from __future__ import annotations

import os
import sys

HUGEPAGE_VARIABLE = "NUMPY_MADVISE_HUGEPAGE"


def no_huge_page_advice() -> None:
    """Withdraw numpy's huge-page advice for this process and the ones it starts, unless the variable is set."""
    if HUGEPAGE_VARIABLE in os.environ:
        return
    os.environ[HUGEPAGE_VARIABLE] = "0"  # read by numpy when imported, here or in a child process
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # imported before us: numpy's own switch, the one its import sets from the variable
        numpy._core.multiarray._set_madvise_hugepage(False)
