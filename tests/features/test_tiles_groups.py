"""Day fingerprints of a Parquet events file kept per row group: equal to a scan of every event, after appends,
corrections in place and other settings, and a build that keeps them equals the reference."""

from __future__ import annotations

import logging

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leadradar.config import Settings
from leadradar.features import build as feature_build
from leadradar.features.build import compute_features
from leadradar.features.engines import connect
from leadradar.features.registry import build_registry
from leadradar.features.tiles import groups as tile_groups
from leadradar.features.tiles.fingerprints import day_fingerprints
from leadradar.features.tiles.groups import file_day_fingerprints
from tests.support.parity import assert_same_features
from tests.support.strategies import CUTOFF, before, event_rows, events_table, stages_table

SETTINGS = Settings()
REGISTRY = build_registry(SETTINGS)
CUTOFFS = [CUTOFF - pd.Timedelta(days=8), CUTOFF - pd.Timedelta(days=1), CUTOFF]
TOD = int(CUTOFF.value // 1000) % 86_400_000_000
GROUP_ROWS = 7


def write(table: pa.Table, path) -> str:
    pq.write_table(table, path, row_group_size=GROUP_ROWS)
    return str(path)


def whole_scan(path: str, settings: Settings = SETTINGS) -> dict[int, list[int]]:
    """The fingerprints a build took before row groups were kept: a scan of every event of the build's view."""
    con = connect("tiles")
    ev, *_ = feature_build._bound(con, path, stages_table([]), CUTOFFS, settings)
    return day_fingerprints(ev, TOD)


def by_groups(path: str, kept: dict, settings: Settings = SETTINGS) -> tuple[dict, dict]:
    file = feature_build.events_source(path, settings)
    assert file is not None
    return file_day_fingerprints(file, connect("tiles"), TOD, kept)


@pytest.fixture
def scanned(monkeypatch) -> list[list[int]]:
    """The row groups each call scanned (the real scan, recorded)."""
    calls: list[list[int]] = []
    real = tile_groups._scanned

    def recorded(file, scan, tod_us, meta, groups):
        calls.append(list(groups))
        return real(file, scan, tod_us, meta, groups)

    monkeypatch.setattr(tile_groups, "_scanned", recorded)
    return calls


def consent_rows(n: int) -> list[dict]:
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "item_id": None, "referrer_lead_id": None, "channel": "h5"}
    return [
        {**base, "lead_id": "L1", "event_type": "privacy_consent", "dwell_s": None, "offset_s": -i * 50_000}
        for i in range(n)
    ]


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.generate],
)
@given(
    first=st.lists(event_rows(before), min_size=1, max_size=40),
    more=st.lists(event_rows(before), min_size=1, max_size=20),
    consent=st.integers(0, 3),
)
@pytest.mark.slow  # about 7 s on 2 cores: left out of `make test-fast`
def test_fingerprints_by_row_group_after_an_append_equal_a_scan_of_every_event(
    tmp_path_factory, scanned, first, more, consent
):
    """A file written again with more events after the old ones (a log in arrival order) has its earlier full
    groups byte for byte: only the groups from the first that changed are scanned, and the days equal a whole scan."""
    scanned.clear()
    folder = tmp_path_factory.mktemp("groups")
    old = events_table(first + consent_rows(consent), "a")
    path = write(old, folder / "old.parquet")
    days, kept = by_groups(path, {})
    assert days == whole_scan(path)
    groups = -(-old.num_rows // GROUP_ROWS)
    assert scanned == [list(range(groups))]
    grown = pa.concat_tables([old, events_table(more, "b")])
    path = write(grown, folder / "grown.parquet")
    scanned.clear()
    again, _ = by_groups(path, kept)
    assert again == whole_scan(path)
    unchanged = old.num_rows // GROUP_ROWS  # full groups of the old file; the last, partial one changed
    assert scanned == [list(range(unchanged, -(-grown.num_rows // GROUP_ROWS)))]


def test_a_group_corrected_in_place_is_scanned_again_and_the_others_are_not(tmp_path, scanned):
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "item_id": None, "referrer_lead_id": None, "channel": "h5"}
    base |= {"lead_id": "L1", "event_type": "card_view", "dwell_s": 3.0}
    rows = [{**base, "offset_s": -i * 20_000 - 60} for i in range(40)]
    path = write(events_table(rows, "h"), tmp_path / "events.parquet")
    _, kept = by_groups(path, {})
    fixed = [{**r, "dwell_s": 4.0} if i in (10, 30) else r for i, r in enumerate(rows)]  # in groups 1 and 4
    path = write(events_table(fixed, "h"), tmp_path / "events.parquet")
    scanned.clear()
    days, _ = by_groups(path, kept)
    assert scanned == [[1, 4]]
    assert days == whole_scan(path)


def test_other_settings_of_the_view_scan_every_group_again(tmp_path, scanned):
    """The recipe follows what the view does: with another consent event type, no kept group stands for it."""
    rows = [{**r, "event_type": "share"} for r in consent_rows(12)]
    path = write(events_table(rows, "h"), tmp_path / "events.parquet")
    _, kept = by_groups(path, {})
    other = Settings(privacy={"consent_events": {"privacy_consent": True, "share": False}})
    scanned.clear()
    days, _ = by_groups(path, kept, other)
    assert scanned == [[0, 1]]
    assert days == whole_scan(path, other) == {}  # every event is a consent event now


def kept_build(root, events: str, stages: pa.Table) -> pd.DataFrame:
    kept = Settings(features={"tiles_dir": str(root)})
    return compute_features(events, stages, CUTOFFS, kept, REGISTRY, engine="tiles")


@pytest.mark.slow  # about 3 s on 2 cores: left out of `make test-fast`
def test_a_kept_build_from_a_file_that_grew_and_was_corrected_equals_the_reference(tmp_path, scanned, caplog):
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "item_id": None, "referrer_lead_id": None}
    base |= {"channel": "h5", "event_type": "card_view", "dwell_s": 3.0}
    history = [{**base, "lead_id": f"L{d % 3}", "offset_s": -d * 43200 - 60} for d in range(30, 1, -1)]
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L1", "stage": "engaged", "offset_s": -9 * 86400}])
    path = write(events_table(history, "h"), tmp_path / "events.parquet")
    kept_build(tmp_path / "tiles", path, stages)
    (kept_file,) = (tmp_path / "tiles").rglob("groups.json")
    later = history + [{**base, "lead_id": "L2", "offset_s": -s} for s in (30_000, 7_000, 60)]
    path = write(events_table(later, "h"), tmp_path / "events.parquet")
    scanned.clear()
    got = kept_build(tmp_path / "tiles", path, stages)
    assert scanned == [list(range(len(history) // GROUP_ROWS, -(-len(later) // GROUP_ROWS)))]
    assert_same_features(got, compute_features(path, stages, CUTOFFS, SETTINGS, REGISTRY), REGISTRY)
    fixed = [{**e, "event_type": "product_view"} if i == 3 else e for i, e in enumerate(later)]
    path = write(events_table(fixed, "h"), tmp_path / "events.parquet")
    got = kept_build(tmp_path / "tiles", path, stages)
    assert_same_features(got, compute_features(path, stages, CUTOFFS, SETTINGS, REGISTRY), REGISTRY)
    kept_file.write_text('{"version": 1, "groups": {"x": ')  # cut short
    with caplog.at_level(logging.WARNING):
        got = kept_build(tmp_path / "tiles", path, stages)
    assert [r.message for r in caplog.records if "groups.json" in r.message] != []
    assert_same_features(got, compute_features(path, stages, CUTOFFS, SETTINGS, REGISTRY), REGISTRY)


def test_a_training_sets_window_is_in_the_recipe_and_its_fingerprints_equal_a_scan_of_the_window(tmp_path, scanned):
    """A training set's `until` cuts the events (features/trainset.py): the groups' fingerprints follow the cut, and
    a kept group of another window is not taken for it."""
    from leadradar.features.build import up_to
    from leadradar.features.consent import set_apart
    from leadradar.features.engines import feature_input, load

    rows = [{**r, "event_type": "card_view"} for r in consent_rows(20)]
    path = write(events_table(rows, "h"), tmp_path / "events.parquet")
    _, kept = by_groups(path, {})
    until = CUTOFF - pd.Timedelta(days=3)
    scanned.clear()
    file = feature_build.events_source(path, SETTINGS, until)
    assert file is not None
    days, _ = file_day_fingerprints(file, connect("tiles"), TOD, kept)
    assert scanned == [[0, 1, 2]]
    con = connect("tiles")
    ev = feature_input(set_apart(up_to(load(con, path, "events"), until), SETTINGS)[0], "events")
    assert days == day_fingerprints(ev, TOD) != by_groups(path, {})[0]


def stored(store, start: int, n: int, day: int) -> None:
    from leadradar.features.validation import validate_events
    from tests.support.raw_events import NOW, event

    batch = [
        event(
            start + i,
            tenant_id="acme" if i % 3 else "beta",
            lead_id=f"L{i % 5}",
            ts=f"2026-03-{day:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            event_type=("card_view", "product_view", "share")[i % 3],
            item_id="p1" if i % 2 else None,
        )
        for i in range(n)
    ]
    store.append_events(validate_events(pd.DataFrame(batch), store.settings, NOW), source="t", arrived=NOW)


@pytest.fixture
def store(tmp_path):
    from leadradar.features.store import EventStore

    settings = Settings(home=tmp_path / "home", store={"arrow_read_rows": 0})  # a copy of any log
    s = EventStore(settings.event_store_url, settings)
    yield s
    s.close()


@pytest.mark.slow  # about 7 s on 2 cores: left out of `make test-fast`
def test_a_log_from_the_stores_copy_is_its_stretches_and_a_night_scans_only_the_one_stored_since(
    store, tmp_path, monkeypatch
):
    """The store's copy gives its parts as stretches (`RadarLog.event_blocks`); a kept build fingerprints the stretch
    stored since and keeps the others', and equals the reference build of the same events every night."""
    from leadradar.features.radar_log import RadarLog

    scans: list[list[int]] = []
    real = tile_groups._by_group
    monkeypatch.setattr(tile_groups, "_by_group", lambda q, out: scans.append(sorted(out)) or real(q, out))
    kept = Settings(features={"tiles_dir": str(tmp_path / "tiles")})
    cutoffs = [pd.Timestamp("2026-03-03T09:30:00Z"), pd.Timestamp("2026-03-06T09:30:00Z")]
    history = []
    for night, (start, day) in enumerate([(0, 1), (100, 2), (200, 5), (300, 4)]):
        stored(store, start, 60, day)  # the last night's events are late: a day already kept
        log = RadarLog.from_store(store, as_seen=False)
        assert log.event_blocks is not None and len(log.event_blocks) == night + 1
        assert log.event_blocks[:night] == tuple(history)
        history = list(log.event_blocks)
        scans.clear()
        args = (log.stages, cutoffs)
        got = compute_features(log.events, *args, kept, REGISTRY, engine="tiles", event_blocks=log.event_blocks)
        assert scans == [[night]]
        assert_same_features(got, compute_features(log.events, *args, SETTINGS, REGISTRY), REGISTRY)
    seen = RadarLog.from_store(store, as_seen=True).event_blocks
    assert seen is not None and [k for k, _ in seen] != [k for k, _ in history]  # other times, other stretches


def test_a_log_that_is_not_every_stored_event_has_no_stretches(store):
    """A tenant's log, an earlier window, consent events set apart or a lead forgotten: not the copy's rows."""
    import dataclasses

    from leadradar.features.radar_log import RadarLog
    from leadradar.features.validation import validate_events
    from tests.support.raw_events import NOW, event

    stored(store, 0, 40, 1)
    whole = RadarLog.from_store(store)
    assert whole.event_blocks is not None
    assert RadarLog.from_store(store, tenant="acme").event_blocks is None
    assert RadarLog.from_store(store, until=pd.Timestamp("2026-03-01T12:00:00Z"), as_seen=False).event_blocks is None
    assert dataclasses.replace(whole, events=whole.events.slice(1)).event_blocks is None
    consent = pd.DataFrame([event("c1", event_type="privacy_consent", dwell_s=None)])
    store.append_events(validate_events(consent, store.settings, NOW), source="t", arrived=NOW)
    assert RadarLog.from_store(store).event_blocks is None
