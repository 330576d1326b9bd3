""" "This score is wrong": POST /v1/leads/{id}/feedback and the lead page's buttons, counted per model version on the
health page, over the real server."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.server


def judge(server, key, lead: str, **body) -> httpx.Response:
    return httpx.post(server.url + f"/v1/leads/{lead}/feedback", json=body, headers=key.auth, timeout=30)


def health_counts(server, key, lang: str = "en") -> tuple[str, dict[str, tuple[int, int]]]:
    page = httpx.get(server.url + "/dashboard/health", params={"lang": lang}, headers=key.auth, timeout=30)
    assert page.status_code == 200, page.text[:300]
    rows = re.findall(
        r'<tr data-version="([^"]+)">.*?class="too-high">(\d+)</td><td class="too-low">(\d+)</td>', page.text, re.S
    )
    return page.text, {v: (int(hi), int(lo)) for v, hi, lo in rows}


def lead_of(scored, tenant: str, sales_id: str | None = None, other_than: str | None = None) -> str:
    rows = scored.scores[scored.scores["tenant_id"] == tenant]
    if sales_id is not None:
        rows = rows[rows["sales_id"] == sales_id]
    if other_than is not None:
        rows = rows[rows["sales_id"] != other_than]
    return str(rows["lead_id"].iloc[-1])


def test_a_verdict_on_a_score_is_stored_for_its_model_version_and_counted_on_the_health_page(server, role_keys, scored):
    manager = role_keys["t01", "manager"]
    lead = lead_of(scored, "t01")
    _, before = health_counts(server, manager)
    got = judge(server, manager, lead, verdict="too_high", note="they signed with a competitor last week")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["model_version"] == str(scored.version) and body["verdict"] == "too_high"
    assert 0 <= body["p_close"] <= 1
    assert judge(server, role_keys["t01", "system"], lead, verdict="too_low").status_code == 200
    html, after = health_counts(server, manager)
    hi, lo = before.get(str(scored.version), (0, 0))
    assert after[str(scored.version)] == (hi + 1, lo + 1)
    assert "Scores people called wrong" in html
    zh, _ = health_counts(server, manager, "zh-CN")
    assert "被标记为不准的评分" in zh and "评分过高" in zh


def test_only_the_leads_owner_a_manager_or_a_system_key_may_judge_and_bad_verdicts_are_refused(
    server, role_keys, scored
):
    sales = role_keys["t01", "sales"]
    own = lead_of(scored, "t01", sales_id=sales.sales_id)
    theirs = lead_of(scored, "t01", other_than=sales.sales_id)
    assert judge(server, sales, own, verdict="too_low").status_code == 200
    assert judge(server, sales, theirs, verdict="too_low").status_code == 403
    assert judge(server, role_keys["t02", "manager"], own, verdict="too_low").status_code == 404
    assert judge(server, role_keys["t01", "manager"], "no-such-lead", verdict="too_low").status_code == 404
    manager = role_keys["t01", "manager"]
    assert judge(server, manager, own, verdict="meh").status_code == 422
    assert judge(server, manager, own, verdict="too_low", note="x" * 501).status_code == 422
    wrong = judge(server, manager, own, verdict="too_low", model_version="999")
    assert wrong.status_code == 422 and "999" in wrong.json()["error"]


def test_the_lead_page_button_records_the_verdict_in_the_readers_language(server, role_keys, scored):
    manager = role_keys["t01", "manager"]
    lead = lead_of(scored, "t01")
    page = httpx.get(server.url + f"/dashboard/leads/{lead}", params={"lang": "zh-CN"}, headers=manager.auth)
    assert page.status_code == 200
    assert "这个评分不对？" in page.text and 'value="too_high"' in page.text and "评分过低" in page.text
    _, before = health_counts(server, manager)
    sent = httpx.post(
        server.url + f"/dashboard/leads/{lead}/feedback",
        data={"verdict": "too_low", "model_version": str(scored.version), "p_close": "0.2", "note": "called today"},
        headers=manager.auth,
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"].endswith("msg=thanks")
    _, after = health_counts(server, manager)
    hi, lo = before.get(str(scored.version), (0, 0))
    assert after[str(scored.version)] == (hi, lo + 1)
    thanked = httpx.get(server.url + f"/dashboard/leads/{lead}", params={"msg": "thanks"}, headers=manager.auth)
    assert f"counted for model v{scored.version}" in thanked.text
