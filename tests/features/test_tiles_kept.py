"""Builds with kept tiles and rows: after any appends they equal a full build, and recompute only what changed."""

from __future__ import annotations

import json
import threading

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leadradar.config import Settings
from leadradar.errors import InputError
from leadradar.features.build import compute_features
from leadradar.features.contract import EVENT_SCHEMA
from leadradar.features.cutoffs import epoch_us
from leadradar.features.engines import connect, feature_input, load, within_times
from leadradar.features.grid import DAY_US
from leadradar.features.locks import exclusive
from leadradar.features.registry import build_registry
from leadradar.features.tiles.build import lead_partitions
from leadradar.features.tiles.kept_rows import KeptRows, cutoff_of
from leadradar.features.tiles.store import TileStore, forget_kept, purge_kept_before
from tests.support.kept_files import kept_leads
from tests.support.parity import assert_same_features
from tests.support.strategies import CUTOFF, after, before, event_rows, events_table, stage_rows, stages_table

SETTINGS = Settings()
REGISTRY = build_registry(SETTINGS)
CUTOFFS = [CUTOFF - pd.Timedelta(days=8), CUTOFF - pd.Timedelta(days=1), CUTOFF]
near = st.one_of(before, after, st.integers(-86400 - 120, -86400 + 120))


def kept_build(root, events: pa.Table, stages: pa.Table) -> pd.DataFrame:
    kept = Settings(features={"tiles_dir": str(root)})
    return compute_features(events, stages, CUTOFFS, kept, REGISTRY, engine="tiles")


def row_files(root) -> dict[str, int]:
    """Each kept rows file and when it was last written."""
    return {p.name: p.stat().st_mtime_ns for p in root.rglob("rows-*.arrow")}


@hsettings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=[Phase.generate])
@given(
    batches=st.lists(
        st.tuples(st.lists(event_rows(near), min_size=1, max_size=12), st.lists(stage_rows(near), max_size=3)),
        min_size=2,
        max_size=3,
    )
)
@pytest.mark.slow  # about 7 s on 2 cores: left out of `make test-fast`
def test_a_kept_build_after_any_sequence_of_appends_equals_the_reference(tmp_path_factory, batches):
    root = tmp_path_factory.mktemp("kept")
    events: list[pa.Table] = []
    stages: list[dict] = []
    for i, (event_batch, stage_batch) in enumerate(batches):
        events.append(events_table(event_batch, f"b{i}-"))
        stages += stage_batch
        got = kept_build(root, pa.concat_tables(events), stages_table(stages))
    ref = compute_features(pa.concat_tables(events), stages_table(stages), CUTOFFS, SETTINGS, REGISTRY)
    assert_same_features(got, ref, REGISTRY)


def test_an_event_recomputes_the_rows_of_the_cutoffs_at_or_after_its_day_and_no_others(tmp_path):
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 3.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view"}
    history = [{**base, "lead_id": f"L{d % 3}", "offset_s": -d * 43200 - 60} for d in range(1, 30)]
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L1", "stage": "engaged", "offset_s": -9 * 86400}])
    kept_build(tmp_path, events_table(history, "h"), stages)
    first = row_files(tmp_path)
    tomorrow = [*history, {**base, "lead_id": "L2", "offset_s": 3600}]
    kept_build(tmp_path, events_table(tomorrow, "h"), stages)
    assert row_files(tmp_path) == first
    late = [*tomorrow, {**base, "lead_id": "L0", "offset_s": -3 * 86400}]
    got = kept_build(tmp_path, events_table(late, "h"), stages)
    rewritten = {name for name, t in row_files(tmp_path).items() if first[name] != t}
    assert rewritten == {f"rows-{c.value // 1000}.arrow" for c in CUTOFFS[1:]}
    full = compute_features(events_table(late, "h"), stages, CUTOFFS, SETTINGS, REGISTRY)
    assert_same_features(got, full, REGISTRY)


@pytest.mark.parametrize("held", ["memory", "file"])
def test_a_stretch_of_time_is_cut_on_the_events_own_times_and_keeps_exactly_the_rows_of_its_microseconds(
    tmp_path, held
):
    """`within_times` (a kept build's stale days) bounds the source's `ts` too, so an engine can skip row groups; no
    row of `after < us <= upto` is lost at either bound, in memory or from a file (of nanosecond times)."""
    edge = epoch_us(CUTOFF)
    ns = [(edge + d) * 1000 + extra for d in (-DAY_US, -1, 0, 1, DAY_US - 1, DAY_US, DAY_US + 1) for extra in (0, 999)]
    base = {"tenant_id": "ta", "lead_id": "L1", "sales_id": "s1", "offset_s": -1, "dwell_s": None, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view"}
    table = events_table([base] * len(ns), "t")
    table = table.set_column(EVENT_SCHEMA.get_field_index("ts"), "ts", pa.array(ns, pa.timestamp("ns", tz="UTC")))
    if held == "file":
        pq.write_table(table, tmp_path / "events.parquet")
        source = str(tmp_path / "events.parquet")
    else:
        micro = pc.cast(table["ts"], EVENT_SCHEMA.field("ts").type, safe=False)
        source = table.set_column(EVENT_SCHEMA.get_field_index("ts"), "ts", micro)
    con = connect("tiles", SETTINGS.features)
    events = feature_input(load(con, source, "events"), "events")
    cut = within_times(events, edge, edge + DAY_US)
    assert "ts" in str(ibis.to_sql(cut)).split("WHERE", 1)[1]  # the source's own times are bounded
    assert sorted(cut.event_id.to_pyarrow().to_pylist()) == sorted(
        events.filter((events.us > edge) & (events.us <= edge + DAY_US)).event_id.to_pyarrow().to_pylist()
    )
    assert cut.count().to_pyarrow().as_py() == 6  # 1, DAY_US - 1 and DAY_US microseconds after, each twice


def test_a_second_build_on_the_same_kept_tiles_waits_for_the_first(tmp_path):
    """Two builds sharing `features.tiles_dir` (a cron job and a person) would otherwise mix their kept files."""
    base = {"tenant_id": "ta", "lead_id": "L1", "sales_id": "s1", "micro": 0, "dwell_s": 3.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view"}
    events = events_table([{**base, "offset_s": -d * 86400 - 60} for d in range(1, 10)], "w")
    built: list[pd.DataFrame] = []
    with exclusive(tmp_path, ".build.lock"):  # a first build holding the folder
        second = threading.Thread(target=lambda: built.append(kept_build(tmp_path, events, stages_table([]))))
        second.start()
        second.join(2.0)
        assert second.is_alive() and not built and not row_files(tmp_path)
    second.join(120)
    assert len(built) == 1 and row_files(tmp_path)
    assert_same_features(built[0], compute_features(events, stages_table([]), CUTOFFS, SETTINGS, REGISTRY), REGISTRY)


def test_a_tiles_folder_that_cannot_be_written_is_one_line_naming_it(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    base = {"tenant_id": "ta", "lead_id": "L1", "sales_id": "s1", "micro": 0, "dwell_s": 3.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view", "offset_s": -60}
    events = events_table([base], "x")
    with pytest.raises(InputError, match=f"{blocked / 'tiles'}: cannot write here"):
        kept_build(blocked / "tiles", events, stages_table([]))


@pytest.mark.slow  # about 4 s on 2 cores: left out of `make test-fast`
def test_a_kept_build_past_its_partition_size_equals_the_reference(tmp_path):
    """`tiles_partition_events` of 30 against 89 events: the first build computes tiles a run of days at a time (one
    segment each) and rows a partition of leads at a time, each from its own leads' kept tiles; a late event then
    re-opens one day. Each build equals the reference."""
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 4.0, "item_id": "ta-p1-01"}
    base |= {"channel": "h5", "event_type": "product_view"}
    rows = [
        {**base, "lead_id": f"L{d % 5}", "offset_s": -d * 43200 - 60, "referrer_lead_id": "L0" if d % 7 == 3 else None}
        for d in range(1, 90)
    ]
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L2", "stage": "won", "offset_s": -20 * 86400}])
    settings = Settings(features={"tiles_dir": str(tmp_path), "tiles_partition_events": 30})
    events = events_table(rows, "h")
    first = compute_features(events, stages, CUTOFFS, settings, REGISTRY, engine="tiles")
    assert_same_features(first, compute_features(events, stages, CUTOFFS, SETTINGS, REGISTRY), REGISTRY)
    assert segments(tmp_path) == 3  # runs of 15 days, 30 events each
    late = events_table([*rows, {**rows[0], "lead_id": "L3", "offset_s": -10 * 86400}], "h")
    again = compute_features(late, stages, CUTOFFS, settings, REGISTRY, engine="tiles")
    assert_same_features(again, compute_features(late, stages, CUTOFFS, SETTINGS, REGISTRY), REGISTRY)
    assert segments(tmp_path) == 4  # the late event's day, beside the others


def test_a_partition_of_leads_reads_only_its_own_leads_kept_tiles(tmp_path):
    """What bounds a kept build's memory: each partition reads its leads' tiles, the partitions together all of them."""
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 4.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view"}
    rows = [{**base, "lead_id": f"L{d % 9}", "offset_s": -d * 20000 - 60} for d in range(1, 60)]
    kept_build(tmp_path, events_table(rows, "p"), stages_table([]))
    con = connect("duckdb", SETTINGS.features)
    store = TileStore(tmp_path, SETTINGS, CUTOFF.value // 1000 % DAY_US)
    whole = store.read()
    assert whole is not None
    events = feature_input(load(con, events_table(rows, "p"), "events"), "events")
    parts = []
    partitions = lead_partitions(events, Settings(features={"tiles_partition_events": 20}))
    assert len(partitions) == 3  # 59 events
    for mine in partitions:
        tiles = store.read(mine, con)
        assert tiles is not None
        assert set(tiles["lead_id"].to_pylist()) == set(mine(events).lead_id.to_pyarrow().to_pylist())
        parts.append(tiles)
    assert min(t.num_rows for t in parts) > 0 and sum(t.num_rows for t in parts) == whole.num_rows
    key = ["lead_id", "bucket", "tcode"]
    assert (
        pa.concat_tables(parts)
        .sort_by([(k, "ascending") for k in key])
        .equals(whole.sort_by([(k, "ascending") for k in key]))
    )


def segments(root) -> int:
    """How many segment files the kept tiles' manifest points to."""
    manifest = json.loads(next(root.glob("*/manifest.json")).read_text())
    return len({v[-1] for v in manifest["days"].values()})


def test_kept_rows_a_build_fails_in_the_middle_of_are_as_before_and_the_next_build_cleans_up(tmp_path):
    """Rows are written as chunks come, each cutoff's file renamed into place only once every chunk is in: a build
    that fails in between leaves the kept rows and their manifest as they were."""
    kept = KeptRows(tmp_path)
    cut = [1_000, 2_000]

    def chunk(value: float) -> pa.Table:
        return pa.table({"cutoff": pa.array(cut, pa.timestamp("us", tz="UTC")), "x": [value, value]})

    kept.keep([chunk(1.0)], {c: "a" for c in cut})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing():
        yield chunk(2.0)
        raise RuntimeError("the engine died")

    with pytest.raises(RuntimeError, match="the engine died"):
        kept.keep(failing(), {c: "b" for c in cut})
    assert kept.stale({c: "a" for c in cut}) == []
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".tmp"} == before
    kept.keep([chunk(3.0), chunk(4.0)], {c: "b" for c in cut})
    assert not list(tmp_path.glob("*.tmp"))
    assert [t["x"].to_pylist() for t in kept.chunks(cut)] == [[3.0, 4.0], [3.0, 4.0]]


def _cut_short(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flipped(path, start: int, end: int) -> None:
    """The bytes from `start` to `end` inverted, the footer left whole: a damaged disk's page, not a short file."""
    data = bytearray(path.read_bytes())
    data[start:end] = bytes(b ^ 0xFF for b in data[start:end])
    path.write_bytes(bytes(data))


def _damaged_pages(path) -> None:
    size = path.stat().st_size
    _flipped(path, 8, size // 2) if path.suffix == ".arrow" else _flipped(path, size // 3, size // 3 + 64)


# Kept files as a crash, a full disk or a hand leaves them; each names the file a build must say it cannot read.
DAMAGE = {
    "a rows file cut short": lambda root: _cut_short(min(root.rglob("rows-*.arrow"))),  # one the late event leaves
    "the rows manifest not JSON": lambda root: next(root.rglob("rows.json")).write_text("{oops"),
    "the tiles manifest not JSON": lambda root: next(root.rglob("manifest.json")).write_text("xx"),
    "the tiles manifest another shape": lambda root: next(root.rglob("manifest.json")).write_text(
        json.dumps({"version": 3, "days": {"5": 7}})
    ),
    "a tiles segment cut short": lambda root: _cut_short(next(root.rglob("seg-*.parquet"))),
    "a tiles segment gone": lambda root: next(root.rglob("seg-*.parquet")).unlink(),
    "a rows file with damaged pages": lambda root: _damaged_pages(min(root.rglob("rows-*.arrow"))),
    "a tiles segment with damaged pages": lambda root: _damaged_pages(next(root.rglob("seg-*.parquet"))),
}


@pytest.mark.slow  # about 12 s on 2 cores: left out of `make test-fast`
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_kept_file_that_cannot_be_read_is_named_once_and_what_it_held_computed_again(tmp_path, caplog, damage):
    """Kept tiles and rows are a cache of the events: a damaged one is computed again (before: a traceback at every
    build until someone deleted the folder). A late event makes the build read every kept day's tiles."""
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 3.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view"}
    history = [{**base, "lead_id": f"L{d % 3}", "offset_s": -d * 43200 - 60} for d in range(1, 30)]
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L1", "stage": "engaged", "offset_s": -9 * 86400}])
    kept_build(tmp_path, events_table(history, "h"), stages)
    DAMAGE[damage](tmp_path)
    late = events_table([*history, {**base, "lead_id": "L0", "offset_s": -3 * 86400}], "h")
    with caplog.at_level("WARNING"):
        got = kept_build(tmp_path, late, stages)
    said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(said) == 1 and str(tmp_path) in said[0] and "computed again" in said[0], said
    assert_same_features(got, compute_features(late, stages, CUTOFFS, SETTINGS, REGISTRY), REGISTRY)
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = kept_build(tmp_path, late, stages)
    assert not [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert_same_features(again, got, REGISTRY)


@pytest.mark.slow  # about 4 s on 2 cores: left out of `make test-fast`
def test_a_damaged_segment_read_by_partitions_of_leads_is_computed_again(tmp_path, caplog):
    """Past `tiles_partition_events` a partition reads its leads' tiles through the engine, whose error names no
    file: each segment is then read whole to find the damaged one."""
    events, stages = _small_log()
    settings = Settings(features={"tiles_dir": str(tmp_path), "tiles_partition_events": 10})
    compute_features(events, stages, CUTOFFS, settings, REGISTRY, engine="tiles")
    _damaged_pages(next(tmp_path.rglob("seg-*.parquet")))
    other = stages_table([{"tenant_id": "ta", "lead_id": "L2", "stage": "engaged", "offset_s": -2 * 86400}])
    with caplog.at_level("WARNING"):
        got = compute_features(events, other, CUTOFFS, settings, REGISTRY, engine="tiles")  # rows read the tiles
    assert [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert_same_features(got, compute_features(events, other, CUTOFFS, SETTINGS, REGISTRY), REGISTRY)


def _small_log() -> tuple[pa.Table, pa.Table]:
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 3.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view"}
    history = [{**base, "lead_id": f"L{d % 3}", "offset_s": -d * 43200 - 60} for d in range(1, 30)]
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L1", "stage": "engaged", "offset_s": -9 * 86400}])
    return events_table(history, "h"), stages


def test_kept_rows_follow_the_settings_the_features_read_and_not_the_others(tmp_path):
    """A scheduler and a person with another data directory or other training options share the kept rows; before,
    any setting at all re-opened every cutoff."""
    events, stages = _small_log()
    root = {"tiles_dir": str(tmp_path / "tiles")}

    def build(**sections) -> pd.DataFrame:
        settings = Settings(**{**sections, "features": {**root, **sections.get("features", {})}})
        return compute_features(events, stages, CUTOFFS, settings, build_registry(settings), engine="tiles")

    build()
    first = row_files(tmp_path)
    build(home=str(tmp_path / "another-home"), training={"num_boost_round": 7}, serving={"port": 3999})
    assert row_files(tmp_path) == first
    build(features={"pricing_categories": ("pricing", "quote")})  # a definition, in the same set of tiles
    again = row_files(tmp_path)
    assert set(again) == set(first) and all(again[name] != first[name] for name in first)


def test_a_build_removes_the_kept_sets_built_least_recently_beyond_its_setting(tmp_path):
    """A set per cutoffs' time of day (and tile settings): one no build uses stays no longer than it is among the
    `features.tiles_kept_sets` built last; the one being built is never removed."""
    events, stages = _small_log()
    kept = Settings(features={"tiles_dir": str(tmp_path), "tiles_kept_sets": 2})
    sets: list[set[str]] = []
    for hours in (0, 6, 12):  # three times of day: three sets
        cutoffs = [c - pd.Timedelta(hours=hours) for c in CUTOFFS]
        got = compute_features(events, stages, cutoffs, kept, REGISTRY, engine="tiles")
        assert_same_features(got, compute_features(events, stages, cutoffs, SETTINGS, REGISTRY), REGISTRY)
        sets.append({d.name for d in tmp_path.iterdir() if d.is_dir()})
    assert [len(s) for s in sets] == [1, 2, 2]
    assert sets[2] == (sets[1] - sets[0]) | (sets[2] - sets[1]), "the oldest set is the one removed"


def test_an_events_file_corrected_in_place_recomputes_the_days_it_changed(tmp_path):
    """The same ids and times with another type or dwell (a file fixed by hand, not the store's appends): the kept
    build follows the corrected file, not the tiles and rows kept from the first."""
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "item_id": None, "referrer_lead_id": None}
    base |= {"channel": "h5", "event_type": "card_view", "dwell_s": 3.0}
    history = [{**base, "lead_id": f"L{d % 3}", "offset_s": -d * 43200 - 60} for d in range(1, 30)]
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L1", "stage": "engaged", "offset_s": -9 * 86400}])
    first = kept_build(tmp_path, events_table(history, "h"), stages)
    fixed = [{**e, "event_type": "product_view", "dwell_s": 40.0} if i % 4 == 0 else e for i, e in enumerate(history)]
    got = kept_build(tmp_path, events_table(fixed, "h"), stages)
    full = compute_features(events_table(fixed, "h"), stages, CUTOFFS, SETTINGS, REGISTRY)
    assert_same_features(got, full, REGISTRY)
    assert not first.equals(got)


def test_forgetting_a_lead_takes_its_rows_out_of_every_kept_file_and_the_next_build_equals_the_reference(tmp_path):
    """Deletion on request reaches the kept tiles and rows (made from the lead's events); before, they kept its id
    and features until a build happened to rewrite them."""
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "item_id": None, "referrer_lead_id": None}
    base |= {"channel": "h5", "event_type": "card_view", "dwell_s": 3.0}
    history = [{**base, "lead_id": f"L{d % 3}", "offset_s": -d * 43200 - 60} for d in range(1, 30)]
    stages = [{"tenant_id": "ta", "lead_id": "L1", "stage": "engaged", "offset_s": -9 * 86400}]
    kept_build(tmp_path, events_table(history, "h"), stages_table(stages))
    assert "L1" in kept_leads(tmp_path)
    assert forget_kept(tmp_path, "ta", "L1") > 0
    assert "L1" not in kept_leads(tmp_path)
    left = [e for e in history if e["lead_id"] != "L1"]
    got = kept_build(tmp_path, events_table(left, "h"), stages_table([]))
    full = compute_features(events_table(left, "h"), stages_table([]), CUTOFFS, SETTINGS, REGISTRY)
    assert_same_features(got, full, REGISTRY)


def test_after_forgetting_a_build_from_a_file_that_still_holds_the_lead_equals_the_reference(tmp_path):
    """Forgetting reaches our files, not a user's: an events file outside the data directory can still hold the
    lead. The days and cutoffs its rows left are computed again, not read back without it."""
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "item_id": None, "referrer_lead_id": None}
    base |= {"channel": "h5", "event_type": "card_view", "dwell_s": 3.0}
    history = [{**base, "lead_id": f"L{d % 3}", "offset_s": -d * 43200 - 60} for d in range(1, 30)]
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L1", "stage": "engaged", "offset_s": -9 * 86400}])
    kept_build(tmp_path, events_table(history, "h"), stages)
    assert forget_kept(tmp_path, "ta", "L1") > 0
    got = kept_build(tmp_path, events_table(history, "h"), stages)
    full = compute_features(events_table(history, "h"), stages, CUTOFFS, SETTINGS, REGISTRY)
    assert_same_features(got, full, REGISTRY)


def test_retention_takes_the_old_days_tiles_and_cutoffs_rows_out_and_later_builds_equal_the_reference(tmp_path):
    """Retention deletes the events of days before its cutoff; the kept tiles of those days and the rows of earlier
    cutoffs go with them. A build from the store (old events gone) and one from a file that still holds them each
    equal their reference."""
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "item_id": None, "referrer_lead_id": None}
    base |= {"channel": "h5", "event_type": "card_view", "dwell_s": 3.0}
    history = [{**base, "lead_id": f"L{d % 3}", "offset_s": -d * 43200 - 60} for d in range(1, 30)]
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L1", "stage": "engaged", "offset_s": -9 * 86400}])
    retention = CUTOFF - pd.Timedelta(days=5)
    kept_build(tmp_path, events_table(history, "h"), stages)
    assert purge_kept_before(tmp_path, epoch_us(retention)) > 0
    buckets = [b for p in tmp_path.rglob("seg-*.parquet") for b in pq.read_table(p)["bucket"].to_pylist()]
    assert buckets and all((b - 1) * DAY_US >= epoch_us(retention) for b in buckets)
    assert sorted(cutoff_of(p) for p in tmp_path.rglob("rows-*.arrow")) == [epoch_us(c) for c in CUTOFFS[1:]]

    got = kept_build(tmp_path, events_table(history, "h"), stages)  # a file out of retention's reach
    assert_same_features(
        got, compute_features(events_table(history, "h"), stages, CUTOFFS, SETTINGS, REGISTRY), REGISTRY
    )
    purge_kept_before(tmp_path, epoch_us(retention))
    left = [e for e in history if CUTOFF + pd.Timedelta(seconds=e["offset_s"]) >= retention]
    got = kept_build(tmp_path, events_table(left, "h"), stages)  # the store after retention
    full = compute_features(events_table(left, "h"), stages, CUTOFFS, SETTINGS, REGISTRY)
    assert_same_features(got, full, REGISTRY)
