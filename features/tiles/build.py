"""The fast feature build: activity features from day tiles, the rest from the Ibis reference, written in chunks.

Features that declare a tile op (`Feature.tile`) are computed from day tiles by prefix sums; the others
(items, categories, referrals, funnel, sales, attributes) and the spine of open (lead, cutoff) rows come
from the reference query with only those columns. The table is written to Parquet a chunk of leads at a
time, so the memory of the merge follows the chunk, not the history. A log of more than
`features.tiles_partition_events` events is built a partition of leads at a time (a hash of the lead id): the tile
and reference queries then hold one partition's events, and only the tables read across leads (owners' records,
referrals, the spine) are made once for every lead from the few events they need.
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from leadradar.config import Settings
from leadradar.features.engines import hash64
from leadradar.features.feature import Feature
from leadradar.features.grid import DAY_US, DEDUP_COLUMNS, Stage, no_stage
from leadradar.features.locks import exclusive
from leadradar.features.progress import FEATURES, of_partition, step
from leadradar.features.registry import FeatureRegistry
from leadradar.features.spine import build_spine
from leadradar.features.tiles.dense import DayTiles, dense_tiles, type_arrays
from leadradar.features.tiles.fingerprints import as_of_digest, code_key, stage_fingerprints, table_fingerprint
from leadradar.features.tiles.groups import EventsSource
from leadradar.features.tiles.kept_rows import KeptRows
from leadradar.features.tiles.partials import day_bucket, day_tiles, distinct_rows, repeated_ids, without_repeats
from leadradar.features.tiles.store import BUILD_LOCK, DamagedTiles, TileStore, prune_sets
from leadradar.features.tiles.windows import TilePlan, TileWindows
from leadradar.memory import give_back_freed

T = TypeVar("T")
R = TypeVar("R")

SKIPPED_STAGES = ("lr_grid_activity",)  # the wide per-day pivot the tiles replace
PIVOT_ONLY = ("tcode", "night", "weekend", "session_start")  # grid event columns only that pivot reads
# The reference's tables a build by partitions of leads computes once over every lead: those a partition cannot
# compute from its own events (owners' and tenants' records; referrals, as a lead's shares are other leads' events)
# and those they are made from (the spine, the lead index, the prepared stages, the cutoffs).
WHOLE_STAGES = (
    "lr_grid_cutoffs",
    "lr_stages_prepared",
    "lr_lead_index",
    "lr_spine",
    "lr_sales_context",
    "lr_grid_referrals",
)
# The tables made from the grid's events other than the item partials: when a partition is given these (from
# `WHOLE_STAGES`), its grid's events need hold only the events with an item.
FROM_GRID_EVENTS = ("lr_lead_index", "lr_grid_referrals")


def reference_stage(
    con,
    events: ir.Table | None = None,
    tod_us: int = 0,
    firsts: pa.Table | None = None,
    repeated: ir.Table | None = None,
    given: dict[str, ir.Table] | None = None,
) -> Stage:
    """Materialise the reference's intermediate tables, except the activity pivot, which no tile feature reads.

    Given `events` (when no activity feature is left to the reference), the grid's events become
    `reference_day_events` of them: the reference's other columns read no more; only those with an item when `given`
    holds the tables made from the others (`FROM_GRID_EVENTS`). A table in `given` (by stage name) stands in for the
    one the reference would compute.
    """
    from leadradar.features.engines import materializer

    materialise = materializer(con)
    given = given or {}

    def stage(name: str, table: ir.Table) -> ir.Table:
        if name in SKIPPED_STAGES:
            return table
        if name in given:
            table = given[name]
        elif events is not None and name == "lr_grid_events":
            items_only = set(FROM_GRID_EVENTS) <= given.keys()
            table = reference_day_events(events, tod_us, firsts, repeated, items_only)
            if items_only:  # read once, by the item partials: kept, half a partition's events were copied for it
                return table
        return materialise(name, table)

    return stage


def reference_events(events: ir.Table, firsts: pa.Table | None = None, items: bool = True) -> ir.Table:
    """The events the reference's other columns read: with an item, with a referrer, or at the lead's first time.

    Items, categories and referrals read only such events, the spine and the owner only a lead's first
    ones, so the reference gives the same columns from this subset at a fraction of the events. `firsts`
    (tenant_id, lead_id, first_us), from the day tiles, saves grouping the events again; `items=False` leaves
    out the events kept only for their item.
    """
    if firsts is None:
        first = events.group_by(["tenant_id", "lead_id"]).aggregate(first_us=events.us.min())
    else:
        first = ibis.memtable(firsts)
    j = events.inner_join(first, ["tenant_id", "lead_id"])
    keep = j.referrer_lead_id.notnull() | (j.us == j.first_us)
    keep = keep | j.item_id.notnull() if items else keep
    return j.filter(keep).select(*events.columns)


def reference_day_events(
    events: ir.Table,
    tod_us: int,
    firsts: pa.Table | None = None,
    repeated: ir.Table | None = None,
    items_only: bool = False,
) -> ir.Table:
    """The grid's events for the reference's other columns: those of `reference_events` (`items_only`: those with an
    item, no join with the leads' first times), deduplicated, with their day.

    Repeats (ids in `repeated`; None: no id repeats) are dropped after the narrowing, from the few events left.
    """
    ev = events.select(*DEDUP_COLUMNS)
    ev = ev.filter(ev.item_id.notnull()) if items_only else reference_events(ev, firsts)
    return _as_grid_events(ev if repeated is None else without_repeats(ev, repeated), tod_us)


def whole_lead_events(events: ir.Table, tod_us: int, stage: Stage = no_stage) -> ir.Table:
    """The grid's events for the columns read across leads (owners, the spine, referrals by other leads): the
    events with a referrer, deduplicated among themselves (a repeat of a row is in the same subset), and per lead
    one row at its first time with its owner (the least salesperson at that time), the rest of it null.

    The owner is an aggregate, not a join of the events with their first times, and `stage` computes the two parts
    apart: at 33.7 M events, the join or one query of both held 4.8 GB, the two parts 0.5 GB."""
    ev = events.select(*DEDUP_COLUMNS)
    ev = ev.cast({c: t.copy(nullable=True) for c, t in ev.schema().items()})  # the first rows' nulls
    shared = stage("lr_whole_shared_events", distinct_rows(ev.filter(ev.referrer_lead_id.notnull())))
    key = ibis.struct({"us": ev.us, "sales_id": ev.sales_id})
    first = ev.group_by(["tenant_id", "lead_id"]).aggregate(us=ev.us.min(), sales_id=ev.sales_id.argmin(key))
    first = stage("lr_whole_first_events", first)
    firsts = first.select(*[first[c] if c in first.columns else ibis.null(ev[c].type()).name(c) for c in ev.columns])
    return _as_grid_events(firsts.union(shared), tod_us)


def _as_grid_events(ev: ir.Table, tod_us: int) -> ir.Table:
    """Deduplicated events as the grid's events: their day, and null for the columns only the activity pivot reads
    (type code, habit flags, the session window of `grid.prepare_events`): that pivot never runs on these."""
    ev = ev.mutate(bucket=day_bucket(ev.us, tod_us), **{c: ibis.null("int64") for c in PIVOT_ONLY})
    return ev.select(*[c for c in ev.columns if c != "event_id"])


def lead_codes(table: pa.Table, dictionary: pa.Array | None = None) -> tuple[np.ndarray, pa.Array]:
    """An integer per (tenant, lead): codes into `dictionary` (-1 when absent), or a new dictionary."""
    if dictionary is None:
        return _new_lead_codes(table)
    keys = pc.binary_join_element_wise(table["tenant_id"], table["lead_id"], "\x1f")
    codes = pc.fill_null(pc.index_in(keys, value_set=dictionary), -1)
    return np.asarray(codes.to_numpy(), dtype=np.int64), dictionary


def _new_lead_codes(table: pa.Table) -> tuple[np.ndarray, pa.Array]:
    """Codes of a new dictionary of (tenant, lead) keys: tenants and leads encoded apart, their pairs numbered, and
    only the distinct pairs joined into keys (joining every row's strings first took 2.3x as long on 20 M rows)."""
    parts = [pc.dictionary_encode(_whole(table[c])) for c in ("tenant_id", "lead_id")]
    tenant, lead = (p.indices.to_numpy().astype(np.int64) for p in parts)
    width = len(parts[1].dictionary)
    pair = tenant * width + lead
    if len(parts[0].dictionary) * width <= 4 * len(pair) + 1024:  # a flag per possible pair: no sort
        seen = np.zeros(len(parts[0].dictionary) * width, dtype=bool)
        seen[pair] = True
        present = np.flatnonzero(seen)
        codes = (np.cumsum(seen) - 1)[pair]
    else:
        present, codes = np.unique(pair, return_inverse=True)
    tenants = parts[0].dictionary.take(pa.array(present // width))
    keys = pc.binary_join_element_wise(tenants, parts[1].dictionary.take(pa.array(present % width)), "\x1f")
    return codes.reshape(-1).astype(np.int64), keys


def _whole(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


class TileFeatures:
    """The features that declare a tile op, their ops compiled once into one plan."""

    def __init__(self, feats: list[Feature]):
        self.feats = feats
        self.plan = TilePlan([f.tile for f in feats if f.tile is not None])
        assert len(self.plan.outputs) == len(feats)  # nosec B101 # callers pass tile features only
        defaults = [np.nan if f.default is None else f.default for f in feats]
        self.defaults = np.array(defaults, np.float64)[:, None]

    def values(self, windows: TileWindows) -> dict[str, np.ndarray]:
        """Each feature for every query, with the feature's default where it is missing."""
        v = windows.run(self.plan)
        v = np.where(np.isnan(v), self.defaults, v)
        return {f.name: row for f, row in zip(self.feats, v, strict=True)}


def _chunks(lead: np.ndarray, n_leads: int, size: int) -> Iterator[tuple[int, int]]:
    """Row ranges of `lead` (sorted codes, -1 first) holding leads [a, a + size), the first also holding -1."""
    for a in range(0, max(n_leads, 1), size):
        lo = 0 if a == 0 else int(np.searchsorted(lead, a))
        yield lo, int(np.searchsorted(lead, a + size))


@contextmanager
def tiled_chunks(
    feature_query: Callable,
    events: ir.Table,
    stages: ir.Table,
    cutoffs: ir.Table,
    settings: Settings,
    registry: FeatureRegistry,
    con,
    items: ir.Table | None = None,
    leads: ir.Table | None = None,
    events_source: EventsSource | None = None,
) -> Iterator[Iterator[pa.Table]]:
    """The feature table (the reference's rows and columns) as chunks, for a writer that never holds it whole:
    chunks of leads computed now, or with `features.tiles_dir` the kept rows a cutoff at a time (only changed
    days' tiles and the rows of cutoffs whose inputs changed are computed first; the folder stays locked while
    the caller reads). `feature_query` is the reference (features.build.feature_query), passed in so that
    module alone imports this. `events_source`: what `events` is made of (features/tiles/groups.py), if known."""
    inputs = _Inputs.of(feature_query, events, stages, cutoffs, settings, registry, con, items, leads, events_source)
    if not settings.features.tiles_dir:
        yield _fresh_rows(inputs)
        return
    with _up_to_date(inputs) as (kept, wanted):
        yield kept.chunks(wanted)


def tiled_frame(
    feature_query: Callable,
    events: ir.Table,
    stages: ir.Table,
    cutoffs: ir.Table,
    settings: Settings,
    registry: FeatureRegistry,
    con,
    items: ir.Table | None = None,
    leads: ir.Table | None = None,
    events_source: EventsSource | None = None,
) -> pd.DataFrame:
    """The fast build as the frame `compute_features` returns: its chunks joined."""
    args = (feature_query, events, stages, cutoffs, settings, registry, con, items, leads, events_source)
    with tiled_chunks(*args) as parts:
        return frame_of(pa.concat_tables(list(parts)))


@dataclass(frozen=True)
class _Inputs:
    """What a build reads, and the time of day its cutoffs share (the day grid's edge)."""

    feature_query: Callable
    events: ir.Table
    stages: ir.Table
    cutoffs: ir.Table
    settings: Settings
    registry: FeatureRegistry
    con: ibis.BaseBackend
    items: ir.Table | None
    leads: ir.Table | None
    events_source: EventsSource | None
    cut_us: np.ndarray
    tod: int

    @classmethod
    def of(
        cls,
        feature_query: Callable,
        events: ir.Table,
        stages: ir.Table,
        cutoffs: ir.Table,
        settings: Settings,
        registry: FeatureRegistry,
        con,
        items: ir.Table | None,
        leads: ir.Table | None,
        events_source: EventsSource | None,
    ) -> _Inputs:
        cut_us = pc.cast(cutoffs.cutoff_us.to_pyarrow(), pa.int64()).to_numpy()
        tod = int((cut_us % DAY_US).min()) if len(cut_us) else 0
        inputs = (items, leads, events_source)
        return cls(feature_query, events, stages, cutoffs, settings, registry, con, *inputs, cut_us, tod)


@contextmanager
def _up_to_date(i: _Inputs) -> Iterator[tuple[KeptRows, list[int]]]:
    """The kept rows brought up to date and the build's cutoffs, the tiles folder locked while the caller reads
    them (two builds would mix their kept files)."""
    assert i.settings.features.tiles_dir  # nosec B101 # callers keep rows only with a tiles folder
    root = Path(i.settings.features.tiles_dir)
    with exclusive(root, BUILD_LOCK):
        yield _kept_rows(i, root)


def _kept_rows(i: _Inputs, root: Path) -> tuple[KeptRows, list[int]]:
    """The kept rows brought up to date (only changed days' tiles, only stale cutoffs' rows), and the cutoffs; kept
    segments found damaged on the way are dropped and their days computed again from the events."""
    store = TileStore(root, i.settings, i.tod)
    try:
        return _kept_rows_of(i, root, store)
    except DamagedTiles as damaged:
        store.drop_damaged(damaged.names)
        return _kept_rows_of(i, root, store)


def _kept_rows_of(i: _Inputs, root: Path, store: TileStore) -> tuple[KeptRows, list[int]]:
    days = {"events": store.refresh(i.events, source=i.events_source), "stages": stage_fingerprints(i.stages, i.tod)}
    prune_sets(root, store.dir, i.settings.features.tiles_kept_sets)
    static = [code_key(i.settings), i.registry.names, table_fingerprint(i.items), table_fingerprint(i.leads)]
    digests = {int(c): as_of_digest(static, days, int((c - i.tod) // DAY_US)) for c in i.cut_us}
    kept = KeptRows(store.dir / "rows")
    stale = kept.stale(digests)
    if stale:
        of_stale = i.cutoffs.filter(i.cutoffs.cutoff_us.isin(stale))
        kept.keep(_lead_rows(i, of_stale, lambda unique, mine: store.read(mine, i.con)), digests)
    return kept, sorted(digests)


def repeated_table(events: ir.Table, con) -> ir.Table | None:
    """The hashes of repeated event ids, computed once for every scan; None when no id repeats (the store's case)."""
    from leadradar.features.engines import materializer

    repeated = materializer(con)("lr_tile_repeated_ids", repeated_ids(events))
    return repeated if repeated.count().to_pyarrow().as_py() else None


def _fresh_rows(i: _Inputs) -> Iterator[pa.Table]:
    """The feature table a chunk of leads at a time, from day tiles computed now (none kept)."""
    return _lead_rows(i, i.cutoffs, lambda unique, mine: day_tiles(unique, i.tod, i.settings, unique=True).to_pyarrow())


# The day tiles of a build's (or a partition's) leads: given their events without repeats, and the filter that cut
# them to a partition (None: every lead).
TilesOf = Callable[[ir.Table, Callable[[ir.Table], ir.Table] | None], pa.Table | None]


def _lead_rows(i: _Inputs, cutoffs: ir.Table, tiles_of: TilesOf) -> Iterator[pa.Table]:
    """The rows of `cutoffs` a chunk of leads at a time, from the tiles `tiles_of` gives; a log of more than
    `features.tiles_partition_events` events a partition of leads at a time."""
    partitions = lead_partitions(i.events, i.settings)
    parts = len(partitions)
    if parts > 1:
        with tempfile.TemporaryDirectory(prefix="leadradar-whole-") as tmp:
            step(FEATURES, "owners, referrals and open leads, across every lead", 0, parts)
            whole = _whole_lead_stages(i, cutoffs, partitions, Path(tmp))
            for p, mine in enumerate(partitions):
                give_back_freed()  # what the tables across leads, or the last partition, freed in its threads
                yield from _partition_rows(i, cutoffs, whole, mine, tiles_of, (p, parts))
        give_back_freed()
        step(FEATURES, "done", parts, parts)
        return
    step(FEATURES, "day tiles", 0, 1)
    repeated = repeated_table(i.events, i.con)
    unique = i.events if repeated is None else without_repeats(i.events, repeated)
    yield from _rows(i, repeated, cutoffs, tiles_of(unique, None))
    step(FEATURES, "done", 1, 1)


def lead_partitions(events: ir.Table, settings: Settings) -> list[Callable[[ir.Table], ir.Table]]:
    """Filters that cut a table to each partition of leads (a hash of the lead id), one per
    `features.tiles_partition_events` events: what a build computes a partition at a time. One, keeping every
    row, for a log that size or smaller."""
    rows = int(events.count().to_pyarrow().as_py())
    parts = max(1, -(-rows // settings.features.tiles_partition_events))
    if parts == 1:
        return [_every_row]
    return [partial(_of_partition, parts=parts, p=p) for p in range(parts)]


def _every_row(t: ir.Table) -> ir.Table:
    return t


def _of_partition(t: ir.Table, parts: int, p: int) -> ir.Table:
    """The rows of `t` whose lead is in partition `p` of `parts` (a table with no lead column whole)."""
    return t.filter(hash64(t.lead_id, t) % parts == p) if "lead_id" in t.columns else t


def _whole_lead_stages(
    i: _Inputs, cutoffs: ir.Table, partitions: list[Callable[[ir.Table], ir.Table]], tmp: Path
) -> dict[str, ir.Table]:
    """The reference's tables that read across leads (`WHOLE_STAGES`), over every lead once, from the few events
    they need (`whole_lead_events`); each partition reads its own leads' part of them. They are kept in Parquet
    files under `tmp`, not in the engine's memory: at 33.7 M events and 38 cutoffs they held 1.8 GB through every
    partition. The spine, a lead's own rows, is made a partition at a time: at once it held 2.9 GB."""
    from leadradar.features.engines import materializer

    materialise = materializer(i.con)
    whole: dict[str, ir.Table] = {}

    def on_disk(name: str, table: ir.Table) -> Path:
        path = tmp / f"{name}.parquet"
        table.to_parquet(path)
        return path

    def spine_by_partition() -> ir.Table:
        index, st, cut = (whole[n] for n in ("lr_lead_index", "lr_stages_prepared", "lr_grid_cutoffs"))
        paths = [
            on_disk(f"lr_spine_{p}", build_spine(mine(index), mine(st), cut, i.settings.funnel))
            for p, mine in enumerate(partitions)
        ]
        return i.con.read_parquet(paths)

    def stage(name: str, table: ir.Table) -> ir.Table:
        if name == "lr_grid_events":
            return materialise("lr_whole_events", whole_lead_events(i.events, i.tod, materialise))
        if name in WHOLE_STAGES:
            whole[name] = spine_by_partition() if name == "lr_spine" else i.con.read_parquet(on_disk(name, table))
            return whole[name]
        return table  # not needed here: left unrun

    rest = i.registry.select([f.name for f in i.registry if f.tile is None])
    with dropped_after(i.con):
        i.feature_query(i.events, i.stages, cutoffs, i.settings, rest, i.items, stage=stage, leads=i.leads)
    return whole


def _partition_rows(
    i: _Inputs,
    cutoffs: ir.Table,
    whole: dict[str, ir.Table],
    mine: Callable[[ir.Table], ir.Table],
    tiles_of: TilesOf,
    part: tuple[int, int],
) -> Iterator[pa.Table]:
    """The rows of one partition's leads (`mine`, partition `part` = (p, of)): their events read once into the
    engine, their tiles and reference columns from them alone, the tables across leads (`whole`) cut to theirs."""
    from leadradar.features.engines import materializer

    step(FEATURES, of_partition(*part) + "day tiles", part[0], part[1])
    with dropped_after(i.con):
        events = materializer(i.con)("lr_tile_part_events", mine(i.events).select(*DEDUP_COLUMNS))
        repeated = repeated_table(events, i.con)
        unique = events if repeated is None else without_repeats(events, repeated)
        types = tiles_of(unique, mine)
        given = {name: mine(t) for name, t in whole.items()}
        yield from _rows(replace(i, events=events), repeated, cutoffs, types, given, part)


@contextmanager
def dropped_after(con) -> Iterator[None]:
    """The engine's tables (`lr_` ones) made inside the block dropped after it: a partition's tables would otherwise
    stay beside the next one's (DuckDB holds them in memory)."""
    before = set(con.list_tables(like="^lr_"))
    try:
        yield
    finally:
        for name in set(con.list_tables(like="^lr_")) - before:
            con.drop_table(name, force=True)


def _rows(
    inputs: _Inputs,
    repeated: ir.Table | None,
    cutoffs: ir.Table,
    types: pa.Table | None,
    given: dict[str, ir.Table] | None = None,
    part: tuple[int, int] = (0, 1),
) -> Iterator[pa.Table]:
    """The rows of `cutoffs`: the reference's columns, then the tile features merged a chunk of leads at a time.
    `given`: tables standing in for the reference's own (`reference_stage`); `part`: (partition, partitions)."""
    i, fc = inputs, inputs.settings.features
    tiled = TileFeatures([f for f in i.registry if f.tile is not None])
    rest = i.registry.select([f.name for f in i.registry if f.tile is None])
    narrow = not rest.of_source("activity")
    firsts = lead_firsts(types) if narrow else None
    arrays, dictionary = _tile_arrays(types)
    del types  # its compact numpy copy is what the reference query runs beside and the chunks read
    step(FEATURES, of_partition(*part) + "items, referrals, funnel and owners", part[0] + 1 / 3, part[1])
    stage = reference_stage(i.con, i.events if narrow else None, i.tod, firsts, repeated, given)
    q = i.feature_query(i.events, i.stages, cutoffs, i.settings, rest, i.items, stage=stage, leads=i.leads)
    ref = q.table.to_pyarrow()
    row_lead, _ = lead_codes(ref, dictionary)
    row_us = ref["cutoff_us"].to_numpy()
    order = np.lexsort((row_us, row_lead))
    row_lead, row_us = row_lead[order], row_us[order]

    def merged(bounds: tuple[int, int]) -> pa.Table:
        lo, hi = bounds
        tiles = _chunk_tiles(arrays, row_lead[lo:hi], i.settings)
        windows = TileWindows(tiles, row_lead[lo:hi], row_us[lo:hi] // DAY_US, row_us[lo:hi])
        return _assemble(ref.take(order[lo:hi]), tiled.values(windows), i.registry)

    leads = len(dictionary)
    chunks = list(_chunks(row_lead, leads, fc.tiles_chunk_leads))
    for k, table in enumerate(in_order(merged, chunks, fc.tiles_merge_threads)):
        what = f"{of_partition(*part)}windows of {min((k + 1) * fc.tiles_chunk_leads, leads):,} of {leads:,} leads"
        step(FEATURES, what, part[0] + 2 / 3 + (k + 1) / (3 * len(chunks)), part[1])  # a third each phase (profile)
        yield table


def in_order(work: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """`work` of each item, yielded in the items' order, `threads` items at a time and never more than `threads`
    results ahead of the reader (memory follows the threads, not the items). numpy leaves the interpreter lock
    while it computes, so the chunks' merges share the cores; BLAS is held to one thread meanwhile, as its own
    threads only spin beside them (a chunk's group sums are one small matrix product)."""
    if threads <= 1:
        yield from map(work, items)
        return
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads, "leadradar-merge") as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def lead_firsts(types: pa.Table | None) -> pa.Table | None:
    """Each lead's first event time from its day tiles (tenant_id, lead_id, first_us)."""
    if types is None:
        return None
    firsts = types.group_by(["tenant_id", "lead_id"]).aggregate([("us_min", "min")])
    us = pc.cast(firsts["us_min_min"], pa.int64())
    return pa.table({"tenant_id": firsts["tenant_id"], "lead_id": firsts["lead_id"], "first_us": us})


def _tile_arrays(types: pa.Table | None) -> tuple[dict[str, np.ndarray] | None, pa.Array]:
    """Per-type tiles as arrays sorted by lead code and day, and the lead-code dictionary."""
    if types is None or types.num_rows == 0:
        return None, pa.array([], pa.string())
    tile_lead, dictionary = lead_codes(types)
    return type_arrays(types, tile_lead), dictionary


def _chunk_tiles(arrays: dict[str, np.ndarray] | None, leads: np.ndarray, settings: Settings) -> DayTiles:
    """The day tiles of the leads whose codes lie between the smallest and largest of `leads`."""
    if arrays is None or len(leads) == 0:
        return dense_tiles({"lead": np.empty(0, np.int64), "bucket": np.empty(0, np.int64)}, settings)
    t0, t1 = np.searchsorted(arrays["lead"], [int(leads.min()), int(leads.max()) + 1])
    return dense_tiles({k: v[t0:t1] for k, v in arrays.items()}, settings)


def _assemble(part: pa.Table, values: dict[str, np.ndarray], registry: FeatureRegistry) -> pa.Table:
    """One chunk in the public shape: key with `cutoff` as a UTC timestamp, metadata, features in registry order.
    A missing tile feature is NaN, as pandas reads it without a copy (a training set's writer makes it null)."""
    cutoff = pc.cast(part["cutoff_us"], pa.timestamp("us", tz="UTC"))
    columns = {"tenant_id": part["tenant_id"], "lead_id": part["lead_id"], "cutoff": cutoff}
    columns |= {"sales_id": part["sales_id"], "stage": part["stage"]}
    for f in registry:
        columns[f.name] = pa.array(values[f.name], pa.float64()) if f.name in values else part[f.name]
    return pa.table(columns)


def frame_of(table: pa.Table) -> pd.DataFrame:
    """The table as pandas, `cutoff` as UTC microseconds like the reference's frame.

    The float columns go into one block: the 487 k x 214 table of 10.6 M events converts in 0.2 s where a block
    per column took 0.4-0.5 s (the same peak), and a model's matrix of it is taken 4x as fast."""
    frame = table.to_pandas(self_destruct=True)  # the table's memory freed as it is converted
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us, UTC]")
    return frame
