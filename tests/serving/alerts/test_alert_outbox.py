"""The outbox and its delivery worker against a real HTTP receiver on 127.0.0.1, with a controlled clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadradar.config import AlertRules
from leadradar.serving.alerts.alert import Alert
from leadradar.serving.alerts.delivery import DeliveryWorker
from leadradar.serving.alerts.outbox import Outbox, Target, aware
from leadradar.serving.alerts.restraint import Decided
from tests.support.alert_standin import JsonPost, plain
from tests.support.http_receiver import Receiver

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def alert(lead: str = "l1", tenant: str = "t1", rule: str = "hot_action") -> Alert:
    return Alert(tenant, lead, "s1", rule, NOW, 0.4, 0.2, "B", f"{tenant}|{lead}|{rule}|x")  # type: ignore[arg-type]


_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox(request, tmp_path: Path) -> Outbox:
    """The outbox on the embedded default and on PostgreSQL (its sessions in Beijing time: times stay UTC)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scores.db'}"
    else:
        db = request.getfixturevalue("postgres").create_database(f"outbox{next(_names)}")
        url = db + "?options=-c%20TimeZone%3DAsia%2FShanghai"
    return Outbox(url, AlertRules(retry_base_seconds=1, retry_max_seconds=60))


def hook(tenant: str = "t1") -> list[Target]:
    return [Target("hook", "webhook", None, "en")]


def worker(outbox: Outbox, channels: dict[tuple[str, str], JsonPost]) -> DeliveryWorker:
    return DeliveryWorker(outbox, lambda t, n: channels.get((t, n)), plain)


def drain_until(w: DeliveryWorker, outbox: Outbox, alert_id: int, start: datetime, hours: float) -> datetime:
    """Drain at each delivery's next attempt time until it is no longer pending (or `hours` passed)."""
    now = start
    while now < start + timedelta(hours=hours):
        w.drain(now)
        (d,) = outbox.deliveries(alert_id)
        if d["status"] != "pending":
            return now
        now = max(now + timedelta(seconds=1), aware(d["next_attempt_at"]))
    return now


def test_every_alert_is_stored_once_before_it_is_sent(outbox: Outbox):
    decided = [Decided(alert(), "instant", NOW)]
    (first,) = outbox.record(decided, lambda a: hook(), NOW)
    assert outbox.record(decided, lambda a: hook(), NOW) == []  # the same dedup key
    assert outbox.get(first).status == "pending"  # stored, nothing sent yet
    assert outbox.due(NOW - timedelta(seconds=1)) == []


def test_delivery_retries_after_500s_and_a_time_out_then_succeeds(outbox: Outbox):
    with Receiver([500, "timeout", 503, 200], sleep=2.0) as rx:
        (alert_id,) = outbox.record([Decided(alert(), "instant", NOW)], lambda a: hook(), NOW)
        w = worker(outbox, {("t1", "hook"): JsonPost(rx.url, timeout=0.5)})
        drain_until(w, outbox, alert_id, NOW, 1)
        (d,) = outbox.deliveries(alert_id)
        assert d["status"] == "sent" and d["attempts"] == 4
        log = outbox.attempts(alert_id)
        assert [a["ok"] for a in log] == [False, False, False, True]
        assert [a["status"] for a in log] == [500, None, 503, 200]
        assert "timed out" in log[1]["detail"]
        assert len(rx.got) == 4


def test_retries_back_off_and_keep_going_for_a_day_then_stop(outbox: Outbox):
    rules = AlertRules(retry_base_seconds=1, retry_max_seconds=3600, disable_after_hours=48)
    outbox.rules = rules
    with Receiver([500] * 10_000) as rx:
        (alert_id,) = outbox.record([Decided(alert(), "instant", NOW)], lambda a: hook(), NOW)
        w = worker(outbox, {("t1", "hook"): JsonPost(rx.url)})
        ended = drain_until(w, outbox, alert_id, NOW, 30)
        (d,) = outbox.deliveries(alert_id)
        assert d["status"] == "failed"
        assert timedelta(hours=24) <= ended - NOW < timedelta(hours=26)
        assert 10 < d["attempts"] < 200  # backed off: neither once a second nor given up early


def test_an_endpoint_that_answers_410_is_disabled_with_a_note_and_its_next_alert_waits(outbox: Outbox):
    with Receiver([410]) as rx:
        w = worker(outbox, {("t1", "hook"): JsonPost(rx.url)})
        (a1,) = outbox.record([Decided(alert("l1"), "instant", NOW)], lambda a: hook(), NOW)
        w.drain(NOW)
        assert outbox.deliveries(a1)[0]["status"] == "disabled"
        assert "410" in (outbox.disabled("t1", "hook") or "")
        (a2,) = outbox.record([Decided(alert("l2"), "instant", NOW)], lambda a: hook(), NOW)
        w.drain(NOW + timedelta(seconds=5))
        assert len(rx.got) == 1 and outbox.deliveries(a2)[0]["status"] == "disabled"
        assert outbox.enable("t1", "hook")
        w.drain(datetime.now(UTC) + timedelta(seconds=1))
        assert len(rx.got) == 3 and outbox.get(a2).status == "sent"


def test_an_endpoint_failing_every_attempt_for_a_day_is_disabled(outbox: Outbox):
    outbox.rules = AlertRules(retry_base_seconds=60, retry_max_seconds=3600, retry_hours=48, disable_after_hours=24)
    with Receiver([500] * 10_000) as rx:
        (alert_id,) = outbox.record([Decided(alert(), "instant", NOW)], lambda a: hook(), NOW)
        drain_until(worker(outbox, {("t1", "hook"): JsonPost(rx.url)}), outbox, alert_id, NOW, 30)
        assert outbox.deliveries(alert_id)[0]["status"] == "disabled"
        assert "failed for 24 h" in (outbox.disabled("t1", "hook") or "")


def test_an_alert_can_be_resent(outbox: Outbox):
    with Receiver() as rx:
        w = worker(outbox, {("t1", "hook"): JsonPost(rx.url)})
        (alert_id,) = outbox.record([Decided(alert(), "instant", NOW)], lambda a: hook(), NOW)
        w.drain(NOW)
        assert outbox.resend(alert_id, NOW + timedelta(minutes=1), tenant="t2") == 0  # not that tenant's
        assert outbox.resend(alert_id, NOW + timedelta(minutes=1)) == 1
        w.drain(NOW + timedelta(minutes=1))
        assert len(rx.got) == 2 and len(outbox.attempts(alert_id)) == 2


def test_a_channel_sends_no_more_than_its_limit_a_minute(outbox: Outbox):
    with Receiver() as rx:
        w = worker(outbox, {("t1", "hook"): JsonPost(rx.url, per_minute=3)})
        decided = [Decided(alert(f"l{i}"), "instant", NOW) for i in range(5)]
        outbox.record(decided, lambda a: hook(), NOW)
        w.drain(NOW)
        assert len(rx.got) == 3
        w.drain(NOW + timedelta(seconds=30))
        assert len(rx.got) == 3
        w.drain(NOW + timedelta(seconds=61))
        assert len(rx.got) == 5


def test_an_alert_never_reaches_another_tenants_channel(outbox: Outbox):
    with Receiver() as rx1, Receiver() as rx2:
        channels = {("t1", "hook"): JsonPost(rx1.url), ("t2", "hook"): JsonPost(rx2.url)}
        outbox.record([Decided(alert("a", "t1"), "instant", NOW)], lambda a: hook(), NOW)
        outbox.record([Decided(alert("b", "t2"), "instant", NOW)], lambda a: hook(), NOW)
        outbox.record([Decided(alert("c", "t3"), "instant", NOW)], lambda a: hook(), NOW)  # t3 has no "hook"
        worker(outbox, channels).drain(NOW)
        assert [g.json()["text"].split()[1] for g in rx1.got] == ["t1/a"]
        assert [g.json()["text"].split()[1] for g in rx2.got] == ["t2/b"]
        assert outbox.feed("t3")[0].status == "failed"


def test_a_digest_alert_has_no_delivery_and_feedback_stays_in_its_tenant(outbox: Outbox):
    (alert_id,) = outbox.record([Decided(alert(), "digest", NOW, "budget")], lambda a: hook(), NOW)
    assert outbox.deliveries(alert_id) == [] and outbox.feed("t1")[0].status == "digest"
    assert not outbox.feedback("t2", str(alert_id), "useful", "m")
    assert outbox.feedback("t1", str(alert_id), "useful", "m")
    assert outbox.feed("t1")[0].feedback == "useful"
