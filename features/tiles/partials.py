"""Day tiles from events, as Ibis expressions (DuckDB or Spark): per (lead, day, event type) partials.

The same columns as `features.grid.type_partials`, with two differences. Each day is independent of the
others: `sessions` counts the session starts among a day's events after its first, and the merge
(features/tiles/dense.py) decides whether the first one starts a session from the lead's previous tile.
And the session starts are counted without ordering events: one extra row per (lead, day), of type code
`SESSION_ROW`, holds them with the day's first and last time and zero counts, from the events' time slots
(`day_sessions`). A day's tiles therefore change only when that day's events do, which lets a build keep them.
"""

from __future__ import annotations

from collections.abc import Iterable

import ibis
import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.engines import hash64
from leadradar.features.grid import DAY_US, DEDUP_COLUMNS, HOUR_US, ceil_div, type_partials

SESSION_ROW = -2  # the type code of a day's session row: no event group holds it


def day_bucket(us: ir.IntegerValue, tod_us: int) -> ir.IntegerValue:
    """The grid's day of a time: bucket k holds (tod + (k-1) days, tod + k days], as in features/grid.py."""
    return ceil_div(us - tod_us, DAY_US)


def repeated_ids(events: ir.Table) -> ir.Table:
    """The hashes of event ids that occur more than once: only rows with such an id can be repeats."""
    keyed = events.select(id_hash=hash64(events.event_id, events))
    counts = keyed.group_by("id_hash").aggregate(copies=keyed.count())
    return counts.filter(counts.copies > 1).select("id_hash")


def without_repeats(events: ir.Table, repeated: ir.Table) -> ir.Table:
    """The events with repeated rows dropped, as `distinct()` would, comparing every column only of the rows whose
    id hash is in `repeated` (a collision sends more rows to that comparison, never fewer: the result is exact)."""
    keyed = events.mutate(id_hash=hash64(events.event_id, events))
    once = keyed.anti_join(repeated, "id_hash").select(*events.columns)
    again = keyed.semi_join(repeated, "id_hash").select(*events.columns).distinct()
    return once.union(again)


def distinct_rows(events: ir.Table) -> ir.Table:
    """The events with repeated rows dropped, at the cost of grouping one integer rather than every column."""
    return without_repeats(events, repeated_ids(events))


def _dated(events: ir.Table, tod_us: int, days: Iterable[int] | None) -> ir.Table:
    ev = events.select(*DEDUP_COLUMNS)
    ev = ev.mutate(bucket=day_bucket(ev.us, tod_us))
    return ev if days is None else ev.filter(ev.bucket.isin(sorted(days)))


def day_events(
    events: ir.Table, tod_us: int, settings: Settings, days: Iterable[int] | None = None, unique: bool = False
) -> ir.Table:
    """Deduplicated events with their day, type code and local-time flags; `unique`: no row repeats already."""
    fc = settings.features
    ev = _dated(events, tod_us, days)
    ev = ev if unique else distinct_rows(ev)
    local_us = ev.us + int(fc.utc_offset_hours * HOUR_US)
    hour = ((local_us // HOUR_US) % 24).cast("int64")
    weekday = (((local_us // DAY_US) + 3) % 7).cast("int64")  # 1970-01-01 was a Thursday
    night = (hour >= fc.night_start_hour) | (hour < fc.night_end_hour)
    codes = [(name, i) for i, name in enumerate(settings.events.types)]
    return ev.mutate(
        tcode=ev.event_type.cases(*codes, else_=-1).cast("int64"),
        night=night.cast("int64"),
        weekend=(weekday >= 5).cast("int64"),
        session_start=ibis.literal(0, "int64"),
    )


def day_sessions(events: ir.Table, tod_us: int, settings: Settings, days: Iterable[int] | None = None) -> ir.Table:
    """Per (lead, day): session starts after the day's first event, and the day's first and last time.

    Times within one slot of `session_gap` are closer than the gap, so only a slot's first time can start a
    session, and it does when the day's previous slot is empty or ended more than the gap before: two
    groupings and a join, where a window would sort every event. Repeated events change no minimum or maximum.
    """
    gap = settings.features.session_gap_minutes * 60_000_000
    ev = _dated(events, tod_us, days)
    ev = ev.mutate(slot=ev.us // gap)
    day = ["tenant_id", "lead_id", "bucket"]
    slots = ev.group_by([*day, "slot"]).aggregate(lo=ev.us.min(), hi=ev.us.max())
    prev = slots.select(*day, slot=slots.slot + 1, prev_hi=slots.hi)
    j = slots.left_join(prev, [*day, "slot"])
    starts = (j.prev_hi.isnull() | ((j.lo - j.prev_hi) > gap)).cast("int64")
    return j.group_by(day).aggregate(sessions=starts.sum() - 1, us_min=j.lo.min(), us_max=j.hi.max())


def day_tiles(
    events: ir.Table, tod_us: int, settings: Settings, days: Iterable[int] | None = None, unique: bool = False
) -> ir.Table:
    """Per (tenant, lead, day, type code): the grid's type partials; plus each day's session row.

    `unique` says the events hold no repeated row already (`without_repeats`), so none is looked for.
    """
    types = type_partials(day_events(events, tod_us, settings, days, unique))
    s = day_sessions(events, tod_us, settings, days)
    zero, none = ibis.literal(0, "int64"), ibis.null("float64")
    rows = s.select(
        "tenant_id",
        "lead_id",
        "bucket",
        tcode=ibis.literal(SESSION_ROW, "int64"),
        n=zero,
        dwell_sum=none,
        dwell_n=zero,
        dwell_max=none,
        zero_dwell=zero,
        us_max=s.us_max,
        us_min=s.us_min,
        night=zero,
        weekend=zero,
        sessions=s.sessions,
    )
    return types.union(rows.cast(types.schema()))
