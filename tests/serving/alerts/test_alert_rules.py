"""The rules as pure functions of (history, events, now): hysteresis, sessions, spikes, dormancy, going cold."""

from __future__ import annotations

import pandas as pd

from leadradar.config import AlertRules
from leadradar.serving.alerts.rules import evaluate, spike_tail

T0 = pd.Timestamp("2026-03-02T02:00:00Z")  # 10:00 in Shanghai
RULES = AlertRules()


def events(*rows: tuple[float, str, float | None]) -> pd.DataFrame:
    """(minutes after T0, event_type, dwell_s) rows as the event store gives them."""
    return pd.DataFrame(
        {
            "ts": [T0 + pd.Timedelta(minutes=m) for m, _, _ in rows],
            "event_type": [e for _, e, _ in rows],
            "dwell_s": pd.array([d for _, _, d in rows], dtype="Float64"),
            "item_id": [None] * len(rows),
            "event_id": [f"e{i}" for i in range(len(rows))],
            "sales_id": ["s1"] * len(rows),
        }
    )


def history(*points: tuple[float, float]) -> pd.DataFrame:
    """(minutes after T0, p_close) live scores."""
    return pd.DataFrame(
        {
            "as_of": [T0 + pd.Timedelta(minutes=m) for m, _ in points],
            "p_close": [p for _, p in points],
            "sales_id": ["s1"] * len(points),
            "grade": ["B"] * len(points),
            "detail": [None] * len(points),
        }
    )


def at(minutes: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes)


def rules_of(ev: pd.DataFrame, hist: pd.DataFrame, now: pd.Timestamp) -> list[str]:
    return [a.rule for a in evaluate("t1", "l1", hist, ev, now, RULES, since=now - pd.Timedelta(minutes=30))]


def test_threshold_fires_once_and_not_again_until_the_score_falls_below_low():
    ev = events((0, "card_view", 5), (60, "card_view", 5), (120, "card_view", 5), (180, "card_view", 5))
    hist = history((0, 0.36), (60, 0.30), (120, 0.37), (180, 0.10))
    assert rules_of(ev, hist, at(10)) == ["threshold"]
    assert rules_of(ev, hist, at(70)) == []  # 0.30: between low and high, still disarmed
    assert rules_of(ev, hist, at(130)) == []  # back above high, but never re-armed
    later = events((0, "card_view", 5), (60, "card_view", 5), (180, "card_view", 5), (240, "card_view", 5))
    rearmed = history((0, 0.36), (60, 0.30), (180, 0.10), (240, 0.40))
    assert rules_of(later, rearmed, at(250)) == ["threshold"]


def test_a_session_is_judged_only_after_it_settled():
    ev = events((0, "card_view", 5), (2, "card_save", 0))
    hist = history((0, 0.2), (2, 0.25))
    assert rules_of(ev, hist, at(4)) == []  # 2 minutes of quiet: the session may go on
    assert rules_of(ev, hist, at(8)) == ["hot_action"]


def test_several_rules_in_one_session_make_one_alert_naming_the_others():
    ev = events((0, "card_view", 5), (1, "card_save", 0), (3, "card_view", 5))
    hist = history((0, 0.3), (1, 0.4))
    found = evaluate("t1", "l1", hist, ev, at(10), RULES)
    assert [a.rule for a in found] == ["hot_action"]
    assert found[0].what["also"] == ["threshold"]
    assert found[0].dedup_key.startswith("t1|l1|hot_action|")


def test_hot_action_needs_the_probability_floor():
    ev = events((0, "card_save", 0))
    assert rules_of(ev, history((0, 0.05)), at(10)) == []
    assert rules_of(ev, history((0, 0.15)), at(10)) == ["hot_action"]


def test_a_long_product_read_is_a_hot_action_and_a_short_one_is_not():
    assert rules_of(events((0, "product_view", 30)), history((0, 0.2)), at(10)) == []
    assert rules_of(events((0, "product_view", 200)), history((0, 0.2)), at(10)) == ["hot_action"]


def test_back_from_dormant_after_thirty_quiet_days():
    ev = events((-40 * 1440, "card_view", 5), (0, "card_view", 5))
    assert rules_of(ev, history((0, 0.2)), at(10)) == ["back_from_dormant"]
    ev = events((-20 * 1440, "card_view", 5), (0, "card_view", 5))
    assert rules_of(ev, history((0, 0.2)), at(10)) == []


def test_a_spike_is_judged_against_the_leads_own_rate():
    quiet = [(-d * 1440, "card_view", 5.0) for d in range(2, 20, 4)]  # one event every 4 days
    busy = [(-d * 1440 + h * 60, "card_view", 5.0) for d in range(2, 20) for h in range(3)]  # 3 a day
    today = [(m, "card_view", 30.0) for m in range(0, 8, 2)]  # 4 events now
    tail_quiet = spike_tail(events(*quiet, *today)["ts"], at(6), RULES)
    tail_busy = spike_tail(events(*busy, *today)["ts"], at(6), RULES)
    assert tail_quiet is not None and tail_busy is not None
    assert tail_quiet[1] < RULES.spike_alpha < tail_busy[1]
    assert rules_of(events(*quiet, *today), history((6, 0.2)), at(20)) == ["spike"]
    assert rules_of(events(*busy, *today), history((6, 0.2)), at(20)) == []


def test_a_new_lead_has_no_level_to_spike_against():
    today = [(m, "card_view", 30.0) for m in range(0, 16, 2)]
    assert spike_tail(events(*today)["ts"], at(14), RULES) is None


def test_going_cold_fires_once_when_a_hot_lead_falls_without_a_two_way_contact():
    ev = events((0, "card_view", 5), (600, "card_view", 5), (1200, "card_view", 5))
    hist = history((0, 0.4), (600, 0.25), (1200, 0.1))
    found = evaluate("t1", "l1", hist, ev, at(1300), RULES, two_way=("phone_call",), since=at(1000))
    assert [a.rule for a in found] == ["going_cold"]
    called = events((0, "card_view", 5), (600, "phone_call", 5), (1200, "card_view", 5))
    found = evaluate("t1", "l1", hist, called, at(1300), RULES, two_way=("phone_call",), since=at(1000))
    assert found == []


def test_a_bot_like_burst_is_marked():
    burst = events(*[(i / 60, "card_view", 0.0) for i in range(15)])
    found = evaluate("t1", "l1", history((0, 0.5)), burst, at(10), RULES)
    assert found and found[0].what["bot_like"] is True
