"""A whole log read from the event store, as training and a build from the store read it (`RadarLog.from_store`).

A simulated world is ingested once into a fresh store (SQLite, WAL, under a temporary home; or, with `--store
postgresql`, a throwaway PostgreSQL server started here, tests/support/postgres.py). Each read then runs in its own
process, interleaved: through ADBC's driver into Arrow, in a child process (`arrow`), through Python's driver row by
row (`rows`: the same query and conversion, `_arrow_source` answering None), and, on SQLite, from the log's Parquet
copy after one more day of events was stored (`copy`: a nightly build's read; the copy's first making is
`copy_first`), so they are compared on the same machine in the same run. Written:
results/store_read_<size>[_postgresql].json.
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


def read_whole(home: str, mode: str, url: str | None = None) -> dict[str, Any]:
    """The store's whole log as `from_store` reads it (events as seen, stages, catalogues): `copy` by the log's
    copy (the store's default), `arrow` from the database by ADBC, `rows` through Python's driver."""
    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.store import EventStore

    store = EventStore.open(Settings(home=Path(home), store={"url": url, "mirror": mode == "copy"}))
    if mode == "rows":
        store._arrow_source = lambda table: None  # type: ignore[method-assign]
    start = time.perf_counter()
    log = RadarLog.from_store(store)
    seconds = time.perf_counter() - start
    store.close()
    return {"seconds": round(seconds, 3), "events": log.events.num_rows, "stages": log.stages.num_rows}


def one_more_day(home: str, size: str, k: int) -> int:
    """The world's last day of events stored again as a new day (`k` days later, new ids): what a night adds."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from leadradar.config import Settings
    from leadradar.features.store import EventStore
    from leadradar.features.store.loading import load_files

    events = pq.read_table(dataset(SIZES[size]).path("events"))
    ts = pc.cast(events["ts"], "int64")
    last = events.filter(pc.greater(ts, pc.subtract(pc.max(ts), 86_400_000_000)))
    day = last.set_column(
        last.schema.get_field_index("event_id"), "event_id", pc.binary_join_element_wise(last["event_id"], f"+{k}", "")
    ).set_column(
        last.schema.get_field_index("ts"),
        "ts",
        pc.cast(pc.add(pc.cast(last["ts"], "int64"), k * 86_400_000_000), last.schema.field("ts").type),
    )
    path = Path(home) / f"day-{k}.parquet"
    pq.write_table(day, path)
    settings = Settings(home=Path(home))
    store = EventStore.open(settings)
    loaded = load_files(store, settings, [path])
    store.close()
    path.unlink()
    return sum(x.stored for x in loaded)


def build_from_store(home: str, mode: str, kept: bool, cutoffs: list[str], command: bool = False) -> dict[str, Any]:
    """The features built from the store as `features build` does nightly: the log read whole (`mode` as for
    `read_whole`), then the tiles engine's build at `cutoffs`, with day tiles and rows kept under `home` (`kept`) or
    none; each part timed. `command`: the training set `features build` writes instead (its weekly cutoffs, labels,
    one Parquet file; tiles kept apart from the feature table's)."""
    import tempfile

    import pandas as pd

    from leadradar.config import Settings
    from leadradar.features.build import compute_features
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.registry import build_registry
    from leadradar.features.store import EventStore
    from leadradar.features.trainset import write_training_set

    tiles = str(Path(home) / ("tiles-command" if command else "tiles")) if kept else None
    settings = Settings(
        home=Path(home), store={"mirror": mode == "copy"}, features={"engine": "tiles", "tiles_dir": tiles}
    )
    store = EventStore.open(settings)
    start = time.perf_counter()
    log = RadarLog.from_store(store)
    read = time.perf_counter() - start
    if command:
        with tempfile.TemporaryDirectory(prefix="leadradar-command-", dir=home) as out:
            rows = write_training_set(log, settings, Path(out) / "training.parquet").rows
    else:
        rows = len(
            compute_features(
                log.events,
                log.stages,
                [pd.Timestamp(c) for c in cutoffs],
                settings,
                build_registry(settings),
                log.items,
                leads=log.leads,
                consent=log.consent,
                event_blocks=log.event_blocks,
            )
        )
    seconds = time.perf_counter() - start
    store.close()
    return {
        "seconds": round(seconds, 3),
        "read_seconds": round(read, 3),
        "build_seconds": round(seconds - read, 3),
        "events": log.events.num_rows,
        "rows": rows,
    }


def builds_on(home: str, size: str, repeats: int) -> tuple[dict[str, Any], dict[str, list]]:
    """The world ingested, then: the whole build from the store as before the copy (ADBC's read, no kept tiles), the
    first night with the copy and kept tiles (both made), and `repeats` nights, each after one more day stored; then
    the same for the training set the command writes (`command_*`: whole, first night, `repeats` nights)."""
    from benchmarks.datasets import weekly_cutoffs

    loaded = ingest(Path(home), size)
    cutoffs = [str(c) for c in weekly_cutoffs(loaded["simulation"])]
    loaded |= {"cutoffs": cutoffs, "day_events": []}
    target = "benchmarks.store_read:build_from_store"
    runs: dict[str, list] = {
        "whole": [measure(target, {"home": home, "mode": "arrow", "kept": False, "cutoffs": cutoffs}, QUIET)],
        "first_night": [measure(target, {"home": home, "mode": "copy", "kept": True, "cutoffs": cutoffs}, QUIET)],
        "night": [],
    }
    for k in range(repeats):
        loaded["day_events"].append(one_more_day(home, size, k + 1))
        runs["night"].append(measure(target, {"home": home, "mode": "copy", "kept": True, "cutoffs": cutoffs}, QUIET))
    command = {"home": home, "mode": "copy", "cutoffs": cutoffs, "command": True}
    runs["command_whole"] = [measure(target, command | {"kept": False}, QUIET)]
    runs["command_first_night"] = [measure(target, command | {"kept": True}, QUIET)]
    runs["command_night"] = []
    for k in range(repeats, 2 * repeats):
        loaded["day_events"].append(one_more_day(home, size, k + 1))
        runs["command_night"].append(measure(target, command | {"kept": True}, QUIET))
    return loaded, runs


def ingest(home: Path, size: str, url: str | None = None) -> dict[str, Any]:
    """The size's simulated world into a fresh store under `home`; how many events and how long it took."""
    from leadradar.config import Settings
    from leadradar.features.store import EventStore
    from leadradar.features.store.loading import load_files

    data = dataset(SIZES[size])
    settings = Settings(home=home, store={"url": url})
    store = EventStore.open(settings)
    start = time.perf_counter()
    load_files(store, settings, [data.path("events")], stages=[data.path("stages")], items=data.path("items"))
    seconds = time.perf_counter() - start
    store.close()
    return {"events": data.events, "ingest_seconds": round(seconds, 1), "simulation": data.config}


def runs_on(home: str, size: str, repeats: int, url: str | None) -> tuple[dict[str, Any], dict[str, list]]:
    """The world ingested into the store, then the reads: ADBC and rows interleaved, `repeats` of each."""
    loaded = ingest(Path(home), size, url)
    runs: dict[str, list] = {"arrow": [], "rows": []}
    if url is None:  # a PostgreSQL store keeps no copy (its log positions can commit out of order)
        runs |= {"copy_first": [measure("benchmarks.store_read:read_whole", {"home": home, "mode": "copy"}, QUIET)]}
        runs |= {"copy": []}
        loaded["day_events"] = []
    for k in range(repeats):
        for name in runs:
            if name == "copy_first":
                continue
            if name == "copy":
                loaded["day_events"].append(one_more_day(home, size, k + 1))
            kwargs = {"home": home, "mode": name, "url": url}
            runs[name].append(measure("benchmarks.store_read:read_whole", kwargs, QUIET))
    return loaded, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="1M", help="the simulated world (events)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument(
        "--builds", action="store_true", help="time nightly feature builds from the store, not the reads alone"
    )
    args = parser.parse_args()
    if args.builds and args.store != "sqlite":
        parser.error("--builds measures the SQLite store's copy; PostgreSQL keeps none")
    with tempfile.TemporaryDirectory(prefix="leadradar-store-read-") as home:
        if args.builds:
            return night_figures(args, *builds_on(home, args.size, args.repeats))
        if args.store == "sqlite":
            loaded, runs = runs_on(home, args.size, args.repeats, None)
        else:
            from tests.support.postgres import PostgresServer, find_bin_dir

            bin_dir = find_bin_dir()
            if bin_dir is None:
                raise SystemExit("needs PostgreSQL (Debian: apt-get install postgresql, as .ci/run does)")
            with PostgresServer(bin_dir) as pg:
                loaded, runs = runs_on(home, args.size, args.repeats, pg.create_database("events"))
    figures: dict[str, Any] = {"events": runs["arrow"][0].result["events"], "stages": runs["arrow"][0].result["stages"]}
    figures |= timed(runs, "read")
    for name in runs:
        figures[f"{name}_events_per_s"] = round(figures["events"] / figures[f"{name}_seconds"])
    figures["speedup_vs_rows"] = round(figures["rows_seconds"] / figures["arrow_seconds"], 2)
    if "copy" in runs:
        figures["copy_speedup_vs_arrow"] = round(figures["arrow_seconds"] / figures["copy_seconds"], 2)
    name = f"store_read_{args.size.lower()}" + ("" if args.store == "sqlite" else f"_{args.store}")
    written(name, figures, {"size": args.size, "store": args.store, **loaded}, runs)


def timed(runs: dict[str, list], what: str) -> dict[str, Any]:
    """Each kind of run's median time, its runs and its peak RSS; a failed run ends the benchmark, said."""
    failed = [m.error for ms in runs.values() for m in ms if not m.ok]
    if failed:
        raise SystemExit(f"a {what} failed: {failed[0]}")
    figures: dict[str, Any] = {}
    for name, ms in runs.items():
        figures[f"{name}_seconds"] = statistics.median(m.seconds for m in ms)
        figures[f"{name}_runs_seconds"] = [m.seconds for m in ms]
        figures[f"{name}_peak_rss_mb"] = max(m.peak_rss_mb for m in ms)
    return figures


def written(name: str, figures: dict[str, Any], inputs: dict[str, Any], runs: dict[str, list]) -> None:
    path = write_results(name, figures, inputs, {"runs": {k: [m.as_dict() for m in ms] for k, ms in runs.items()}})
    for k, v in figures.items():
        print(f"{k}: {v}")
    print(f"written {path}")


def night_figures(args: argparse.Namespace, loaded: dict[str, Any], runs: dict[str, list]) -> None:
    """The builds' figures: each one's median and its read and build parts; the night against the whole build."""
    figures: dict[str, Any] = {"events": runs["whole"][0].result["events"], "rows": runs["whole"][0].result["rows"]}
    figures |= timed(runs, "build")
    for name, ms in runs.items():
        for part in ("read_seconds", "build_seconds"):
            figures[f"{name}_{part}"] = statistics.median(m.result[part] for m in ms)
    figures["night_ratio_vs_whole"] = round(figures["night_seconds"] / figures["whole_seconds"], 3)
    if "command_night" in runs:
        figures["command_rows"] = runs["command_whole"][0].result["rows"]
        figures["command_night_ratio_vs_whole"] = round(
            figures["command_night_seconds"] / figures["command_whole_seconds"], 3
        )
    written(f"store_night_{args.size.lower()}", figures, {"size": args.size, **loaded}, runs)


if __name__ == "__main__":
    main()
