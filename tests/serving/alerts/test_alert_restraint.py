"""Restraint with a controlled clock: quiet hours, the daily budget by expected value, cooldown, bots."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from leadradar.config import AlertRules
from leadradar.serving.alerts.alert import Alert
from leadradar.serving.alerts.restraint import decide, quiet_until

ZONE = "Asia/Shanghai"
RULES = AlertRules()
NOON = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def alert(lead: str, p: float = 0.4, rule: str = "hot_action", at: datetime = NOON, sales: str = "s1") -> Alert:
    return Alert("t1", lead, sales, rule, at, p, None, "B", f"t1|{lead}|{rule}|x")  # type: ignore[arg-type]


def test_an_alert_found_at_night_waits_for_eight_in_the_tenants_morning():
    night = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
    (d,) = decide([alert("l1", at=night)], night, [], RULES, ZONE)
    assert d.route == "instant"
    assert d.deliver_at == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 08:00 the next day
    early = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 07:00
    assert quiet_until(early, RULES, ZONE) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    assert quiet_until(NOON, RULES, ZONE) is None


def test_the_daily_budget_sends_the_most_valuable_now_and_the_rest_to_the_digest():
    found = [alert(f"l{i}", p=0.1 * (i + 1)) for i in range(7)]
    decided = decide(found, NOON, [], RULES, ZONE)
    instant = sorted(d.alert.lead_id for d in decided if d.route == "instant")
    digest = sorted(d.alert.lead_id for d in decided if d.route == "digest")
    assert instant == ["l2", "l3", "l4", "l5", "l6"]
    assert digest == ["l0", "l1"]
    later = NOON + timedelta(hours=3)
    (more,) = decide([alert("l9", p=0.9, at=later)], later, decided, RULES, ZONE)
    assert more.route == "digest"  # spent today, however valuable
    tomorrow = NOON + timedelta(days=1)
    (fresh,) = decide([alert("l9", p=0.9, at=tomorrow)], tomorrow, decided, RULES, ZONE)
    assert fresh.route == "instant"


def test_the_budget_is_per_salesperson():
    found = [alert(f"l{i}", sales="s1") for i in range(5)] + [alert("m1", sales="s2")]
    decided = decide(found, NOON, [], RULES, ZONE)
    assert all(d.route == "instant" for d in decided)


def test_the_same_rule_does_not_tell_about_the_same_lead_within_the_cooldown():
    first = decide([alert("l1")], NOON, [], RULES, ZONE)
    soon = NOON + timedelta(hours=2)
    (again,) = decide([alert("l1", at=soon)], soon, first, RULES, ZONE)
    assert again.route == "dropped" and "cooldown" in again.note
    (other_rule,) = decide([alert("l1", rule="spike", at=soon)], soon, first, RULES, ZONE)
    assert other_rule.route == "instant"
    day_later = NOON + timedelta(hours=25)
    (after,) = decide([alert("l1", at=day_later)], day_later, first, RULES, ZONE)
    assert after.route == "instant"


def test_a_bot_like_session_never_alerts():
    bot = replace(alert("l1", p=0.9), what={"bot_like": True})
    (d,) = decide([bot], NOON, [], RULES, ZONE)
    assert d.route == "dropped"
