"""The tiles engine gives the reference query's table: on random logs, after appends, and with late events."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leadradar.config import Settings
from leadradar.features.build import KEY, compute_features
from leadradar.features.engines import connect, feature_input, load
from leadradar.features.grid import DAY_US
from leadradar.features.online import OnlineFeatures
from leadradar.features.progress import DAY_TILES, FEATURES, LABELS
from leadradar.features.registry import build_registry
from leadradar.features.tiles.store import TileStore
from tests.support.parity import assert_same_features
from tests.support.strategies import CUTOFF, after, before, event_rows, events_table, stage_rows, stages_table

SETTINGS = Settings()
PARTITIONED = Settings(features={"tiles_partition_events": 7})
REGISTRY = build_registry(SETTINGS)
ONLINE = OnlineFeatures(SETTINGS, REGISTRY)
# No shrinking: each example runs DuckDB, and shrinking a failure took minutes; the failing example is printed.
PROFILE = hsettings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=[Phase.generate]
)
MIDNIGHT = CUTOFF.floor("D")
# Cutoffs of one build share a time of day: the strategies' odd one, or midnight (day boundaries).
cutoff_sets = st.sampled_from(
    [
        [CUTOFF - pd.Timedelta(days=8), CUTOFF - pd.Timedelta(days=1), CUTOFF],
        [MIDNIGHT - pd.Timedelta(days=7), MIDNIGHT, MIDNIGHT + pd.Timedelta(days=1)],
    ]
)
# Near the cutoffs, on both sides of day boundaries; also weeks before (empty days between).
near = st.one_of(before, after, st.integers(-86400 - 120, -86400 + 120), st.integers(-40 * 86400, -20 * 86400))


def with_duplicates(rows: list[dict], repeat: list[int]) -> pa.Table:
    """The events, some of them sent twice (same id, same content), as an unreliable client would."""
    table = events_table(rows)
    again = [i % len(rows) for i in repeat]
    return pa.concat_tables([table, table.take(again)]) if again else table


def tiled(events: pa.Table, stages: pa.Table, cutoffs: list, settings: Settings = SETTINGS) -> pd.DataFrame:
    return compute_features(events, stages, cutoffs, settings, REGISTRY, engine="tiles")


@PROFILE
@given(
    rows=st.lists(event_rows(near), min_size=1, max_size=40),
    repeat=st.lists(st.integers(0, 100), max_size=5),
    stage_list=st.lists(stage_rows(near), max_size=8),
    cutoffs=cutoff_sets,
)
@pytest.mark.slow  # about 11 s on 2 cores: left out of `make test-fast`
def test_tiles_equal_the_reference_query_for_every_feature(rows, repeat, stage_list, cutoffs):
    events, stages = with_duplicates(rows, repeat), stages_table(stage_list)
    reference = ONLINE.compute(events, stages, cutoffs)
    assert_same_features(tiled(events, stages, cutoffs), reference, REGISTRY)
    # A partition of leads at a time: owners' records and referrals still read every lead.
    assert_same_features(tiled(events, stages, cutoffs, PARTITIONED), reference, REGISTRY)


def test_a_lead_with_one_event_and_a_lead_with_only_stages_get_the_defaults():
    rows = [{**r, "lead_id": "L1", "tenant_id": "ta", "event_type": "card_view", "offset_s": -5} for r in [{}]]
    base = {"sales_id": "s1", "micro": 0, "dwell_s": None, "item_id": None, "referrer_lead_id": None, "channel": None}
    events = events_table([{**base, **r} for r in rows])
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L2", "stage": "engaged", "offset_s": -3600}])
    got = tiled(events, stages, [CUTOFF])
    assert_same_features(got, ONLINE.compute(events, stages, [CUTOFF]), REGISTRY)
    assert set(got["lead_id"]) == {"L1", "L2"}


@pytest.mark.slow  # about 5 s on 2 cores: left out of `make test-fast`
def test_a_build_a_partition_of_leads_at_a_time_keeps_what_is_read_across_leads():
    """Twelve leads of one salesperson, one partition each: her record, her workload and one lead's referrals of
    the others are read across partitions."""
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 12.0, "channel": "h5"}
    leads = [f"L{n}" for n in range(12)]
    rows = [
        {**base, "lead_id": lead, "offset_s": -86400 * (n + 1) - 60 * k, "event_type": "product_view"}
        | {"item_id": "ta-p1-01" if k else None, "referrer_lead_id": "L0" if n and not k else None}
        for n, lead in enumerate(leads)
        for k in range(2)
    ]
    closed = [("L1", "won", -3600), ("L2", "lost", -7200), ("L3", "won", -9 * 86400)]
    stages = stages_table([{"tenant_id": "ta", "lead_id": a, "stage": b, "offset_s": c} for a, b, c in closed])
    events, cutoffs = events_table(rows), [CUTOFF - pd.Timedelta(days=5), CUTOFF]
    got = tiled(events, stages, cutoffs, Settings(features={"tiles_partition_events": 2}))
    assert_same_features(got, ONLINE.compute(events, stages, cutoffs), REGISTRY)
    first = got[got["lead_id"] == "L0"].sort_values("cutoff")
    assert first["referred_leads_all"].tolist() == [11.0] and (got["sales_closed_leads"] > 0).any()


def test_leads_whose_only_events_come_after_every_cutoff_still_get_rows_from_their_stages():
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 878, "dwell_s": 0.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "product_view"}
    events = events_table([{**base, "lead_id": "L4", "offset_s": 19934}, {**base, "lead_id": "L1", "offset_s": -9}])
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L4", "stage": "new", "offset_s": -19934}])
    cutoffs = [CUTOFF - pd.Timedelta(days=1), CUTOFF]
    assert_same_features(tiled(events, stages, cutoffs), ONLINE.compute(events, stages, cutoffs), REGISTRY)


def test_a_log_with_nothing_before_the_cutoffs_gives_an_empty_table_with_every_column():
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 878, "dwell_s": 0.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "product_view", "lead_id": "L4"}
    events = events_table([{**base, "offset_s": 19934}])
    stages = stages_table([{"tenant_id": "ta", "lead_id": "L4", "stage": "new", "offset_s": 19934}])
    got = tiled(events, stages, [CUTOFF])
    assert got.empty
    assert list(got.columns) == list(compute_features(events, stages, [CUTOFF], SETTINGS, REGISTRY).columns)


def _store_tiles(events: pa.Table, root, tod_us: int, settings: Settings = SETTINGS) -> tuple[pd.DataFrame, list[int]]:
    con = connect("duckdb", SETTINGS.features)
    store = TileStore(root, settings, tod_us)
    tiles = store.update(feature_input(load(con, events, "events"), "events"))
    frame = tiles.to_pandas().sort_values(["tenant_id", "lead_id", "bucket", "tcode"]).reset_index(drop=True)
    return frame, store.recomputed


@hsettings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.lists(event_rows(before), min_size=1, max_size=15), min_size=2, max_size=3),
)
@pytest.mark.slow  # about 4 s on 2 cores: left out of `make test-fast`
def test_kept_tiles_after_any_sequence_of_appends_equal_a_full_rebuild(tmp_path_factory, batches):
    """Also with runs of at most two events' days (each a segment; past `MAX_SEGMENTS`, compacted)."""
    for settings in (SETTINGS, Settings(features={"tiles_partition_events": 2})):
        root = tmp_path_factory.mktemp("tiles")
        seen: list[pa.Table] = []
        for i, batch in enumerate(batches):
            seen.append(events_table(batch, f"b{i}-"))
            kept, _ = _store_tiles(pa.concat_tables(seen), root, 0, settings)
        fresh, _ = _store_tiles(pa.concat_tables(seen), tmp_path_factory.mktemp("fresh"), 0)
        pd.testing.assert_frame_equal(kept, fresh, check_like=True)


def test_tiles_of_more_runs_of_days_than_kept_segments_are_compacted_into_one(tmp_path):
    """Forty days of one event, runs of two days: twenty segments, past `MAX_SEGMENTS`, copied into one."""
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 5.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": None, "event_type": "card_view"}
    events = events_table([{**base, "lead_id": f"L{d % 3}", "offset_s": -d * 86400 - 60} for d in range(40)], "c")
    kept, recomputed = _store_tiles(events, tmp_path, 0, Settings(features={"tiles_partition_events": 2}))
    fresh, _ = _store_tiles(events, tmp_path / "fresh", 0)
    pd.testing.assert_frame_equal(kept, fresh, check_like=True)
    assert len(recomputed) == 40 and len(list(tmp_path.glob("*/seg-*.parquet"))) == 1


def test_a_late_event_recomputes_exactly_the_tiles_of_its_day(tmp_path):
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 5.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": None, "event_type": "card_view"}
    history = [{**base, "lead_id": f"L{d % 3}", "offset_s": -d * 86400 - 60} for d in range(1, 30)]
    before_late, first = _store_tiles(events_table(history, "h"), tmp_path, 0)
    late = {**base, "lead_id": "L1", "offset_s": -10 * 86400 - 30}
    after_late, again = _store_tiles(events_table([*history, late], "h"), tmp_path, 0)
    late_day = int(pc.ceil(pa.scalar((CUTOFF.value // 1000 - 10 * 86400_000_000 - 30_000_000) / DAY_US)).as_py())
    assert len(first) >= 29
    assert again == [late_day]
    changed = after_late.merge(before_late, how="outer", indicator=True).query("_merge != 'both'")
    assert set(changed["bucket"]) == {late_day}


def test_a_build_with_kept_tiles_gives_the_same_table_as_one_without(tmp_path):
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 2.5, "item_id": "ta-p1-01"}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "product_view"}
    rows = [{**base, "lead_id": f"L{d % 4}", "offset_s": -d * 3 * 3600} for d in range(0, 60)]
    events, stages = events_table(rows), stages_table([])
    kept = Settings(features={"tiles_dir": str(tmp_path)})
    first = tiled(events, stages, [CUTOFF], kept)
    second = tiled(events, stages, [CUTOFF], kept)
    plain = compute_features(events, stages, [CUTOFF], SETTINGS, REGISTRY)
    assert_same_features(first, plain, REGISTRY)
    assert_same_features(second, plain, REGISTRY)


@pytest.mark.slow  # about 4 s on 2 cores: left out of `make test-fast`
def test_a_training_set_on_the_tiles_engine_has_the_reference_features_and_labels(tmp_path):
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.simulator import SimulationConfig, simulate
    from leadradar.features.trainset import build_training_set

    simulate(SimulationConfig(tenants=1, leads=150, days=120, seed=5), SETTINGS).write(tmp_path)
    log = RadarLog.from_dir(tmp_path)
    ref = build_training_set(log, SETTINGS, engine="duckdb")
    labels = ["tenant_id", "lead_id", "cutoff", *ref.labels]
    # In one piece, and a partition of leads at a time (features and labels): a few thousand events a partition.
    for settings in (SETTINGS, Settings(features={"tiles_partition_events": 2_000})):
        fast = build_training_set(log, settings, engine="tiles")
        assert list(fast.frame.columns) == list(ref.frame.columns)
        assert_same_features(ref.frame, fast.frame, REGISTRY)
        pd.testing.assert_frame_equal(ref.frame[labels], fast.frame[labels])
    assert pq.ParquetFile(log.events).metadata.num_rows > 3 * 2_000


@pytest.mark.slow  # about 6 s on 2 cores: left out of `make test-fast`
def test_a_training_set_written_by_the_tiles_engine_is_the_one_it_builds_in_memory(tmp_path):
    """`features build --engine tiles` writes a chunk at a time (of leads, or of cutoffs from kept rows): the same
    rows, columns and values as the set in memory, the consent rule applied to every chunk."""
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.simulator import SimulationConfig, simulate
    from leadradar.features.trainset import build_training_set, write_training_set
    from leadradar.training.table import read_table

    simulate(SimulationConfig(tenants=2, leads=150, days=120, seed=6), SETTINGS).write(tmp_path / "log")
    log = RadarLog.from_dir(tmp_path / "log")
    chunked = {"features": {"tiles_chunk_leads": 40}}
    leads = len(pq.read_table(log.events, columns=KEY[:2]).group_by(KEY[:2]).aggregate([]))
    for name, settings in {
        "fresh": Settings(**chunked),
        "kept": Settings(features={"tiles_chunk_leads": 40, "tiles_dir": str(tmp_path / "tiles")}),
        "consent": Settings(**chunked, privacy={"consent_required": True}),
    }.items():
        whole = build_training_set(log, settings, engine="tiles").frame
        written = write_training_set(log, settings, tmp_path / f"{name}.parquet", engine="tiles")
        back = read_table(tmp_path / f"{name}.parquet").sort_values(KEY).reset_index(drop=True)
        assert written.rows == len(whole) == len(back) > 100, name
        pd.testing.assert_frame_equal(back, whole, check_dtype=False, obj=name)
        in_file = read_table(tmp_path / f"{name}.parquet")[KEY]  # each chunk (of 40 leads, or a cutoff) by lead
        runs = 1 + sum(a > b for a, b in zip(in_file.itertuples(index=False), in_file.iloc[1:].itertuples(index=False)))
        assert runs <= (whole["cutoff"].nunique() if name == "kept" else leads // 40 + 1), (name, runs)
        file = pq.read_table(tmp_path / f"{name}.parquet")  # as a reader in SQL sees it: what pandas would write
        assert file.schema.remove_metadata() == pa.Schema.from_pandas(whole, preserve_index=False).remove_metadata()
        floats = [c for c in file.column_names if pa.types.is_floating(file.schema.field(c).type)]
        assert not any(pc.any(pc.is_nan(file[c])).as_py() for c in floats), f"{name}: a missing value written as NaN"
        assert {c: file[c].null_count for c in floats} == {c: int(whole[c].isna().sum()) for c in floats}, name


@pytest.mark.slow  # about 4 s on 2 cores: left out of `make test-fast`
def test_a_chunk_or_a_write_that_fails_part_way_leaves_the_last_training_set_as_it_was(tmp_path, monkeypatch):
    """Chunks are written in a second thread while the next is made: a chunk that cannot be made, or a write that
    fails, after earlier chunks were handed to the writer, is the command's error; the last `--out` is left whole."""
    import pytest

    import leadradar.features.trainset as trainset
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.simulator import SimulationConfig, simulate
    from leadradar.training.table import read_table

    simulate(SimulationConfig(tenants=1, leads=150, days=120, seed=9), SETTINGS).write(tmp_path / "log")
    log = RadarLog.from_dir(tmp_path / "log")
    settings = Settings(features={"tiles_chunk_leads": 20})
    out = tmp_path / "set.parquet"
    made, write = trainset.counts_only_table, pq.ParquetWriter.write_table
    counts = {"made": 0, "written": 0}
    fail = {"made": 0, "written": 0}  # which chunk fails to be made, or to be written (0: none)

    def chunk_fails(table, *args):
        counts["made"] += 1
        if counts["made"] == fail["made"]:
            raise RuntimeError(f"chunk {fail['made']} could not be made")
        return made(table, *args)

    def write_fails(self, table, *args, **kwargs):
        counts["written"] += 1
        if counts["written"] == fail["written"]:
            raise OSError("no space left on device")
        return write(self, table, *args, **kwargs)

    monkeypatch.setattr(trainset, "counts_only_table", chunk_fails)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_fails)
    trainset.write_training_set(log, settings, out, engine="tiles")
    before, chunks = read_table(out), counts["written"]
    assert chunks > 4
    for made_at, written_at, error in ((3, 0, "chunk 3"), (0, 3, "no space"), (0, chunks, "no space")):
        counts.update(made=0, written=0)
        fail.update(made=made_at, written=written_at)
        with pytest.raises((RuntimeError, OSError), match=error):
            trainset.write_training_set(log, settings, out, engine="tiles")
        assert counts["written"] == (made_at - 1 if made_at else written_at)  # the last write, after the loop, too
    pd.testing.assert_frame_equal(read_table(out), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "set.parquet"]


def test_chunks_merged_in_threads_give_the_table_merged_one_at_a_time(tmp_path):
    """Chunks of leads merged three at a time come back in order with the same values as merged in turn."""
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.simulator import SimulationConfig, simulate
    from leadradar.features.trainset import build_training_set

    simulate(SimulationConfig(tenants=2, leads=120, days=90, seed=8), SETTINGS).write(tmp_path)
    log = RadarLog.from_dir(tmp_path)
    frames = [
        build_training_set(
            log, Settings(features={"tiles_chunk_leads": 7, "tiles_merge_threads": n}), engine="tiles"
        ).frame
        for n in (1, 3)
    ]
    assert len(frames[0]) > 200
    pd.testing.assert_frame_equal(frames[1], frames[0])


@pytest.mark.slow  # about 4 s on 2 cores: left out of `make test-fast`
def test_a_tiles_build_reports_its_steps_for_each_task_up_to_its_whole(tmp_path, caplog, monkeypatch):
    """Kept day tiles, features and labels each report steps whose `done` never falls and ends at their `total`,
    naming the partition of leads when there are several; memory freed is given back before each partition and
    after the last (leadradar/memory.py)."""
    import logging

    import leadradar.features.tiles.build as tiles_build
    from leadradar.features.progress import LOGGER
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.simulator import SimulationConfig, simulate
    from leadradar.features.trainset import write_training_set

    simulate(SimulationConfig(tenants=1, leads=150, days=120, seed=5), SETTINGS).write(tmp_path / "log")
    log = RadarLog.from_dir(tmp_path / "log")
    fc = {"tiles_partition_events": 2_000, "tiles_chunk_leads": 20, "tiles_dir": str(tmp_path / "tiles")}
    given_back = []
    monkeypatch.setattr(tiles_build, "give_back_freed", lambda: given_back.append(1))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        write_training_set(log, Settings(features=fc), tmp_path / "set.parquet", engine="tiles")
    steps: dict[str, list[tuple[float, float, str]]] = {}
    for r in caplog.records:
        if r.name == LOGGER:
            steps.setdefault(r.task, []).append((r.done, r.total, r.what))
    assert set(steps) == {DAY_TILES, FEATURES, LABELS}
    for task, seen in steps.items():
        done = [d for d, _, _ in seen]
        assert done == sorted(done), task
        assert seen[-1][0] == seen[-1][1] > 0, (task, seen[-1])
    assert steps[FEATURES][-1][2] == steps[LABELS][-1][2] == "done"
    parts = int(steps[FEATURES][-1][1])
    assert parts > 1 and any(w.startswith(f"partition {parts} of {parts}: windows of") for _, _, w in steps[FEATURES])
    assert len(given_back) == parts + 1


def test_in_order_keeps_the_order_and_runs_at_most_its_threads_ahead_of_the_reader():
    import threading

    from leadradar.features.tiles.build import in_order

    started: list[int] = []
    names: set[str] = set()

    def work(k: int) -> int:
        started.append(k)
        names.add(threading.current_thread().name)
        return k * k

    out = in_order(work, iter(range(20)), 3)
    assert next(out) == 0
    assert len(started) <= 3  # the reader has taken one: no more than three were started for it
    assert [0, *out] == [k * k for k in range(20)]
    assert names and all(n.startswith("leadradar-merge") for n in names)
    assert list(in_order(work, iter(range(4)), 1)) == [0, 1, 4, 9]


def test_lead_codes_name_each_rows_own_tenant_and_lead_with_few_or_many_tenants():
    """Codes into a new dictionary, whether the (tenant, lead) pairs are numbered by a flag per possible pair (few
    tenants) or by sorting them (many tenants, each with its own leads); then a second table coded by it."""
    from leadradar.features.tiles.build import lead_codes

    for tenants, leads in (
        (["t1", "t2", "t1", "t2", "t1"], ["a", "a", "b", "a", "a"]),
        ([f"t{i}" for i in range(100)], [f"L{i}" for i in range(100)]),
    ):
        table = pa.table({"tenant_id": tenants, "lead_id": leads})
        codes, dictionary = lead_codes(table)
        assert len(dictionary) == len(set(zip(tenants, leads)))
        assert [dictionary[c].as_py() for c in codes] == [f"{t}\x1f{lead}" for t, lead in zip(tenants, leads)]
        again, _ = lead_codes(pa.table({"tenant_id": [tenants[-1], "t9x"], "lead_id": [leads[-1], "zz"]}), dictionary)
        assert list(again) == [codes[-1], -1]


NUMBERS = st.one_of(st.just(float("nan")), st.floats(allow_nan=False))


@given(
    st.one_of(st.lists(NUMBERS, max_size=40), st.lists(st.one_of(st.none(), NUMBERS), max_size=40)),
    st.sampled_from([0, 0, 1, 5]),
    st.sampled_from([1, 1, 2, 3]),
)
@hsettings(max_examples=120, deadline=None)
def test_nan_as_null_makes_each_nan_and_only_it_null(values, offset, pieces):
    """Missing floats reach the training set's file as nulls: NaN and null both null, every other value kept, for
    columns with nulls or none yet, sliced, and in pieces alike."""
    from itertools import pairwise

    from leadradar.features.trainset import nan_as_null

    array = pa.array(values, pa.float64()).slice(min(offset, len(values)))
    cut = [len(array) * k // pieces for k in range(pieces + 1)]
    for column in (array, pa.chunked_array([array.slice(a, b - a) for a, b in pairwise(cut)], pa.float64())):
        got = nan_as_null(column).to_pylist()
        expected = [None if v is None or v != v else v for v in array.to_pylist()]
        assert got == expected
