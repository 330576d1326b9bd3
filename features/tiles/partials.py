"""Day tiles from events, as Ibis expressions (DuckDB or Spark): per (lead, day, event type) partials.

The same columns as `features.grid.type_partials`, with one difference that makes each day independent
of the others: `sessions` counts the session starts among a day's events after its first, and the merge
(features/tiles/dense.py) decides whether the first one starts a session from the lead's previous tile.
A day's tiles therefore change only when that day's events do, which is what lets a build keep them.
"""

from __future__ import annotations

from collections.abc import Iterable

import ibis
import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.grid import DAY_US, DEDUP_COLUMNS, HOUR_US, ceil_div, type_partials


def day_bucket(us: ir.IntegerValue, tod_us: int) -> ir.IntegerValue:
    """The grid's day of a time: bucket k holds (tod + (k-1) days, tod + k days], as in features/grid.py."""
    return ceil_div(us - tod_us, DAY_US)


def distinct_rows(events: ir.Table) -> ir.Table:
    """The events with repeated rows dropped, as `distinct()` would, at the cost of grouping one integer.

    Only rows whose event id's hash repeats can be repeats, so only those are compared on every column;
    a hash collision sends more rows to that comparison, never fewer, so the result is exact.
    """
    keyed = events.mutate(id_hash=events.event_id.hash())
    counts = keyed.group_by("id_hash").aggregate(copies=keyed.count())
    repeated = counts.filter(counts.copies > 1).select("id_hash")
    once = keyed.anti_join(repeated, "id_hash").select(*events.columns)
    again = keyed.semi_join(repeated, "id_hash").select(*events.columns).distinct()
    return once.union(again)


def day_events(events: ir.Table, tod_us: int, settings: Settings, days: Iterable[int] | None = None) -> ir.Table:
    """Deduplicated events with their day, type code, local-time flags and within-day session starts."""
    fc = settings.features
    ev = events.select(*DEDUP_COLUMNS)
    ev = ev.mutate(bucket=day_bucket(ev.us, tod_us))
    if days is not None:
        ev = ev.filter(ev.bucket.isin(sorted(days)))
    ev = distinct_rows(ev)
    local_us = ev.us + int(fc.utc_offset_hours * HOUR_US)
    hour = ((local_us // HOUR_US) % 24).cast("int64")
    weekday = (((local_us // DAY_US) + 3) % 7).cast("int64")  # 1970-01-01 was a Thursday
    night = (hour >= fc.night_start_hour) | (hour < fc.night_end_hour)
    codes = [(name, i) for i, name in enumerate(settings.events.types)]
    ev = ev.mutate(
        tcode=ev.event_type.cases(*codes, else_=-1).cast("int64"),
        night=night.cast("int64"),
        weekend=(weekday >= 5).cast("int64"),
    )
    order = ibis.window(group_by=[ev.tenant_id, ev.lead_id, ev.bucket], order_by=[ev.us, ev.event_id])
    prev = ev.us.lag().over(order)
    gap = fc.session_gap_minutes * 60_000_000
    return ev.mutate(session_start=(prev.notnull() & ((ev.us - prev) > gap)).cast("int64"))


def day_tiles(events: ir.Table, tod_us: int, settings: Settings, days: Iterable[int] | None = None) -> ir.Table:
    """Per (tenant, lead, day, type code): the grid's type partials, sessions counted within the day."""
    return type_partials(day_events(events, tod_us, settings, days))


def day_fingerprints(events: ir.Table, tod_us: int) -> ir.Table:
    """Per day: its number of event rows and a sum of their hashes, to tell which days changed since a build."""
    ev = events.select(*DEDUP_COLUMNS)
    row = ibis.struct({c: ev[c] for c in DEDUP_COLUMNS}).hash()
    ev = ev.mutate(bucket=day_bucket(ev.us, tod_us), h=row % 1_000_000_007)
    return ev.group_by("bucket").aggregate(rows=ev.count(), hsum=ev.h.sum())
