"""Day tiles as dense numpy columns: per-type partials pivoted into one row per (lead, day), one column per group.

The columns are those of the activity partials in features/grid.py: n__<group>, last__<group>, and for
groups with dwell dsum__/dn__/dmax__<group>; and the day totals us_min, us_max, night, weekend,
zero_dwell, dwell_n (dwell values of any type), sessions and days (1 per tile). Missing values (no
dwell, no event of a group) are NaN.
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
    cols: dict[str, np.ndarray] = {"lead": lead.astype(np.int64)}
    for name in ("bucket", "tcode", *SUM_STATS, "dwell_max", "us_min", "us_max"):
        col = types.column(name)
        cols[name] = col.to_numpy() if name in ("bucket", "tcode") else col.to_numpy(zero_copy_only=False)
    cols["bucket"] = cols["bucket"].astype(np.int64)
    order = np.lexsort((cols["bucket"], cols["lead"]))
    out: dict[str, np.ndarray] = {
        k: v[order] if k in ("lead", "bucket", "tcode") else v.astype(np.float64)[order] for k, v in cols.items()
    }
    for name in SUM_STATS:  # a sum over no values (no dwell that day) is missing in SQL, nothing to add here
        out[name] = np.nan_to_num(out[name], nan=0.0)
    out["dwell_max"] = np.nan_to_num(out["dwell_max"], nan=-np.inf)  # no dwell: below any value, NaN after the max
    return out


def dense_tiles(types: dict[str, np.ndarray], settings: Settings) -> DayTiles:
    """Pivot per-type tile rows (from `type_arrays`, or a slice of whole leads of it) into per-day group columns.

    Rows of one (lead, day) are contiguous, so every group statistic is one `reduceat` over the rows.
    """
    lead, bucket = types["lead"], types["bucket"]
    if len(bucket) == 0:
        return DayTiles(np.empty(0, np.int64), np.empty(0, np.int64), {})
    first = np.empty(len(lead), dtype=bool)
    first[0] = True
    first[1:] = (lead[1:] != lead[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(first)
    code = {t: i for i, t in enumerate(settings.events.types)}
    with_dwell = dwell_groups(settings)
    cols: dict[str, np.ndarray] = {}
    for group, members in event_groups(settings):
        mine = np.isin(types["tcode"], [code[t] for t in members])
        cols[f"n__{group}"] = np.add.reduceat(np.where(mine, types["n"], 0.0), starts)
        cols[f"last__{group}"] = _max(np.where(mine, types["us_max"], -np.inf), starts)
        if group in with_dwell:
            cols[f"dsum__{group}"] = np.add.reduceat(np.where(mine, types["dwell_sum"], 0.0), starts)
            cols[f"dn__{group}"] = np.add.reduceat(np.where(mine, types["dwell_n"], 0.0), starts)
            cols[f"dmax__{group}"] = _max(np.where(mine, types["dwell_max"], -np.inf), starts)
    for stat in ("night", "weekend", "zero_dwell", "sessions", "dwell_n"):
        cols[stat] = np.add.reduceat(types[stat], starts)
    cols["us_min"] = np.fmin.reduceat(types["us_min"], starts)
    cols["us_max"] = _max(types["us_max"], starts)
    cols["days"] = np.ones(len(starts))
    tile_lead, tile_bucket = lead[starts], bucket[starts]
    cols["sessions"] += _first_event_starts(tile_lead, cols["us_min"], cols["us_max"], settings)
    return DayTiles(tile_lead, tile_bucket, cols)


def _first_event_starts(lead: np.ndarray, us_min: np.ndarray, us_max: np.ndarray, settings: Settings) -> np.ndarray:
    """Whether each day's first event starts a session: the lead's first day, or a gap since its previous day."""
    gap = settings.features.session_gap_minutes * 60_000_000
    starts = np.ones(len(lead))
    same = lead[1:] == lead[:-1]
    starts[1:] = np.where(same, (us_min[1:] - us_max[:-1]) > gap, 1.0)
    return starts


def _max(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each segment's maximum, NaN where all are missing (-inf)."""
    out = np.maximum.reduceat(values, starts)
    out[np.isneginf(out)] = np.nan
    return out
