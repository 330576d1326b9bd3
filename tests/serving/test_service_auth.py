"""Keys, roles and tenants against the real server: exactly 401, 403 or 200, and never another tenant's leads."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from leadradar.serving.auth import PERMISSIONS, KeyStore

pytestmark = pytest.mark.server
TENANTS = ("t01", "t02")
ROLES = ("system", "manager", "sales")
OTHER = {"t01": "t02", "t02": "t01"}


def call(server, endpoint: str, headers: dict, body: dict | None = None) -> httpx.Response:
    if endpoint == "model":
        return httpx.get(server.url + "/v1/model", headers=headers, timeout=30)
    return httpx.post(server.url + f"/v1/{endpoint}", json=body or {}, headers=headers, timeout=30)


def feature_row(scored, tenant: str) -> dict:
    """One open lead of `tenant` as a feature row, naming its tenant as a CRM may."""
    row = scored.features[scored.features["tenant_id"] == tenant].iloc[0]
    names = [c for c in scored.features.columns if c not in ("tenant_id", "lead_id", "cutoff", "sales_id", "stage")]
    return {
        "lead_id": row["lead_id"],
        "tenant_id": tenant,
        "features": {f: (None if pd.isna(row[f]) else row[f]) for f in names},
    }


def busiest_sales(scored, tenant: str) -> str:
    return scored.scores.loc[scored.scores["tenant_id"] == tenant, "sales_id"].value_counts().index[0]


def expected_status(role: str, endpoint: str, whose: str) -> int:
    """The PERMISSIONS table, then the tenant (and, for a sales key, the salesperson) on top."""
    if role not in PERMISSIONS[endpoint]:
        return 403
    if whose == "other" and (endpoint == "score" or role == "sales"):
        return 403
    return 200


def request_for(endpoint: str, whose: str, key, scored) -> dict | None:
    tenant = key.tenant if whose == "own" else OTHER[key.tenant]
    if endpoint == "score":
        return {"leads": [feature_row(scored, tenant)]}
    if endpoint == "rank":
        return {"sales_id": key.sales_id or busiest_sales(scored, tenant)} if whose == "other" else {}
    return None


MATRIX = [
    (tenant, role, endpoint, whose)
    for tenant in TENANTS
    for role in ROLES
    for endpoint, scopes in (("score", ("own", "other")), ("rank", ("own", "other")), ("model", ("own",)))
    for whose in scopes
]


@pytest.mark.parametrize("tenant,role,endpoint,whose", MATRIX, ids=["-".join(m) for m in MATRIX])
def test_every_role_and_tenant_gets_exactly_the_status_the_permissions_table_gives(
    tenant, role, endpoint, whose, server, scored, role_keys
):
    key = role_keys[tenant, role]
    if endpoint == "rank" and whose == "other" and role == "sales":
        # a sales key asking for another salesperson: one of its own tenant, and one of the other tenant
        for sales in (
            busiest_sales(scored, OTHER[tenant]),
            scored.scores.loc[scored.scores["tenant_id"] == tenant, "sales_id"].value_counts().index[1],
        ):
            resp = call(server, endpoint, key.auth, {"sales_id": sales})
            assert resp.status_code == 403, resp.text
        return
    resp = call(server, endpoint, key.auth, request_for(endpoint, whose, key, scored))
    want = expected_status(role, endpoint, whose)
    assert resp.status_code == want, resp.text
    assert f"{OTHER[tenant]}-" not in resp.text  # no lead, salesperson or item id of the other tenant
    if want != 200:
        assert set(resp.json()) == {"error"}
        return
    body = resp.json()
    if endpoint == "score":
        assert [a["tenant_id"] for a in body["leads"]] == [tenant] and body["leads"][0]["status"] == "scored"
    if endpoint == "rank":
        assert body["tenant_id"] == tenant
        if whose == "other":  # another tenant's salesperson: nothing of theirs
            assert body["total"] == 0 and body["leads"] == []
        else:
            assert body["total"] > 0 and all(r["lead_id"].startswith(f"{tenant}-") for r in body["leads"])
            if role == "sales":
                assert {r["sales_id"] for r in body["leads"]} == {key.sales_id}


def test_rank_of_one_tenant_never_lists_a_lead_of_the_other(server, scored, role_keys):
    for tenant in TENANTS:
        theirs = set(scored.scores.loc[scored.scores["tenant_id"] == OTHER[tenant], "lead_id"])
        mine = set(scored.scores.loc[scored.scores["tenant_id"] == tenant, "lead_id"])
        listed, page = [], 1
        while True:
            resp = call(server, "rank", role_keys[tenant, "manager"].auth, {"page": page, "page_size": 500})
            assert resp.status_code == 200, resp.text
            if not resp.json()["leads"]:
                break
            listed += [r["lead_id"] for r in resp.json()["leads"]]
            page += 1
        assert set(listed) == mine and not set(listed) & theirs


def test_a_sales_key_sees_exactly_its_own_salespersons_leads(server, scored, role_keys):
    key = role_keys["t01", "sales"]
    own = scored.scores[(scored.scores["tenant_id"] == "t01") & (scored.scores["sales_id"] == key.sales_id)]
    for body in ({"page_size": 500}, {"sales_id": key.sales_id, "page_size": 500}):
        resp = call(server, "rank", key.auth, body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["total"] == len(own)
        assert {r["lead_id"] for r in resp.json()["leads"]} == set(own["lead_id"])


def test_a_batch_with_one_lead_of_another_tenant_is_refused_whole(server, scored, role_keys):
    key = role_keys["t01", "system"]
    leads = [feature_row(scored, "t01"), feature_row(scored, "t02"), feature_row(scored, "t01")]
    resp = call(server, "score", key.auth, {"leads": leads})
    assert resp.status_code == 403 and "leads[1].tenant_id" in resp.json()["error"]
    assert "p_close" not in resp.text and "t01-L" not in resp.text


def test_a_lead_sent_without_a_tenant_is_scored_as_the_keys_tenant(server, scored, role_keys):
    lead = feature_row(scored, "t02")
    del lead["tenant_id"]
    resp = call(server, "score", role_keys["t01", "manager"].auth, {"leads": [lead]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["leads"][0]["tenant_id"] == "t01"


def test_rank_takes_its_tenant_from_the_key_only(server, role_keys):
    resp = call(server, "rank", role_keys["t01", "system"].auth, {"tenant_id": "t02"})
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "tenant_id"]


# -- 401: no key, a malformed key, a wrong secret, a revoked key --------------------------------------------------


@pytest.mark.parametrize("endpoint", ["score", "rank", "model"])
def test_no_key_is_401_with_a_bearer_challenge(endpoint, server, scored):
    body = {"leads": [feature_row(scored, "t01")]} if endpoint == "score" else {}
    resp = call(server, endpoint, {}, body)
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert set(resp.json()) == {"error"} and "t01-" not in resp.text


MALFORMED = [
    "garbage",
    "lr_",
    "lr_abc",
    "lr__secret",
    "lr_abc_",
    "lr_a_b_c",
    "xx_abc_def",
    "Bearer",
    "Basic Zm9vOmJhcg==",
    "lr_" + "a" * 5000 + "_b",
]


@pytest.mark.parametrize("token", MALFORMED, ids=[t[:20] for t in MALFORMED])
def test_a_malformed_key_is_401(token, server):
    for headers in ({"Authorization": token}, {"Authorization": f"Bearer {token}"}, {"X-Api-Key": token}):
        resp = call(server, "model", headers)
        assert resp.status_code == 401, (headers, resp.text)


def test_a_wrong_secret_or_an_unknown_key_id_is_401_and_the_right_one_200(server, role_keys):
    key = role_keys["t01", "manager"]
    _, key_id, secret = key.token.split("_")
    for token in (
        f"lr_{key_id}_{secret[:-1]}",
        f"lr_{key_id}_{secret}x",
        f"lr_{key_id}_{'A' * len(secret)}",
        f"lr_{key_id[::-1]}_{secret}",
        f"lr_{key_id.upper()}_{secret}",
    ):
        if token == key.token:
            continue
        assert call(server, "model", {"Authorization": f"Bearer {token}"}).status_code == 401, token
    assert call(server, "model", {"Authorization": f"Bearer {key.token}"}).status_code == 200
    assert call(server, "model", {"X-Api-Key": key.token}).status_code == 200
    assert call(server, "model", {"Authorization": f"bearer {key.token}"}).status_code == 200


def test_a_key_revoked_before_its_first_use_is_401(server, settings, scored):
    store = KeyStore(settings.score_store_url)
    key_id, token = store.create("t01", "system", name="revoked at once")
    assert store.revoke(key_id)
    for endpoint in ("score", "rank", "model"):
        body = {"leads": [feature_row(scored, "t01")]} if endpoint == "score" else {}
        assert call(server, endpoint, {"Authorization": f"Bearer {token}"}, body).status_code == 401


def test_a_revoked_key_is_refused_on_the_next_request_without_a_key_cache(bare_server):
    store = KeyStore(bare_server.settings.score_store_url)
    key_id, token = store.create("t01", "manager", name="revoked in use")
    auth = {"Authorization": f"Bearer {token}"}
    assert call(bare_server, "model", auth).status_code == 200
    assert call(bare_server, "rank", auth).status_code == 200
    assert store.revoke(key_id)
    for endpoint in ("model", "rank", "score"):
        body = {"leads": [{"lead_id": "L1", "features": {}}]} if endpoint == "score" else {}
        assert call(bare_server, endpoint, auth, body).status_code == 401


@pytest.mark.parametrize("endpoint", ["score", "rank"])
def test_a_request_without_a_valid_key_gets_401_whatever_its_body(endpoint, server):
    for headers in ({}, {"Authorization": "Bearer lr_nope_nope"}):
        resp = call(server, endpoint, headers, {"page": "x", "leads": "x"})
        assert resp.status_code == 401, resp.text[:200]


def test_a_cached_key_that_expires_while_it_is_looked_up_is_verified_not_a_500(tmp_path):
    """Under load a key's cache entry can expire between asking the cache whether it holds the key and reading it
    (a 500 in the mixed traffic of tests/serving/test_service_load.py). A clock that moves 20 s at each
    reading, under a 30 s cache, puts that instant into every lookup."""
    from cachetools import TTLCache

    store = KeyStore(f"sqlite:///{tmp_path / 'keys.db'}")
    key_id, token = store.create("t01", "system", name="expiring")
    now = iter(range(0, 10_000, 20))
    store._cache = TTLCache(maxsize=16, ttl=30, timer=lambda: next(now))
    for _ in range(6):
        principal = store.verify(token)
        assert principal is not None and (principal.key_id, principal.tenant_id) == (key_id, "t01")
    assert store.verify(token[:-1] + ("a" if token[-1] != "a" else "b")) is None
