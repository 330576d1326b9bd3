"""Online features of a stored lead from its kept history equal the online query's row, at any time of day."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leadradar.config import Settings
from leadradar.features.build import finish
from leadradar.features.contract import ITEM_SCHEMA
from leadradar.features.cutoffs import epoch_us
from leadradar.features.grid import DAY_US
from leadradar.features.online import OnlineFeatures
from leadradar.features.registry import build_registry
from leadradar.features.store import EventStore
from leadradar.features.tiles.dense import dense_tiles
from leadradar.features.tiles.online import OnlineTiles, event_tiles
from leadradar.features.validation import validate_events
from tests.support.parity import assert_same_features
from tests.support.strategies import CUTOFF, LEADS, after, before, event_rows, events_table, stage_rows, stages_table

SETTINGS = Settings()
REGISTRY = build_registry(SETTINGS)
QUERY = OnlineFeatures(SETTINGS, REGISTRY)
TILES = OnlineTiles(SETTINGS, REGISTRY)
PROFILE = hsettings(
    max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate]
)
MIDNIGHT = CUTOFF.floor("D")
# A request's instant: inside the day (the strategies' 09:30:15), at midnight, a second either side of it.
instants = st.sampled_from([CUTOFF, MIDNIGHT, MIDNIGHT - pd.Timedelta(seconds=1), MIDNIGHT + pd.Timedelta(hours=23)])
near = st.one_of(before, after, st.integers(-86400 - 120, -86400 + 120), st.integers(-95 * 86400, -20 * 86400))
_stores = itertools.count()
# The catalogue: pricing and two product lines; "ta-a2-01" is left out (an item without a category).
CATALOGUE = pa.Table.from_pylist(
    [
        {"tenant_id": "ta", "item_id": "ta-pricing", "category": "pricing"},
        {"tenant_id": "ta", "item_id": "ta-p1-01", "category": "p1"},
        {"tenant_id": "ta", "item_id": "ta-p1-02", "category": "p1"},
        {"tenant_id": "tb", "item_id": "tb-p1-01", "category": "p1"},
    ],
    schema=ITEM_SCHEMA,
)


def stored(tmp_path, events: pa.Table) -> EventStore:
    settings = Settings(home=tmp_path / f"home{next(_stores)}")
    store = EventStore(settings.event_store_url, settings)
    store.append_events(validate_events(events, settings, pd.Timestamp.now(tz="UTC"), source="t"), source="t")
    return store


def frame(names: list[str], rows: list[tuple]) -> pd.DataFrame:
    return finish(pd.DataFrame.from_records(rows, columns=names))


def by_query(store: EventStore, tenant: str, inline: pa.Table, stages: pa.Table, as_of) -> pd.DataFrame:
    """Today's online path: every stored event of the tenant by `as_of`, the inline ones, the whole query."""
    events = pa.concat_tables([store.events(tenant, until=as_of), inline])
    return frame(*QUERY.compute_rows(events, stages, [as_of], CATALOGUE))


def by_tiles(store: EventStore, tenant: str, inline: pa.Table, stages: pa.Table, as_of, leads=LEADS) -> pd.DataFrame:
    return frame(*TILES.compute_rows(store, tenant, leads, as_of, inline, stages, CATALOGUE))


@PROFILE
@given(
    rows=st.lists(event_rows(near), min_size=1, max_size=40),
    held=st.lists(st.integers(0, 39), max_size=6),
    late=st.lists(st.integers(0, 39), max_size=6),
    stage_list=st.lists(stage_rows(near), max_size=8),
    as_of=instants,
)
def test_a_stored_leads_features_from_its_kept_history_equal_the_online_query(
    tmp_path, rows, held, late, stage_list, as_of
):
    """Some events are stored after the history was first kept (late or not), some are sent inline only."""
    events = events_table(rows, id_prefix=f"s{next(_stores)}-")
    inline_at = sorted({i % len(rows) for i in held})
    late_at = sorted({i % len(rows) for i in late} - set(inline_at))
    first = np.ones(len(rows), dtype=bool)
    first[inline_at + late_at] = False
    store = stored(tmp_path, events.filter(pa.array(first)))
    for tenant in ("ta", "tb"):
        TILES.compute_rows(store, tenant, LEADS, CUTOFF, events.slice(0, 0), stages_table([]))
    if late_at:
        store.append_events(
            validate_events(events.take(pa.array(late_at, pa.int64())), store.settings, source="t"), source="late"
        )
    stages = stages_table(stage_list)
    for tenant in ("ta", "tb"):
        sent = events.take(pa.array(inline_at, pa.int64()))
        inline = sent.filter(pc.equal(sent["tenant_id"], tenant))
        mine = stages.filter(pc.equal(stages["tenant_id"], tenant))
        got = by_tiles(store, tenant, inline, mine, as_of)
        assert_same_features(got, by_query(store, tenant, inline, mine, as_of), REGISTRY)
    store.close()


def test_a_late_event_is_the_only_one_read_and_changes_only_its_days_tile(tmp_path):
    base = {"tenant_id": "ta", "lead_id": "L1", "sales_id": "s1", "micro": 0, "dwell_s": 12.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view"}
    rows = [{**base, "offset_s": -d * 86400 - 60} for d in range(0, 30, 3)]
    store = stored(tmp_path, events_table(rows, id_prefix="first-"))
    as_of, stages = CUTOFF, stages_table([])
    TILES.compute_rows(store, "ta", ["L1"], as_of, events_table([]), stages)
    before = TILES.cache.get(store, "ta", "L1").columns
    late = events_table([{**base, "offset_s": -9 * 86400 - 3600}], id_prefix="late-")  # the day of an earlier one
    store.append_events(validate_events(late, store.settings, source="t"), source="late")
    got = by_tiles(store, "ta", events_table([]), stages, as_of, ["L1"])
    assert TILES.cache.read_rows == 1
    assert_same_features(got, by_query(store, "ta", events_table([]), stages, as_of), REGISTRY)
    tod = int(as_of.value // 1000) % DAY_US
    old = dense_tiles(event_tiles([before], tod, SETTINGS), SETTINGS)
    new = dense_tiles(event_tiles([TILES.cache.get(store, "ta", "L1").columns], tod, SETTINGS), SETTINGS)
    assert list(old.bucket) == list(new.bucket)
    changed = {
        int(b)
        for i, b in enumerate(new.bucket)
        if any(not np.array_equal(new.columns[c][i], old.columns[c][i], equal_nan=True) for c in new.columns)
    }
    late_us = int(late["ts"].cast(pa.int64())[0].as_py())
    assert changed == {-((tod - late_us) // DAY_US)}
    store.close()


def test_a_deleted_event_makes_the_kept_history_read_again(tmp_path):
    base = {"tenant_id": "ta", "lead_id": "L2", "sales_id": "s1", "micro": 0, "dwell_s": None, "item_id": "ta-p1-01"}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "product_view"}
    store = stored(tmp_path, events_table([{**base, "offset_s": -d * 3600} for d in range(1, 6)], id_prefix="d-"))
    TILES.compute_rows(store, "ta", ["L2"], CUTOFF, events_table([]), stages_table([]))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM events WHERE event_id = 'd-0'")
    got = by_tiles(store, "ta", events_table([]), stages_table([]), CUTOFF, ["L2"])
    assert TILES.cache.read_rows == 4
    assert_same_features(got, by_query(store, "ta", events_table([]), stages_table([]), CUTOFF), REGISTRY)
    store.close()


def test_a_kept_history_asks_nothing_while_nothing_is_stored_and_reads_only_the_log_since(tmp_path, monkeypatch):
    """On SQLite a kept lead is current without a question about it while the log has not moved; events stored since
    (fewer than its own) are read from that stretch of the log alone; after a deletion, or a longer stretch, its mark
    is asked as before. Each time the history is the one a new cache reads."""
    from leadradar.features.tiles.history import HistoryCache

    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 5.0, "referrer_lead_id": None}
    base |= {"channel": "h5", "event_type": "product_view", "item_id": None}
    rows = [{**base, "lead_id": "L1", "offset_s": -k * 600} for k in range(1, 21)]
    rows += [{**base, "lead_id": "L2", "offset_s": -k * 700} for k in range(1, 4)]
    store = stored(tmp_path, events_table(rows, id_prefix="q-"))
    asked: list[list[str]] = []
    marks = store.lead_marks
    monkeypatch.setattr(store, "lead_marks", lambda tenant, leads: asked.append(list(leads)) or marks(tenant, leads))

    def add(lead: str, prefix: str, n: int = 1) -> None:
        new = events_table([{**base, "lead_id": lead, "offset_s": -30 - k} for k in range(n)], id_prefix=prefix)
        store.append_events(validate_events(new, store.settings, source="t"), source="t")

    def same_as_new_cache(history, lead: str) -> None:
        alone = HistoryCache(SETTINGS, 10).get(store, "ta", lead)
        assert (history.count, history.top) == (alone.count, alone.top)
        for name, column in alone.columns.items():
            np.testing.assert_array_equal(history.columns[name], column, err_msg=name)

    cache = HistoryCache(SETTINGS, 10)
    kept = cache.get(store, "ta", "L1")
    assert cache.get(store, "ta", "L1") is kept and cache.read_rows == 0 and asked == []
    add("L2", "a-")  # another lead moved: the log since holds none of L1's
    assert cache.get(store, "ta", "L1") is kept and cache.read_rows == 0 and asked == []
    add("L1", "b-")
    moved = cache.get(store, "ta", "L1")
    assert moved.count == 21 and cache.read_rows == 1 and asked == []
    same_as_new_cache(moved, "L1")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM events WHERE event_id = 'a-0'")  # L2's: L1's mark tells it is unchanged
    assert cache.get(store, "ta", "L1") is moved and cache.read_rows == 0 and asked == [["L1"]]
    add("L2", "c-", n=25)  # more stored since than L1 holds: its mark is cheaper than that stretch of the log
    assert cache.get(store, "ta", "L1") is moved and asked == [["L1"], ["L1"]]
    add("L1", "d-")
    after = cache.get(store, "ta", "L1")
    assert cache.read_rows == 1 and len(asked) == 2
    same_as_new_cache(after, "L1")
    store.close()


def test_a_kept_history_whose_log_went_back_or_was_rewritten_asks_its_mark():
    """The routes by log position alone: a log behind the one a history was current at (a store restored from a
    copy) or with a deletion since is asked about; no position (PostgreSQL) always is."""
    from leadradar.features.tiles.history import LeadHistory, _route, empty_columns

    kept = LeadHistory.of(10, 50, empty_columns(), events_table([]))
    assert _route(kept, (60, 0)) == "mark"  # never current at a known position
    kept.seen = (60, 3)
    assert [_route(kept, p) for p in [(60, 3), (65, 3), (75, 3), (59, 3), (60, 4), None]] == [
        "current",
        "since",
        "mark",
        "mark",
        "mark",
        "mark",
    ]


def test_a_request_as_of_a_year_nanoseconds_cannot_hold_is_answered_alike_on_both_paths(tmp_path):
    """The fuzzer's `as_of` 1472 reached the service: a microsecond timestamp holds it, nanoseconds overflow."""
    base = {"tenant_id": "ta", "lead_id": "L1", "sales_id": "s1", "micro": 0, "dwell_s": 12.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view", "offset_s": -3600}
    store = stored(tmp_path, events_table([base], id_prefix="old-"))
    for as_of in ("1472-02-25T06:33:06-04:22", "2400-01-01T00:00:00Z"):
        at = pd.Timestamp(as_of).tz_convert("UTC").as_unit("us")
        got = by_tiles(store, "ta", events_table([]), stages_table([]), at, ["L1"])
        assert_same_features(got, by_query(store, "ta", events_table([]), stages_table([]), at), REGISTRY)
    store.close()


def test_items_and_referrals_stored_after_the_requests_instant_are_not_counted(tmp_path):
    """The kept history holds every stored event; a request as of an earlier instant reads only those by then."""
    base = {"tenant_id": "ta", "lead_id": "L1", "sales_id": "s1", "micro": 0, "dwell_s": 30.0, "channel": "h5"}
    base |= {"event_type": "product_view", "referrer_lead_id": None}
    rows = [
        {**base, "offset_s": -3 * 86400, "item_id": "ta-p1-01"},
        {**base, "offset_s": 3600, "item_id": "ta-p1-02"},
        {**base, "offset_s": 7200, "item_id": "ta-pricing", "lead_id": "L2", "referrer_lead_id": "L1"},
    ]
    store = stored(tmp_path, events_table(rows, id_prefix="future-"))
    got = by_tiles(store, "ta", events_table([]), stages_table([]), CUTOFF, ["L1", "L2"])
    assert got.set_index("lead_id").loc["L1", "distinct_items_all"] == 1
    assert_same_features(got, by_query(store, "ta", events_table([]), stages_table([]), CUTOFF), REGISTRY)
    store.close()


def test_a_later_request_reuses_the_day_tiles_only_while_no_event_changes_its_day(tmp_path):
    """Day tiles and item rows made for one request are kept with the lead's history; a later request reuses them
    when every event falls on the same day of its grid, and makes them again when one moves."""
    base = {"tenant_id": "ta", "lead_id": "L1", "sales_id": "s1", "micro": 0, "dwell_s": 20.0, "channel": "h5"}
    base |= {"event_type": "product_view", "referrer_lead_id": None, "item_id": "ta-p1-01"}
    # Times of day: 10 minutes and 2 hours before CUTOFF's, on days 1, 7 and 30 before it; the pricing page is
    # viewed 7 days and 10 minutes before, so it enters `pricing_views_7d` when a request is 15 minutes earlier.
    rows = [{**base, "offset_s": -d * 86400 - m} for d in (1, 7, 30) for m in (600, 7200)]
    rows[2]["item_id"] = "ta-pricing"
    store = stored(tmp_path, events_table(rows, id_prefix="grid-"))
    empty = events_table([])

    def check(at: pd.Timestamp) -> object:
        got = by_tiles(store, "ta", empty, stages_table([]), at, ["L1"])
        assert_same_features(got, by_query(store, "ta", empty, stages_table([]), at), REGISTRY)
        return TILES.cache.get(store, "ta", "L1").memo["tiles"][1]

    made = check(CUTOFF)
    assert check(CUTOFF - pd.Timedelta(minutes=5)) is made  # no event's time of day lies between: reused
    assert check(CUTOFF - pd.Timedelta(minutes=15)) is not made  # ten-minute-earlier events move to the next day
    moved = check(CUTOFF - pd.Timedelta(minutes=15))
    pricing = by_tiles(store, "ta", empty, stages_table([]), CUTOFF - pd.Timedelta(minutes=15), ["L1"])
    assert pricing["pricing_views_7d"].tolist() == [1]
    assert check(CUTOFF - pd.Timedelta(minutes=15) + pd.Timedelta(days=1)) is moved  # same days; the windows move
    store.close()


def test_events_stored_since_the_history_was_kept_are_merged_into_its_items_and_referrals_in_time_order(tmp_path):
    """New items get their own code and late events their place in time: what a request cuts by slicing."""
    base = {"tenant_id": "ta", "lead_id": "L1", "sales_id": "s1", "micro": 0, "dwell_s": 15.0, "channel": "h5"}
    base |= {"event_type": "product_view", "referrer_lead_id": None, "item_id": "ta-p1-01"}
    shared = {**base, "lead_id": "L2", "event_type": "card_view", "item_id": None, "referrer_lead_id": "L1"}
    kept = [
        {**base, "offset_s": -5 * 86400},
        {**base, "offset_s": -86400, "item_id": "ta-p1-02"},
        {**shared, "offset_s": -5 * 86400},
        {**shared, "offset_s": -86400},
        {**shared, "offset_s": -7200},
    ]
    since = [
        {**base, "offset_s": -4 * 86400, "item_id": "ta-pricing"},  # late, and an item not seen before
        {**base, "offset_s": -7200},
        {**shared, "offset_s": -3 * 86400},  # late: before the kept -1 day one
        {**shared, "offset_s": -3600},  # and one at the end: two places to merge at
    ]
    store = stored(tmp_path, events_table(kept, id_prefix="kept-"))
    TILES.compute_rows(store, "ta", ["L1", "L2"], CUTOFF, events_table([]), stages_table([]))
    later = validate_events(events_table(since, id_prefix="since-"), store.settings, source="t")
    store.append_events(later, source="t")
    for at in (CUTOFF, CUTOFF - pd.Timedelta(days=2)):
        got = by_tiles(store, "ta", events_table([]), stages_table([]), at, ["L1", "L2"])
        assert_same_features(got, by_query(store, "ta", events_table([]), stages_table([]), at), REGISTRY)
    assert got.set_index("lead_id").loc["L1", "referred_visits_all"] == 2
    assert TILES.cache.read_rows == 0  # the second request read nothing more
    store.close()


def test_a_batch_of_leads_gets_the_histories_each_lead_alone_would(tmp_path):
    """One call for leads kept and unchanged, kept and moved on, kept with an event deleted and one added, not kept
    (one with a consent event among theirs), never stored, and one named twice: each history is what a new cache
    reads for that lead alone, and only the new, the changed and the unkept leads' events are read."""
    from leadradar.features.tiles.history import HistoryCache

    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 5.0, "referrer_lead_id": None}
    base |= {"channel": "h5", "event_type": "product_view"}
    items = [("L1", None), ("L2", "ta-p1-01"), ("L3", "ta-pricing"), ("L4", None), ("L5", "ta-p1-02")]
    rows = [
        {**base, "lead_id": lead, "item_id": item, "offset_s": -h * 3600 - k}
        for k, (lead, item) in enumerate(items)
        for h in range(1, 4)
    ]
    rows.append({**base, "lead_id": "L4", "item_id": None, "event_type": "privacy_consent", "offset_s": -7200})
    store = stored(tmp_path, events_table(rows, id_prefix="b-"))
    cache = HistoryCache(SETTINGS, 100)
    kept = cache.get_many(store, "ta", ["L1", "L2", "L3"])
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM events WHERE event_id = 'b-6'")  # one of L3's
    moved = [{**base, "lead_id": lead, "item_id": "ta-p1-02", "offset_s": -60} for lead in ("L2", "L3")]
    store.append_events(validate_events(events_table(moved, id_prefix="m-"), store.settings, source="t"), source="t")
    leads = ["L1", "L2", "L3", "L4", "L9", "L5", "L1"]
    got = cache.get_many(store, "ta", leads)
    assert got[0] is kept[0] and got[6] is kept[0]
    assert cache.read_rows == 1 + (1 + 3) + 4 + 3  # L2's new event; L3's, then L3 again; L4 with its consent; L5
    for lead, history in zip(leads, got, strict=True):
        alone = HistoryCache(SETTINGS, 100).get(store, "ta", lead)
        assert (history.count, history.top) == (alone.count, alone.top), lead
        for name, column in alone.columns.items():
            np.testing.assert_array_equal(history.columns[name], column, err_msg=f"{lead} {name}")
        assert history.few.equals(alone.few) and history.first.equals(alone.first), lead
        assert history.touches.keys.equals(alone.touches.keys), lead
        np.testing.assert_array_equal(history.touches.code, alone.touches.code, err_msg=lead)
    assert (got[3].count, len(got[3].columns["us"])) == (4, 3)  # the consent event is counted, never a feature's
    assert got[4].count == 0 and len(got[4].columns["us"]) == 0
    assert (got[5].count, got[5].touches.keys["item_id"].to_pylist()) == (3, ["ta-p1-02"])
    store.close()


def test_a_request_after_a_move_remakes_only_the_days_from_the_first_new_event(tmp_path, monkeypatch):
    """A lead moves (one event today, then a late one nine days back): each next request keeps the last request's
    day tiles before the first day that can differ and makes only the rest, and the tiles are those made whole."""
    import leadradar.features.tiles.online as online

    base = {"tenant_id": "ta", "lead_id": "L1", "sales_id": "s1", "micro": 0, "dwell_s": 12.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view"}
    rows = [{**base, "offset_s": -d * 86400 - m} for d in range(30) for m in (600, 900, 4 * 3600)]
    rows.append({**base, "offset_s": -86400 + 60})  # the last day's first, in the session of the day before's last
    store = stored(tmp_path, events_table(rows, id_prefix="first-"))
    tiles = OnlineTiles(SETTINGS, REGISTRY)
    made: list[int] = []
    whole = online.dense_tiles
    monkeypatch.setattr(online, "dense_tiles", lambda t, s: made.append(len(t["us_min"])) or whole(t, s))
    empty, stages = events_table([]), stages_table([])

    def request(at: pd.Timestamp) -> None:
        got = frame(*tiles.compute_rows(store, "ta", ["L1"], at, empty, stages, CATALOGUE))
        assert_same_features(got, by_query(store, "ta", empty, stages, at), REGISTRY)
        history = tiles.cache.get(store, "ta", "L1")
        cut = history.until(epoch_us(at))[0]
        again = whole(event_tiles([cut], epoch_us(at) % DAY_US, SETTINGS), SETTINGS)
        kept = history.memo["tiles"][1]
        assert list(kept.bucket) == list(again.bucket)
        for name, column in again.columns.items():
            np.testing.assert_array_equal(kept.columns[name], column, err_msg=name)

    def move(offset_s: int, name: str) -> None:
        one = events_table([{**base, "offset_s": offset_s, "dwell_s": 40.0}], id_prefix=name)
        store.append_events(validate_events(one, store.settings, source="t"), source="t")

    request(CUTOFF)
    assert made == [91]
    move(-60, "today-")  # a minute before the request: its day, the last, is made again with the day before it
    request(CUTOFF + pd.Timedelta(seconds=1))
    assert made[1:] == [3 + 5]
    move(-9 * 86400 - 3600, "late-")  # nine days back: its day to the last made again, and the day before it
    request(CUTOFF + pd.Timedelta(seconds=2))
    assert made[2:] == [3 * 11 + 1 + 2]
    request(CUTOFF - pd.Timedelta(days=5, seconds=-3))  # back five days: the day before that one and that one
    assert made[3:] == [3 + 3]
    request(CUTOFF + pd.Timedelta(seconds=4))  # and forward again: the days from that one on, not kept then
    assert made[4:] == [3 * 7 + 1 + 1]
    move(-5, "again-")
    request(CUTOFF - pd.Timedelta(minutes=12))  # the 10-minutes-before events change day: nothing is kept
    assert made[5:] == [91]  # all but today's 10-minutes-before one and the two moves after it, plus the late one
    store.close()


@PROFILE
@given(
    rows=st.lists(event_rows(near), min_size=2, max_size=40),
    moves=st.lists(st.tuples(st.lists(st.integers(0, 39), max_size=4), instants), min_size=1, max_size=4),
    as_of=instants,
)
def test_requests_between_moves_equal_the_online_query(tmp_path, rows, moves, as_of):
    """Events stored in steps (late ones too) with a request after each, at any of the instants: a request that
    keeps the last one's day tiles gives what the query gives."""
    events = events_table(rows, id_prefix=f"m{next(_stores)}-")
    held = sorted({i % len(rows) for ids, _ in moves for i in ids})
    first = np.ones(len(rows), dtype=bool)
    first[held] = False
    store = stored(tmp_path, events.filter(pa.array(first)))
    tiles = OnlineTiles(SETTINGS, REGISTRY)
    empty, stages = events_table([]), stages_table([])
    stored_ids = set()
    for tenant in ("ta", "tb"):
        tiles.compute_rows(store, tenant, LEADS, as_of, empty, stages)
    for ids, at in moves:
        now = sorted({i % len(rows) for i in ids} - stored_ids)
        stored_ids |= set(now)
        if now:
            batch = validate_events(events.take(pa.array(now, pa.int64())), store.settings, source="t")
            store.append_events(batch, source="t")
        for tenant in ("ta", "tb"):
            got = frame(*tiles.compute_rows(store, tenant, LEADS, at, empty, stages, CATALOGUE))
            assert_same_features(got, by_query(store, tenant, empty, stages, at), REGISTRY)
    store.close()


def test_an_event_stored_later_at_the_leads_first_instant_joins_its_first_events(tmp_path):
    """The owner is the least salesperson at the lead's first time: one more event at that very instant, stored
    after the history was kept, can change it; a later one cannot."""
    base = {"tenant_id": "ta", "lead_id": "L1", "micro": 0, "dwell_s": 3.0, "item_id": None, "channel": "h5"}
    base |= {"referrer_lead_id": None, "event_type": "card_view"}
    rows = [{**base, "sales_id": "s2", "offset_s": -3 * 86400}, {**base, "sales_id": "s2", "offset_s": -3600}]
    store = stored(tmp_path, events_table(rows, id_prefix="own-"))
    empty, stages = events_table([]), stages_table([])
    assert by_tiles(store, "ta", empty, stages, CUTOFF, ["L1"])["sales_id"].tolist() == ["s2"]
    for offset_s, name in ((-600, "later-"), (-3 * 86400, "same-")):
        one = events_table([{**base, "sales_id": "s1", "offset_s": offset_s}], id_prefix=name)
        store.append_events(validate_events(one, store.settings, source="t"), source="t")
        got = by_tiles(store, "ta", empty, stages, CUTOFF, ["L1"])
        want = by_query(store, "ta", empty, stages, CUTOFF)
        assert got["sales_id"].tolist() == want["sales_id"].tolist() == ["s2" if name == "later-" else "s1"]
        assert_same_features(got, want, REGISTRY)
    store.close()
