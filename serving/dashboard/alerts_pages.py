"""What the Alerts and Rules pages show: the tenant's alert feed with filters and feedback, its rules and channels.

The feed and the feedback live in the outbox (serving/alerts/, alerts-core); the pages reach them through
`AlertFeed`, which the dashboard's backend is given, so the pages are tested with any feed. Channel secrets and
robot keys never reach a page: a URL is shown as its host only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from leadradar.config import Settings
from leadradar.serving.alerts.alert import Alert

VERDICTS = ("useful", "not_now", "wrong")


@dataclass(frozen=True)
class FeedItem:
    """One alert as the outbox keeps it: its id, the alert, how delivery went, and the feedback given."""

    alert_id: str
    alert: Alert
    status: str = ""
    feedback: str | None = None


class AlertFeed(Protocol):
    """The outbox as the pages read it."""

    def feed(self, tenant_id: str, *, sales_id: str | None, rule: str | None, limit: int) -> list[FeedItem]:
        """The tenant's alerts, newest first."""
        ...

    def feedback(self, tenant_id: str, alert_id: str, verdict: str, by: str) -> bool:
        """Record a manager's verdict on one of the tenant's alerts; False if the alert is not the tenant's."""
        ...


@dataclass(frozen=True)
class ChannelRow:
    name: str
    kind: str
    where: str
    signed: bool
    language: str
    alerts: bool
    digest: bool


def channel_rows(settings: Settings, tenant_id: str) -> list[ChannelRow]:
    """The tenant's channels without their secrets: a URL shows only its scheme and host."""
    rows = []
    for i, c in enumerate(settings.alerts.channels.tenants.get(tenant_id, [])):
        parts = urlsplit(c.url)
        where = f"{parts.scheme}://{parts.hostname}" if parts.hostname else ""
        rows.append(
            ChannelRow(c.name or f"{c.kind}#{i + 1}", c.kind, where, bool(c.secret), c.language, c.alerts, c.digest)
        )
    return rows


def rule_settings(settings: Settings) -> list[tuple[str, str]]:
    """Every alert setting but the channels, flattened to (dotted name, value): the rules as configured."""
    data = settings.alerts.model_dump(mode="json", exclude={"channels"})
    return _flatten(data, "")


def _flatten(data: Any, prefix: str) -> list[tuple[str, str]]:
    if isinstance(data, dict):
        return [row for k, v in data.items() for row in _flatten(v, f"{prefix}{k}." if prefix or k else "")]
    return [(prefix.rstrip("."), ", ".join(map(str, data)) if isinstance(data, list) else str(data))]


@dataclass(frozen=True)
class AlertsPage:
    items: list[FeedItem]
    available: bool
    sales: list[str]
    rules: list[str]
    limit: int


def alerts_page(
    feed: AlertFeed | None, tenant_id: str, sales_id: str | None, rule: str | None, limit: int
) -> AlertsPage:
    """The feed with the filters applied, and the choices the filters offer."""
    rules = ["hot_action", "threshold", "spike", "back_from_dormant", "going_cold"]
    if feed is None:
        return AlertsPage([], False, [], rules, limit)
    everything = feed.feed(tenant_id, sales_id=None, rule=None, limit=limit)
    items = feed.feed(tenant_id, sales_id=sales_id, rule=rule if rule in rules else None, limit=limit)
    return AlertsPage(items, True, sorted({i.alert.sales_id for i in everything}), rules, limit)


def local_time(at: datetime, zone: str) -> str:
    """An alert's time in the tenant's zone, as the page shows it."""
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
