"""The spine of a feature table: which leads are open at each cutoff, their stage and owner.

A lead exists from its first event or CRM row, whichever is earlier. It is open at a cutoff when
its latest stage at or before the cutoff is not the win or the loss (no stage row means `new`).
Its owner is the salesperson whose card it first touched (first-touch attribution).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from leadradar.config import FunnelConfig
from leadradar.features.grid import DAY_US

QKEY = ["tenant_id", "lead_id", "cutoff_us"]


def prepare_stages(stages: ir.Table, funnel: FunnelConfig) -> ir.Table:
    """Stage rows with integer microseconds and the stage's funnel rank; unknown stages are dropped."""
    ranks = {name: i for i, name in enumerate(funnel.all_stages)}
    st = stages.select("tenant_id", "lead_id", "stage", "us").distinct()
    rank = st.stage.cases(*ranks.items(), else_=ibis.null("int64")).cast("int64")
    st = st.mutate(rank=rank)
    return st.filter(st.rank.notnull())


def lead_index(events: ir.Table, stages: ir.Table) -> ir.Table:
    """One row per lead: first time seen, and the owner from its first event."""
    first = events.group_by(["tenant_id", "lead_id"]).aggregate(ev_first_us=events.us.min())
    at_first = events.view()
    tied = first.inner_join(at_first, ["tenant_id", "lead_id", first.ev_first_us == at_first.us])
    ev = tied.group_by(["tenant_id", "lead_id", "ev_first_us"]).aggregate(owner=tied.sales_id.min())
    st = stages.group_by(["tenant_id", "lead_id"]).aggregate(st_first_us=stages.us.min())
    both = ev.outer_join(st, ["tenant_id", "lead_id"])
    return both.select(
        tenant_id=ibis.coalesce(both.tenant_id, both.tenant_id_right),
        lead_id=ibis.coalesce(both.lead_id, both.lead_id_right),
        first_us=ibis.coalesce(ibis.least(both.ev_first_us, both.st_first_us), both.ev_first_us, both.st_first_us),
        owner=both.owner,
        owner_us=both.ev_first_us,
    )


def stage_asof(candidates: ir.Table, stages: ir.Table, funnel: FunnelConfig) -> ir.Table:
    """Per (lead, cutoff): latest stage and when it began, stage changes and stages reached so far.

    Two rows at the same instant resolve to the later funnel stage.
    """
    keys = candidates.select("tenant_id", "lead_id", "cutoff_us").view()
    stages = stages.view()
    j = keys.inner_join(stages, ["tenant_id", "lead_id"])
    j = j.filter(j.us <= j.cutoff_us)
    won = funnel.all_stages.index(funnel.won)
    agg = j.group_by(QKEY).aggregate(
        stage_since_us=j.us.max(),
        crm_first_us=j.us.min(),
        stage_changes=j.count() - 1,
        max_open_rank=j.rank.max(where=j.rank < won),
        open_stages_seen=j.rank.nunique(where=j.rank < won),
    )
    last = agg.select(*QKEY, "stage_since_us").view()
    at_last = j.inner_join(last, [*QKEY, j.us == last.stage_since_us])
    ranks = at_last.group_by(QKEY).aggregate(last_rank=at_last.rank.max())
    return agg.inner_join(ranks, QKEY)


def build_spine(leads: ir.Table, stages: ir.Table, cutoffs: ir.Table, funnel: FunnelConfig) -> ir.Table:
    """Open leads at every cutoff with stage, days in stage and owner, as of the cutoff only.

    `leads` is the lead index (`lead_index`).
    """
    leads = leads.view()
    cutoffs = cutoffs.view()
    cand = leads.cross_join(cutoffs)
    cand = cand.filter(cand.first_us <= cand.cutoff_us)
    asof = stage_asof(cand, stages, funnel)
    sp = cand.left_join(asof, ["tenant_id", "lead_id", "cutoff_us"]).select(
        cand.tenant_id,
        cand.lead_id,
        cand.cutoff_us,
        cand.K,
        cand.first_us,
        cand.owner,
        cand.owner_us,
        asof.last_rank,
        asof.stage_since_us,
        asof.crm_first_us,
        asof.stage_changes,
        asof.max_open_rank,
        asof.open_stages_seen,
    )
    stage_rank = ibis.coalesce(sp.last_rank, 0)
    stage_since = ibis.coalesce(sp.stage_since_us, sp.first_us)
    won = funnel.all_stages.index(funnel.won)
    sp = sp.mutate(
        stage_rank=stage_rank,
        stage=stage_rank.cases(*enumerate(funnel.all_stages), else_=ibis.null("string")),
        stage_since_us=stage_since,
        sales_id=ibis.ifelse(sp.owner_us <= sp.cutoff_us, sp.owner, ibis.null("string")),
    )
    sp = sp.filter(sp.stage_rank < won)
    return sp.select(*[c for c in sp.columns if c not in ("last_rank", "owner", "owner_us")])


def days_between(later_us: ir.IntegerValue, earlier_us: ir.IntegerValue) -> ir.FloatingValue:
    return (later_us - earlier_us).cast("float64") / DAY_US
