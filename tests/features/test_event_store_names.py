"""The event store's cache of names (features/store/event_store.py) under the service's use: one store instance that
both takes events and reads histories back. Found by the soak benchmark, where a score by id read null lead ids."""

from __future__ import annotations

import pandas as pd
import pytest

from leadradar.config import Settings
from leadradar.features.store import EventStore
from leadradar.features.validation import validate_events
from tests.support.raw_events import NOW, event


def append(store: EventStore, rows: list[dict]) -> None:
    done = store.append_events(validate_events(pd.DataFrame(rows), store.settings, NOW), source="test", arrived=NOW)
    assert done.stored == len(rows), done.refusals


def test_a_name_first_met_by_a_write_decodes_after_an_earlier_read_cached_the_names_around_it(tmp_path):
    settings = Settings(home=tmp_path / "home")
    url = settings.event_store_url
    loader = EventStore(url, settings)  # another process: `leadradar ingest` before the service started
    append(loader, [event(1, lead_id="L-early"), event(2, lead_id="L-late", item_id="I-late")])
    loader.close()
    service = EventStore(url, settings)
    assert service.events("acme", leads=["L-late"])["lead_id"].to_pylist() == ["L-late"]
    append(service, [event(3, lead_id="L-early")])  # the write meets L-early's code, the read before did not
    assert sorted(service.events("acme", leads=["L-early"])["lead_id"].to_pylist()) == ["L-early", "L-early"]
    service.close()


def test_a_whole_log_of_more_names_than_one_lookup_asks_for_decodes_in_a_fresh_process(tmp_path):
    """A whole log's names are read in one pass past `_NAMES_BY_CODE` of them (not a query per 5,000), and a column
    is taken once from the cached table, which is built again when a later write brings a code it lacks."""
    from leadradar.features.store.event_store import _NAMES_BY_CODE

    settings = Settings(home=tmp_path / "home")
    rows = [event(i, lead_id=f"L-{i:05d}", item_id=f"I-{i % 7}") for i in range(_NAMES_BY_CODE + 200)]
    loader = EventStore(settings.event_store_url, settings)
    append(loader, rows)
    loader.close()
    reader = EventStore(settings.event_store_url, settings)
    some = [r["lead_id"] for r in rows[::80]] + [rows[-1]["lead_id"]]  # the cached table then has gaps
    assert sorted(reader.events("acme", leads=some)["lead_id"].to_pylist()) == sorted(some)
    whole = reader.events()
    assert sorted(whole["lead_id"].to_pylist()) == [r["lead_id"] for r in rows]
    assert sorted(set(whole["item_id"].to_pylist())) == [f"I-{k}" for k in range(7)]
    append(reader, [event(_NAMES_BY_CODE + 500, lead_id="L-new", item_id="I-new")])
    again = reader.events()
    assert again.num_rows == len(rows) + 1 and again["lead_id"].null_count == 0
    assert "L-new" in again["lead_id"].to_pylist() and "I-new" in again["item_id"].to_pylist()
    reader.close()


@pytest.mark.slow  # about 9 s on 2 cores: left out of `make test-fast`
def test_reads_beside_writes_in_other_threads_decode_every_name(tmp_path):
    """The service shares one store between its request threads: scores reading histories at once, while another
    worker (another store instance) writes leads whose names this one must then read. Threads switched every
    microsecond: a read that looked at the cached table of names and then took from it, while another read threw
    that table away to build it again, found none."""
    import sys
    import threading

    settings = Settings(home=tmp_path / "home")
    store = EventStore(settings.event_store_url, settings)
    writer = EventStore(settings.event_store_url, settings)
    append(writer, [event(i, lead_id=f"L-{i:05d}") for i in range(3000)])
    writes, failures, done, newest = 150, [], threading.Event(), [-1]

    def write() -> None:
        try:
            for k in range(writes):
                append(writer, [event(10_000 + 2 * k + j, lead_id=f"N-{k}-{j}") for j in range(2)])
                newest[0] = k
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    def read() -> None:
        k = 0
        try:
            while not done.is_set():
                wanted = [f"L-{k % 3000:05d}"] + ([f"N-{newest[0]}-0"] if newest[0] >= 0 else [])
                got = store.events("acme", leads=wanted)["lead_id"]
                assert sorted(got.to_pylist()) == sorted(wanted), f"asked {wanted}, read {got.to_pylist()}"
                whole = store.events()["lead_id"]
                assert whole.null_count == 0, "a lead id read back as null"
                k += 1
        except BaseException as exc:
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=write), *(threading.Thread(target=read) for _ in range(3))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        sys.setswitchinterval(interval)
    store.close()
    writer.close()
    assert not failures, repr(failures[0])
    again = EventStore(settings.event_store_url, settings)
    assert again.events().num_rows == 3000 + writes * 2
    again.close()
