"""The README's /v1/score request, run as written against the real server; its answer has the README's shape."""

from __future__ import annotations

import copy
import json
import re

import httpx
import pytest

from tests.support.package_layout import REPO

pytestmark = pytest.mark.server


def readme_block(name: str) -> dict:
    """The JSON between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in README.md (its code fence removed)."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- {name}:begin -->\s*```json\n(.*?)```\s*<!-- {name}:end -->", text, re.S)
    assert found, f"README.md has no {name} block"
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def system_key(role_keys) -> str:
    """A system key of t01, after the batch run stored the salesperson context (the server caches it per tenant)."""
    return role_keys["t01", "system"].token


def score(server, key: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + "/v1/score", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_the_readme_request_scores_its_lead_as_the_readme_answer_shows(server, system_key):
    resp = score(server, system_key, readme_block("score-request"))
    assert resp.status_code == 200, resp.text[:500]
    answer, shown = resp.json(), readme_block("score-answer")
    assert set(answer) == set(shown)
    (lead,) = answer["leads"]
    assert set(lead) == set(shown["leads"][0])
    assert lead["status"] == "scored" and lead["stage"] == "contacted" and lead["warnings"] == []
    curve = [lead["p_close"][h] for h in sorted(lead["p_close"], key=lambda h: int(h.rstrip("d")))]
    assert curve and all(0 <= p <= 1 for p in curve) and curve == sorted(curve)
    assert set(lead["transitions"]) <= {"contacted", "qualified", "proposal"} and lead["reasons"]["for"]
    assert answer["as_of"].startswith("2026-06-15") and answer["model_version"]


def test_a_lead_sent_without_its_attributes_is_scored_with_a_warning_naming_each(server, system_key):
    body = copy.deepcopy(readme_block("score-request"))
    del body["leads"][0]["attributes"]
    expected = httpx.get(server.url + "/v1/model", headers={"Authorization": f"Bearer {system_key}"}, timeout=30)
    attributes = expected.json()["attributes"]
    assert attributes, "the test model reads no lead attribute, so nothing can be missing"
    lead = score(server, system_key, body).json()["leads"][0]
    assert lead["status"] == "scored"
    assert [w.split("'")[1] for w in lead["warnings"]] == attributes


def test_the_model_endpoint_lists_features_attributes_event_types_and_stages(server, system_key):
    info = httpx.get(server.url + "/v1/model", headers={"Authorization": f"Bearer {system_key}"}, timeout=30).json()
    assert len(info["features"]) > 20 and all(f"attr_{a}" in info["features"] for a in info["attributes"])
    request = readme_block("score-request")
    assert set(request["leads"][0]["attributes"]) == set(info["attributes"])
    assert {e["event_type"] for e in request["leads"][0]["events"]} <= set(info["event_types"])
    assert {s["stage"] for s in request["leads"][0]["stages"]} <= set(info["stages"])
