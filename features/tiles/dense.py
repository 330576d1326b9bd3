"""Day tiles as dense numpy columns: per-type partials pivoted into one row per (lead, day), one column per group.

The columns are those of the activity partials in features/grid.py: n__<group>, last__<group>, and for
groups with dwell dsum__/dn__/dmax__<group>; and the day totals us_min, us_max, night, weekend,
zero_dwell, dwell_n (dwell values of any type), sessions and days (1 per tile). Missing values (no
dwell, no event of a group) are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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


COUNT_STATS = ("n", "dwell_n", "zero_dwell", "night", "weekend", "sessions")  # whole numbers, exact in float32


def type_arrays(types: pa.Table, lead: np.ndarray) -> dict[str, np.ndarray]:
    """Per-type tile rows as numpy columns (missing as NaN), sorted by lead code then day; `lead` is each row's code.

    Compact, for they are held through the whole build: codes and days as int32, counts as float32 (exact below
    2**24 a day), dwell and times as float64. A column at a time, each sorted before it is widened, so that the
    copies alive at once are one column's.
    """
    bucket = types.column("bucket").to_numpy().astype(np.int32)
    tcode = types.column("tcode").to_numpy()
    order = np.argsort(_row_key(lead, bucket, tcode))
    out: dict[str, np.ndarray] = {"lead": lead[order].astype(np.int32), "bucket": bucket[order]}
    del bucket
    out["tcode"] = tcode[order].astype(np.int8)
    del tcode
    for name in (*SUM_STATS, "dwell_max", "us_min", "us_max"):
        wide = np.float32 if name in COUNT_STATS else np.float64
        out[name] = types.column(name).to_numpy(zero_copy_only=False)[order].astype(wide, copy=False)
    for name in SUM_STATS:  # a sum over no values (no dwell that day) is missing in SQL, nothing to add here
        np.nan_to_num(out[name], copy=False, nan=0.0)
    np.nan_to_num(out["dwell_max"], copy=False, nan=-np.inf)  # no dwell: below any value, NaN after the max
    return out


def _row_key(lead: np.ndarray, bucket: np.ndarray, tcode: np.ndarray) -> np.ndarray:
    """One int64 per tile row ordering it by lead, day, then type: a tile row is unique per (lead, day, type), so
    any sort of the key gives the one order (one argsort of it is about 3x faster than a lexsort of the columns)."""
    if len(lead) == 0:
        return np.empty(0, np.int64)
    b0, t0 = int(bucket.min()), int(tcode.min())
    days, types = int(bucket.max()) - b0 + 1, int(tcode.max()) - t0 + 1
    return (lead.astype(np.int64) * days + (bucket - b0)) * types + (tcode - t0)


def dense_tiles(types: dict[str, np.ndarray], settings: Settings) -> DayTiles:
    """Pivot per-type tile rows (from `type_arrays`, or a slice of whole leads of it) into per-day group columns.

    Rows of one (lead, day) are contiguous. Each statistic is scattered once into a (day, type) matrix; a
    group's sums are that matrix times the groups' membership, its maxima the maximum over its members' columns.
    """
    lead, bucket = types["lead"].astype(np.int64), types["bucket"].astype(np.int64)
    if len(bucket) == 0:
        return DayTiles(np.empty(0, np.int64), np.empty(0, np.int64), {})
    first = np.empty(len(lead), dtype=bool)
    first[0] = True
    first[1:] = (lead[1:] != lead[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(first)
    pairs = event_groups(settings)
    groups, members, member_of = _membership(tuple(settings.events.types), tuple((g, tuple(t)) for g, t in pairs))
    n_types = member_of.shape[0] - 1  # the last column holds rows of no configured type (session rows)
    tcode = types["tcode"].astype(np.int64)
    cell = (np.cumsum(first) - 1) * (n_types + 1) + np.where((tcode >= 0) & (tcode < n_types), tcode, n_types)
    shape = (len(starts), n_types + 1)

    def summed(stat: str) -> np.ndarray:
        by_type = np.bincount(cell, weights=types[stat], minlength=shape[0] * shape[1]).reshape(shape)
        return np.ascontiguousarray((by_type @ member_of).T)  # a row per group

    def maxima(stat: str) -> np.ndarray:
        by_type = np.full(shape[0] * shape[1], -np.inf)
        np.maximum.at(by_type, cell, types[stat])
        return by_type.reshape(shape)

    with_dwell = dwell_groups(settings)
    n, dsum, dn = summed("n"), summed("dwell_sum"), summed("dwell_n")
    last, dmax = maxima("us_max"), maxima("dwell_max")
    cols: dict[str, np.ndarray] = {}
    for g, (group, mine) in enumerate(zip(groups, members, strict=True)):
        cols[f"n__{group}"] = n[g]
        cols[f"last__{group}"] = _missing(last[:, mine].max(axis=1))
        if group in with_dwell:
            cols[f"dsum__{group}"] = dsum[g]
            cols[f"dn__{group}"] = dn[g]
            cols[f"dmax__{group}"] = _missing(dmax[:, mine].max(axis=1))
    for stat in ("night", "weekend", "zero_dwell", "sessions", "dwell_n"):
        cols[stat] = np.add.reduceat(types[stat], starts, dtype=np.float64)
    cols["us_min"] = np.fmin.reduceat(types["us_min"], starts)
    cols["us_max"] = _max(types["us_max"], starts)
    cols["days"] = np.ones(len(starts))
    tile_lead, tile_bucket = lead[starts], bucket[starts]
    cols["sessions"] += _first_event_starts(tile_lead, cols["us_min"], cols["us_max"], settings)
    return DayTiles(tile_lead, tile_bucket, cols)


@lru_cache(maxsize=8)
def _membership(
    types: tuple[str, ...], pairs: tuple[tuple[str, tuple[str, ...]], ...]
) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """The groups, each one's type codes, and the (type, group) membership matrix with a last row of no group."""
    code = {t: i for i, t in enumerate(types)}
    member_of = np.zeros((len(code) + 1, len(pairs)))
    members = []
    for g, (_, of_group) in enumerate(pairs):
        mine = np.array([code[t] for t in of_group], np.intp)
        member_of[mine, g] = 1.0
        members.append(mine)
    return [g for g, _ in pairs], members, member_of


def _first_event_starts(lead: np.ndarray, us_min: np.ndarray, us_max: np.ndarray, settings: Settings) -> np.ndarray:
    """Whether each day's first event starts a session: the lead's first day, or a gap since its previous day."""
    gap = settings.features.session_gap_minutes * 60_000_000
    starts = np.ones(len(lead))
    same = lead[1:] == lead[:-1]
    starts[1:] = np.where(same, (us_min[1:] - us_max[:-1]) > gap, 1.0)
    return starts


def _max(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each segment's maximum, NaN where all are missing (-inf)."""
    return _missing(np.maximum.reduceat(values, starts))


def _missing(out: np.ndarray) -> np.ndarray:
    """-inf (a maximum over no value) as NaN."""
    out[np.isneginf(out)] = np.nan
    return out
