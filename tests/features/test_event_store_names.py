"""The event store's cache of names (features/store/event_store.py) under the service's use: one store instance that
both takes events and reads histories back. Found by the soak benchmark, where a score by id read null lead ids."""

from __future__ import annotations

import pandas as pd

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
