"""/v1/score with a lead given only by its id: features from its stored history equal the same events sent inline."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support.live_events import event, fresh, post

pytestmark = pytest.mark.server
TYPES = ["card_view", "product_view", "card_share", "phone_call", "article_view", "card_view"]


def lead_events(lead: str, sales_id: str) -> list[dict]:
    return [
        event(fresh("e"), lead, minutes_ago=60 * 24 * (12 - 2 * i), event_type=t, sales_id=sales_id, dwell_s=30.0 + i)
        for i, t in enumerate(TYPES)
    ]


def inline(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "lead_id"} for e in events]


def scores(server, key, leads: list[dict], as_of: str) -> list[dict]:
    resp = post(server.url, "/v1/score", {"leads": leads, "as_of": as_of}, key)
    assert resp.status_code == 200, resp.text
    return resp.json()["leads"]


@pytest.fixture(scope="module")
def stored_lead(server, role_keys, scored):
    """A new lead of t01's busiest salesperson with six events and a stage, posted to the store."""
    system = role_keys["t01", "system"]
    lead = fresh("L-byid")
    events = lead_events(lead, role_keys["t01", "sales"].sales_id)
    stage_ts = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=20)).floor("s").isoformat()
    stages = [{"lead_id": lead, "stage": "engaged", "ts": stage_ts}]
    assert post(server.url, "/v1/events", {"events": events}, system).json()["stored"] == len(events)
    assert post(server.url, "/v1/stages", {"stages": stages}, system).json()["stored"] == 1
    return lead, events, stages


def test_score_by_id_equals_score_with_the_same_events_inline(server, role_keys, stored_lead):
    lead, events, stages = stored_lead
    key = role_keys["t01", "system"]
    as_of = pd.Timestamp.now(tz="UTC").floor("s").isoformat()
    by_id = scores(server, key, [{"lead_id": lead}], as_of)[0]
    sent = [{"lead_id": lead, "events": inline(events), "stages": [{"stage": "engaged", "ts": stages[0]["ts"]}]}]
    by_value = scores(server, key, sent, as_of)[0]
    assert by_id["status"] == "scored"
    assert by_id == by_value


def test_score_by_id_as_of_a_past_time_uses_only_the_events_before_it(server, role_keys, stored_lead):
    lead, events, stages = stored_lead
    key = role_keys["t01", "system"]
    as_of = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=5)).floor("s").isoformat()
    earlier = [e for e in events if pd.Timestamp(e["ts"]) <= pd.Timestamp(as_of)]
    assert 0 < len(earlier) < len(events)
    by_id = scores(server, key, [{"lead_id": lead}], as_of)[0]
    sent = [{"lead_id": lead, "events": inline(earlier), "stages": [{"stage": "engaged", "ts": stages[0]["ts"]}]}]
    assert by_id == scores(server, key, sent, as_of)[0]


def test_inline_events_are_added_to_the_stored_history(server, role_keys, stored_lead):
    lead, events, stages = stored_lead
    key = role_keys["t01", "system"]
    as_of = pd.Timestamp.now(tz="UTC").floor("s").isoformat()
    extra = [event(fresh("e"), lead, minutes_ago=5, event_type="meeting", sales_id=events[0]["sales_id"])]
    mixed = scores(server, key, [{"lead_id": lead, "stored": True, "events": inline(extra + events[:2])}], as_of)[0]
    everything = [
        {"lead_id": lead, "events": inline(events + extra), "stages": [{"stage": "engaged", "ts": stages[0]["ts"]}]}
    ]
    assert mixed == scores(server, key, everything, as_of)[0]


def test_a_key_of_another_tenant_cannot_score_the_lead_by_id(server, role_keys, stored_lead):
    lead, _, _ = stored_lead
    as_of = pd.Timestamp.now(tz="UTC").floor("s").isoformat()
    other = scores(server, role_keys["t02", "system"], [{"lead_id": lead}], as_of)[0]
    assert other["status"] == "unknown" and other["tenant_id"] == "t02" and other["p_close"] == {}
    refused = post(
        server.url, "/v1/score", {"leads": [{"lead_id": lead, "tenant_id": "t01"}]}, role_keys["t02", "system"]
    )
    assert refused.status_code == 403
