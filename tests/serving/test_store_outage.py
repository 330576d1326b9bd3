"""The PostgreSQL stores restarted under load (issue 21): clients get 503 with `Retry-After` meanwhile, never 500,
the service reconnects by itself, and every event it acknowledged is in the store.

The service runs on its own PostgreSQL server (restarting the session's would pull it from under other tests) with
no model (storing events does not score) and no key cache, so the key check reaches the database on every request.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from leadradar.config import Settings
from leadradar.features.store import EventStore
from leadradar.serving.auth import KeyStore
from leadradar.serving.process import ServiceProcess
from tests.support.live_events import event, fresh
from tests.support.postgres import PostgresServer, find_bin_dir
from tests.support.replicas import SharedStores

pytestmark = pytest.mark.server
TENANT = "t01"


@pytest.fixture(scope="module")
def outage(tmp_path_factory):
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (Debian: apt-get install postgresql, as .ci/run does)")
    pytest.importorskip("psycopg", reason="psycopg is in the dev extra: pip install -e '.[dev]'")
    settings = Settings(home=tmp_path_factory.mktemp("outage-home"))
    with PostgresServer(bin_dir) as pg:
        stores = SharedStores.on(pg, "outage")
        stores.prepare(settings)
        token = KeyStore(stores.scores_url).create(TENANT, "system", name="outage tests")[1]
        env = {
            **stores.env(),
            "LEADRADAR_SERVING__KEY_CACHE_SECONDS": "0",
            "BENTOML_HOME": str(tmp_path_factory.mktemp("outage-bentoml")),
        }
        with ServiceProcess(settings, env=env, require_ready=False) as svc:
            yield pg, svc, stores, settings, {"Authorization": f"Bearer {token}"}


def test_a_postgresql_restart_under_load_answers_503_with_retry_after_and_loses_no_acknowledged_event(outage):
    pg, svc, stores, settings, auth = outage
    lead = fresh("L-outage")
    acked: list[str] = []
    statuses: Counter[int] = Counter()
    unexplained: list[str] = []
    stop = threading.Event()

    def client(c: int) -> None:
        with httpx.Client(base_url=svc.url, headers=auth, timeout=30) as http:
            while not stop.is_set():
                batch = [event(fresh(f"e{c}"), lead, minutes_ago=5) for _ in range(20)]
                while not stop.is_set():  # the same batch until it is acknowledged, as a card back end retries
                    try:
                        r = http.post("/v1/events", json={"events": batch})
                    except httpx.TransportError:
                        statuses[0] += 1
                        time.sleep(0.2)
                        continue
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        acked.extend(e["event_id"] for e in batch)
                        break
                    if r.status_code != 503 or not r.headers.get("retry-after", "").isdigit():
                        unexplained.append(f"{r.status_code} {r.headers.get('retry-after')!r} {r.text[:200]}")
                    time.sleep(0.2)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(2)]
    for t in threads:
        t.start()
    try:
        _wait_for(lambda: len(acked) >= 200 or unexplained, "acknowledgements before the restart")
        pg.halt()
        _wait_for(lambda: statuses[503] >= 4 or unexplained, "503 answers while PostgreSQL is down")
        before = len(acked)
        pg.resume()
        _wait_for(lambda: len(acked) >= before + 200 or unexplained, "acknowledgements after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not unexplained, unexplained[:5]
    assert set(statuses) <= {200, 503}, statuses
    events = EventStore(stores.events_url, settings)
    try:
        stored = set(events.events(TENANT, leads=[lead])["event_id"].to_pylist())
    finally:
        events.close()
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged events are not in the store"
    read = httpx.get(f"{svc.url}/v1/leads/{lead}", headers=auth, timeout=30)
    assert read.status_code in (200, 403), read.text


def _wait_for(done, what: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s"
        time.sleep(0.05)


def test_a_server_that_accepts_and_never_answers_fails_the_connection_instead_of_holding_it():
    """A PostgreSQL store behind something that takes the connection and then says nothing (a partition, a hung
    proxy) gets an error within libpq's `connect_timeout` (POSTGRES_LIMITS: 10 s), which the service answers as
    an outage (503 with Retry-After, above); without the limit the connection waited for ever."""
    pytest.importorskip("psycopg", reason="psycopg is in the dev extra: pip install -e '.[dev]'")
    import sqlalchemy as sa

    from leadradar.features.store.tables import engine_for
    from leadradar.serving.outages import store_fault

    outcome: list[BaseException | str] = []
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"postgresql+psycopg://leadradar@127.0.0.1:{silent.getsockname()[1]}/events"

        def connect() -> None:
            try:
                with engine_for(url).connect():
                    outcome.append("connected")
            except sa.exc.OperationalError as exc:
                outcome.append(exc)

        attempt = threading.Thread(target=connect, daemon=True)
        attempt.start()
        attempt.join(60)
    assert outcome, "the connection to a silent server was still waiting after 60 s"
    failed = outcome[0]
    assert isinstance(failed, BaseException) and "timeout" in str(failed), failed
    fault = store_fault(failed, 2)
    assert fault is not None and fault[0] == 503, fault


def test_a_url_that_names_its_own_connection_limits_keeps_them():
    pytest.importorskip("psycopg", reason="psycopg is in the dev extra: pip install -e '.[dev]'")
    import sqlalchemy as sa

    from leadradar.features.store.tables import POSTGRES_LIMITS, engine_for, with_limits

    query = engine_for("postgresql+psycopg://leadradar@db.example/events?connect_timeout=3").url.query
    assert query["connect_timeout"] == "3"
    assert "connect_timeout" not in with_limits(sa.make_url("postgresql+pg8000://leadradar@db.example/events")).query
    assert {k: query[k] for k in POSTGRES_LIMITS if k != "connect_timeout"} == {
        k: v for k, v in POSTGRES_LIMITS.items() if k != "connect_timeout"
    }


def test_a_held_lifecycle_ledger_records_after_a_postgresql_restart(outage):
    """A scheduler (or the service's `/v1/model`) holds one ledger for days; after the database restarts, its next
    record reconnects instead of failing on the pooled connection the server ended (the stores' `engine_for`, whose
    connections are tested before use). Before, that record failed with `AdminShutdown` and the run was not kept."""
    from leadradar.ledger import Ledger

    pg = outage[0]
    ledger = Ledger(pg.create_database("ledger_restart"))
    try:
        started = datetime.now(UTC)
        ledger.record("retrain", "promoted", "before the restart", started)
        pg.halt()
        pg.resume()
        ledger.record("retrain", "kept", "after the restart", started)
        assert [r.summary for r in ledger.runs("retrain")] == ["after the restart", "before the restart"]
    finally:
        ledger.close()
