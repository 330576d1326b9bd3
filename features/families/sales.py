"""The salesperson behind the lead: track record and workload, known by the cutoff."""

from __future__ import annotations

import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.feature import Feature


def tenant_rate(t: ir.Table) -> ir.FloatingValue:
    """The tenant's win rate among closed leads, with one win in two as a weak prior."""
    return (t.t_wins + 1).cast("float64") / (t.t_closed + 2)


def declare(settings: Settings) -> list[Feature]:
    m = settings.features.sales_prior_strength
    return [
        Feature(
            name="sales_win_rate",
            family="sales",
            source="sales",
            topic="sales_record",
            kind="share",
            expr=lambda t: (t.s_wins + m * tenant_rate(t)) / (t.s_closed + m),
            en="the salesperson wins {value} of closed leads",
            zh="该销售的成交率为{value}",
        ),
        Feature(
            name="sales_closed_leads",
            family="sales",
            source="sales",
            topic="sales_record",
            expr=lambda t: t.s_closed.cast("float64"),
            en="the salesperson has closed {value} leads",
            zh="该销售已结案{value}个线索",
        ),
        Feature(
            name="sales_open_leads",
            family="sales",
            source="sales",
            default=None,
            expr=lambda t: t.s_open.cast("float64"),
            en="the salesperson has {value} open leads",
            zh="该销售手上有{value}个未结线索",
        ),
        Feature(
            name="tenant_win_rate",
            family="sales",
            source="sales",
            kind="share",
            expr=tenant_rate,
            en="the company wins {value} of closed leads",
            zh="公司整体成交率为{value}",
        ),
    ]
