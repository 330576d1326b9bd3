"""POST /v1/events and /v1/stages, GET /v1/quarantine against the real server and the store it writes."""

from __future__ import annotations

import httpx
import pytest

from leadradar.features.store import EventStore
from tests.support.live_events import event, fresh, post

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def store(settings):
    """The event store the session's server writes (the same file), read from the test process."""
    opened = EventStore.open(settings)
    yield opened
    opened.close()


def quarantine(server, key, **params) -> list[dict]:
    resp = httpx.get(server.url + "/v1/quarantine", params=params, headers=key.auth, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def test_a_resent_batch_is_stored_once_and_counted_as_duplicates(server, role_keys, store):
    lead = fresh("L-resend")
    batch = {"events": [event(fresh("e"), lead, minutes_ago=i) for i in range(3)]}
    first = post(server.url, "/v1/events", batch, role_keys["t01", "system"])
    again = post(server.url, "/v1/events", batch, role_keys["t01", "system"])
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json() == {"received": 3, "stored": 3, "duplicate": 0, "quarantined": 0, "refused": []}
    assert again.json() == {"received": 3, "stored": 0, "duplicate": 3, "quarantined": 0, "refused": []}
    assert store.events("t01", leads=[lead]).num_rows == 3


def test_a_resent_event_with_other_content_is_quarantined_and_listed(server, role_keys, store):
    lead, eid = fresh("L-conflict"), fresh("e")
    key = role_keys["t01", "system"]
    assert post(server.url, "/v1/events", {"events": [event(eid, lead, dwell_s=10.0)]}, key).json()["stored"] == 1
    changed = post(server.url, "/v1/events", {"events": [event(eid, lead, dwell_s=99.0)]}, key).json()
    assert changed["quarantined"] == 1 and changed["stored"] == 0
    assert changed["refused"][0]["index"] == 0 and changed["refused"][0]["field"] == "event_id"
    assert "different content" in changed["refused"][0]["reason"]
    assert store.events("t01", leads=[lead])["dwell_s"].to_pylist() == [10.0]  # the first copy stays
    for role in ("system", "manager"):
        listed = [q for q in quarantine(server, role_keys["t01", role]) if q["received"].get("event_id") == eid]
        assert listed and listed[0]["field"] == "event_id" and listed[0]["received"]["dwell_s"] == 99.0


def test_counts_reconcile_on_a_mixed_good_and_bad_batch(server, role_keys, store):
    lead = fresh("L-mixed")
    good = [event(fresh("e"), lead, minutes_ago=i) for i in range(4)]
    bad = [
        event(fresh("e"), lead, ts="2026-03-01T10:00:00"),  # naive
        event(fresh("e"), lead, event_type="telepathy"),
        event(fresh("e"), lead, dwell_s=-1),
        event(fresh("e"), lead, tenant_id="t02"),  # another tenant's
        {k: v for k, v in event(fresh("e"), lead).items() if k != "sales_id"},
    ]
    batch = [good[0], bad[0], good[1], bad[1], good[1], bad[2], good[2], bad[3], good[3], bad[4]]
    got = post(server.url, "/v1/events", {"events": batch}, role_keys["t01", "system"]).json()
    assert got["received"] == len(batch) == got["stored"] + got["duplicate"] + got["quarantined"]
    assert (got["stored"], got["duplicate"], got["quarantined"]) == (4, 1, 5)
    assert [(r["index"], r["field"]) for r in got["refused"]] == [
        (1, "ts"),
        (3, "event_type"),
        (5, "dwell_s"),
        (7, "tenant_id"),
        (9, "sales_id"),
    ]
    assert all(r["reason"] for r in got["refused"])
    assert store.events("t01", leads=[lead]).num_rows == 4


def test_a_key_cannot_write_into_another_tenant(server, role_keys, store):
    lead, eid = fresh("L-other"), fresh("e")
    got = post(server.url, "/v1/events", {"events": [event(eid, lead, tenant_id="t02")]}, role_keys["t01", "system"])
    assert got.json()["quarantined"] == 1 and "not this key's tenant" in got.json()["refused"][0]["reason"]
    assert store.events("t02", leads=[lead]).num_rows == 0
    assert not [q for q in quarantine(server, role_keys["t02", "system"]) if q["received"].get("event_id") == eid]
    assert [q for q in quarantine(server, role_keys["t01", "system"]) if q["received"].get("event_id") == eid]


def test_one_tenants_quarantine_is_not_listed_for_another(server, role_keys):
    eid = fresh("e")
    post(server.url, "/v1/events", {"events": [event(eid, fresh("L"), event_type="nope")]}, role_keys["t02", "system"])
    assert [q for q in quarantine(server, role_keys["t02", "manager"]) if q["received"].get("event_id") == eid]
    for role in ("system", "manager"):
        assert not [q for q in quarantine(server, role_keys["t01", role]) if q["received"].get("event_id") == eid]


def test_quarantine_pages_newest_first(server, role_keys):
    key = role_keys["t01", "system"]
    post(
        server.url, "/v1/events", {"events": [event(fresh("e"), fresh("L"), event_type="nope") for _ in range(3)]}, key
    )
    first = httpx.get(server.url + "/v1/quarantine", params={"limit": 2}, headers=key.auth, timeout=30).json()
    assert len(first["items"]) == 2 and first["items"][0]["id"] > first["items"][1]["id"]
    rest = httpx.get(
        server.url + "/v1/quarantine", params={"limit": 2, "before": first["next_before"]}, headers=key.auth
    ).json()
    assert rest["items"] and rest["items"][0]["id"] < first["items"][1]["id"]


@pytest.mark.parametrize("role", ["manager", "sales"])
def test_only_system_keys_write_events_and_stages(server, role_keys, role):
    for path, body in (("/v1/events", {"events": []}), ("/v1/stages", {"stages": []})):
        assert post(server.url, path, body, role_keys["t01", role]).status_code == 403


def test_a_sales_key_cannot_read_the_quarantine_and_no_key_gets_401(server, role_keys):
    assert httpx.get(server.url + "/v1/quarantine", headers=role_keys["t01", "sales"].auth).status_code == 403
    assert httpx.post(server.url + "/v1/events", json={"events": []}).status_code == 401


def test_more_events_than_the_limit_get_413_naming_it(server, role_keys, settings):
    limit = settings.store.max_events_per_request
    lead = fresh("L-413")
    batch = {"events": [event(f"{lead}-{i}", lead) for i in range(limit + 1)]}
    resp = post(server.url, "/v1/events", batch, role_keys["t01", "system"])
    assert resp.status_code == 413 and str(limit) in resp.json()["detail"]
    assert post(server.url, "/v1/stages", {"stages": [{}] * (limit + 1)}, role_keys["t01", "system"]).status_code == 413


@pytest.mark.parametrize(
    "body,loc",
    [
        ([], ["body"]),
        ({"evnts": []}, ["body", "evnts"]),
        ({}, ["body", "events"]),
        ({"events": {"event_id": "x"}}, ["body", "events"]),
        ({"events": [{"event_id": "a"}, "b"]}, ["body", "events", 1]),
        ({"events": [{"event_id": "a", "colour": "red"}]}, ["body", "events", 0, "colour"]),
        ({"events": [{"event_id": "a"}, {"event_id": 7}]}, ["body", "events", 1, "event_id"]),
        ({"events": [{"event_id": "a", "dwell_s": "long"}]}, ["body", "events", 0, "dwell_s"]),
        ({"events": [{"event_id": "a", "dwell_s": True}]}, ["body", "events", 0, "dwell_s"]),
        ({"events": [{"event_id": "a", "lead_id": ["x"]}]}, ["body", "events", 0, "lead_id"]),
    ],
)
def test_a_malformed_body_gets_422_with_its_field_path(server, role_keys, body, loc):
    resp = post(server.url, "/v1/events", body, role_keys["t01", "system"])
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == loc


def test_a_body_that_is_not_json_gets_422(server, role_keys):
    headers = {**role_keys["t01", "system"].auth, "content-type": "application/json"}
    resp = httpx.post(server.url + "/v1/events", content=b'{"events": [', headers=headers, timeout=30)
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body"]


def test_stage_changes_are_stored_once_and_refused_ones_quarantined(server, role_keys, store):
    lead = fresh("L-stage")
    now = "2026-01-05T10:00:00+00:00"
    body = {
        "stages": [
            {"lead_id": lead, "stage": "engaged", "ts": now},
            {"lead_id": lead, "stage": "engaged", "ts": now},
            {"lead_id": lead, "stage": "dreaming", "ts": now},
            {"lead_id": lead, "stage": "won", "ts": now, "deal_value": 5000, "tenant_id": "t02"},
        ]
    }
    got = post(server.url, "/v1/stages", body, role_keys["t01", "system"]).json()
    assert (got["received"], got["stored"], got["duplicate"], got["quarantined"]) == (4, 1, 1, 2)
    assert [(r["index"], r["field"]) for r in got["refused"]] == [(2, "stage"), (3, "tenant_id")]
    assert store.stages("t01", leads=[lead])["stage"].to_pylist() == ["engaged"]
    assert store.stages("t02", leads=[lead]).num_rows == 0


def test_forgetting_an_empty_lead_id_gets_422_and_deletes_nothing(server, role_keys, store):
    lead = fresh("L-kept")
    assert post(server.url, "/v1/events", {"events": [event(fresh("e"), lead)]}, role_keys["t01", "system"]).is_success
    resp = httpx.delete(server.url + "/v1/leads/%20%20", headers=role_keys["t01", "system"].auth, timeout=30)
    assert resp.status_code == 422 and "lead id is empty" in resp.json()["error"], resp.text
    assert store.events("t01", leads=[lead]).num_rows == 1
