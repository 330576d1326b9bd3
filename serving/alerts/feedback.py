"""What salespeople said about their alerts and whether they acted: the verdict endpoint's logic, and per rule
the feedback and acted-on rates a manager reads (a rule nobody acts on is noise)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from leadradar.config import Settings
from leadradar.features.store.event_store import EventStore
from leadradar.serving.alerts.outbox import Outbox, Stored
from leadradar.serving.auth import Principal


class AlertNotFound(LookupError):
    """No alert of that id in the caller's tenant (another tenant's alert is not found either)."""


class NotYourAlert(PermissionError):
    """A sales key judging another salesperson's alert."""


def give_feedback(outbox: Outbox, principal: Principal, alert_id: str, verdict: str, now: datetime) -> Stored:
    """Record the verdict of a system, manager or the owning sales key on one of its tenant's alerts."""
    stored = outbox.get(int(alert_id)) if alert_id.isdigit() else None
    if stored is None or stored.alert.tenant_id != principal.tenant_id:
        raise AlertNotFound(f"no alert {alert_id!r} in tenant {principal.tenant_id!r}")
    if principal.role == "sales" and stored.alert.sales_id != principal.sales_id:
        raise NotYourAlert(f"alert {alert_id!r} is not one of salesperson {principal.sales_id!r}'s alerts")
    outbox.feedback(principal.tenant_id, alert_id, verdict, f"{principal.role}:{principal.key_id}", now)
    return outbox.get(int(alert_id)) or stored


@dataclass(frozen=True)
class RuleRate:
    """One rule's alerts over a period, how many got a verdict, and how many were acted on in time."""

    rule: str
    alerts: int
    with_feedback: int
    useful: int
    not_now: int
    wrong: int
    acted_on: int

    @property
    def feedback_rate(self) -> float | None:
        return self.with_feedback / self.alerts if self.alerts else None

    @property
    def acted_rate(self) -> float | None:
        return self.acted_on / self.alerts if self.alerts else None


def rule_rates(
    outbox: Outbox, events: EventStore, settings: Settings, tenant: str, since: datetime, now: datetime
) -> list[RuleRate]:
    """Per rule: alerts sent since `since`, verdicts, and acted on = a two-way contact or a stage change of the lead
    within `acted_on_hours` of the alert's delivery (the dashboard's rules page calls this)."""
    items = [s for s in outbox.feed(tenant, limit=100_000) if s.alert.at >= since and s.route == "instant"]
    leads = sorted({s.alert.lead_id for s in items})
    window = timedelta(hours=settings.alerts.rules.acted_on_hours)
    touched: dict[str, list[pd.Timestamp]] = {}
    if leads:
        ev = events.events(tenant, leads=leads, until=pd.Timestamp(now)).to_pandas()
        ev = ev[ev["event_type"].isin(list(settings.events.two_way_contact))]
        st = events.stages(tenant, leads=leads, until=pd.Timestamp(now)).to_pandas()
        for frame in (ev, st):
            for lead, ts in zip(frame["lead_id"], frame["ts"]):
                touched.setdefault(str(lead), []).append(pd.Timestamp(ts))
    out = []
    for rule in sorted({s.alert.rule for s in items}):
        mine = [s for s in items if s.alert.rule == rule]
        acted = 0
        for s in mine:
            start = pd.Timestamp(s.deliver_at or s.alert.at)
            acted += any(start < t <= start + window for t in touched.get(s.alert.lead_id, []))
        verdicts = [s.feedback for s in mine]
        out.append(
            RuleRate(
                rule,
                len(mine),
                sum(v is not None for v in verdicts),
                verdicts.count("useful"),
                verdicts.count("not_now"),
                verdicts.count("wrong"),
                acted,
            )
        )
    return out
