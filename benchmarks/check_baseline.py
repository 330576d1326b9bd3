"""Guard: the pandas baseline computes the same feature table as the DuckDB build, or it is no baseline.

Same rows (open leads per cutoff), same columns (the registry's names), same values (`tests.support.parity`), on a
small simulation, for weekly midnight cutoffs and for cutoffs at an odd time of day (the day grid must
follow the cutoffs, not midnight). Run alone with `python -m benchmarks.check_baseline`; the feature
benchmark runs it before it measures anything.
"""

from __future__ import annotations

import time

import pandas as pd

from benchmarks.datasets import DataSet, dataset, weekly_cutoffs

SMALL = {"tenants": 2, "leads": 2000, "days": 120, "seed": 11}


def odd_time_cutoffs(weekly: list[pd.Timestamp]) -> list[pd.Timestamp]:
    """The same weeks at 07:15:30.5 UTC, shifted back a day so every one lies inside the data."""
    return [c - pd.Timedelta(days=1) + pd.Timedelta(hours=7, minutes=15, seconds=30.5) for c in weekly]


def check(data: DataSet, cutoffs: list[pd.Timestamp]) -> dict[str, float | int]:
    """Build both tables and assert they agree; returns the sizes and both build times."""
    from benchmarks.pandas_baseline import pandas_features
    from leadradar.config import Settings
    from leadradar.features.build import compute_features
    from leadradar.features.registry import build_registry
    from tests.support.parity import assert_same_features

    settings = Settings()
    registry = build_registry(settings)
    paths = {t: str(data.path(t)) for t in ("events", "stages", "items", "leads")}
    start = time.perf_counter()
    duck = compute_features(
        paths["events"], paths["stages"], cutoffs, settings, registry, paths["items"], leads=paths["leads"]
    )
    duck_s = time.perf_counter() - start
    start = time.perf_counter()
    base = pandas_features(
        paths["events"], paths["stages"], cutoffs, settings, registry, paths["items"], leads=paths["leads"]
    )
    base_s = time.perf_counter() - start
    assert list(base.columns) == list(duck.columns), (
        f"columns differ: {sorted(set(base.columns) ^ set(duck.columns))} (or their order)"
    )
    assert len(duck) > 0 and duck["cutoff"].nunique() == len(set(cutoffs)), "the check needs rows at every cutoff"
    assert_same_features(duck, base, registry)
    return {
        "rows": len(duck),
        "columns": duck.shape[1],
        "duckdb_seconds": round(duck_s, 3),
        "pandas_seconds": round(base_s, 3),
    }


def run(config: dict | None = None) -> dict[str, object]:
    """The whole guard on the small simulation; raises AssertionError naming the first feature that differs."""
    config = config or SMALL
    data = dataset(config)
    weekly = weekly_cutoffs(config)
    return {
        "config": config,
        "events": data.events,
        "weekly_midnight": check(data, weekly),
        "odd_time_of_day": check(data, odd_time_cutoffs(weekly)),
    }


def main() -> None:
    from rich.console import Console

    console = Console()
    with console.status("checking the pandas baseline against the DuckDB build on a small simulation"):
        result = run()
    for name in ("weekly_midnight", "odd_time_of_day"):
        r = result[name]
        console.print(
            f"[green]same features[/] ({name.replace('_', ' ')}): {r['rows']:,} rows × {r['columns']} "
            f"columns from {result['events']:,} events; DuckDB {r['duckdb_seconds']} s, "
            f"pandas {r['pandas_seconds']} s"
        )


if __name__ == "__main__":
    main()
