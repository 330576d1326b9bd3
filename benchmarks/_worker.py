"""Run one benchmark callable in this (fresh) process and write its timing and result as JSON.

Usage: python -m benchmarks._worker module:function '{"kwarg": ...}' result.json
Its peak RSS is its own (`peak_rss_mb`), read here: what the parent (`benchmarks.common.measure`) reads from the kernel
when it exits also counts the memory the parent held when it started this process (Linux carries the forked copy's
high-water mark over the exec), so a benchmark that ingested 10 M events itself saw 5,258 MB in every worker.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
import traceback
from pathlib import Path


def peak_rss_mb() -> float | None:
    """The larger of this process's own high-water resident set (VmHWM, counted from its exec) and its waited
    children's (an ADBC reader's); None where /proc does not say."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    own = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    if own is None:
        return None
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes, as VmHWM
    return round(max(own, children) / 1024, 1)


def main(argv: list[str]) -> int:
    target, kwargs_json, out = argv
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    kwargs = json.loads(kwargs_json)
    start = time.perf_counter()
    try:
        result = func(**kwargs)
    except Exception as exc:  # reported to the parent, which records the failure instead of a figure
        Path(out).write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}))
        traceback.print_exc()
        return 1
    seconds = time.perf_counter() - start
    # A callable may report the timing of its own measured part (e.g. without a check done afterwards).
    if isinstance(result, dict) and "seconds" in result:
        seconds = result.pop("seconds")
    done = {"seconds": round(seconds, 3), "result": result, "peak_rss_mb": peak_rss_mb()}
    Path(out).write_text(json.dumps(done, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
