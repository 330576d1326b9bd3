"""Preparing a store again in a process that has it open must keep SQLite's locks: POSIX drops every lock a process
holds on a file when it closes any descriptor of it, and another process then deletes the write-ahead log under
the first one (which then fails with "disk I/O error"). Seen in the service, which prepares its stores more than
once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from leadradar.config import Settings
from leadradar.features.store import EventStore
from leadradar.features.store.tables import engine_for
from leadradar.features.validation import validate_events
from tests.support.raw_events import NOW, event

OTHER_PROCESS = (
    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('select count(*) from events'); c.close()"
)


def test_another_process_closing_the_store_leaves_the_log_of_one_that_holds_it_open(tmp_path: Path):
    settings = Settings(home=tmp_path / "home")
    store = EventStore.open(settings)
    store.append_events(validate_events(pd.DataFrame([event(1)]), settings, NOW), source="t", arrived=NOW)
    wal = settings.data_dir / "events.db-wal"
    with store.reader.connect() as held:
        held.execute(sa.text("select count(*) from events")).scalar_one()
        engine_for(settings.event_store_url).dispose()  # what every store's constructor does
        settings.ensure_dirs()
        subprocess.run([sys.executable, "-c", OTHER_PROCESS, str(settings.data_dir / "events.db")], check=True)
        assert wal.exists(), "another process deleted the write-ahead log this process still uses"
        assert held.execute(sa.text("select count(*) from events")).scalar_one() == 1
    store.close()
