"""Run one benchmark callable in this (fresh) process and write its timing and result as JSON.

Usage: python -m benchmarks._worker module:function '{"kwarg": ...}' result.json
The parent (`benchmarks.common.measure`) reads this process's peak RSS from the kernel when it exits.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path


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
    Path(out).write_text(json.dumps({"seconds": round(seconds, 3), "result": result}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
