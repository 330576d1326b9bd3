"""A whole log read from the SQLite event store, as training and a build from the store read it (`RadarLog.from_store`).

A simulated world is ingested once into a fresh store (SQLite, WAL, under a temporary home). Each read then runs in
its own process, interleaved: through ADBC's SQLite driver into Arrow, in a child process (what the store does now),
and through Python's driver row by row (what it did before; the same query and conversion, `_arrow_file` answering
None), so
the two are compared on the same machine in the same run. Written: benchmarks/results/store_read.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import measure, write_results
from benchmarks.datasets import dataset
from benchmarks.features import SIZES

REPEATS = 3
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def read_whole(home: str, arrow: bool) -> dict[str, Any]:
    """The store's whole log as `from_store` reads it (events as seen, stages, catalogues); `arrow=False` reads the
    rows through Python's driver instead."""
    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.store import EventStore

    store = EventStore.open(Settings(home=Path(home)))
    if not arrow:
        store._arrow_file = lambda table: None  # type: ignore[method-assign]
    start = time.perf_counter()
    log = RadarLog.from_store(store)
    seconds = time.perf_counter() - start
    store.close()
    return {"seconds": round(seconds, 3), "events": log.events.num_rows, "stages": log.stages.num_rows}


def ingest(home: Path, size: str) -> dict[str, Any]:
    """The size's simulated world into a fresh store under `home`; how many events and how long it took."""
    from leadradar.config import Settings
    from leadradar.features.store import EventStore
    from leadradar.features.store.loading import load_files

    data = dataset(SIZES[size])
    settings = Settings(home=home)
    store = EventStore.open(settings)
    start = time.perf_counter()
    load_files(store, settings, [data.path("events")], stages=[data.path("stages")], items=data.path("items"))
    seconds = time.perf_counter() - start
    store.close()
    return {"events": data.events, "ingest_seconds": round(seconds, 1), "simulation": data.config}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1M", help="the simulated world (events)")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leadradar-store-read-") as home:
        loaded = ingest(Path(home), args.size)
        runs: dict[str, list] = {"arrow": [], "rows": []}
        for _ in range(args.repeats):
            for name in runs:
                runs[name].append(
                    measure("benchmarks.store_read:read_whole", {"home": home, "arrow": name == "arrow"}, QUIET)
                )
    failed = [m.error for ms in runs.values() for m in ms if not m.ok]
    if failed:
        raise SystemExit(f"a read failed: {failed[0]}")
    figures: dict[str, Any] = {"events": runs["arrow"][0].result["events"], "stages": runs["arrow"][0].result["stages"]}
    for name, ms in runs.items():
        figures[f"{name}_seconds"] = statistics.median(m.seconds for m in ms)
        figures[f"{name}_runs_seconds"] = [m.seconds for m in ms]
        figures[f"{name}_peak_rss_mb"] = max(m.peak_rss_mb for m in ms)
        figures[f"{name}_events_per_s"] = round(figures["events"] / figures[f"{name}_seconds"])
    figures["speedup_vs_rows"] = round(figures["rows_seconds"] / figures["arrow_seconds"], 2)
    extra = {"runs": {name: [m.as_dict() for m in ms] for name, ms in runs.items()}}
    path = write_results(f"store_read_{args.size.lower()}", figures, {"size": args.size, **loaded}, extra)
    for k, v in figures.items():
        print(f"{k}: {v}")
    print(f"written {path}")


if __name__ == "__main__":
    main()
