"""Alerting beside rescoring, in process: events in a real event store and live scores in a real score store
become one alert per session at a real HTTP receiver, and only at the lead's own tenant's receiver."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from leadradar.config import Settings
from leadradar.features.store import EventStore
from leadradar.features.validation import validate_events
from leadradar.serving.alerts.delivery import DeliveryWorker
from leadradar.serving.alerts.feedback import rule_rates
from leadradar.serving.alerts.live import Alerter
from leadradar.serving.alerts.outbox import Outbox, Target
from leadradar.serving.store import ScoreStore
from tests.support.alert_standin import JsonPost, plain
from tests.support.http_receiver import Receiver
from tests.support.raw_events import event

NOW = pd.Timestamp("2025-03-03T04:00:00Z")  # noon in the tenants' zone: outside the quiet hours


@pytest.fixture
def stores(tmp_path, settings: Settings):
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}", settings)
    scores = ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}")
    yield events, scores, Outbox(f"sqlite:///{tmp_path / 'scores.db'}", settings.alerts.rules)
    events.close()
    scores.engine.dispose()


def land(store: EventStore, tenant: str, lead: str, kinds: list[str], at: pd.Timestamp) -> None:
    """Events of one lead a minute apart, the last at `at`, stored as the service stores them."""
    rows = [
        event(
            k,
            event_id=f"{tenant}-{lead}-{at.value}-{k}",
            tenant_id=tenant,
            lead_id=lead,
            sales_id="s1",
            event_type=kind,
            ts=(at - pd.Timedelta(minutes=len(kinds) - 1 - k)).isoformat(),
            dwell_s="30",
        )
        for k, kind in enumerate(kinds)
    ]
    done = store.append_events(validate_events(pd.DataFrame(rows), store.settings, at), source="test", arrived=at)
    assert done.stored == len(rows), done.refusals


def rescored(scores: ScoreStore, tenant: str, lead: str, p: float, at: pd.Timestamp) -> None:
    """A live score as rescoring writes it."""
    row = {
        "tenant_id": tenant,
        "lead_id": lead,
        "scored_at": at,
        "model_name": "m",
        "model_version": "1",
        "sales_id": "s1",
        "stage": "engaged",
        "p_close": p,
        "grade": "B",
        "detail": '{"reasons": {"for": [{"feature": "views_7d", "value": 4, "contribution": 0.3}]}}',
        "moved_by": None,
        "moved_at": None,
    }
    scores.write_live(pd.DataFrame([row]))


def test_a_session_of_events_gives_one_alert_at_the_receiver_once_it_settled(stores, settings: Settings):
    events, scores, outbox = stores
    with Receiver() as rx:
        alerter = Alerter(settings, events, scores, outbox, lambda t, s: [Target("hook", "webhook", None, "en")])
        worker = DeliveryWorker(outbox, lambda t, n: JsonPost(rx.url) if t == "t1" else None, plain)
        t0 = NOW - pd.Timedelta(minutes=20)
        land(events, "t1", "l1", ["card_view", "card_save"], t0)
        rescored(scores, "t1", "l1", 0.3, t0)
        assert alerter.after_rescoring([("t1", "l1")], t0) == 0  # the session may go on
        land(events, "t1", "l1", ["product_view"], t0 + pd.Timedelta(minutes=2))
        rescored(scores, "t1", "l1", 0.4, t0 + pd.Timedelta(minutes=2))
        assert alerter.after_rescoring([("t1", "l1")], t0 + pd.Timedelta(minutes=2)) == 0
        assert alerter.after_rescoring([], t0 + pd.Timedelta(minutes=8)) == 1  # settled: one alert
        assert alerter.after_rescoring([("t1", "l1")], t0 + pd.Timedelta(minutes=9)) == 0
        assert alerter.after_rescoring([], t0 + pd.Timedelta(minutes=15)) == 0  # judged again: same session
        worker.drain((t0 + pd.Timedelta(minutes=15)).to_pydatetime())
        (got,) = rx.wait_for(1)
        assert got.json()["text"].startswith("hot_action t1/l1")
        (stored,) = outbox.feed("t1")
        assert stored.alert.what["also"] == ["threshold"] and stored.alert.reasons[0]["feature"] == "views_7d"
        assert stored.status == "sent"
        (rate,) = rule_rates(outbox, events, settings, "t1", (t0 - timedelta(days=1)).to_pydatetime(), NOW)
        assert (rate.rule, rate.alerts, rate.acted_on) == ("hot_action", 1, 0)


def test_the_alert_of_one_tenant_never_reaches_another_tenants_receiver(stores, settings: Settings):
    events, scores, outbox = stores
    with Receiver() as rx1, Receiver() as rx2:
        urls = {"t1": rx1.url, "t2": rx2.url}
        alerter = Alerter(settings, events, scores, outbox, lambda t, s: [Target("hook", "webhook", None, "en")])
        worker = DeliveryWorker(outbox, lambda t, n: JsonPost(urls[t]), plain)
        t0 = NOW - pd.Timedelta(minutes=20)
        for tenant in ("t1", "t2"):
            land(events, tenant, "same-lead", ["card_view", "phone_call"], t0)
            rescored(scores, tenant, "same-lead", 0.5 if tenant == "t2" else 0.2, t0)
        alerter.after_rescoring([("t1", "same-lead"), ("t2", "same-lead")], t0)
        assert alerter.after_rescoring([], t0 + pd.Timedelta(minutes=6)) == 2
        worker.drain((t0 + pd.Timedelta(minutes=6)).to_pydatetime())
        (g1,) = rx1.wait_for(1)
        (g2,) = rx2.wait_for(1)
        assert "t1/same-lead p=0.20" in g1.json()["text"] and "t2/same-lead p=0.50" in g2.json()["text"]
