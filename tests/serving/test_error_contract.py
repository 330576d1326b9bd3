"""One error shape for the whole API: each kind of error the service gives matches the document's ErrorBody."""

from __future__ import annotations

import httpx
import pytest

from leadradar.serving.auth import KeyStore
from tests.support.error_answers import problems

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def keys(server, settings) -> dict[str, dict[str, str]]:
    store = KeyStore(settings.score_store_url)
    made = {role: store.create("t01", role, name="error contract", sales_id="s1")[1] for role in ("system", "sales")}
    return {role: {"Authorization": f"Bearer {key}"} for role, key in made.items()}


def test_every_kind_of_error_answers_the_documented_shape(server, bare_server, keys):
    lead = {"lead_id": "L1", "features": {"n_card_view_7d": 1}}
    bare_key = KeyStore(bare_server.settings.score_store_url).create("t01", "system", name="error contract")[1]
    bare = {"Authorization": f"Bearer {bare_key}"}
    url, burl = server.url + "/v1", bare_server.url + "/v1"
    answers = {
        401: httpx.post(url + "/score", json={"leads": [lead]}, headers={"Authorization": "Bearer lr_x_y"}),
        403: httpx.post(url + "/score", json={"leads": [lead]}, headers=keys["sales"]),
        404: httpx.get(url + "/nothing-here", headers=keys["system"]),
        405: httpx.get(url + "/score", headers=keys["system"]),
        413: httpx.post(burl + "/score", json={"leads": [{**lead, "lead_id": "x" * 5000}]}, headers=bare),
        422: httpx.post(
            url + "/score", content=b"{not json", headers={**keys["system"], "content-type": "application/json"}
        ),
        503: httpx.post(burl + "/score", json={"leads": [lead]}, headers=bare),
    }
    unknown_field = httpx.post(url + "/rank", json={"colour": "red"}, headers=keys["system"])
    assert {code: r.status_code for code, r in answers.items()} == {code: code for code in answers}
    assert unknown_field.status_code == 422 and unknown_field.json()["error"].startswith("body.colour")
    assert problems([*answers.values(), unknown_field]) == []
    assert all(isinstance(r.json()["error"], str) and r.json()["error"] for r in answers.values())


def test_the_document_declares_the_key_schemes_and_points_every_error_at_error_body(server):
    doc = httpx.get(server.url + "/v1/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    assert {"bearer": []} in doc["security"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for code, answer in op["responses"].items():
                if code[0] in "45":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)


def test_rank_takes_an_empty_body_for_the_first_page(server, keys):
    for sent in ({}, {"content": b""}):
        resp = httpx.post(server.url + "/v1/rank", headers=keys["system"], **sent)
        assert resp.status_code == 200, resp.text[:300]
        assert resp.json()["page"] == 1
