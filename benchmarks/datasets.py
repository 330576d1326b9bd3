"""Simulated data sets for benchmarks, written once under benchmarks/data/ and reused by key of their config.

The key hashes the full `SimulationConfig` (seed included) and the event-type configuration, so a changed
knob makes a new data set rather than silently reusing an old one. Simulating runs in a fresh process
(`benchmarks.common.measure`), so its memory is returned before anything is measured.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import DATA_DIR, measure

TABLES = ("events", "stages", "truth", "items", "leads")


@dataclass(frozen=True)
class DataSet:
    """A simulated data set on disk and its sizes."""

    dir: Path
    config: dict[str, Any]
    sizes: dict[str, int]

    def path(self, table: str) -> Path:
        return self.dir / f"{table}.parquet"

    @property
    def events(self) -> int:
        return self.sizes["events"]

    @property
    def leads(self) -> int:
        return self.sizes["leads"]


def config_key(config: dict[str, Any]) -> str:
    """A short, stable hash of a full simulation config and the event types the simulator is checked against."""
    from leadradar.config import Settings
    from leadradar.features.simulator import SimulationConfig

    full = SimulationConfig(**config).model_dump(mode="json")
    doc = json.dumps({"config": full, "types": Settings().events.types}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def generate(config: dict[str, Any], out: str) -> dict[str, Any]:
    """Simulate and write every table under `out` (run in a worker process); returns the row counts."""
    from leadradar.config import Settings
    from leadradar.features.simulator import SimulationConfig, simulate

    result = simulate(SimulationConfig(**config), Settings())
    result.write(Path(out))
    return {name: getattr(result, name).num_rows for name in TABLES}


def dataset(config: dict[str, Any], root: Path = DATA_DIR) -> DataSet:
    """The data set for `config`, simulated now if no finished copy is cached under `root`."""
    key = config_key(config)
    final = root / f"sim-{key}"
    meta = final / "meta.json"
    if meta.exists():
        doc = json.loads(meta.read_text())
        return DataSet(final, doc["config"], doc["sizes"])
    partial = root / f".partial-sim-{key}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    run = measure("benchmarks.datasets:generate", {"config": config, "out": str(partial)})
    if not run.ok:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"simulating {config} failed: {run.error}")
    doc = {
        "config": config,
        "key": key,
        "sizes": run.result,
        "simulate_seconds": run.seconds,
        "simulate_peak_rss_mb": run.peak_rss_mb,
    }
    (partial / "meta.json").write_text(json.dumps(doc, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return DataSet(final, config, run.result)


def weekly_cutoffs(config: dict[str, Any], n: int = 8) -> list:
    """The last `n` weekly cutoffs (the configured anchor day, 00:00 UTC) up to the simulation's end."""
    import pandas as pd

    from leadradar.config import Settings
    from leadradar.features.cutoffs import cadence_cutoffs
    from leadradar.features.simulator import SimulationConfig, simulation_end

    cfg = SimulationConfig(**config)
    first, last = pd.Timestamp(cfg.start, tz="UTC"), pd.Timestamp(simulation_end(cfg), tz="UTC")
    cutoffs = cadence_cutoffs(first, last, Settings().features)
    if len(cutoffs) < n:
        raise ValueError(f"a {cfg.days}-day simulation holds {len(cutoffs)} weekly cutoffs, fewer than {n}")
    return cutoffs[-n:]
