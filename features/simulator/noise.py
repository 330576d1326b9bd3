"""What a real log does to clean events: device clock skew, re-sent events, late arrival."""

from __future__ import annotations

import numpy as np

from leadradar.features.grid import HOUR_US
from leadradar.features.simulator.config import SimulationConfig
from leadradar.features.simulator.emission import SECOND_US


def skew_offsets(n_leads: int, cfg: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Per-lead device clock offset in microseconds; most devices keep good time."""
    skewed = rng.random(n_leads) < cfg.skewed_lead_rate
    return np.where(skewed, rng.normal(0.0, cfg.skew_sd_seconds, n_leads) * SECOND_US, 0).astype(np.int64)


def arrivals(ts: np.ndarray, cfg: SimulationConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows to re-send as duplicates, in the order they reach the log, and when each copy reaches it (UTC µs).

    Most events arrive as they happen; a few arrive late (hours), and a re-sent copy arrives again later.
    """
    n = ts.shape[0]
    dup = np.flatnonzero(rng.random(n) < cfg.duplicate_rate)
    rows = np.concatenate([np.arange(n), dup])
    delay = np.zeros(rows.shape[0], dtype=np.int64)
    late = rng.random(int(rows.shape[0])) < cfg.late_rate
    delay[late] = rng.exponential(cfg.late_mean_hours * HOUR_US, int(late.sum())).astype(np.int64)
    # A re-sent event arrives again minutes to hours after the first copy.
    delay[n:] += rng.exponential(2 * HOUR_US, dup.shape[0]).astype(np.int64) + SECOND_US
    arrival = ts[rows] + delay
    order = np.argsort(arrival, kind="stable")
    return rows[order], arrival[order]
