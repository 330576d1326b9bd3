"""The same events through `leadradar ingest` and through the running service's /v1/score get the same verdicts.

One list of events, each labelled by its `channel`: good ones, and for every rule of features/validation.py
one that breaks it (but those a request cannot break: the API takes the tenant from the key, and an event
without a lead_id is the scored lead's). Ingest reads them
from a JSON Lines file and quarantines the bad ones with a field each (a changed re-send goes to
conflicts.parquet); the service refuses a request holding one of them with a 422 naming the event's
index and field. Both must refuse the same events for the same field, and count a same-content
re-send once.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.features.validation import RULES

pytestmark = pytest.mark.server

TENANT = "t01"
LEAD = "shared-validation-L1"
NOW = pd.Timestamp.now(tz="UTC").floor("s")
RESENT = 29


def at(**delta: float) -> str:
    return (NOW + pd.Timedelta(**delta)).isoformat()


def event(label: str, **changes: object) -> dict:
    """An event as a CRM sends it; a change to None leaves the field out."""
    body: dict = {
        "event_id": f"sv-{label}",
        "lead_id": LEAD,
        "sales_id": "t01-s001",
        "ts": at(days=-2),
        "event_type": "card_view",
        "dwell_s": 30.0,
        "channel": label,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


GOOD = [
    event("good-view"),
    event("good-call", event_type="phone_call", dwell_s=None, ts=at(days=-1)),
    event("good-longest-dwell", event_type="video_view", dwell_s=4 * 3600.0),
    event("good-earliest", ts="2000-01-01T00:00:00+00:00"),
    event("good-half-a-day-ahead", ts=at(hours=12)),
    event("good-offset", ts=(NOW - pd.Timedelta(hours=5)).tz_convert("Asia/Shanghai").isoformat()),
    event("good-first-copy", event_type="meeting", dwell_s=None),
]
CHANGED = event("good-first-copy", event_type="meeting", dwell_s=None) | {"channel": "resent-changed", "dwell_s": 5.0}

# (field, rule) -> the event that breaks it
BAD: dict[tuple[str, str], dict] = {
    ("event_id", "missing"): event("no-id", event_id=None),
    ("event_id", "blank"): event("blank-id", event_id="   "),
    ("lead_id", "blank"): event("blank-lead", lead_id="  "),
    ("sales_id", "missing"): event("no-sales", sales_id=None),
    ("sales_id", "blank"): event("blank-sales", sales_id=" "),
    ("ts", "missing"): event("no-ts", ts=None),
    ("ts", "unparseable"): event("unparseable-ts", ts="yesterday"),
    ("ts", "naive"): event("naive-ts", ts="2026-03-01T10:00:00"),
    ("ts", "too_early"): event("before-2000", ts="1999-12-31T23:59:59+00:00"),
    ("ts", "too_late"): event("two-days-ahead", ts=at(days=2)),
    ("event_type", "missing"): event("no-type", event_type=None),
    ("event_type", "blank"): event("blank-type", event_type="  "),
    ("event_type", "unknown"): event("unknown-type", event_type="teleport"),
    ("dwell_s", "not_finite"): event("dwell-not-a-number", dwell_s="long"),
    ("dwell_s", "negative"): event("negative-dwell", dwell_s=-3.0),
    ("dwell_s", "implausible"): event("dwell-2500-hours", dwell_s=2500 * 3600.0),
    ("event_id", "resent_changed"): CHANGED,
    ("event_id", "invisible"): event("zero-width-id", event_id="sv-\u200bid"),
    ("lead_id", "invisible"): event("bidi-lead", lead_id="L\u202e1"),
    ("sales_id", "invisible"): event("bidi-sales", sales_id="t01-s001\u2066"),
    ("item_id", "invisible"): event("bom-item", item_id="\ufeffp1"),
    ("referrer_lead_id", "invisible"): event("zero-width-referrer", referrer_lead_id="L\u200d2"),
}


# What a request fills in itself: the tenant from the key, an event's missing lead_id from the lead scored.
FILLED_IN = {("tenant_id", "missing"), ("tenant_id", "blank"), ("tenant_id", "invisible"), ("lead_id", "missing")}


@pytest.fixture(scope="module")
def key(server, scored, system_key) -> str:
    """A t01 system key, once the batch runs are stored: the server caches a tenant's salesperson context
    for a minute from its first request, and other tests compare answers made with that context."""
    return system_key


def test_every_rule_a_request_can_break_has_a_bad_event_here():
    rules = {(rule.field, rule.name) for rule in RULES} - FILLED_IN | {("event_id", "resent_changed")}
    assert set(BAD) == rules


def ingest_verdicts(tmp_path: Path, settings, events: list[dict]) -> tuple[dict[str, str | None], dict]:
    """`leadradar ingest` of the events as JSON Lines: per label, the refused field (None: stored)."""
    src = tmp_path / "events.jsonl"
    src.write_text("".join(json.dumps(e | {"tenant_id": TENANT}) + "\n" for e in events))
    out = tmp_path / "store"
    result = CliRunner().invoke(
        app, ["ingest", str(src), "--out", str(out), "--json"], env={"LEADRADAR_HOME": str(settings.data_dir)}
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    verdicts: dict[str, str | None] = {label: None for label in pd.read_parquet(out / "events.parquet")["channel"]}
    quarantine = pd.read_parquet(out / "quarantine.parquet")
    verdicts |= dict(zip(quarantine["channel"], quarantine["field"]))
    if (out / "conflicts.parquet").exists():
        verdicts |= {label: "event_id" for label in pd.read_parquet(out / "conflicts.parquet")["channel"]}
    reasons = dict(zip(quarantine["channel"], quarantine["reason"]))
    return verdicts, {"report": report, "reasons": reasons}


def score(server, key: str, events: list[dict]) -> httpx.Response:
    lead = {"lead_id": LEAD, "events": events, "stages": [{"stage": "engaged", "ts": at(days=-10)}]}
    body = {"leads": [lead], "as_of": NOW.isoformat()}  # one as_of: hours-since features do not move between calls
    return httpx.post(server.url + "/v1/score", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def api_verdict(server, key: str, bad: dict) -> tuple[str | None, str]:
    """The field /v1/score names when the good events come with this one (None: answered 200)."""
    resp = score(server, key, [*GOOD, bad])
    if resp.status_code == 200:
        return None, ""
    assert resp.status_code == 422, resp.text[:500]
    where = ["body", "leads", 0, "events", len(GOOD)]
    named = [d for d in resp.json()["detail"] if d["loc"][:5] == where]
    assert len(named) == 1 == len(resp.json()["detail"]), resp.json()["detail"]
    return named[0]["loc"][5], named[0]["msg"]


def test_ingest_and_the_api_refuse_the_same_events_for_the_same_field(server, key, settings, tmp_path):
    copies = [GOOD[1]] * RESENT
    by_ingest, seen = ingest_verdicts(tmp_path, settings, [*GOOD, *copies, *BAD.values()])
    by_api = {e["channel"]: api_verdict(server, key, e)[0] for e in BAD.values()}
    good = score(server, key, GOOD)

    assert good.status_code == 200, good.text[:500]
    assert {label: by_ingest[label] for label in by_api} == by_api
    assert by_api == {e["channel"]: field for (field, _), e in BAD.items()}
    assert all(by_ingest[e["channel"]] is None for e in GOOD)
    total = seen["report"]["total"]
    assert (total["accepted"], total["duplicates"], total["conflicting_duplicates"]) == (len(GOOD), RESENT + 1, 1)


def test_the_implausible_dwell_is_refused_both_ways_naming_the_one_setting_that_bounds_it(
    server, key, settings, tmp_path
):
    bad = BAD["dwell_s", "implausible"]
    _, seen = ingest_verdicts(tmp_path, settings, [bad])
    field, msg = api_verdict(server, key, bad)

    assert field == "dwell_s"
    assert "settings.events.max_dwell_seconds" in seen["reasons"][bad["channel"]]
    assert "settings.events.max_dwell_seconds" in msg


def test_a_resent_event_with_the_same_content_counts_once_in_the_api_as_in_ingest(server, key):
    once = score(server, key, GOOD)
    resent = score(server, key, [*GOOD, *[GOOD[1]] * RESENT])
    as_new = score(server, key, [*GOOD, *(GOOD[1] | {"event_id": f"sv-call-{i}"} for i in range(RESENT))])

    for resp in (once, resent, as_new):
        assert resp.status_code == 200, resp.text[:500]
    assert once.json()["leads"][0]["status"] == "scored"
    assert resent.json()["leads"] == once.json()["leads"]
    assert as_new.json()["leads"][0]["p_close"] != once.json()["leads"][0]["p_close"]  # the count would show
