"""A stored lead's history kept for online scoring: its events as the few numeric columns tiles are made of.

Day tiles on a fixed grid cannot give a request's windows: a window ends at the request's own instant, and
active days and engagement count the 24-hour days that end there, so every kept day would be split at a time of
day that changes with each request. What is kept per lead instead is what any grid's tiles are made from:
each event's time, type code, dwell and local-time flags (from `features.tiles.partials.day_events`, the batch
tiles' own definition), plus the few events the non-tile features read (with an item or a referrer, or at the
lead's first time). A request then folds them into its own day tiles with the batch merge code
(features/tiles/online.py). The store's log position and the lead's event count tell what arrived since (read
alone, late or not) and whether anything was deleted (forget, retention: the lead is read again).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import ibis
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leadradar.config import Settings
from leadradar.features.build import unbound_inputs
from leadradar.features.consent import split_consent
from leadradar.features.contract import FEATURE_EVENT_SCHEMA
from leadradar.features.online import SQL_TYPES, with_us
from leadradar.features.store import EventStore
from leadradar.features.tiles.partials import day_events
from leadradar.features.tiles.touches import Touches, by_time, grid_rank, times

FLAG_COLUMNS = ("us", "tcode", "dwell_s", "night", "weekend")


class EventFlags:
    """`day_events` (type code, night and weekend flags, deduplication) compiled once to SQLite, run on few rows."""

    def __init__(self, settings: Settings):
        # Repeats dropped by `distinct` (SQLite has no hash for the batch's cheaper route); the added columns are
        # functions of the compared ones, so it drops the same rows.
        ev = day_events(unbound_inputs(settings, with_items=False)["events"], 0, settings, unique=True).distinct()
        self.sql = str(ibis.to_sql(ev.order_by(["us", "event_id"]).select(*FLAG_COLUMNS), dialect="sqlite"))
        self._local = threading.local()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(":memory:")
            cols = ", ".join(f'"{f.name}" {SQL_TYPES[f.type]}' for f in FEATURE_EVENT_SCHEMA)
            con.execute(f"CREATE TEMP TABLE lr_events ({cols})")
            self._local.con = con
        return con

    def columns(self, events: pa.Table) -> dict[str, np.ndarray]:
        """The events' flag columns, deduplicated and ordered by time."""
        if events.num_rows == 0:
            return empty_columns()
        con = self._con()
        table = with_us(events).select(FEATURE_EVENT_SCHEMA.names).cast(FEATURE_EVENT_SCHEMA).to_pydict()
        marks = ", ".join("?" * len(FEATURE_EVENT_SCHEMA.names))
        try:
            con.executemany(f"INSERT INTO lr_events VALUES ({marks})", zip(*table.values()))  # nosec B608 # fixed name
            rows = con.execute(self.sql).fetchall()
        finally:
            con.execute("DELETE FROM lr_events")
        data = list(zip(*rows))
        return {
            "us": np.array(data[0], np.int64),
            "tcode": np.array(data[1], np.int64),
            "dwell": np.array(data[2], np.float64),  # None reads as NaN
            "night": np.array(data[3], np.float64),
            "weekend": np.array(data[4], np.float64),
        }


def empty_columns() -> dict[str, np.ndarray]:
    return {"us": np.empty(0, np.int64), "tcode": np.empty(0, np.int64)} | {
        k: np.empty(0) for k in ("dwell", "night", "weekend")
    }


def merge_columns(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two sets of event columns as one, ordered by time (late events land in their place)."""
    if len(b["us"]) == 0:
        return a
    both = {k: np.concatenate([a[k], b[k]]) for k in a}
    order = np.argsort(both["us"], kind="stable")
    return {k: v[order] for k, v in both.items()}


def few_events(events: pa.Table) -> pa.Table:
    """The events the non-tile features read besides the first ones: those with an item or a referrer."""
    keep = pc.or_(pc.is_valid(events["item_id"]), pc.is_valid(events["referrer_lead_id"]))
    return events.filter(keep)


def first_events(events: pa.Table) -> pa.Table:
    """The events at the lead's earliest time (its owner and first-seen time)."""
    if events.num_rows == 0:
        return events
    us = pc.cast(events["ts"], pa.int64())
    return events.filter(pc.equal(us, pc.min(us)))


@dataclass
class LeadHistory:
    """One lead's stored events up to log position `top` (`count` of them), as flag columns and few events (ordered
    by time, so a request cuts them by slicing; those with an item also grouped by item, `touches`)."""

    count: int
    top: int
    columns: dict[str, np.ndarray]
    few: pa.Table
    few_us: np.ndarray
    first: pa.Table
    first_us: np.ndarray
    touches: Touches
    memo: dict[str, Any] = field(default_factory=dict, repr=False)  # what requests made of it, reused

    @classmethod
    def of(cls, count: int, top: int, columns: dict[str, np.ndarray], events: pa.Table) -> LeadHistory:
        few, few_us = by_time(few_events(events))
        first = first_events(events)
        return cls(count, top, columns, few, few_us, first, times(first), Touches.of(few))

    def until(self, until_us: int) -> tuple[dict[str, np.ndarray], pa.Table, pa.Table]:
        """Flag columns, few events and first events of the events at or before `until_us` (slices, not copies)."""
        n = int(np.searchsorted(self.columns["us"], until_us, side="right"))
        cols = {k: v[:n] for k, v in self.columns.items()}
        few = self.few.slice(0, int(np.searchsorted(self.few_us, until_us, side="right")))
        first = self.first.slice(0, int(np.searchsorted(self.first_us, until_us, side="right")))
        return cols, few, first

    def grid(self, until_us: int) -> tuple[int, int]:
        """The events cut at `until_us` and their days on its grid: requests that agree on it have the same tiles."""
        n = int(np.searchsorted(self.columns["us"], until_us, side="right"))
        return n, grid_rank(self.columns["us"], until_us, self.memo)

    def extended(self, events: pa.Table, flags: EventFlags, top: int, count: int) -> LeadHistory:
        """With events stored since `top` merged in (late ones included): only they are read, flagged and grouped."""
        first = first_events(pa.concat_tables([self.first, events]))
        few, few_us, touches = self.few, self.few_us, self.touches
        new, new_us = by_time(few_events(events))
        if len(new_us):
            few, few_us = pa.concat_tables([few, new]), np.concatenate([few_us, new_us])
            if len(self.few_us) and new_us[0] < self.few_us[-1]:  # a late one: back into time order
                order = np.argsort(few_us, kind="stable")
                few, few_us = few.take(pa.array(order)), few_us[order]
            elif few.column(0).num_chunks > 32:  # a piece per merge; a lead that moves all day would have thousands
                few = few.combine_chunks()
            touches = touches.extended(new)
        columns = merge_columns(self.columns, flags.columns(events))
        return LeadHistory(count, top, columns, few, few_us, first, times(first), touches)


class HistoryCache:
    """Kept lead histories of one process, the least recently used dropped past `size` leads."""

    def __init__(self, settings: Settings, size: int):
        self.settings, self.size = settings, size
        self.flags = EventFlags(settings)
        self._kept: OrderedDict[tuple[str, str, str], LeadHistory] = OrderedDict()
        self._lock = threading.Lock()
        self.read_rows = 0  # events read from the store by the last `get` (what a refresh cost)

    def get(self, store: EventStore, tenant: str, lead: str) -> LeadHistory:
        """The lead's history as stored now: kept and extended by what arrived since, or read whole."""
        key = (store.url, tenant, lead)
        count, top = store.lead_mark(tenant, lead)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and (kept.top, kept.count) == (top, count):
            self.read_rows = 0
            history = kept
        else:
            after = kept.top if kept is not None and top > kept.top else None
            shorter = after is not None and top - after < count  # the log since is shorter than the lead's events
            new = store.events(tenant, leads=[lead], after_seq=after, upto_seq=top, by_log=shorter)
            self.read_rows = new.num_rows
            new = split_consent(new, self.settings)[0]
            if kept is not None and after is not None and kept.count + self.read_rows == count:
                history = kept.extended(new, self.flags, top, count)
            else:
                if after is not None:  # something was deleted: read the lead again
                    new = split_consent(store.events(tenant, leads=[lead], upto_seq=top), self.settings)[0]
                    self.read_rows = new.num_rows
                history = LeadHistory.of(count, top, self.flags.columns(new), new)
        with self._lock:
            self._kept[key] = history
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return history

    def forget(self, tenant: str, lead: str) -> None:
        """Drop what is kept of a lead (it is read again if it is scored again)."""
        with self._lock:
            for key in [k for k in self._kept if k[1:] == (tenant, lead)]:
                del self._kept[key]
