"""Restraint: which of the alerts the rules found go now, which wait for the morning or the digest, and which
not at all. Each extra reminder makes every reminder less read, so the defaults send few.

In order: a bot-like session never alerts; a lead already told about by the same rule within `cooldown_hours`
is not told again; an alert found in quiet hours (in the tenants' zone) is held until they end; each salesperson
gets at most `daily_budget` instant alerts per local day (counted on the day they are delivered), and when more
compete, the most valuable (probability x deal value where known) go now and the rest to the digest. A pure
function of the alerts, what was decided before, and `now`: the live path and `alerts simulate` share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from leadradar.config import AlertRules
from leadradar.serving.alerts.alert import Alert

Route = Literal["instant", "digest", "dropped"]


@dataclass(frozen=True)
class Decided:
    """An alert as restraint left it: where it goes, when it may be delivered, and why."""

    alert: Alert
    route: Route
    deliver_at: datetime
    note: str = ""


def quiet_until(now: datetime, rules: AlertRules, zone: str) -> datetime | None:
    """The end of the quiet hours `now` falls in (UTC), or None outside them."""
    local = now.astimezone(ZoneInfo(zone))
    start, end = (time.fromisoformat(rules.quiet_start), time.fromisoformat(rules.quiet_end))
    t = local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside or start == end:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=local.tzinfo).astimezone(now.tzinfo)


def local_day(at: datetime, zone: str) -> str:
    return at.astimezone(ZoneInfo(zone)).date().isoformat()


def decide(
    found: Sequence[Alert], now: datetime, before: Sequence[Decided], rules: AlertRules, zone: str
) -> list[Decided]:
    """Route the alerts found at `now`, given the decisions `before` (at least the last `cooldown_hours` and the
    current local day's)."""
    out: list[Decided] = []
    cooldown = timedelta(hours=rules.cooldown_hours)
    recent = {
        (d.alert.tenant_id, d.alert.lead_id, d.alert.rule)
        for d in before
        if d.route != "dropped" and now - d.alert.at < cooldown
    }
    spent: dict[tuple[str, str, str], int] = {}
    for d in before:
        if d.route == "instant":
            key = (d.alert.tenant_id, d.alert.sales_id, local_day(d.deliver_at, zone))
            spent[key] = spent.get(key, 0) + 1
    held = quiet_until(now, rules, zone)
    deliver_at = held or now
    for alert in sorted(found, key=lambda a: -a.value):
        key = (alert.tenant_id, alert.lead_id, alert.rule)
        if alert.what.get("bot_like"):
            out.append(Decided(alert, "dropped", now, "bot-like burst"))
            continue
        if key in recent:
            out.append(
                Decided(alert, "dropped", now, f"cooldown: told by {alert.rule} within {rules.cooldown_hours:g} h")
            )
            continue
        budget_key = (alert.tenant_id, alert.sales_id, local_day(deliver_at, zone))
        if spent.get(budget_key, 0) >= rules.daily_budget:
            out.append(Decided(alert, "digest", deliver_at, f"daily budget of {rules.daily_budget} spent"))
        else:
            spent[budget_key] = spent.get(budget_key, 0) + 1
            out.append(Decided(alert, "instant", deliver_at, "held for the quiet hours" if held else ""))
        recent.add(key)
    return out
