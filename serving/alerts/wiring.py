"""Alerting as the service runs it: the rescoring thread's hook, the outbox and its delivery worker, joined to
the tenants' configured channels (channels/) and the messages (messages.py)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pandas as pd

from leadradar.config import Settings
from leadradar.features.consent import consenting_in_store
from leadradar.features.store.event_store import EventStore
from leadradar.serving.alerts.alert import Alert, Channel, Message
from leadradar.serving.alerts.channels import PERSONAL_KINDS, channels_for, name_of, recipient_for
from leadradar.serving.alerts.delivery import Consenting, DeliveryWorker
from leadradar.serving.alerts.drift_notice import RULE as DRIFT_RULE
from leadradar.serving.alerts.drift_notice import notice_message
from leadradar.serving.alerts.live import Alerter
from leadradar.serving.alerts.messages import render
from leadradar.serving.alerts.outbox import Outbox, Target
from leadradar.serving.store import ScoreStore


def lead_link(settings: Settings, lead_id: str) -> str:
    """The lead's page on the dashboard, as the salespeople reach it."""
    return f"{settings.alerts.channels.dashboard_url.rstrip('/')}/leads/{quote(lead_id, safe='')}"


def targets_for(settings: Settings, tenant: str, sales_id: str) -> list[Target]:
    """The tenant's alert channels; a personal one (WeCom app, e-mail) only when the owner is mapped on it."""
    out = []
    for i, cfg in enumerate(settings.alerts.channels.tenants.get(tenant, [])):
        if not cfg.alerts:
            continue
        person = recipient_for(settings, cfg.kind, sales_id, tenant) or cfg.recipient or None
        if cfg.kind in PERSONAL_KINDS and person is None:
            continue
        out.append(Target(name_of(cfg, i), cfg.kind, person, cfg.language))
    return out


def channel_named(settings: Settings, tenant: str, name: str) -> Channel | None:
    """The tenant's channel of that name (an alert or a digest channel, where managers' notices go): a delivery
    only ever goes through its own tenant's channels."""
    both = [*channels_for(settings, tenant), *channels_for(settings, tenant, digest=True)]
    return next((c for c, n in both if n == name), None)


def message(settings: Settings, alert: Alert, lang: str) -> Message:
    """The alert in words: a lead's alert, or a notice to the managers about the model."""
    if alert.rule == DRIFT_RULE:
        return notice_message(alert, lang, settings)
    return render(alert, lang, lead_link(settings, alert.lead_id), settings=settings)


def consenting_now(settings: Settings, events: EventStore) -> Consenting:
    """The delivery worker's last check: which of a tenant's leads consent at the moment of sending."""
    return lambda tenant, leads, now: consenting_in_store(events, tenant, leads, pd.Timestamp(now), settings)


@dataclass
class Alerting:
    """What the service starts beside rescoring and stops at shutdown."""

    alerter: Alerter
    worker: DeliveryWorker

    def stop(self) -> None:
        self.worker.stop()


def start_alerting(settings: Settings, events: EventStore, scores: ScoreStore) -> Alerting:
    """The alerter (for the rescoring thread to call) and a started delivery worker, on the score store's database."""
    outbox = Outbox(settings.score_store_url, settings.alerts.rules)
    alerter = Alerter(settings, events, scores, outbox, lambda t, s: targets_for(settings, t, s))
    worker = DeliveryWorker(
        outbox,
        lambda t, n: channel_named(settings, t, n),
        lambda a, lang: message(settings, a, lang),
        consenting_now(settings, events),
    )
    worker.start()
    return Alerting(alerter, worker)
