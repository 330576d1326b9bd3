"""Context beyond the lead's own events: its salesperson's track record and the CRM's static attributes.

A salesperson's win rate counts only leads closed (won or lost) at or before the cutoff, and only
leads whose first event (which makes the salesperson their owner) was known by then.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from leadradar.config import Settings

QKEY = ["tenant_id", "lead_id", "cutoff_us"]


def outcomes(stages: ir.Table, settings: Settings) -> ir.Table:
    """Per lead: when it first closed, and whether that close was a win."""
    funnel = settings.funnel
    won, lost = funnel.all_stages.index(funnel.won), funnel.all_stages.index(funnel.lost)
    closed = stages.filter(stages.rank.isin([won, lost]))
    per = closed.group_by(["tenant_id", "lead_id"]).aggregate(
        closed_us=closed.us.min(), won_us=closed.us.min(where=closed.rank == won)
    )
    return per.mutate(won=(per.won_us.notnull() & (per.won_us <= per.closed_us)).cast("int64"))


def sales_context(
    spine: ir.Table, leads: ir.Table, stages: ir.Table, cutoffs: ir.Table, settings: Settings
) -> ir.Table:
    """Per open (lead, cutoff): its owner's wins, closes and open workload, and its tenant's, as of the cutoff."""
    out = outcomes(stages, settings)
    owned = leads.select("tenant_id", "lead_id", "owner", "owner_us").inner_join(out, ["tenant_id", "lead_id"]).view()
    owned = owned.cross_join(cutoffs.select("cutoff_us").view()).view()
    known = owned.filter((owned.closed_us <= owned.cutoff_us) & (owned.owner_us <= owned.cutoff_us))
    by_sales = known.group_by(["tenant_id", known.owner.name("sales_id"), "cutoff_us"]).aggregate(
        s_wins=known.won.sum(), s_closed=known.count()
    )
    by_tenant = known.group_by(["tenant_id", "cutoff_us"]).aggregate(t_wins=known.won.sum(), t_closed=known.count())
    owned_open = spine.filter(spine.sales_id.notnull())
    workload = owned_open.group_by(["tenant_id", "sales_id", "cutoff_us"]).aggregate(s_open=owned_open.count())
    keys = spine.select(*QKEY, "sales_id").view()
    j = (
        keys.left_join(by_sales, ["tenant_id", "sales_id", "cutoff_us"])
        .select(keys, by_sales.s_wins, by_sales.s_closed)
        .view()
    )
    j = j.left_join(by_tenant, ["tenant_id", "cutoff_us"]).select(j, by_tenant.t_wins, by_tenant.t_closed).view()
    j = j.left_join(workload, ["tenant_id", "sales_id", "cutoff_us"]).select(j, workload.s_open).view()
    return j.select(
        *QKEY,
        s_wins=ibis.coalesce(j.s_wins, 0),
        s_closed=ibis.coalesce(j.s_closed, 0),
        t_wins=ibis.coalesce(j.t_wins, 0),
        t_closed=ibis.coalesce(j.t_closed, 0),
        s_open=j.s_open,
    )


def lead_attributes(spine: ir.Table, leads_table: ir.Table | None, settings: Settings) -> ir.Table:
    """Per open (lead, cutoff): the configured static CRM attributes (missing when no leads table is given)."""
    names = list(settings.features.lead_attributes)
    keys = spine.select(*QKEY)
    if leads_table is None:
        return keys.mutate(**{f"attr_{n}": ibis.null("string") for n in names})
    attrs = leads_table.select("tenant_id", "lead_id", *names)
    j = keys.left_join(attrs, ["tenant_id", "lead_id"])
    return j.select(*QKEY, **{f"attr_{n}": j[n].cast("string") for n in names})
