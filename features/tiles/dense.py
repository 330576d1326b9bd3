"""Day tiles as dense numpy columns: per-type partials pivoted into one row per (lead, day), one column per group.

The columns are those of the activity partials in features/grid.py: n__<group>, last__<group>, and for
groups with dwell dsum__/dn__/dmax__<group>; and the day totals us_min, us_max, night, weekend,
zero_dwell, sessions and days (1 per tile). Missing values (no dwell, no event of a group) are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from leadradar.config import Settings
from leadradar.features.grid import dwell_groups, event_groups

SUM_STATS = ("n", "dwell_sum", "dwell_n", "zero_dwell", "night", "weekend", "sessions")


@dataclass(frozen=True)
class DayTiles:
    """One row per (lead, day), sorted by lead code then day."""

    lead: np.ndarray
    bucket: np.ndarray
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.lead)


def type_arrays(types: pa.Table, lead: np.ndarray) -> dict[str, np.ndarray]:
    """Per-type tile rows as numpy columns (missing as NaN), sorted by lead code then day; `lead` is each row's code."""
    cols = {"lead": lead.astype(np.int64)}
    for name in ("bucket", "tcode", *SUM_STATS, "dwell_max", "us_min", "us_max"):
        col = types.column(name)
        cols[name] = col.to_numpy() if name in ("bucket", "tcode") else col.to_numpy(zero_copy_only=False)
    cols["bucket"] = cols["bucket"].astype(np.int64)
    order = np.lexsort((cols["bucket"], cols["lead"]))
    return {k: v[order] if k in ("lead", "bucket", "tcode") else v.astype(np.float64)[order] for k, v in cols.items()}


def dense_tiles(types: dict[str, np.ndarray], settings: Settings) -> DayTiles:
    """Pivot per-type tile rows (from `type_arrays`, or a slice of whole leads of it) into per-day group columns."""
    lead, bucket = types["lead"], types["bucket"]
    n_types = len(settings.events.types) + 1  # the last column holds unknown types (code -1)
    if len(bucket) == 0:
        return DayTiles(np.empty(0, np.int64), np.empty(0, np.int64), {})
    first = np.empty(len(lead), dtype=bool)
    first[0] = True
    first[1:] = (lead[1:] != lead[:-1]) | (bucket[1:] != bucket[:-1])
    tile = np.cumsum(first) - 1
    n_tiles = int(tile[-1]) + 1
    tcol = np.where(types["tcode"] < 0, n_types - 1, types["tcode"])

    def pivot(name: str, fill: float) -> np.ndarray:
        values = types[name]
        if not np.isnan(fill):
            values = np.where(np.isnan(values), fill, values)
        out = np.full((n_tiles, n_types), fill, dtype=np.float64)
        out[tile, tcol] = values
        return out

    cols: dict[str, np.ndarray] = {}
    code = {t: i for i, t in enumerate(settings.events.types)}
    with_dwell = dwell_groups(settings)
    groups = event_groups(settings)
    n, us_max = pivot("n", 0.0), pivot("us_max", np.nan)
    for group, members in groups:
        idx = [code[t] for t in members]
        cols[f"n__{group}"] = n[:, idx].sum(axis=1)
        cols[f"last__{group}"] = _nanmax(us_max[:, idx])
    for stat, prefix in (("dwell_sum", "dsum"), ("dwell_n", "dn")):
        m = pivot(stat, 0.0)
        for group, members in groups:
            if group in with_dwell:
                cols[f"{prefix}__{group}"] = m[:, [code[t] for t in members]].sum(axis=1)
    dmax = pivot("dwell_max", np.nan)
    for group, members in groups:
        if group in with_dwell:
            cols[f"dmax__{group}"] = _nanmax(dmax[:, [code[t] for t in members]])
    for stat in ("night", "weekend", "zero_dwell", "sessions"):
        cols[stat] = pivot(stat, 0.0).sum(axis=1)
    cols["us_min"] = _nanmin(pivot("us_min", np.nan))
    cols["us_max"] = _nanmax(us_max)
    cols["days"] = np.ones(n_tiles)
    tile_lead, tile_bucket = lead[first], bucket[first]
    cols["sessions"] += _first_event_starts(tile_lead, cols["us_min"], cols["us_max"], settings)
    return DayTiles(tile_lead, tile_bucket, cols)


def _first_event_starts(lead: np.ndarray, us_min: np.ndarray, us_max: np.ndarray, settings: Settings) -> np.ndarray:
    """Whether each day's first event starts a session: the lead's first day, or a gap since its previous day."""
    gap = settings.features.session_gap_minutes * 60_000_000
    starts = np.ones(len(lead))
    same = lead[1:] == lead[:-1]
    starts[1:] = np.where(same, (us_min[1:] - us_max[:-1]) > gap, 1.0)
    return starts


def _nanmax(m: np.ndarray) -> np.ndarray:
    return np.fmax.reduce(m, axis=1) if m.shape[1] else np.full(len(m), np.nan)


def _nanmin(m: np.ndarray) -> np.ndarray:
    return np.fmin.reduce(m, axis=1) if m.shape[1] else np.full(len(m), np.nan)
