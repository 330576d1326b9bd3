"""The copy of a long SQLite log in Arrow files (features/store/mirror.py): a whole-log read from it equals the
database's after any sequence of writes, reads only what was stored since, and starts again when the log's past
changed."""

from __future__ import annotations

import logging
import threading

import pandas as pd
import pytest

from leadradar.config import Settings, sqlite_file
from leadradar.features.store import EventStore
from leadradar.features.store.forget import forget_events, purge_before
from leadradar.features.store.mirror import MAX_PARTS, mirror_dir
from leadradar.features.validation import validate_events
from tests.support.raw_events import NOW, event

UNTIL = pd.Timestamp("2026-03-03T00:00:00Z")
# Every whole-log read `RadarLog.from_store` and the command line make: all, a tenant's, as seen, up to a time.
READS = (
    {},
    {"tenant": "acme"},
    {"tenant": "beta", "as_seen": True},
    {"until": UNTIL},
    {"until": UNTIL, "as_seen": True},
    {"tenant": "acme", "until": UNTIL, "as_seen": True},
    {"tenant": "nobody"},
)


@pytest.fixture
def stores(tmp_path):
    """A store that keeps a copy of any log (a threshold of 0), and the same database read row by row without one."""
    copy = Settings(home=tmp_path / "home", store={"arrow_read_rows": 0})
    plain = copy.model_copy(update={"store": copy.store.model_copy(update={"mirror": False, "arrow_read_rows": 10**9})})
    with_copy, without = EventStore(copy.event_store_url, copy), EventStore(copy.event_store_url, plain)
    yield with_copy, without
    with_copy.close()
    without.close()


def rows(start: int, n: int, day: int = 1, arrived: str | None = None) -> list[dict]:
    """`n` events of two tenants and a few leads on one day of March, some without a dwell or an item."""
    return [
        event(
            start + i,
            tenant_id="acme" if i % 3 else "beta",
            lead_id=f"L{i % 4}",
            ts=f"2026-03-{day:02d}T{i % 24:02d}:00:00Z",
            dwell_s=None if i % 5 == 0 else str(i * 0.5),
            item_id="p1" if i % 2 else None,
        )
        for i in range(n)
    ]


def store_events(store: EventStore, batch: list[dict], arrived: pd.Timestamp = NOW) -> None:
    store.append_events(validate_events(pd.DataFrame(batch), store.settings, NOW), source="t", arrived=arrived)


def assert_same(with_copy: EventStore, without: EventStore) -> None:
    for kwargs in READS:
        assert with_copy.events(**kwargs).equals(without.events(**kwargs)), kwargs


def stretches(store: EventStore) -> list[tuple[int, int]]:
    """The stretches of the log the store's copy reads from the database, recorded from now on."""
    asked: list[tuple[int, int]] = []
    read = store._log_stretch
    store._log_stretch = lambda after, upto: asked.append((after, upto)) or read(after, upto)  # type: ignore[method-assign]
    return asked


def copy_files(store: EventStore) -> list[str]:
    folder = mirror_dir(sqlite_file(store.url))
    return sorted(p.name for p in folder.glob("part-*.arrow")) if folder.is_dir() else []


def test_a_copy_equals_the_database_and_reads_only_what_was_stored_since(stores):
    with_copy, without = stores
    asked = stretches(with_copy)
    store_events(with_copy, rows(0, 60))
    assert_same(with_copy, without)
    top = with_copy.log_position()[0]
    assert asked[0] == (0, top) and len(copy_files(with_copy)) == 1
    assert mirror_dir(sqlite_file(with_copy.url)).stat().st_mode & 0o777 == 0o700, "others could read the copy"
    del asked[:]
    late = pd.Timestamp("2026-03-09T00:00:00Z")  # a day already copied gets a late event, arriving days later
    store_events(with_copy, [*rows(100, 30, day=2), event("late", ts="2026-03-01T05:00:00Z")], arrived=late)
    assert_same(with_copy, without)
    assert set(asked) == {(top, with_copy.log_position()[0])}, "the copy read more than the new stretch"
    del asked[:]
    assert_same(with_copy, without)
    assert asked == [], "nothing was stored, yet the copy read the database"


def test_a_moved_count_of_deletions_starts_the_copy_again(stores):
    with_copy, without = stores
    store_events(with_copy, rows(0, 40))
    assert_same(with_copy, without)
    asked = stretches(with_copy)
    with with_copy.engine.begin() as conn:  # an edit by hand, which only the count of rewrites tells
        conn.exec_driver_sql("UPDATE events SET dwell_s = 99.0 WHERE event_id = 'ev7'")
    assert_same(with_copy, without)
    assert asked[0] == (0, with_copy.log_position()[0])


@pytest.mark.parametrize("deletion", ["forget", "retention"])
def test_forgetting_and_retention_take_the_copy_off_the_disk(stores, deletion):
    """The copy holds what they delete: no part of it may outlive the deletion until the next read."""
    with_copy, without = stores
    store_events(with_copy, rows(0, 40) + rows(100, 20, day=5))
    assert_same(with_copy, without)
    assert copy_files(with_copy)
    if deletion == "forget":
        forget_events(without, "acme", "L1")  # by another process's store: the copy is found by the database
    else:
        purge_before(without, pd.Timestamp("2026-03-04T00:00:00Z"))
    assert copy_files(with_copy) == []
    assert_same(with_copy, without)


def test_a_copy_of_another_database_or_a_damaged_copy_is_read_again(stores, tmp_path, caplog):
    with_copy, without = stores
    store_events(with_copy, rows(0, 40))
    assert_same(with_copy, without)
    folder = mirror_dir(sqlite_file(with_copy.url))
    damaged = folder / copy_files(with_copy)[0]
    damaged.write_bytes(b"ARROW1 cut short")
    with caplog.at_level(logging.WARNING):
        assert_same(with_copy, without)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(f"event store copy: {damaged} cannot be read (")
    assert said[0].endswith("); the log is read again")
    caplog.clear()

    with_copy.close()
    without.close()
    database = sqlite_file(with_copy.url)
    for path in database.parent.glob(database.name + "*"):  # another database under the same name, longer
        if path.is_file():
            path.unlink()
    settings = with_copy.settings
    other = EventStore(settings.event_store_url, settings)
    store_events(other, rows(500, 70, day=4))
    plain = EventStore(settings.event_store_url, without.settings)
    with caplog.at_level(logging.WARNING):
        assert_same(other, plain)
    assert [r.getMessage() for r in caplog.records] == [
        f"event store copy: {folder} is not a copy of this database's log; it is read again"
    ]
    other.close()
    plain.close()


def test_a_damaged_part_found_while_the_new_stretch_is_read_starts_the_copy_again(stores, caplog):
    """The new stretch is read beside the parts (a second thread); a part that then cannot be read throws that
    stretch away and the whole log is read from the database, kept as one part."""
    with_copy, without = stores
    store_events(with_copy, rows(0, 40))
    assert_same(with_copy, without)
    old = with_copy.log_position()[0]
    (mirror_dir(sqlite_file(with_copy.url)) / copy_files(with_copy)[0]).write_bytes(b"ARROW1 cut short")
    store_events(with_copy, rows(100, 20, day=3))
    asked = stretches(with_copy)
    with caplog.at_level(logging.WARNING):
        assert with_copy.events().equals(without.events())
    top = with_copy.log_position()[0]
    assert asked == [(old, top), (0, top)]
    assert len(copy_files(with_copy)) == 1 and len(caplog.records) == 1
    assert_same(with_copy, without)


def test_many_small_stretches_are_compacted_into_one_part(stores):
    without = stores[1]
    store = without.settings.store.model_copy(update={"mirror": True, "arrow_read_rows": 6})
    with_copy = EventStore(without.url, without.settings.model_copy(update={"store": store}))  # nights of 5: rows
    for k in range(MAX_PARTS + 2):
        store_events(with_copy, rows(100 * k, 5, day=1 + k % 9))
        assert with_copy.events().num_rows == 5 * (k + 1)
        assert len(copy_files(with_copy)) == min(k, MAX_PARTS) or k == MAX_PARTS + 1
    assert len(copy_files(with_copy)) == 1
    assert_same(with_copy, without)
    with_copy.close()


def test_readers_at_once_each_read_the_whole_log(stores):
    with_copy, without = stores
    store_events(with_copy, rows(0, 50))
    expected = without.events()
    out: list[bool] = []

    def read() -> None:
        out.append(with_copy.events().equals(expected))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [True] * 4 and len(copy_files(with_copy)) == 1


def test_a_copy_that_cannot_be_kept_is_one_warning_and_the_log_is_read_from_the_database(stores, caplog):
    with_copy, without = stores
    store_events(with_copy, rows(0, 30))
    folder = mirror_dir(sqlite_file(with_copy.url))
    folder.write_text("a file where the copy's folder would be")
    with caplog.at_level(logging.WARNING):
        assert with_copy.events().equals(without.events())
    assert [r.getMessage() for r in caplog.records] == [
        f"{folder}: the log's copy cannot be kept there (File exists); reading the log from the database"
    ]


def test_a_copy_of_an_older_version_is_made_again_and_its_parts_removed(stores):
    """A copy written by an earlier version (Parquet parts, manifest version 1) is not read: the log is copied again
    from the database and the old parts leave the disk, so a copy never holds two versions' files."""
    import json

    with_copy, without = stores
    store_events(with_copy, rows(0, 40))
    assert_same(with_copy, without)
    folder = mirror_dir(sqlite_file(with_copy.url))
    manifest = folder / "manifest.json"
    old = folder / "part-0123456789abcdef0123456789abcdef.parquet"
    old.write_bytes(b"PAR1 an older copy")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": 1, "parts": [old.name]}))
    asked = stretches(with_copy)
    assert_same(with_copy, without)
    assert asked[0] == (0, with_copy.log_position()[0])
    assert not old.exists() and len(copy_files(with_copy)) == 1


def test_a_copy_of_codes_is_made_again_with_names(stores):
    """Version 2 held the store's codes, not names: its parts are not read as names; the log is copied again."""
    import json

    with_copy, without = stores
    store_events(with_copy, rows(0, 40))
    assert_same(with_copy, without)
    folder = mirror_dir(sqlite_file(with_copy.url))
    manifest = folder / "manifest.json"
    before = copy_files(with_copy)
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": 2}))
    asked = stretches(with_copy)
    assert_same(with_copy, without)
    assert asked[0] == (0, with_copy.log_position()[0])
    assert len(copy_files(with_copy)) == 1 and copy_files(with_copy) != before


def test_text_beyond_its_data_is_a_damaged_part(stores, caplog):
    """The parts are mapped, not copied: offsets that point outside a column's data (a damaged disk) are found before
    anything reads through them, said in one warning line, and the log is read again."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with_copy, without = stores
    store_events(with_copy, rows(0, 40))
    assert_same(with_copy, without)
    part = mirror_dir(sqlite_file(with_copy.url)) / copy_files(with_copy)[0]
    with pa.memory_map(str(part)) as source:
        ids = ipc.open_file(source).read_all()["event_id"].chunk(0)
    offsets = np.frombuffer(ids.buffers()[1], np.int32, len(ids) + 1).tobytes()
    raw = part.read_bytes()
    assert raw.count(offsets) == 1  # the event ids' offsets, as the file holds them
    beyond = np.frombuffer(offsets, np.int32).copy()
    beyond[len(beyond) // 2] = 10**6  # one inside: the layout check reads only the first and the last
    part.write_bytes(raw.replace(offsets, beyond.tobytes()))
    with caplog.at_level(logging.WARNING):
        assert_same(with_copy, without)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "holds text beyond its data" in said[0] and said[0].endswith("the log is read again")
