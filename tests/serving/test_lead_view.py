"""GET /v1/leads/{lead_id}: the stored timeline paged, score history and reasons, scoped by tenant and salesperson."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.live_events import event, fresh, post

pytestmark = pytest.mark.server
CJK = re.compile(r"[\u4e00-\u9fff]")


def get_lead(server, key, lead: str, **params) -> httpx.Response:
    return httpx.get(server.url + f"/v1/leads/{lead}", params=params, headers=key.auth, timeout=30)


def test_the_timeline_is_newest_first_and_pages_by_before(server, role_keys):
    lead = fresh("L-page")
    ids = [fresh("e") for _ in range(5)]
    batch = [event(eid, lead, minutes_ago=10 * (5 - i), event_type="product_view") for i, eid in enumerate(ids)]
    assert post(server.url, "/v1/events", {"events": batch}, role_keys["t01", "system"]).json()["stored"] == 5
    first = get_lead(server, role_keys["t01", "manager"], lead, limit=2).json()
    assert [e["event_id"] for e in first["events"]] == ids[::-1][:2]
    assert first["events"][0]["what"] == "viewed products" and first["events"][0]["arrived_at"]
    seen = [e["event_id"] for e in first["events"]]
    before = first["next_before"]
    while before is not None:
        page = get_lead(server, role_keys["t01", "manager"], lead, limit=2, before=before).json()
        seen += [e["event_id"] for e in page["events"]]
        before = page["next_before"]
    assert seen == ids[::-1]
    zh = get_lead(server, role_keys["t01", "system"], lead, lang="zh-CN").json()
    assert CJK.search(zh["events"][0]["what"])


def test_a_scored_lead_shows_its_score_history_and_current_reasons(server, role_keys, scored):
    row = scored.scores[scored.scores["tenant_id"] == "t01"].iloc[0]
    got = get_lead(server, role_keys["t01", "manager"], row["lead_id"], lang="zh-CN")
    assert got.status_code == 200, got.text
    body = got.json()
    assert len(body["scores"]) == 2 and body["scores"][0]["as_of"] < body["scores"][1]["as_of"]
    assert body["current"]["p_close"] == pytest.approx(float(row["p_close"]))
    assert body["current"]["reasons"]["for"] or body["current"]["reasons"]["against"]
    assert all(CJK.search(r["text"]) for r in body["current"]["reasons"]["for"])


def test_a_sales_key_sees_its_own_leads_only(server, role_keys):
    mine = role_keys["t01", "sales"]
    own, other = fresh("L-own"), fresh("L-theirs")
    batch = [event(fresh("e"), own, sales_id=mine.sales_id), event(fresh("e"), other, sales_id="someone-else")]
    post(server.url, "/v1/events", {"events": batch}, role_keys["t01", "system"])
    assert get_lead(server, mine, own).status_code == 200
    assert get_lead(server, mine, other).status_code == 403
    assert get_lead(server, role_keys["t01", "manager"], other).status_code == 200


def test_a_key_of_another_tenant_cannot_read_the_lead(server, role_keys):
    lead = fresh("L-private")
    post(server.url, "/v1/events", {"events": [event(fresh("e"), lead)]}, role_keys["t01", "system"])
    for role in ("system", "manager", "sales"):
        assert get_lead(server, role_keys["t02", role], lead).status_code == 404
    assert get_lead(server, role_keys["t01", "system"], fresh("L-nobody")).status_code == 404
