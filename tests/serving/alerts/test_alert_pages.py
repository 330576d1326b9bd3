"""The dashboard's Alerts page (feed, filters, feedback) and Rules page, in both languages, behind the same
sign-in and tenant wall as every page. The feed is a stand-in for the outbox's (alerts-core), tests only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Mount

from leadradar.config import Settings
from leadradar.serving.alerts.alert import Alert
from leadradar.serving.alerts.outbox import _summary
from leadradar.serving.dashboard.alerts_pages import FeedItem
from leadradar.serving.dashboard.messages import MESSAGES
from leadradar.serving.dashboard.routes import Backend, build_dashboard
from tests.support.dashboard_support import manager


def item(alert_id: str, tenant: str, lead: str, sales: str, rule: str, status: str = "sent") -> FeedItem:
    at = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)
    return FeedItem(alert_id, Alert(tenant, lead, sales, rule, at, 0.42, 0.2, "B", alert_id), status=status)  # type: ignore[arg-type]


@dataclass
class StandInFeed:
    items: list[FeedItem]
    verdicts: list[tuple[str, str, str, str]] = field(default_factory=list)

    def feed(self, tenant_id, *, sales_id, rule, limit):
        return [
            i
            for i in self.items
            if i.alert.tenant_id == tenant_id and sales_id in (None, i.alert.sales_id) and rule in (None, i.alert.rule)
        ][:limit]

    def feedback(self, tenant_id, alert_id, verdict, by):
        if not any(i.alert_id == alert_id and i.alert.tenant_id == tenant_id for i in self.items):
            return False
        self.verdicts.append((tenant_id, alert_id, verdict, by))
        return True


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    s = Settings.model_validate(
        {
            "home": tmp_path_factory.mktemp("pages"),
            "alerts": {
                "channels": {
                    "tenants": {
                        "t01": [
                            {
                                "kind": "dingtalk",
                                "url": "https://oapi.dingtalk.com/robot/send?access_token=SECRET-TOKEN",
                                "secret": "SECabc",
                                "name": "销售群",
                            },
                            {"kind": "email", "url": "smtp://mail.example.com:587", "digest": True, "alerts": False},
                        ]
                    }
                }
            },
        }
    )
    s.ensure_dirs()
    return s


@pytest.fixture(scope="module")
def feed() -> StandInFeed:
    return StandInFeed(
        [
            item("a1", "t01", "L-1", "s1", "hot_action"),
            item("a2", "t01", "L-2", "s2", "threshold", status="withheld"),
            item("b1", "t02", "L-9", "s9", "spike"),
        ]
    )


@pytest.fixture(scope="module")
def client(settings, feed) -> TestClient:
    def backend() -> Backend:
        b = Backend.build(settings)
        b.alerts = feed
        return b

    app = Starlette(routes=[Mount("/dashboard", build_dashboard(backend))])
    c = TestClient(app)
    name, password = manager(settings, "t01")
    r = c.post(
        "/dashboard/login", data={"username": name, "password": password, "next": "/dashboard/"}, follow_redirects=False
    )
    assert r.status_code == 303
    return c


def test_the_alerts_page_lists_the_tenants_alerts_only_in_both_languages(client):
    en = client.get("/dashboard/alerts", params={"lang": "en"}).text
    assert 'data-alert="a1"' in en and 'data-alert="a2"' in en and "L-9" not in en
    assert "Hot action" in en and "Useful" in en
    zh = client.get("/dashboard/alerts", params={"lang": "zh-CN"}).text
    assert "高意向动作" in zh and "有用" in zh and "暂不需要" in zh


def test_the_delivery_status_reads_in_the_pages_language_not_as_the_stored_word(client):
    zh = client.get("/dashboard/alerts", params={"lang": "zh-CN"}).text
    assert "<td>已发送</td>" in zh and "<td>未发送（客户已撤回同意）</td>" in zh
    assert "<td>sent</td>" not in zh and "<td>withheld</td>" not in zh and "Sent" not in zh
    en = client.get("/dashboard/alerts", params={"lang": "en"}).text
    assert "<td>Sent</td>" in en and "<td>Withheld (consent withdrawn)</td>" in en and "已发送" not in en


def test_every_word_the_outbox_gives_a_delivery_has_words_in_both_languages():
    statuses = ("pending", "sent", "failed", "disabled", "withheld")
    given = {_summary([s for i, s in enumerate(statuses) if mask >> i & 1], "instant") for mask in range(32)}
    given |= {_summary([], route) for route in ("digest", "dropped")}
    assert given == {*statuses, "digest", "dropped", "no channel"}
    for word in given:
        en, zh = MESSAGES[f"status.{word}"]
        assert en != zh and word not in zh, word


def test_filters_narrow_the_feed_by_salesperson_and_rule(client):
    by_sales = client.get("/dashboard/alerts", params={"sales": "s2"}).text
    assert 'data-alert="a2"' in by_sales and 'data-alert="a1"' not in by_sales
    by_rule = client.get("/dashboard/alerts", params={"rule": "hot_action"}).text
    assert 'data-alert="a1"' in by_rule and 'data-alert="a2"' not in by_rule


def test_a_feedback_button_records_the_verdict_and_another_tenants_alert_is_refused(client, feed):
    r = client.post("/dashboard/alerts/a1/feedback", data={"verdict": "not_now"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("msg=thanks")
    assert feed.verdicts[-1] == ("t01", "a1", "not_now", "boss-t01")
    r = client.post("/dashboard/alerts/b1/feedback", data={"verdict": "wrong"}, follow_redirects=False)
    assert r.headers["location"].endswith("msg=refused") and all(v[1] != "b1" for v in feed.verdicts)
    assert client.post("/dashboard/alerts/a1/feedback", data={"verdict": "meh"}).status_code == 422


def test_feedback_from_another_site_is_refused(client, feed):
    before = len(feed.verdicts)
    r = client.post(
        "/dashboard/alerts/a2/feedback", data={"verdict": "useful"}, headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403 and len(feed.verdicts) == before


def test_the_rules_page_shows_channels_without_their_secrets(client):
    page = client.get("/dashboard/rules", params={"lang": "en"}).text
    assert "销售群" in page and "DingTalk robot" in page and "https://oapi.dingtalk.com" in page
    assert "SECRET-TOKEN" not in page and "SECabc" not in page and "mail.example.com" in page
    assert "08:30" in page
    assert "钉钉机器人" in client.get("/dashboard/rules", params={"lang": "zh-CN"}).text


def test_alert_pages_need_a_signed_in_manager(settings):
    app = Starlette(routes=[Mount("/dashboard", build_dashboard(lambda: Backend.build(settings)))])
    anon = TestClient(app)
    for path in ("/dashboard/alerts", "/dashboard/rules"):
        assert anon.get(path, follow_redirects=False).status_code == 303
    assert (
        anon.post("/dashboard/alerts/a1/feedback", data={"verdict": "useful"}, follow_redirects=False).status_code
        == 303
    )


def test_without_an_outbox_the_alerts_page_says_so(settings):
    app = Starlette(routes=[Mount("/dashboard", build_dashboard(lambda: Backend.build(settings)))])
    c = TestClient(app)
    name, password = manager(settings, "t01")
    c.post("/dashboard/login", data={"username": name, "password": password})
    assert 'id="alerts-unavailable"' in c.get("/dashboard/alerts").text
