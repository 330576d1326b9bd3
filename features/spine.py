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
_NEVER = 2**62  # a time after every cutoff, in microseconds: the next stage row of a lead's last one


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

    Two rows at the same instant resolve to the later funnel stage. Each stage row carries what holds from it on
    (running counts over the lead's rows in time and funnel order), and a cutoff takes the last row at or before it:
    one range join, where joining every row before the cutoff and aggregating them took 4.4 s against 1.4 s for the
    1.26 M rows of a 10.6 M-event training set.
    """
    won = funnel.all_stages.index(funnel.won)
    lead = ["tenant_id", "lead_id"]
    order = ["us", "rank"]
    so_far = ibis.window(group_by=lead, order_by=order, rows=(None, 0))
    is_open = stages.rank < won
    st = stages.mutate(
        stage_changes=ibis.row_number().over(so_far),
        crm_first_us=stages.us.min().over(ibis.window(group_by=lead)),
        max_open_rank=ibis.ifelse(is_open, stages.rank, ibis.null("int64")).max().over(so_far),
        first_of_rank=ibis.ifelse(
            is_open & (ibis.row_number().over(group_by=[*lead, "rank"], order_by=order) == 0), 1, 0
        ),
        next_us=stages.us.lead().over(group_by=lead, order_by=order),
    )
    st = st.mutate(open_stages_seen=st.first_of_rank.sum().over(so_far))
    keys = candidates.select("tenant_id", "lead_id", "cutoff_us").view()
    last = keys.inner_join(st, [*lead, st.us <= keys.cutoff_us, ibis.coalesce(st.next_us, _NEVER) > keys.cutoff_us])
    return last.select(
        *QKEY,
        stage_since_us=last.us,
        crm_first_us=last.crm_first_us,
        stage_changes=last.stage_changes,
        max_open_rank=last.max_open_rank,
        open_stages_seen=last.open_stages_seen,
        last_rank=last.rank,
    )


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
