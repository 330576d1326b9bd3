"""Online features of stored leads from their kept history, merged by the batch tiles' code.

A request's events (the kept history up to its instant, plus the events it sends inline) are cut into the
request's own day tiles and merged into windows by `dense_tiles` and `TileWindows`, the batch build's code, so
the 186 tile features cost a few numpy passes instead of the whole query. The features without a tile op come
from their own declarations: those over the activity days (engagement) by their Ibis expression over the
lead's day tiles, compiled once to SQLite; the rest (items, categories, referrals, funnel, sales, attributes)
and the spine by the batch query limited to them, run on the few events they read (with an item or a
referrer, or at the lead's first time), as the tiles build does.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadradar.config import Settings
from leadradar.features.build import QMETA
from leadradar.features.consent import split_consent
from leadradar.features.cutoffs import epoch_us
from leadradar.features.feature import Feature
from leadradar.features.grid import DAY_US
from leadradar.features.online import OnlineFeatures
from leadradar.features.registry import FeatureRegistry
from leadradar.features.store import EventStore
from leadradar.features.tiles.build import SKIPPED_STAGES, TileFeatures
from leadradar.features.tiles.dense import DayTiles, dense_tiles
from leadradar.features.tiles.history import (
    HistoryCache,
    LeadHistory,
    few_events,
    first_events,
    merge_columns,
)
from leadradar.features.tiles.touches import Touches, edge_days, grouped, times
from leadradar.features.tiles.windows import TileWindows

T = TypeVar("T", int, np.ndarray)


def grid_day(us: T, tod_us: int) -> T:
    """The day of the grid ending at `tod_us` an instant (or array of them) falls on: ceil((us - tod) / day), as
    `day_bucket`."""
    return -((tod_us - us) // DAY_US)


def event_tiles(leads: list[dict[str, np.ndarray]], tod_us: int, settings: Settings) -> dict[str, np.ndarray]:
    """Each event as a one-event type tile on the grid ending at `tod_us`, leads in order, in `dense_tiles` input form.

    The day and within-day session start follow `features.tiles.partials.day_events`; `dense_tiles` then sums
    a day's events as it sums a day's type tiles.
    """
    lead = np.concatenate([np.full(len(c["us"]), i, np.int64) for i, c in enumerate(leads)] or [np.empty(0, np.int64)])
    cols = {k: np.concatenate([c[k] for c in leads]) for k in ("us", "tcode", "dwell", "night", "weekend")}
    us = cols["us"]
    bucket = grid_day(us, tod_us)
    gap = settings.features.session_gap_minutes * 60_000_000
    within = np.zeros(len(us), dtype=bool)
    within[1:] = (lead[1:] == lead[:-1]) & (bucket[1:] == bucket[:-1]) & (np.diff(us) > gap)
    dwell = cols["dwell"]
    has = ~np.isnan(dwell)
    return {
        "lead": lead,
        "bucket": bucket,
        "tcode": cols["tcode"],
        "n": np.ones(len(us)),
        "dwell_sum": np.where(has, dwell, 0.0),
        "dwell_n": has.astype(np.float64),
        "zero_dwell": (dwell == 0).astype(np.float64),
        "night": cols["night"],
        "weekend": cols["weekend"],
        "sessions": within.astype(np.float64),
        "dwell_max": np.where(has, dwell, -np.inf),
        "us_min": us.astype(np.float64),
        "us_max": us.astype(np.float64),
    }


class DayRowFeatures:
    """Activity features without a tile op (engagement), by their own expressions over a lead's day tiles."""

    def __init__(self, settings: Settings, feats: list[Feature]):
        self.feats = feats
        probe = event_tiles([_one_event()], 0, settings)
        self.columns = sorted(dense_tiles(probe, settings).columns)
        schema = ibis.schema({"lead": "int64", "age": "int64", **dict.fromkeys(self.columns, "float64")})
        t = ibis.table(schema, name="lr_day_rows")
        q = t.group_by("lead").aggregate(**{f.name: f.expr(t) for f in feats}) if feats else None
        self.sql = str(ibis.to_sql(q, dialect="sqlite")) if q is not None else ""
        self.columns = [c for c in self.columns if f'"{c}"' in self.sql]  # only what the expressions read
        self.names = ["lead", "age", *self.columns]
        self._local = threading.local()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(":memory:")
            cols = ", ".join(f'"{n}"' for n in self.names)
            con.execute(f"CREATE TEMP TABLE lr_day_rows ({cols})")
            self._local.con = con
        return con

    def values(self, tiles: DayTiles, day: int, n_leads: int) -> dict[str, np.ndarray]:
        """Each feature per lead code (its default where the lead has no day up to `day`)."""
        out = {f.name: np.full(n_leads, np.nan) for f in self.feats}
        keep = tiles.bucket <= day if len(tiles) else np.zeros(0, dtype=bool)
        if self.feats and keep.any():
            data = [tiles.lead[keep].tolist(), (day - tiles.bucket[keep]).tolist()]
            for name in self.columns:
                col = tiles.columns[name][keep]
                data.append([None if v != v else v for v in col.tolist()])
            con = self._con()
            marks = ", ".join("?" * len(self.names))
            try:
                con.executemany(f"INSERT INTO lr_day_rows VALUES ({marks})", zip(*data))  # nosec B608 # fixed name
                for row in con.execute(self.sql):
                    for f, v in zip(self.feats, row[1:], strict=True):
                        out[f.name][row[0]] = np.nan if v is None else v
            finally:
                con.execute("DELETE FROM lr_day_rows")
        for f in self.feats:
            if f.default is not None:
                out[f.name] = np.where(np.isnan(out[f.name]), f.default, out[f.name])
        return out


def _one_event() -> dict[str, np.ndarray]:
    return {"us": np.array([1], np.int64), "tcode": np.array([0], np.int64)} | {
        k: np.array([0.0]) for k in ("dwell", "night", "weekend")
    }


GIVEN = ("lr_grid_items", "lr_grid_referrals")


def age_edges(registry: FeatureRegistry, settings: Settings) -> np.ndarray:
    """The ages (days before the cutoff) the non-tile features' windows start at: ages between two read alike."""
    edges = {0, *settings.features.windows_days, *(f.window_days for f in registry if f.window_days)}
    return np.array(sorted(edges), np.int64)


def referral_rows(events: pa.Table, cutoff_us: int, edges: np.ndarray) -> pa.Table:
    """`grid.referral_partials` of the events with a referrer, a row per (referrer, edge day, referred lead)."""
    referred = events.filter(pc.is_valid(events["referrer_lead_id"]))
    us = times(referred)
    keep = us <= cutoff_us
    if not keep.any():
        return REFERRAL_ROWS.empty_table()
    referred = referred.filter(pa.array(keep))
    by = pa.table(
        {
            "tenant_id": referred["tenant_id"],
            "lead_id": referred["referrer_lead_id"],
            "referred_lead_id": referred["lead_id"],
        }
    )
    rows, group = grouped(by, ["tenant_id", "lead_id", "referred_lead_id"], edge_days(us[keep], cutoff_us, edges))
    return rows.append_column("n", pa.array(np.bincount(group), pa.int64()))


def catalogue(items: pa.Table | None) -> dict[tuple[str, str], str]:
    """Each (tenant, item)'s category."""
    if items is None:
        return {}
    return dict(zip(zip(items["tenant_id"].to_pylist(), items["item_id"].to_pylist()), items["category"].to_pylist()))


REFERRAL_ROWS = pa.schema(
    [
        pa.field("tenant_id", pa.string()),
        pa.field("lead_id", pa.string()),
        pa.field("referred_lead_id", pa.string()),
        pa.field("bucket", pa.int64()),
        pa.field("n", pa.int64()),
    ]
)


class OnlineTiles:
    """Feature rows of stored leads, as `OnlineFeatures.compute_rows` gives them, from kept histories."""

    def __init__(
        self,
        settings: Settings,
        registry: FeatureRegistry,
        cache_leads: int | None = None,
        query_cache: Path | None = None,
    ):
        self.settings, self.registry = settings, registry
        self.tiled = TileFeatures([f for f in registry if f.tile is not None])
        self.daily = DayRowFeatures(settings, [f for f in registry if f.tile is None and f.source == "activity"])
        rest = [f.name for f in registry if f.tile is None and f.source != "activity"]
        self.rest = OnlineFeatures(settings, registry.select(rest), SKIPPED_STAGES, GIVEN, query_cache)
        self.edges = age_edges(registry, settings)
        self._catalogue: tuple[pa.Table | None, dict[tuple[str, str], str]] = (None, {})
        self.cache = HistoryCache(settings, cache_leads or settings.features.online_tiles_cache_leads)

    def _categories(self, items: pa.Table | None) -> dict[tuple[str, str], str]:
        """The catalogue as a lookup, made again only when another catalogue is passed (a new model's)."""
        if self._catalogue[0] is not items:
            self._catalogue = (items, catalogue(items))
        return self._catalogue[1]

    def compute_rows(
        self,
        store: EventStore,
        tenant: str,
        lead_ids: Sequence[str],
        as_of: pd.Timestamp,
        inline: pa.Table,
        stages: pa.Table,
        items: pa.Table | None = None,
        leads: pa.Table | None = None,
    ) -> tuple[list[str], list[tuple]]:
        """Rows of these stored leads open at `as_of`: their stored events by then plus `inline` (not yet stored,
        each at most once, as the engine checks), with `stages` (stored and sent)."""
        c = epoch_us(as_of)
        inline = split_consent(inline, self.settings)[0]
        own = pc.cast(inline["lead_id"], pa.string())
        categories = self._categories(items)
        tod = c % DAY_US
        parts: list[DayTiles | None] = []
        columns, kept, few, first, item_parts = [], [], [], [], []
        for lead, history in zip(lead_ids, self.cache.get_many(store, tenant, lead_ids), strict=True):
            cols, kept_few, kept_first = history.until(c)
            touches = history.touches
            mine = inline.filter(pc.equal(own, lead)) if inline.num_rows else inline
            grid = None
            if mine.num_rows:
                cols = merge_columns(cols, self.cache.flags.columns(mine))
                mine_few = few_events(mine)
                if mine_few.num_rows:
                    touches = Touches.of(pa.concat_tables([kept_few, mine_few]))
                few.append(mine_few)
                first.append(first_events(mine))
            else:
                grid = history.grid(c)
            memo = history.memo.get("tiles")
            part = memo[1] if grid is not None and memo is not None and memo[0] == grid else None
            if part is None and grid is not None:
                part = spliced(history, cols, c, self.settings)
                if part is not None:
                    history.memo["tiles"] = (grid, part, c)
            parts.append(part)
            kept.append((history, grid))
            columns.append(cols)
            few.append(kept_few)
            first.append(kept_first)
            item_parts.append(touches.rows(c, self.edges, categories))
        given = {
            "lr_grid_items": item_parts[0] if len(item_parts) == 1 else pa.concat_tables(item_parts),
            "lr_grid_referrals": referral_rows(pa.concat_tables(few), c, self.edges),
        }
        names, rest_rows = self.rest.compute_rows(pa.concat_tables(first), stages, [as_of], items, leads, given)
        missing = [i for i, part in enumerate(parts) if part is None]
        if missing:
            made = dense_tiles(event_tiles([columns[i] for i in missing], tod, self.settings), self.settings)
            for k, part in zip(missing, per_lead(made, len(missing)), strict=True):
                parts[k] = part
                history, grid = kept[k]
                if grid is not None:
                    history.memo["tiles"] = (grid, part, c)
        tiles = stacked([p for p in parts if p is not None])
        day = c // DAY_US
        n = len(lead_ids)
        windows = TileWindows(tiles, np.arange(n), np.full(n, day), np.full(n, c))
        values = self.tiled.values(windows) | self.daily.values(tiles, day, n)
        code = {lead: i for i, lead in enumerate(lead_ids)}
        out_names = [*QMETA, *self.registry.names]
        rows = []
        for row in rest_rows:
            found = dict(zip(names, row, strict=True))
            i = code.get(found["lead_id"])
            if i is None:
                continue
            rows.append(tuple(_plain(values[f][i]) if f in values else found[f] for f in out_names))
        return out_names, rows


def spliced(
    history: LeadHistory, columns: dict[str, np.ndarray], cutoff_us: int, settings: Settings
) -> DayTiles | None:
    """The day tiles of a lead's request from its last request's tiles (`LeadHistory.earlier`), made for another
    instant and perhaps before the lead moved: the days before the first one that the events added since or either
    request's instant can change are kept, the rest made again from `columns` (the events cut at `cutoff_us`). None
    when nothing can be kept, as when the grid puts some earlier event on another day.

    The day before the first remade one is made again too and dropped: a day's session start reads the last event
    of the day before it (`dense_tiles`)."""
    earlier = history.earlier(None)
    if earlier is None:
        return None
    kept, since_us = earlier
    (_, rank), part, before_us = kept["tiles"]
    tod = cutoff_us % DAY_US
    if int(np.searchsorted(kept["tods"], tod, side="right")) != rank:  # some earlier event is on another day here
        return None
    first = min(grid_day(t, tod) for t in (cutoff_us, before_us, since_us) if t is not None)
    keep = int(np.searchsorted(part.bucket, first))
    if keep == 0:
        return None
    again = int(part.bucket[keep - 1])
    start = int(np.searchsorted(columns["us"], tod + (again - 1) * DAY_US, side="right"))
    made = dense_tiles(event_tiles([{k: v[start:] for k, v in columns.items()}], tod, settings), settings)
    new = int(np.searchsorted(made.bucket, first))
    return DayTiles(
        np.concatenate([part.lead[:keep], made.lead[new:]]),
        np.concatenate([part.bucket[:keep], made.bucket[new:]]),
        {k: np.concatenate([v[:keep], made.columns[k][new:]]) for k, v in part.columns.items()},
    )


def per_lead(tiles: DayTiles, n: int) -> list[DayTiles]:
    """Day tiles of leads coded 0..n-1 as one set per lead, each coded 0 (views, not copies)."""
    bounds = np.searchsorted(tiles.lead, np.arange(n + 1))
    return [
        DayTiles(tiles.lead[a:b] * 0, tiles.bucket[a:b], {k: v[a:b] for k, v in tiles.columns.items()})
        for a, b in itertools.pairwise(bounds)
    ]


def stacked(parts: list[DayTiles]) -> DayTiles:
    """One set of day tiles of several leads' sets, the i-th coded i."""
    if len(parts) == 1:
        return parts[0]
    names = next((p.columns.keys() for p in parts if len(p)), ())
    return DayTiles(
        np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(parts)] or [np.empty(0, np.int64)]),
        np.concatenate([p.bucket for p in parts] or [np.empty(0, np.int64)]),
        {k: np.concatenate([p.columns[k] for p in parts if len(p)]) for k in names},
    )


def _plain(v: float) -> float | None:
    """A numpy value as the SQLite path returns it: a float, or None for missing."""
    return None if v != v else float(v)
