"""Events on a day grid aligned to the cutoffs, and per-day partial aggregates.

Every cutoff of one build shares its time of day, so each cutoff is a bucket boundary: bucket k
holds events in (anchor + (k-1) days, anchor + k days]. A cutoff c ends bucket K(c), and "ts <= c"
is exactly "bucket <= K(c)". Sums, counts, maxima and distinct counts over whole-day windows are
then exact from the buckets, at a fraction of the cost of joining every event to every cutoff.
All arithmetic is on integer microseconds so DuckDB and Spark agree to the microsecond.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from leadradar.config import Settings

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000


def ceil_div(x: ir.IntegerValue, d: int) -> ir.IntegerValue:
    """Ceiling division for positive integers, the same on every engine."""
    return ((x + (d - 1)) // d).cast("int64")


def cutoff_grid(cutoffs: ir.Table) -> ir.Table:
    """Cutoffs with their bucket index K and the shared time of day (microseconds after midnight)."""
    us = cutoffs.cutoff_us
    tod = (us % DAY_US).cast("int64")
    return cutoffs.select("cutoff_us", K=((us - tod) // DAY_US).cast("int64"), tod_us=tod)


# The columns an event is compared on when duplicates are dropped (a re-sent event is one event).
DEDUP_COLUMNS = (
    "tenant_id",
    "event_id",
    "lead_id",
    "sales_id",
    "us",
    "event_type",
    "dwell_s",
    "item_id",
    "referrer_lead_id",
)


def prepare_events(events: ir.Table, grid: ir.Table, settings: Settings) -> ir.Table:
    """Deduplicated events with their bucket, local-time flags and session starts."""
    fc = settings.features
    ev = events.select(*DEDUP_COLUMNS).distinct()
    tod = grid.aggregate(tod_us=grid.tod_us.min())
    ev = ev.cross_join(tod)
    us = ev.us
    local_us = us + int(fc.utc_offset_hours * HOUR_US)
    hour = ((local_us // HOUR_US) % 24).cast("int64")
    weekday = (((local_us // DAY_US) + 3) % 7).cast("int64")  # 1970-01-01 was a Thursday
    night = (hour >= fc.night_start_hour) | (hour < fc.night_end_hour)
    codes = [(name, i) for i, name in enumerate(settings.events.types)]
    ev = ev.mutate(
        bucket=ceil_div(us - ev.tod_us, DAY_US),
        tcode=ev.event_type.cases(*codes, else_=-1).cast("int64"),
        night=night.cast("int64"),
        weekend=(weekday >= 5).cast("int64"),
    )
    order = ibis.window(group_by=[ev.tenant_id, ev.lead_id], order_by=[ev.us, ev.event_id])
    prev = ev.us.lag().over(order)
    gap = fc.session_gap_minutes * 60_000_000
    session_start = (prev.isnull() | ((ev.us - prev) > gap)).cast("int64")
    ev = ev.mutate(session_start=session_start)
    # An explicit column list, not .drop(): Ibis writes a drop in set order, which would change the
    # compiled SQL (and the definition hash) from one process to the next.
    return ev.select(*[c for c in ev.columns if c not in ("tod_us", "event_id")])


def event_groups(settings: Settings) -> list[tuple[str, list[str]]]:
    """Every type, every family (`fam_<family>`), all configured types (`any`) and `two_way` contacts."""
    ev = settings.events
    return (
        [(t, [t]) for t in ev.types]
        + [(f"fam_{f}", ev.of_family(f)) for f in ev.families]
        + [("any", list(ev.types)), ("two_way", list(ev.two_way_contact))]
    )


def dwell_groups(settings: Settings) -> set[str]:
    dwell = set(settings.events.dwell_types)
    return {g for g, types in event_groups(settings) if g != "two_way" and dwell & set(types)}


def type_partials(ev: ir.Table) -> ir.Table:
    """Per (lead, day, event type): counts, dwell statistics, time bounds and habits."""
    return ev.group_by(["tenant_id", "lead_id", "bucket", "tcode"]).aggregate(
        n=ev.count(),
        dwell_sum=ev.dwell_s.sum(),
        dwell_n=ev.dwell_s.count(),
        dwell_max=ev.dwell_s.max(),
        zero_dwell=(ev.dwell_s == 0).cast("int64").sum(),
        us_max=ev.us.max(),
        us_min=ev.us.min(),
        night=ev.night.sum(),
        weekend=ev.weekend.sum(),
        sessions=ev.session_start.sum(),
    )


def activity_partials(ev: ir.Table, settings: Settings) -> ir.Table:
    """Per (lead, day): one column per event group and statistic, so features filter on integers only.

    Columns: n__<group>, dsum__/dn__/dmax__<group> for groups with dwell, last__<group> (latest
    microsecond), and day totals: us_min, night, weekend, zero_dwell, sessions. Unknown event types
    count in the day's sessions and time bounds but in no group.
    """
    tp = type_partials(ev)
    code = {name: i for i, name in enumerate(settings.events.types)}
    with_dwell = dwell_groups(settings)
    aggs: dict[str, ir.Value] = {}
    for group, types in event_groups(settings):
        mine = tp.tcode.isin([code[t] for t in types])
        aggs[f"n__{group}"] = ibis.ifelse(mine, tp.n, 0).sum()
        aggs[f"last__{group}"] = ibis.ifelse(mine, tp.us_max, ibis.null("int64")).max()
        if group in with_dwell:
            aggs[f"dsum__{group}"] = ibis.ifelse(mine, tp.dwell_sum, ibis.null("float64")).sum()
            aggs[f"dn__{group}"] = ibis.ifelse(mine, tp.dwell_n, 0).sum()
            aggs[f"dmax__{group}"] = ibis.ifelse(mine, tp.dwell_max, ibis.null("float64")).max()
    return tp.group_by(["tenant_id", "lead_id", "bucket"]).aggregate(
        **aggs,
        us_min=tp.us_min.min(),
        night=tp.night.sum(),
        weekend=tp.weekend.sum(),
        zero_dwell=tp.zero_dwell.sum(),
        sessions=tp.sessions.sum(),
    )


def item_partials(ev: ir.Table, items: ir.Table | None) -> ir.Table:
    """Per (lead, day, item): views and dwell, with the item's category when a catalogue is given."""
    touched = ev.filter(ev.item_id.notnull())
    part = touched.group_by(["tenant_id", "lead_id", "bucket", "item_id"]).aggregate(
        n=touched.count(), dwell_sum=touched.dwell_s.sum()
    )
    if items is None:
        return part.mutate(category=ibis.null("string"))
    cat = items.select("tenant_id", "item_id", "category")
    return part.left_join(cat, ["tenant_id", "item_id"]).select(*part.columns, "category")


def referral_partials(ev: ir.Table) -> ir.Table:
    """Per (referrer, day, referred lead): visits that a lead's shares brought to the card."""
    referred = ev.filter(ev.referrer_lead_id.notnull())
    return referred.group_by(
        ["tenant_id", referred.referrer_lead_id.name("lead_id"), "bucket", referred.lead_id.name("referred_lead_id")]
    ).aggregate(n=referred.count())


@dataclass(frozen=True)
class Grid:
    """Everything the feature families read, as unexecuted Ibis tables."""

    cutoffs: ir.Table
    events: ir.Table
    activity: ir.Table
    items: ir.Table
    referrals: ir.Table


Stage = Callable[[str, ir.Table], ir.Table]


def no_stage(name: str, table: ir.Table) -> ir.Table:
    return table


def build_grid(
    events: ir.Table, cutoffs: ir.Table, settings: Settings, items: ir.Table | None = None, stage: Stage = no_stage
) -> Grid:
    """The grid's tables; `stage` may materialise each one so later steps read it instead of recomputing."""
    grid = stage("lr_grid_cutoffs", cutoff_grid(cutoffs))
    ev = stage("lr_grid_events", prepare_events(events, grid, settings))
    return Grid(
        cutoffs=grid,
        events=ev,
        activity=stage("lr_grid_activity", activity_partials(ev, settings)),
        items=stage("lr_grid_items", item_partials(ev, items)),
        referrals=stage("lr_grid_referrals", referral_partials(ev)),
    )
