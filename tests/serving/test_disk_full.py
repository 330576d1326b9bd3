"""The event store's disk fills during ingestion (issue 21): the request is refused with 507 and says why, nothing
of it is half-written, and reads keep answering.

The store's folder is a 1 MB tmpfs mounted by the test (root only, as CI runs); the service has no model (storing
events does not score), and its score and key stores stay on the ordinary disk.
"""

from __future__ import annotations

import sqlite3

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from leadradar.config import Settings
from leadradar.features.store import EventStore
from leadradar.features.validation import validate_events
from leadradar.serving.auth import KeyStore
from leadradar.serving.process import ServiceProcess
from tests.support.live_events import event, fresh
from tests.support.raw_events import NOW
from tests.support.raw_events import event as raw_event
from tests.support.small_disk import small_disk

TENANT = "t01"


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory):
    with small_disk(tmp_path_factory.mktemp("small-disk"), "1m") as mount:
        settings = Settings(home=tmp_path_factory.mktemp("disk-full-home"))
        url = f"sqlite:///{mount}/events.db"
        token = KeyStore(settings.score_store_url).create(TENANT, "system", name="disk full tests")[1]
        env = {"LEADRADAR_STORE__URL": url, "BENTOML_HOME": str(tmp_path_factory.mktemp("disk-full-bentoml"))}
        with ServiceProcess(settings, env=env, require_ready=False) as svc:
            yield svc, url, settings, {"Authorization": f"Bearer {token}"}


@pytest.mark.server
def test_a_full_disk_refuses_the_batch_with_507_keeps_nothing_of_it_and_still_answers_reads(full_disk):
    svc, url, settings, auth = full_disk
    lead = fresh("L-full")
    acked: list[str] = []
    with httpx.Client(base_url=svc.url, headers=auth, timeout=60) as http:
        for _ in range(200):
            batch = [event(fresh("e-full-" + "x" * 60), lead, minutes_ago=5, item_id=fresh("i")) for _ in range(500)]
            r = http.post("/v1/events", json={"events": batch})
            if r.status_code != 200:
                break
            acked.extend(e["event_id"] for e in batch)
        else:
            pytest.fail("a 1 MB disk never filled")
        assert r.status_code == 507, r.text
        assert "disk is full" in r.json()["error"] and "nothing of this request was stored" in r.json()["error"]
        assert acked, "the disk filled before the first batch: make the tmpfs larger"
        read = http.get(f"/v1/leads/{lead}", params={"limit": 5})
        assert read.status_code == 200, read.text
        assert http.get("/v1/quarantine").status_code == 200
        again = http.post("/v1/events", json={"events": batch[:1]})
        assert again.status_code in (200, 507), again.text
    events = EventStore(url, settings)
    try:
        stored = events.events(TENANT, leads=[lead])["event_id"].to_pylist()
    finally:
        events.close()
    refused = {e["event_id"] for e in batch} - ({batch[0]["event_id"]} if again.status_code == 200 else set())
    assert set(acked) <= set(stored), "an acknowledged event is missing"
    assert not refused & set(stored), "part of the refused batch was stored"
    assert len(stored) == len(acked) + (again.status_code == 200)


def test_a_batch_rolled_back_by_a_full_disk_leaves_no_name_code_for_the_next_batch_to_reuse(tmp_path):
    """The store caches the codes of names it interns; a batch that fails after interning must not leave them."""
    settings = Settings(home=tmp_path / "home")
    store = EventStore(settings.event_store_url, settings)
    full = True

    def disk_fills(conn):  # at COMMIT, as SQLite's write-ahead log grows
        if full:
            raise sqlite3.OperationalError("database or disk is full")

    sa.event.listen(store.engine, "commit", disk_fills)
    batch = validate_events(pd.DataFrame([raw_event(1, lead_id="L-new", item_id="I-new")]), settings, NOW)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        store.append_events(batch, source="test", arrived=NOW)
    full = False
    assert store.append_events(batch, source="test", arrived=NOW).stored == 1
    store.close()
    again = EventStore(settings.event_store_url, settings)
    rows = again.events("acme").to_pylist()
    again.close()
    assert [(r["lead_id"], r["item_id"]) for r in rows] == [("L-new", "I-new")]
