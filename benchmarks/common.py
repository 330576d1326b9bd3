"""What every benchmark shares: the machine it ran on, a measured run in a fresh process, the results file.

A figure is only worth writing down with the machine it came from, and a peak memory is only honest when
the process measured did nothing else: each measurement runs one callable in its own interpreter
(`python -m benchmarks._worker`), and its peak RSS comes from the kernel's accounting of that process.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
DATA_DIR = ROOT / "benchmarks" / "data"
KEY_PACKAGES = ("duckdb", "ibis-framework", "pandas", "pyarrow", "numpy", "sqlglot", "lightgbm", "bentoml", "mlflow")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else lscpu, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages a figure depends on; missing ones are left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, OS, Python and key package versions: what a figure was measured on."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": package_versions(),
        "memory_advice": memory_advice(),
    }


def memory_advice() -> dict[str, str | None]:
    """How large arrays get their memory here (leadradar/memory.py): Arrow's pool and numpy's huge-page advice as
    this process runs with them, the kernel's transparent huge pages and how it defragments for them; figures move
    with these."""
    import numpy as np

    import leadradar  # noqa: F401 # its import sets the advice every measured process runs with

    kernel = Path("/sys/kernel/mm/transparent_hugepage")

    def chosen(name: str) -> str | None:
        try:
            text = (kernel / name).read_text()
        except OSError:
            return None
        return text[text.find("[") + 1 : text.find("]")] if "[" in text else text.strip()

    import pyarrow as pa

    advised = np._core.multiarray._get_madvise_hugepage()
    return {
        "arrow_pool": pa.default_memory_pool().backend_name,
        "numpy_huge_pages": "advised" if advised else "not advised",
        "thp": chosen("enabled"),
        "thp_defrag": chosen("defrag"),
    }


@dataclass
class Measurement:
    """One callable run in a fresh process: its own timing, the process's wall time and peak RSS, its result."""

    target: str
    ok: bool
    seconds: float | None  # the callable alone, timed inside the worker
    process_seconds: float  # the whole process: interpreter start, imports, the call, exit
    peak_rss_mb: float  # the process's own peak resident set, or a waited child's (benchmarks/_worker.py)
    cpu_seconds: float  # user + system CPU time of the process: compare with process_seconds × cores
    load_before: float  # 1-minute load average when the run started: other work on the machine shows here
    load_after: float
    cpu_wait_share: float | None  # share of the run's wall time some task waited for a CPU (Linux PSI)
    returncode: int
    result: Any = None
    error: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    target: str,
    kwargs: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Measurement:
    """Run `module:function(**kwargs)` in a fresh interpreter; time it and read the process's peak RSS.

    The function's return value must be JSON-serialisable; it comes back in `result`. A failure (an
    exception, a crash, the kernel's OOM killer, a timeout) comes back as `ok=False` with `error`.
    """
    kwargs = kwargs or {}
    with tempfile.TemporaryDirectory(prefix="leadradar-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "benchmarks._worker", target, json.dumps(kwargs), str(out)]
        load_before, stalled_before = os.getloadavg()[0], cpu_stall_us()
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = _drain(proc, timeout)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.stdout.close()
        process_seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        load_after, stalled_after = os.getloadavg()[0], cpu_stall_us()
        waited = (
            None
            if stalled_before is None or stalled_after is None
            else round((stalled_after - stalled_before) / 1e6 / process_seconds, 3)
        )
        payload = json.loads(out.read_text()) if out.exists() else {}
        # The worker's own figure; the kernel's (kilobytes) for one that did not finish, floored by this process's.
        peak_mb = payload.get("peak_rss_mb") or usage.ru_maxrss / 1024
    ok = proc.returncode == 0 and "result" in payload
    error = None
    if not ok:
        reason = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        error = f"{target} failed ({reason}): {payload.get('error') or output[-2000:]}"
    return Measurement(
        target=target,
        ok=ok,
        seconds=payload.get("seconds"),
        process_seconds=round(process_seconds, 3),
        peak_rss_mb=round(peak_mb, 1),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
        load_before=round(load_before, 2),
        load_after=round(load_after, 2),
        cpu_wait_share=waited,
        returncode=proc.returncode,
        result=payload.get("result"),
        error=error,
        kwargs=kwargs,
    )


def cpu_stall_us() -> int | None:
    """Microseconds so far during which some runnable task waited for a CPU (Linux PSI); None if unknown."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(some.rsplit("total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


def _drain(proc: subprocess.Popen, timeout: float | None) -> str:
    """Collect the worker's output (so it never blocks on a full pipe) without reaping the process."""
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(proc.stdout), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():  # timed out: stop the worker we started; the caller collects it
        proc.kill()
        reader.join()
    return "".join(chunks)


def write_results(
    name: str, figures: dict[str, Any], inputs: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write `benchmarks/results/<name>.json`: flat figures, then `inputs`, `machine` and anything nested."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **figures,
        "inputs": inputs or {},
        **(extra or {}),
        "machine": machine(),
    }
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path
