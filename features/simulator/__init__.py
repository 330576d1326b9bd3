"""Simulated radar logs and CRM history with a known truth: the data everything is judged on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from leadradar.config import Settings
from leadradar.errors import BadValueError
from leadradar.features.atomic import written_whole
from leadradar.features.simulator.config import SimulationConfig
from leadradar.features.simulator.engine import Simulation
from leadradar.features.simulator.tables import (
    events_table,
    items_table,
    leads_table,
    sales_table,
    stages_table,
    truth_table,
)
from leadradar.features.simulator.world import build_world

__all__ = ["SimulationConfig", "SimulationResult", "simulate"]


@dataclass
class SimulationResult:
    events: pa.Table
    stages: pa.Table
    truth: pa.Table
    items: pa.Table
    leads: pa.Table
    # When each row of `events` reached the log (tenant_id, event_id, arrived_at): late events and re-sends.
    arrivals: pa.Table | None = None
    # The salespeople with their names (tenant_id, sales_id, name), as a CRM lists them.
    sales: pa.Table | None = None

    def write(self, out: Path) -> dict[str, Path]:
        """Write every table as Parquet under `out`, each file whole or not at all; returns the paths by table name.

        A folder that holds such files but no truth.parquet is not a simulation's (a company's own log, say):
        refused, where the simulated tables would have replaced its files."""
        there = [f"{name}.parquet" for name in TABLES if (out / f"{name}.parquet").exists()]
        if there and not (out / "truth.parquet").is_file():
            raise BadValueError(
                f"--out {out} holds {', '.join(there)} and no truth.parquet, so not a simulation's files; a simulation"
                " replaces them: name a new folder or an earlier simulation's"
            )
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in TABLES:
            if getattr(self, name) is None:
                continue
            path = out / f"{name}.parquet"
            with written_whole(path) as tmp:
                pq.write_table(getattr(self, name), tmp)
            paths[name] = path
        return paths


TABLES = ("events", "stages", "truth", "items", "leads", "arrivals", "sales")


def truth_cutoff_days(cfg: SimulationConfig, anchor_weekday: int) -> set[int]:
    if cfg.truth_cadence == "daily":
        return set(range(1, cfg.days + 1))
    if cfg.truth_cadence != "weekly":
        raise ValueError(f"truth_cadence must be 'daily' or 'weekly', got {cfg.truth_cadence!r}")
    return {d for d in range(1, cfg.days + 1) if (cfg.start + timedelta(days=d)).weekday() == anchor_weekday}


def simulate(cfg: SimulationConfig, settings: Settings) -> SimulationResult:
    """Run the simulation; deterministic for a given config (seed included)."""
    unknown = sorted(set(cfg.event_type_logits) - set(settings.events.types))
    if unknown:
        raise ValueError(f"the simulator emits event types the configuration does not know: {unknown}")
    rng = np.random.default_rng(cfg.seed)
    world = build_world(cfg, rng)
    n_open = len(settings.funnel.open_stages)
    raw = Simulation(cfg, world, n_open, rng).run(truth_cutoff_days(cfg, settings.features.weekly_anchor_weekday))
    stage_names = list(settings.funnel.all_stages)
    events, arrivals = events_table(raw, list(cfg.event_type_logits), cfg, rng)
    return SimulationResult(
        events=events,
        stages=stages_table(raw, stage_names, rng),
        truth=truth_table(raw, stage_names, cfg),
        items=items_table(raw),
        leads=leads_table(raw, rng),
        arrivals=arrivals,
        sales=sales_table(raw),
    )


def simulation_end(cfg: SimulationConfig) -> date:
    return cfg.start + timedelta(days=cfg.days)
