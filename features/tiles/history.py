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

import itertools
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
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
from leadradar.features.grid import DAY_US
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
        ev = ev.order_by(["lead_id", "us", "event_id"]).select("lead_id", *FLAG_COLUMNS)
        self.sql = str(ibis.to_sql(ev, dialect="sqlite"))
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
        """One lead's events' flag columns, deduplicated and ordered by time."""
        return next(iter(self.by_lead(events).values()), None) or empty_columns()

    def by_lead(self, events: pa.Table) -> dict[str, dict[str, np.ndarray]]:
        """Each lead's flag columns (as `columns`), every lead's events in one run."""
        if events.num_rows == 0:
            return {}
        con = self._con()
        table = with_us(events).select(FEATURE_EVENT_SCHEMA.names).cast(FEATURE_EVENT_SCHEMA).to_pydict()
        marks = ", ".join("?" * len(FEATURE_EVENT_SCHEMA.names))
        try:
            con.executemany(f"INSERT INTO lr_events VALUES ({marks})", zip(*table.values()))  # nosec B608 # fixed name
            rows = con.execute(self.sql).fetchall()
        finally:
            con.execute("DELETE FROM lr_events")
        data = list(zip(*rows))
        leads = np.array(data[0], dtype=object)
        columns = {
            "us": np.array(data[1], np.int64),
            "tcode": np.array(data[2], np.int64),
            "dwell": np.array(data[3], np.float64),  # None reads as NaN
            "night": np.array(data[4], np.float64),
            "weekend": np.array(data[5], np.float64),
        }
        edges = [0, *(np.flatnonzero(leads[1:] != leads[:-1]) + 1).tolist(), len(leads)]
        return {leads[a]: {k: v[a:b] for k, v in columns.items()} for a, b in itertools.pairwise(edges)}


def empty_columns() -> dict[str, np.ndarray]:
    return {"us": np.empty(0, np.int64), "tcode": np.empty(0, np.int64)} | {
        k: np.empty(0) for k in ("dwell", "night", "weekend")
    }


def merge_columns(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two sets of event columns, each ordered by time, as one (late events land in their place, after those of
    their instant in `a`): a lead's few new events are inserted, not the whole history sorted again."""
    if len(b["us"]) == 0:
        return a
    at = np.searchsorted(a["us"], b["us"], side="right")
    return {k: np.insert(a[k], at, b[k]) for k in a}


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
    # The store's log position when it was last known current (`EventStore.log_position`; None: not known).
    seen: tuple[int, int] | None = field(default=None, repr=False)

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
        us = times(events)
        if self.first.num_rows and (len(us) == 0 or us.min() > self.first_us[0]):  # the usual move: not the first
            first, first_us = self.first, self.first_us
        else:
            first = first_events(pa.concat_tables([self.first, events]))
            first_us = times(first)
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
        added = flags.columns(events)
        columns = merge_columns(self.columns, added)
        extended = LeadHistory(count, top, columns, few, few_us, first, first_us, touches)
        tods = self.memo.get("tods")
        if tods is not None and len(tods) == len(self.columns["us"]):  # the times of day sorted, new ones inserted
            new_tods = np.sort(added["us"] % DAY_US)
            extended.memo["tods"] = np.insert(tods, np.searchsorted(tods, new_tods), new_tods)
        earlier = self.earlier(int(added["us"].min()) if len(added["us"]) else None)
        if earlier is not None:
            extended.memo["earlier"] = earlier
        return extended

    def earlier(self, since_us: int | None) -> tuple[dict[str, Any], int | None] | None:
        """What the last request made of this history (its day tiles and the events' sorted times of day), carried
        into the history extended from it with the earliest time of the events added since (`since_us`; None: none):
        a request after a move then remakes only the days from there on (features/tiles/online.py `spliced`).
        Only those two entries are carried, so a lead that moves all day holds one earlier request, not a chain."""
        if "tiles" in self.memo and "tods" in self.memo:
            return {"tiles": self.memo["tiles"], "tods": self.memo["tods"]}, since_us
        if "earlier" in self.memo:
            kept, before = self.memo["earlier"]
            return kept, before if since_us is None else since_us if before is None else min(before, since_us)
        return None


def _route(kept: LeadHistory, position: tuple[int, int] | None) -> str:
    """How a kept history is brought up to date: "current" (nothing stored, deleted or rewritten since it was last
    current), "since" (events stored since, fewer than its own, nothing deleted: read that stretch of the log), or
    "mark" (ask the store for its count and newest position, which also tell a deletion; and when the log went
    back, as a store file restored from a copy does)."""
    if position is None or kept.seen is None or kept.seen[1] != position[1] or position[0] < kept.seen[0]:
        return "mark"
    if kept.seen[0] == position[0]:
        return "current"
    return "since" if position[0] - max(kept.seen[0], kept.top) < kept.count else "mark"


def _codes(events: pa.Table, leads: list[str]) -> np.ndarray:
    """Each event's lead as its place in `leads` (every event's lead is one of them)."""
    return pc.index_in(events["lead_id"], value_set=pa.array(leads, pa.string())).to_numpy(zero_copy_only=False)


class HistoryCache:
    """Kept lead histories of one process, the least recently used dropped past `size` leads."""

    def __init__(self, settings: Settings, size: int):
        self.settings, self.size = settings, size
        self.flags = EventFlags(settings)
        self._kept: OrderedDict[tuple[str, str, str], LeadHistory] = OrderedDict()
        self._lock = threading.Lock()
        self.read_rows = 0  # events read from the store by the last `get` (what a refresh cost)

    def holds(self, store: EventStore, tenant: str, leads: Sequence[str]) -> bool:
        """Whether every one of these leads' histories is kept: then their features cost a merge of what arrived
        since, not a read of their whole history."""
        with self._lock:
            return all((store.url, tenant, lead) in self._kept for lead in leads)

    def get(self, store: EventStore, tenant: str, lead: str) -> LeadHistory:
        """The lead's history as stored now: kept and extended by what arrived since, or read whole."""
        return self.get_many(store, tenant, [lead])[0]

    def get_many(self, store: EventStore, tenant: str, leads: Sequence[str]) -> list[LeadHistory]:
        """These leads' histories as stored now (as `get`), with one question to the store for all their marks and
        one read of the leads not kept: a rescoring batch asks twice, not twice per lead. Where the store tells its
        log position (SQLite), a kept lead asks nothing more when nothing was stored since it was last current, and
        reads only that stretch of the log when it is shorter than its history."""
        position = store.log_position()
        with self._lock:
            kept = [self._kept.get((store.url, tenant, lead)) for lead in leads]
        routes = [None if k is None else _route(k, position) for k in kept]
        marked = [lead for lead, route in zip(leads, routes, strict=True) if route == "mark"]
        marks = store.lead_marks(tenant, marked) if marked else {}
        self.read_rows = 0
        histories: dict[str, LeadHistory] = {}
        for lead, k, route in zip(leads, kept, routes, strict=True):
            if k is None:
                continue
            if route == "current":
                histories[lead] = k
            elif route == "since" and position is not None:
                histories[lead] = self._since(store, tenant, lead, k, position[0])
            else:
                count, top = marks.get(lead, (0, 0))
                fresh = (k.top, k.count) == (top, count)
                histories[lead] = k if fresh else self._refreshed(store, tenant, lead, k, count, top)
        unread = list(dict.fromkeys(lead for lead in leads if lead not in histories))
        if unread:
            histories |= self._read(store, tenant, unread)
        with self._lock:
            for lead in dict.fromkeys(leads):
                key = (store.url, tenant, lead)
                histories[lead].seen = position
                self._kept[key] = histories[lead]
                self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return [histories[lead] for lead in leads]

    def _since(self, store: EventStore, tenant: str, lead: str, kept: LeadHistory, upto: int) -> LeadHistory:
        """A kept history with the lead's events stored since it was last current merged in, read by walking that
        stretch of the log (nothing was deleted or rewritten since: `_route`)."""
        assert kept.seen is not None  # nosec B101 # `_route` sends only histories with a known position here
        after = max(kept.seen[0], kept.top)
        if upto <= after:
            return kept
        new, seq = store.lead_histories(tenant, [lead], after_seq=after, upto_seq=upto, by_log=True)
        self.read_rows += new.num_rows
        if not len(seq):
            return kept
        return kept.extended(split_consent(new, self.settings)[0], self.flags, int(seq.max()), kept.count + len(seq))

    def _read(self, store: EventStore, tenant: str, leads: list[str]) -> dict[str, LeadHistory]:
        """Leads' whole histories in one read; each one's mark is counted from the rows read, so it is theirs."""
        events, seq = store.lead_histories(tenant, leads)
        self.read_rows += events.num_rows
        codes = _codes(events, leads)
        order = np.argsort(codes, kind="stable")  # each lead's rows together, in log order
        edges = np.searchsorted(codes[order], np.arange(len(leads) + 1))
        events = split_consent(events.take(pa.array(order)), self.settings)[0] if len(order) else events
        kept_edges = np.searchsorted(_codes(events, leads), np.arange(len(leads) + 1))
        flags = self.flags.by_lead(events)
        out = {}
        for i, lead in enumerate(leads):
            mine = seq[order[edges[i] : edges[i + 1]]]
            count, top = len(mine), int(mine.max()) if len(mine) else 0
            own = events.slice(kept_edges[i], kept_edges[i + 1] - kept_edges[i])
            out[lead] = LeadHistory.of(count, top, flags.get(lead) or empty_columns(), own)
        return out

    def _refreshed(
        self, store: EventStore, tenant: str, lead: str, kept: LeadHistory, count: int, top: int
    ) -> LeadHistory:
        """A kept history brought up to the lead's mark (`count` events, the newest at `top`): what arrived since
        merged in, or the lead read again when something was deleted."""
        after = kept.top if top > kept.top else None
        if after is None:
            return self._read(store, tenant, [lead])[lead]
        shorter = top - after < count  # the log since is shorter than the lead's events
        new = store.events(tenant, leads=[lead], after_seq=after, upto_seq=top, by_log=shorter)
        self.read_rows += new.num_rows
        if kept.count + new.num_rows != count:  # something was deleted: read the lead again
            return self._read(store, tenant, [lead])[lead]
        return kept.extended(split_consent(new, self.settings)[0], self.flags, top, count)

    def forget(self, tenant: str, lead: str) -> None:
        """Drop what is kept of a lead (it is read again if it is scored again)."""
        with self._lock:
            for key in [k for k in self._kept if k[1:] == (tenant, lead)]:
                del self._kept[key]
