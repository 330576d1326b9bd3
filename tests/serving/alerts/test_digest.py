"""The boss's digest on a hand-made day: hottest leads, hot leads nobody called, follow-up per salesperson,
and predicted against realised closes for the run a horizon ago."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from leadradar.config import Settings
from leadradar.serving.alerts.alert import Alert
from leadradar.serving.alerts.digest import digest_facts, digest_message

NOW = datetime(2026, 6, 10, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
T = pd.Timestamp


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings.model_validate(
        {
            "home": tmp_path_factory.mktemp("digest"),
            "alerts": {"channels": {"followup_hours": 24, "digest_hot": 3, "sales_names": {"s1": "王磊"}}},
        }
    )


def alert(lead: str, sales: str, hours_ago: float) -> Alert:
    return Alert(
        "t01", lead, sales, "hot_action", NOW - timedelta(hours=hours_ago), 0.6, 0.3, "A", f"{lead}|{hours_ago}"
    )


CURRENT = pd.DataFrame(
    {
        "lead_id": ["L1", "L2", "L3", "L4", "L5"],
        "sales_id": ["s1", "s1", "s2", "s2", "s2"],
        "p_close": [0.71, 0.55, 0.62, 0.08, 0.30],
    }
)
ALERTS = [alert("L1", "s1", 40), alert("L2", "s1", 30), alert("L3", "s2", 50), alert("L5", "s2", 2)]
# L1 was called 3 hours after its alert; L3 changed stage 30 hours after (too late for the rate, but followed up).
CONTACTS = pd.DataFrame({"lead_id": ["L1"], "ts": [T(NOW) - pd.Timedelta(hours=37)]})
STAGES = pd.DataFrame(
    {
        "lead_id": ["L3", "P1", "P2", "P3"],
        "stage": ["qualified", "won", "won", "won"],
        "ts": [
            T(NOW) - pd.Timedelta(hours=20),
            T("2026-05-20", tz="UTC"),
            T("2026-05-25", tz="UTC"),
            T("2026-04-01", tz="UTC"),
        ],
    }
)
# The run of 2026-05-10 (a 30-day horizon ago): P1 and P2 won within the horizon; P3 had won before it.
PAST = pd.DataFrame(
    {"lead_id": ["P1", "P2", "P3", "P4"], "p_close": [0.5, 0.4, 0.3, 0.2], "as_of": [T("2026-05-10", tz="UTC")] * 4}
)


@pytest.fixture(scope="module")
def facts(settings):
    return digest_facts(
        "t01",
        NOW,
        current=CURRENT,
        contacts=CONTACTS,
        stages=STAGES,
        alerts=ALERTS,
        settings=settings,
        past_run=PAST,
    )


def test_the_hottest_leads_are_the_highest_current_probabilities(facts):
    assert [h.lead_id for h in facts.hottest] == ["L1", "L3", "L2"]


def test_a_hot_lead_without_a_two_way_contact_or_stage_change_for_n_hours_is_waiting(facts):
    # L1 was called, L3 changed stage, L5 turned hot 2 hours ago: only L2 waits past 24 hours.
    assert [h.lead_id for h in facts.waiting] == ["L2"]


def test_follow_up_rate_counts_alerts_followed_within_n_hours(facts):
    lines = {s.sales_id: s for s in facts.sales}
    assert (lines["s1"].judged, lines["s1"].followed) == (2, 1)
    assert (lines["s2"].alerts, lines["s2"].judged, lines["s2"].followed) == (1, 1, 0)  # L3's stage came at 30 h


def test_predicted_and_realised_closes_of_the_run_a_horizon_ago(facts):
    c = facts.calibration
    assert (c.leads, round(c.predicted, 2), c.realised) == (4, 1.4, 2)


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "zh-CN",
            ["线索日报 · t01 · 06-10", "超过 24 小时未跟进", "王磊：近一天提醒 0 条，跟进率 50%", "实际成交 2 条"],
        ),
        ("en", ["Lead digest · t01", "not followed up within 24 h", "王磊: 0 alerts in the last day, followed up 50%"]),
    ],
)
def test_the_digest_reads_in_both_languages(facts, settings, lang, words):
    m = digest_message(facts, lang, "http://127.0.0.1:3000/dashboard/", settings)
    for w in words:
        assert w in m.markdown, (w, m.markdown)


def test_a_tenant_without_a_run_a_horizon_old_is_told_so(settings):
    f = digest_facts(
        "t01", NOW, current=CURRENT, contacts=CONTACTS, stages=STAGES, alerts=[], settings=settings, past_run=None
    )
    assert "No scoring run 30 days old yet" in digest_message(f, "en", "x", settings).text
    assert f.sales == [] and f.waiting == []


def test_another_tenants_alerts_never_enter_the_digest(settings):
    theirs = [Alert("t02", "L9", "s9", "threshold", NOW - timedelta(hours=30), 0.9, None, "A", "k")]
    f = digest_facts("t01", NOW, current=CURRENT, contacts=CONTACTS, stages=STAGES, alerts=theirs, settings=settings)
    assert f.sales == [] and "L9" not in digest_message(f, "en", "x", settings).text
