"""A lead's events with an item, grouped once by item, cut and summed per window edge by each request.

The item and category features read `grid.item_partials`: a row per (lead, item, day) with the views and their
dwell. Their windows start at a few ages only (`edges`), so a request groups the events per item and edge day.
The grouping by item is the same for every request of a lead, so it is made when the lead's history is kept
(features/tiles/history.py) and a request only cuts the events at its instant and sums them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leadradar.features.grid import DAY_US

ITEM_ROWS = pa.schema(
    [
        pa.field("tenant_id", pa.string()),
        pa.field("lead_id", pa.string()),
        pa.field("item_id", pa.string()),
        pa.field("bucket", pa.int64()),
        pa.field("n", pa.int64()),
        pa.field("dwell_sum", pa.float64()),
        pa.field("category", pa.string()),
    ]
)
ITEM_KEY = ["tenant_id", "lead_id", "item_id"]


def times(events: pa.Table) -> np.ndarray:
    """The events' times as integer UTC microseconds."""
    return pc.cast(events["ts"], pa.int64()).to_numpy()


def by_time(events: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """The events ordered by time (ties in their order), and their times."""
    us = times(events)
    order = np.argsort(us, kind="stable")
    return events.take(pa.array(order)), us[order]


def edge_days(us: np.ndarray, cutoff_us: int, edges: np.ndarray) -> np.ndarray:
    """The day of the window edge at or before each event's own day (events at or before the cutoff)."""
    tod, day = cutoff_us % DAY_US, cutoff_us // DAY_US
    age = day + ((tod - us) // DAY_US)  # day - ceil((us - tod) / day), as `day_bucket`
    return day - edges[np.searchsorted(edges, age, side="right") - 1]


def grouped(table: pa.Table, keys: list[str], bucket: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """One row per distinct (keys, bucket) of the table, and each input row's group (numpy: a request's few rows)."""
    key = bucket - bucket.min()
    for k in keys:
        encoded = pc.dictionary_encode(table[k].combine_chunks())
        key = key * len(encoded.dictionary) + encoded.indices.to_numpy()  # small: a request's leads, items and days
    _, first, group = np.unique(key, return_index=True, return_inverse=True)
    rows = table.select(keys).take(pa.array(first)).append_column("bucket", pa.array(bucket[first], pa.int64()))
    return rows, group.reshape(-1)


def grid_rank(us: np.ndarray, cutoff_us: int, memo: dict[str, Any]) -> int:
    """How many of the events fall at or before the cutoff's time of day: with the cutoff's day and the events cut
    at it, this fixes every event's day on the request's grid (`day_bucket`), so two requests that agree on it
    have the same day tiles. The events' times of day are sorted once into `memo`."""
    tods = memo.get("tods")
    if tods is None or len(tods) != len(us):
        tods = memo["tods"] = np.sort(us % DAY_US)
    return int(np.searchsorted(tods, cutoff_us % DAY_US, side="right"))


@dataclass(frozen=True)
class Touches:
    """Events with an item ordered by time: each one's time, dwell and (tenant, lead, item) code."""

    us: np.ndarray
    dwell: np.ndarray
    code: np.ndarray
    keys: pa.Table  # a row per code: tenant_id, lead_id, item_id
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, events: pa.Table) -> Touches:
        touched, us = by_time(events.filter(pc.is_valid(events["item_id"])))
        if touched.num_rows == 0:
            return cls(us, np.empty(0), np.empty(0, np.int64), ITEM_ROWS.empty_table().select(ITEM_KEY))
        keys, code = grouped(touched, ITEM_KEY, np.zeros(touched.num_rows, np.int64))
        dwell = touched["dwell_s"].to_numpy(zero_copy_only=False).astype(np.float64)
        return cls(us, dwell, code, keys.select(ITEM_KEY).cast(pa.schema([ITEM_ROWS.field(n) for n in ITEM_KEY])))

    def extended(self, events: pa.Table) -> Touches:
        """With a few more events merged in: their items' codes looked up or added, in Python (a handful of rows)."""
        touched = events.filter(pc.is_valid(events["item_id"]))
        if touched.num_rows == 0:
            return self
        index = {k: i for i, k in enumerate(zip(*(self.keys[n].to_pylist() for n in ITEM_KEY)))}
        added = list(zip(*(touched[n].to_pylist() for n in ITEM_KEY)))
        code = np.array([index.setdefault(k, len(index)) for k in added], np.int64)
        extra = [k for k, i in index.items() if i >= self.keys.num_rows]
        keys = self.keys
        if extra:
            keys = pa.concat_tables([keys, pa.Table.from_pylist([dict(zip(ITEM_KEY, k)) for k in extra], keys.schema)])
        us = np.concatenate([self.us, times(touched)])
        dwell = touched["dwell_s"].to_numpy(zero_copy_only=False).astype(np.float64)
        order = np.argsort(us, kind="stable")
        return Touches(
            us[order], np.concatenate([self.dwell, dwell])[order], np.concatenate([self.code, code])[order], keys
        )

    def rows(self, cutoff_us: int, edges: np.ndarray, categories: dict[tuple[str, str], str]) -> pa.Table:
        """`grid.item_partials` of the events at or before the cutoff, a row per (lead, edge day, item)."""
        n = int(np.searchsorted(self.us, cutoff_us, side="right"))
        if n == 0:
            return ITEM_ROWS.empty_table()
        key = (n, cutoff_us // DAY_US, grid_rank(self.us, cutoff_us, self.memo))
        kept = self.memo.get("rows")  # the last rows and what they were made of (held, so compared by identity)
        if kept is not None and kept[0] == key and kept[1] is edges and kept[2] is categories:
            return kept[3]
        rows = self._rows(n, cutoff_us, edges, categories)
        self.memo["rows"] = (key, edges, categories, rows)
        return rows

    def _rows(self, n: int, cutoff_us: int, edges: np.ndarray, categories: dict[tuple[str, str], str]) -> pa.Table:
        bucket, code = edge_days(self.us[:n], cutoff_us, edges), self.code[:n]
        span = bucket.max() - bucket.min() + 1
        _, first, group = np.unique(code * span + (bucket - bucket.min()), return_index=True, return_inverse=True)
        group = group.reshape(-1)
        dwell = self.dwell[:n]
        has = ~np.isnan(dwell)
        keys = self.keys.take(pa.array(code[first]))
        pairs = zip(keys["tenant_id"].to_pylist(), keys["item_id"].to_pylist(), strict=True)
        columns = {
            "bucket": pa.array(bucket[first], pa.int64()),
            "n": pa.array(np.bincount(group), pa.int64()),
            "dwell_sum": pa.array(np.bincount(group, np.where(has, dwell, 0.0)), mask=np.bincount(group, has) == 0),
            "category": pa.array([categories.get(k) for k in pairs], pa.string()),
        }
        for name, column in columns.items():
            keys = keys.append_column(name, column)
        return keys
