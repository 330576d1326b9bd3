"""The event store, one suite on the embedded default (SQLite, WAL) and on PostgreSQL started by the tests."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from leadradar.config import Settings, StoreConfig, sqlite_file
from leadradar.features.store import EventStore
from leadradar.features.validation import validate_events, validate_stages
from tests.support.raw_events import NOW, event

_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    settings = Settings(home=tmp_path / "home")
    if request.param == "sqlite":
        url = settings.event_store_url
    else:
        url = request.getfixturevalue("postgres").create_database(f"ev{next(_names)}")
    s = EventStore(url, settings)
    yield s
    s.close()


def checked(rows: list[dict], settings: Settings):
    return validate_events(pd.DataFrame(rows), settings, NOW)


def test_a_resent_event_is_a_duplicate_and_stored_once(store):
    first = store.append_events(checked([event(1), event(2)], store.settings), source="a", arrived=NOW)
    again = store.append_events(checked([event(2), event(3)], store.settings), source="b", arrived=NOW)
    assert (first.stored, first.duplicate, first.quarantined) == (2, 0, 0)
    assert (again.received, again.stored, again.duplicate, again.quarantined) == (2, 1, 1, 0)
    assert sorted(store.events("acme")["event_id"].to_pylist()) == ["ev1", "ev2", "ev3"]


def test_a_resend_with_other_content_is_quarantined_and_the_first_copy_stays(store):
    store.append_events(checked([event(1, dwell_s="10")], store.settings), source="a", arrived=NOW)
    again = store.append_events(checked([event(1, dwell_s="99")], store.settings), source="b", arrived=NOW)
    assert (again.stored, again.duplicate, again.quarantined) == (0, 0, 1)
    assert again.refusals[0].field == "event_id" and "different content" in again.refusals[0].reason
    assert store.events("acme")["dwell_s"].to_pylist() == [10.0]
    kept = store.quarantine("acme")
    assert kept[0]["received"]["dwell_s"] == 99.0 and "different content" in kept[0]["reason"]


def test_counts_reconcile_on_a_mixed_batch_and_every_refusal_keeps_its_index(store):
    rows = [event(1), event(2, ts="2026-03-01 10:00"), event(1), event(3, event_type="teleport"), event(4)]
    done = store.append_events(checked(rows, store.settings), source="mixed", arrived=NOW)
    assert done.received == 5 == done.stored + done.duplicate + done.quarantined
    assert (done.stored, done.duplicate, done.quarantined) == (2, 1, 2)
    assert [(r.index, r.field) for r in done.refusals] == [(1, "ts"), (3, "event_type")]
    assert {q["row"] for q in store.quarantine("acme")} == {1, 3}


def test_a_key_of_one_tenant_cannot_write_into_another(store):
    done = store.append_events(
        checked([event(1), event(2, tenant_id="globex")], store.settings), source="api", tenant="acme", arrived=NOW
    )
    assert (done.stored, done.quarantined) == (1, 1)
    assert store.events("globex").num_rows == 0
    assert store.quarantine("globex") == [] and len(store.quarantine("acme")) == 1


def test_as_seen_places_a_late_event_at_its_arrival_and_event_time_does_not(store):
    late_arrival = pd.Timestamp("2026-03-05T00:00:00Z")
    store.append_events(checked([event(1)], store.settings), source="live", arrived=late_arrival)
    before = pd.Timestamp("2026-03-03T00:00:00Z")
    assert store.events("acme", until=before).num_rows == 1
    assert store.events("acme", until=before, as_seen=True).num_rows == 0
    seen = store.events("acme", as_seen=True)
    assert seen["ts"][0].as_py() == late_arrival.to_pydatetime()


def test_a_backfilled_log_counts_from_event_time_when_read_as_seen(store):
    store.append_events(checked([event(1)], store.settings), source="file", arrived=None)
    before = pd.Timestamp("2026-03-03T00:00:00Z")
    assert store.events("acme", until=before, as_seen=True).num_rows == 1


def test_events_read_back_are_the_contract_rows_that_were_accepted(store):
    rows = [event(i, lead_id=f"L{i % 3}", item_id=("p1" if i % 2 else None), dwell_s=str(i * 1.5)) for i in range(20)]
    ok = checked(rows, store.settings)
    store.append_events(ok, source="a", arrived=NOW)
    back = store.events().sort_by("event_id")
    assert back.equals(ok.accepted.sort_by("event_id"))
    one = store.events("acme", leads=["L1"])
    assert set(one["lead_id"].to_pylist()) == {"L1"} and one.num_rows == 7


def test_a_whole_log_reads_the_same_by_arrow_as_row_by_row_when_early_events_have_no_dwell(store):
    """A long log is read by ADBC's driver for the store (SQLite's types a column by its first rows): 2,000 events
    without a dwell before those with one (a float after 2,000 nulls) must read back as accepted, and every whole-log
    read (a tenant's, as seen, up to a time, the stages) as the rows read through SQLAlchemy read."""
    arrow = EventStore(
        store.url, store.settings.model_copy(update={"store": StoreConfig(arrow_read_rows=0, mirror=False)})
    )
    rows = [event(i, dwell_s=None, ts=f"2026-03-01T{i % 24:02d}:00:00Z") for i in range(2000)]
    rows += [
        event(2000 + i, lead_id=f"L{i % 5}", dwell_s=str(i * 0.25), item_id=("p1" if i % 2 else None))
        for i in range(50)
    ]
    ok = checked(rows, store.settings)
    store.append_events(ok, source="a", arrived=NOW)
    store.append_events(checked([event("late", ts="2026-03-02T00:00:00Z")], store.settings), source="a", arrived=NOW)
    stage = {"tenant_id": "acme", "lead_id": "L1", "stage": "engaged", "ts": "2026-03-01T10:00:00Z"}
    store.append_stages(validate_stages(pd.DataFrame([stage]), store.settings, NOW), source="crm", arrived=NOW)
    back = arrow.events().sort_by("event_id")
    assert back.num_rows == 2051 and back["dwell_s"].null_count == 2000
    assert back.filter(pc.not_equal(back["event_id"], "evlate")).equals(ok.accepted.sort_by("event_id"))
    until = pd.Timestamp("2026-03-01T12:00:00Z")
    for read, kwargs in (
        ("events", {}),
        ("events", {"tenant": "acme", "as_seen": True}),
        ("events", {"until": until}),
        ("events", {"tenant": "nobody"}),
        ("stages", {}),
    ):
        assert getattr(arrow, read)(**kwargs).equals(getattr(store, read)(**kwargs)), (read, kwargs)
    arrow.close()


def posix_locks(*paths) -> list[tuple[str, ...]]:
    """The POSIX locks this process holds on these files (Linux /proc/locks): kind, range, by file name (a file
    that is gone holds none)."""
    inodes = {os.stat(p).st_ino: p.name for p in paths if p.exists()}
    held = []
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        if f[1] == "POSIX" and int(f[4]) == os.getpid() and int(f[5].split(":")[2]) in inodes:
            held.append((inodes[int(f[5].split(":")[2])], f[3], f[6], f[7]))
    return sorted(held)


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="reads the kernel's table of locks (Linux)")
def test_a_whole_log_read_by_arrow_leaves_this_process_s_locks_on_the_database(tmp_path):
    """ADBC's driver carries its own SQLite: run in this process, closing the database dropped the locks this
    process's connections held on it (another process could then delete the write-ahead log under them)."""
    settings = Settings(home=tmp_path / "home", store={"arrow_read_rows": 0, "mirror": False})
    s = EventStore(settings.event_store_url, settings)
    s.append_events(checked([event(i) for i in range(10)], settings), source="a", arrived=NOW)
    s.events("acme", leads=["L1"])  # a pooled connection keeps the database open, in WAL mode
    db = sqlite_file(settings.event_store_url)
    assert db is not None
    before = posix_locks(db, db.with_name(db.name + "-shm"))
    assert before, "the store holds no lock to lose: the test would prove nothing"
    assert s.events().num_rows == 10
    assert posix_locks(db, db.with_name(db.name + "-shm")) == before
    s.close()


def test_an_arrow_read_that_fails_is_one_warning_and_the_log_is_read_row_by_row(tmp_path, monkeypatch, caplog):
    from leadradar.features.store import event_store

    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nsys.exit('the driver cannot open the database')\n")
    monkeypatch.setattr(event_store, "_ARROW_READ", broken)
    settings = Settings(home=tmp_path / "home", store={"arrow_read_rows": 0, "mirror": False})
    s = EventStore(settings.event_store_url, settings)
    s.append_events(checked([event(i) for i in range(10)], settings), source="a", arrived=NOW)
    with caplog.at_level(logging.WARNING, logger=event_store.__name__):
        assert s.events().num_rows == 10
    assert [r.getMessage() for r in caplog.records] == [
        f"{settings.event_store_url}: the Arrow read of the log failed (the driver cannot open the database);"
        " reading it row by row"
    ]
    s.close()


def test_stage_changes_are_idempotent_and_refused_ones_are_kept(store):
    rows = pd.DataFrame(
        [
            {"tenant_id": "acme", "lead_id": "L1", "stage": "engaged", "ts": "2026-03-01T10:00:00Z"},
            {"tenant_id": "acme", "lead_id": "L1", "stage": "engaged", "ts": "2026-03-01T10:00:00Z"},
            {"tenant_id": "acme", "lead_id": "L1", "stage": "bought", "ts": "2026-03-02T10:00:00Z"},
        ]
    )
    done = store.append_stages(validate_stages(rows, store.settings, NOW), source="crm", arrived=NOW)
    assert (done.received, done.stored, done.duplicate, done.quarantined) == (3, 1, 1, 1)
    assert "not a stage of the funnel" in done.refusals[0].reason
    again = store.append_stages(validate_stages(rows.head(1), store.settings, NOW), source="crm", arrived=NOW)
    assert (again.stored, again.duplicate) == (0, 1)
    assert store.stages("acme")["stage"].to_pylist() == ["engaged"]


def test_changed_since_names_the_leads_of_new_events_in_log_order(store):
    store.append_events(checked([event(1, lead_id="L1")], store.settings), source="a", arrived=NOW)
    mark = store.last_seq()
    store.append_events(
        checked([event(2, lead_id="L2"), event(3, lead_id="L3")], store.settings), source="a", arrived=NOW
    )
    upto, leads = store.changed_since(mark)
    assert upto == store.last_seq() and leads == [("acme", "L2"), ("acme", "L3")]


def test_leads_marks_and_histories_come_from_one_question_each(store):
    """A lead's mark is its event count and newest log position, alone or among others; histories of several leads
    read at once are each lead's events in log order, each with its log position."""
    rows = [event(1, lead_id="L1"), event(2, lead_id="L2"), event(3, lead_id="L1"), event(4, lead_id="L3")]
    store.append_events(checked(rows, store.settings), source="a", arrived=NOW)
    top = store.last_seq()
    assert store.lead_marks("acme", ["L1"]) == {"L1": (2, top - 1)}
    assert store.lead_marks("acme", ["L1", "L3", "L9"]) == {"L1": (2, top - 1), "L3": (1, top)}
    assert store.lead_marks("acme", ["L9"]) == {} and store.lead_marks("other", ["L1"]) == {}
    events, seq = store.lead_histories("acme", ["L3", "L1"])
    assert events["event_id"].to_pylist() == ["ev1", "ev3", "ev4"] and list(seq) == [top - 3, top - 1, top]
    assert events["lead_id"].to_pylist() == ["L1", "L1", "L3"]


def test_named_leads_read_the_same_before_and_after_their_codes_are_known(store):
    """A fresh reader asks for unknown names' codes through SQLAlchemy; once it knows them, SQLite reads named leads
    on the driver's own connection: every kind of named-lead read answers the same both ways."""
    rows = [event(i, lead_id=f"L{i % 4}", dwell_s=str(i / 3), ts=f"2026-03-0{1 + i % 7}T10:00:00Z") for i in range(30)]
    store.append_events(checked(rows, store.settings), source="a", arrived=NOW)
    stage_rows = [
        {"tenant_id": "acme", "lead_id": f"L{i}", "stage": "engaged", "ts": "2026-03-03T10:00:00Z"} for i in (1, 2)
    ]
    store.append_stages(validate_stages(pd.DataFrame(stage_rows), store.settings, NOW), source="crm", arrived=NOW)
    until, top = pd.Timestamp("2026-03-04T12:00:00Z"), store.last_seq()
    reads = [
        lambda s, leads: s.events("acme", leads=leads),
        lambda s, leads: s.events("acme", leads=leads, until=until, after_seq=top - 20, upto_seq=top - 2),
        lambda s, leads: s.events("acme", leads=leads, after_seq=top - 25, upto_seq=top, by_log=True),
        lambda s, leads: s.lead_histories("acme", leads, after_seq=top - 25, upto_seq=top)[0],
        lambda s, leads: s.stages("acme", leads=leads, until=until),
    ]
    for leads in (["L1"], ["L2", "L0", "L3"]):
        for read in reads:
            fresh = EventStore(store.url, store.settings)
            try:
                first, again = read(fresh, leads), read(fresh, leads)
            finally:
                fresh.close()
            assert first.num_rows > 0 and again.equals(first) and read(store, leads).equals(first)
    assert bool(fresh._raw_sql) == store.sqlite


def test_the_log_position_moves_with_every_event_stored_deleted_or_rewritten(store):
    """SQLite's log position (newest `seq`, events ever deleted or rewritten) changes with each write to the events,
    a deletion by hand included, and with nothing else; PostgreSQL gives none (positions can commit out of order)."""
    if not store.sqlite:
        assert store.log_position() is None
        return
    assert store.log_position() == (0, 0)
    store.append_events(checked([event(1), event(2, lead_id="L2")], store.settings), source="a", arrived=NOW)
    first = store.log_position()
    assert first == (store.last_seq(), 0)
    store.append_events(checked([event(1)], store.settings), source="a", arrived=NOW)  # a duplicate: nothing stored
    stage = {"tenant_id": "acme", "lead_id": "L1", "stage": "engaged", "ts": "2026-03-01T10:00:00Z"}
    store.append_stages(validate_stages(pd.DataFrame([stage]), store.settings, NOW), source="crm", arrived=NOW)
    assert store.log_position() == first
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM events WHERE event_id = 'ev2'")  # the newest: the log's top goes back
    assert store.log_position() == (first[0] - 1, 1)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE events SET dwell_s = 1.0")
    assert store.log_position() == (first[0] - 1, 2)
    again = EventStore(store.url, store.settings)  # opening the store again keeps its count
    assert again.log_position() == (first[0] - 1, 2)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM event_rewrites")  # by hand: no count, so no position
    assert store.log_position() is None
    again.close()


def test_a_timeline_pages_newest_first(store):
    rows = [event(i, ts=f"2026-03-0{i}T10:00:00Z") for i in range(1, 6)]
    store.append_events(checked(rows, store.settings), source="a", arrived=NOW)
    page = store.timeline("acme", "L1", limit=2)
    assert page["event_id"].tolist() == ["ev5", "ev4"]
    rest = store.timeline("acme", "L1", limit=10, before_seq=int(page["seq"].min()))
    assert len(rest) >= 3


def test_an_acknowledged_event_survives_kill_9_of_the_writer(tmp_path):
    """A child process appends and prints 'acked' after the call returns; it is killed at once after."""
    home = tmp_path / "home"
    script = textwrap.dedent(
        f"""
        import sys, time, pandas as pd
        from leadradar.config import Settings
        from leadradar.features.store import EventStore
        from leadradar.features.validation import validate_events
        from tests.support.raw_events import NOW, event
        s = Settings(home={str(home)!r})
        store = EventStore.open(s)
        done = store.append_events(validate_events(pd.DataFrame([event(7)]), s, NOW), source="k", arrived=NOW)
        print("acked", done.stored, flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    assert child.stdout is not None
    line = child.stdout.readline()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert line.strip() == "acked 1"
    reopened = EventStore.open(Settings(home=home))
    assert reopened.events("acme")["event_id"].to_pylist() == ["ev7"]


def test_the_command_line_reads_the_store_while_another_process_holds_it_open(tmp_path):
    settings = Settings(home=tmp_path / "home")
    writer = EventStore.open(settings)
    writer.append_events(checked([event(1)], settings), source="a", arrived=NOW)
    reader = EventStore.open(settings)
    writer.append_events(checked([event(2)], settings), source="a", arrived=NOW)
    assert reader.events().num_rows == 2
    assert np.array_equal(sorted(reader.events()["event_id"].to_pylist()), ["ev1", "ev2"])


def test_a_log_position_is_never_given_twice_after_the_newest_events_are_forgotten(store):
    from leadradar.features.store.forget import forget_events

    store.append_events(
        checked([event(1, lead_id="L1"), event(2, lead_id="L2")], store.settings), source="a", arrived=NOW
    )
    last = store.last_seq()
    forget_events(store, "acme", "L2")
    store.append_events(checked([event(3, lead_id="L3")], store.settings), source="a", arrived=NOW)
    upto, leads = store.changed_since(last)
    assert leads == [("acme", "L3")] and upto > last
