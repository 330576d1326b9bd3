"""The running service refuses ids a request names outside its events when they hold a bidi or zero-width
character, as ingest does for the ids inside events (tests/serving/test_shared_validation.py covers those)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.server


@pytest.mark.parametrize("lead_id", ["t01-L1\u202e", "t01-\u200bL1", "\ufefft01-L1"])
def test_a_lead_id_with_an_invisible_character_is_a_422_naming_the_field(server, system_key, lead_id):
    body = {"leads": [{"lead_id": lead_id, "features": {}}]}
    r = httpx.post(server.url + "/v1/score", json=body, headers={"Authorization": f"Bearer {system_key}"}, timeout=60)
    assert r.status_code == 422, r.text[:300]
    (error,) = r.json()["detail"]
    assert error["loc"][-3:] == ["leads", 0, "lead_id"]
    assert "invisible or direction-changing character" in error["msg"]


def test_a_plain_lead_id_gets_past_the_id_check(server, system_key):
    body = {"leads": [{"lead_id": "t01-L1", "features": {}}]}
    r = httpx.post(server.url + "/v1/score", json=body, headers={"Authorization": f"Bearer {system_key}"}, timeout=60)
    assert "invisible" not in r.text


def test_ranking_by_a_salesperson_id_with_a_bidi_character_is_a_422(server, role_keys):
    key = role_keys["t01", "manager"]
    r = httpx.post(server.url + "/v1/rank", json={"sales_id": "t01-s001\u2067"}, headers=key.auth, timeout=60)
    assert r.status_code == 422 and "invisible" in r.text
