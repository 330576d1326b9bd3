"""The training set: one row per (lead, cutoff) open at the cutoff, features as of it, labels after it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadradar.config import Settings
from leadradar.errors import BadValueError, TooLittleDataError
from leadradar.features.atomic import not_an_input, written_whole
from leadradar.features.build import (
    KEY,
    META,
    QKEY,
    bound_query,
    compiled_key,
    events_source,
    feature_query,
    kept_once,
    lead_schema,
    unbound_inputs,
    up_to,
)
from leadradar.features.consent import counts_only_frame, set_apart
from leadradar.features.cutoffs import cadence_cutoffs
from leadradar.features.engines import (
    EPOCH,
    connected,
    feature_input,
    load,
    load_cutoffs,
    materializer,
    replaceable_by_spark,
    to_pandas,
    write_parquet,
)
from leadradar.features.labels import label_query, unfinished_as_missing
from leadradar.features.progress import LABELS, of_partition, step
from leadradar.features.radar_log import RadarLog, Source
from leadradar.features.registry import FeatureRegistry, build_registry, definition_hash
from leadradar.features.tiles.groups import EventsSource
from leadradar.targets import Targets

EPOCH_TS = pd.Timestamp("1970-01-01", tz="UTC")
# On Spark the executors write the set hash-partitioned by tenant and lead, one subfolder per tenant.
SPARK_PARTITIONS = ("tenant_id", "lead_id")
SPARK_FOLDERS = ("tenant_id",)


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    features: list[str]
    labels: list[str]
    first_cutoff: pd.Timestamp
    last_cutoff: pd.Timestamp
    data_until: pd.Timestamp
    definition_hash: str
    categorical: list[str] = field(default_factory=list)
    unknown_event_types: dict[str, int] = field(default_factory=dict)

    @property
    def window(self) -> dict[str, str]:
        return {
            "first_cutoff": self.first_cutoff.isoformat(),
            "last_cutoff": self.last_cutoff.isoformat(),
            "data_until": self.data_until.isoformat(),
        }


def registry_hash(settings: Settings, registry: FeatureRegistry, cache: Path | None = None) -> str:
    """Hash of the compiled feature query: changes whenever any definition or setting it uses changes. Compiling
    takes seconds, so for registries declared from settings it is made once a process and kept in `cache` (the
    query cache: a service's start, a `train` or `score` reads it), by the feature code, definitions and columns."""

    def make() -> str:
        t = unbound_inputs(settings)
        q = feature_query(t["events"], t["stages"], t["cutoffs"], settings, registry, t["items"], leads=t["leads"])
        return definition_hash(str(ibis.to_sql(q.table, dialect="duckdb")), registry.names)

    key = compiled_key(settings, registry, (), (), "duckdb", "lr_", ())
    return kept_once(f"hash-{key}.txt" if key is not None else None, cache, make, _a_hash, str)


def _a_hash(text: str) -> str:
    """A kept definition hash as read back: refused (made again) unless it is one."""
    found = text.strip()
    if len(found) != 16 or any(c not in "0123456789abcdef" for c in found):
        raise ValueError("not a definition hash")
    return found


def unknown_event_types(events: ir.Table, settings: Settings) -> dict[str, int]:
    """Events whose type the configuration does not name: counted and reported, never silently dropped."""
    odd = events.filter(~events.event_type.isin(list(settings.events.types)))
    counts = odd.group_by("event_type").aggregate(n=odd.count()).to_pyarrow().to_pylist()
    return {r["event_type"]: int(r["n"]) for r in counts}


def _time(value: Any) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


def data_bounds(events: ir.Table, stages: ir.Table) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First CRM row and the last thing known in either log; None when there is no CRM row."""
    first = _time(stages.ts.min().to_pyarrow().as_py())
    if first is None:
        return None
    ends = [_time(t.ts.max().to_pyarrow().as_py()) for t in (events, stages)]
    return first, max(t for t in ends if t is not None)


def _named(source: Source, kind: str) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"the {kind} table"


@dataclass
class _Plan:
    """A training set bound to its inputs on a connection, not yet run."""

    con: ibis.BaseBackend
    engine: str
    settings: Settings
    registry: FeatureRegistry
    events: ir.Table
    inputs: tuple[ir.Table, ir.Table, ir.Table, Settings]  # events, stages, cutoffs, settings: the query's inputs
    items: ir.Table | None
    leads: ir.Table | None
    cutoffs: list[pd.Timestamp]
    data_until: pd.Timestamp
    consent: pa.Table  # the consent events set apart (privacy.consent_required), empty when not required
    events_source: EventsSource | None = None  # what the events are made of (a file, a folder, the store's stretches)

    def labels(self, spine: ir.Table, stages: ir.Table) -> ir.Table:
        """The labels on a query's spine; those whose window is still open at `data_until` missing."""
        known_until_us = (self.data_until - EPOCH_TS) // pd.Timedelta(microseconds=1)
        return unfinished_as_missing(label_query(spine, stages, self.settings), self.settings, known_until_us)

    def table(self) -> ir.Table:
        """Features and labels in one plan, in the public layout: the engine joins them, not pandas."""
        q = bound_query(self.con, *self.inputs, self.registry, self.items, self.leads)
        return public(q.table.inner_join(self.labels(q.spine, q.stages), QKEY))

    def frame(self) -> pd.DataFrame:
        """The training set in memory, sorted by lead and cutoff: what training and notebooks read."""
        if self.engine != "tiles":
            frame = to_pandas(self.table())
        else:
            frame = _tiled_with_labels(self)
        frame = frame.sort_values(KEY, kind="stable").reset_index(drop=True)
        return counts_only_frame(frame, self.consent, self.settings, self.registry)

    def summary(self, frame: pd.DataFrame) -> TrainingSet:
        return TrainingSet(
            frame=frame,
            features=self.registry.names,
            labels=Targets.from_settings(self.settings).label_columns,
            first_cutoff=self.cutoffs[0],
            last_cutoff=self.cutoffs[-1],
            data_until=pd.Timestamp(self.data_until),
            definition_hash=registry_hash(self.settings, self.registry, self.settings.query_cache_dir),
            categorical=self.registry.categorical(),
            unknown_event_types=unknown_event_types(self.events, self.settings),
        )


def public(table: ir.Table) -> ir.Table:
    """The query's `cutoff_us` as the UTC timestamp `cutoff`, third, where `finish` puts it in a frame."""
    rest = [c for c in table.columns if c != "cutoff_us"]
    cutoff = (EPOCH + table.cutoff_us.as_interval("us")).name("cutoff")
    return table.select(*rest[:2], cutoff, *rest[2:])


def _plan(
    con: ibis.BaseBackend,
    engine: str,
    log: RadarLog,
    settings: Settings,
    until: pd.Timestamp | None,
    registry: FeatureRegistry,
    min_history_days: int,
    cutoff_range: tuple[pd.Timestamp, pd.Timestamp] | None,
) -> _Plan:
    """The inputs loaded, the data window found and the cadence cutoffs chosen; refuses too short a history."""
    ev, consent = set_apart(up_to(load(con, log.events, "events"), until), settings, log.consent)
    st = up_to(load(con, log.stages, "stages"), until)
    it = load(con, log.items, "items") if log.items is not None else None
    ld = load(con, log.leads, "leads", lead_schema(settings)) if log.leads is not None else None
    bounds = data_bounds(ev, st)
    if bounds is None:
        raise TooLittleDataError(
            f"{_named(log.stages, 'stages')} has no stage rows"
            + (f" at or before {until:%Y-%m-%d %H:%M} UTC; choose a later cutoff" if until is not None else "")
            + "; a training set needs the leads' CRM stage history"
        )
    first, last = bounds
    data_until = until if until is not None else last
    horizon = timedelta(days=settings.training.horizon_days)
    cutoffs = cadence_cutoffs(first + timedelta(days=min_history_days), data_until - horizon, settings.features)
    if cutoff_range is not None:
        cutoffs = [c for c in cutoffs if cutoff_range[0] <= c <= cutoff_range[1]]
    if len(cutoffs) < (1 if cutoff_range is not None else 3):
        raise TooLittleDataError(
            f"only {len(cutoffs)} cutoffs fit between {first:%Y-%m-%d} and {data_until:%Y-%m-%d}"
            f" with a {settings.training.horizon_days}-day horizon; supply a longer history, a later cutoff"
            " or a shorter horizon"
        )
    inputs = (feature_input(ev, "events"), feature_input(st, "stages"), load_cutoffs(con, cutoffs), settings)
    items = feature_input(it, "items") if it is not None else None
    source = events_source(log.events, settings, until, log.event_blocks)
    end = pd.Timestamp(data_until)
    return _Plan(con, engine, settings, registry, ev, inputs, items, ld, cutoffs, end, consent, source)


def build_training_set(
    log: RadarLog,
    settings: Settings,
    until: pd.Timestamp | None = None,
    engine: str | None = None,
    registry: FeatureRegistry | None = None,
    min_history_days: int = 7,
    cutoff_range: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> TrainingSet:
    """Features and labels for every cadence cutoff whose main label window ends by `until`.

    Everything after `until` is dropped before any feature is computed. Labels of longer horizons
    whose window is not complete by `until` are left missing, not guessed as negatives.
    """
    engine = engine or settings.features.engine
    with connected(engine, settings.features) as con:
        registry = registry or build_registry(settings)
        plan = _plan(con, engine, log, settings, until, registry, min_history_days, cutoff_range)
        return plan.summary(plan.frame())


@dataclass
class WrittenTrainingSet:
    """What `write_training_set` wrote: where, how many rows, and the window and definition of the set."""

    path: Path
    rows: int
    parts: bool  # a folder of parts written by Spark's executors, not one file
    features: list[str]
    first_cutoff: pd.Timestamp
    last_cutoff: pd.Timestamp
    definition_hash: str
    unknown_event_types: dict[str, int]


def write_training_set(
    log: RadarLog, settings: Settings, out: Path, until: pd.Timestamp | None = None, engine: str | None = None
) -> WrittenTrainingSet:
    """The training set written to Parquet: on Spark by the executors, a folder of parts in one `tenant_id=…`
    subfolder per tenant, hash-partitioned by tenant and lead (the driver never holds the table); else one file."""
    engine = engine or settings.features.engine
    not_an_input(out, log.paths())
    if engine != "spark" and out.is_dir():
        raise BadValueError(f"--out {out} is a folder (an earlier Spark build?); remove it or name a file")
    if engine == "spark":
        replaceable_by_spark(out)  # before Spark starts; its writer asks again
    with connected(engine, settings.features) as con:
        plan = _plan(con, engine, log, settings, until, build_registry(settings), 7, None)
        out.parent.mkdir(parents=True, exist_ok=True)
        if con.name == "duckdb" and engine == "tiles":
            with written_whole(out) as tmp:  # a failed build leaves the last set as it was
                rows = _write_tiled(plan, tmp)
        elif con.name != "pyspark":
            frame = plan.frame()
            with written_whole(out) as tmp:
                frame.to_parquet(tmp, index=False)
            rows = len(frame)
        else:
            if settings.privacy.consent_required:
                raise BadValueError(
                    "privacy.consent_required: the Spark executors' writer does not blank the rows of leads without"
                    " consent yet; build this training set with --engine duckdb or --engine tiles"
                )
            write_parquet(con, plan.table(), out, SPARK_PARTITIONS, SPARK_FOLDERS, sort_by=tuple(KEY))
            rows = con._session.read.parquet(str(out)).count()
        return WrittenTrainingSet(
            path=out,
            rows=rows,
            parts=con.name == "pyspark",
            features=plan.registry.names,
            first_cutoff=plan.cutoffs[0],
            last_cutoff=plan.cutoffs[-1],
            definition_hash=registry_hash(settings, plan.registry, settings.query_cache_dir),
            unknown_event_types=unknown_event_types(plan.events, settings),
        )


def _tiled_with_labels(plan: _Plan) -> pd.DataFrame:
    """The tiles engine's feature table, and the labels on the spine of a reference query with no features."""
    from leadradar.features.tiles.build import tiled_frame

    events, stages, cutoffs, settings = plan.inputs
    con, registry, items, leads = plan.con, plan.registry, plan.items, plan.leads
    source = plan.events_source
    features = tiled_frame(feature_query, events, stages, cutoffs, settings, registry, con, items, leads, source)
    return features.merge(_tiled_labels(plan), on=KEY, how="inner", validate="one_to_one")


def _tiled_labels(plan: _Plan) -> pd.DataFrame:
    """The labels on the spine of a reference query with no features, on the few events the spine reads: each
    lead's first one (`whole_lead_events`; the spine reads no day, so any grid's days do). A partition of leads at a
    time, as the features (a lead's labels read its own stages only): at once, at 33.7 M events and 38 cutoffs, the
    query's peak was 5.5 GB, and its tables stayed in the engine through the build."""
    from leadradar.features.tiles.build import dropped_after, lead_partitions, reference_stage, whole_lead_events

    events, stages, cutoffs, settings = plan.inputs
    none = plan.registry.select([])
    parts = []
    with dropped_after(plan.con):
        partitions = lead_partitions(events, settings)
        step(LABELS, "each lead's first event", 0, len(partitions))
        few = whole_lead_events(events, 0, materializer(plan.con))
        for p, mine in enumerate(partitions):
            step(LABELS, of_partition(p, len(partitions)) + "stages after each cutoff", p, len(partitions))
            with dropped_after(plan.con):
                stage = reference_stage(plan.con, given={"lr_grid_events": mine(few)})
                q = feature_query(events, mine(stages), cutoffs, settings, none, plan.items, stage, plan.leads)
                parts.append(to_pandas(public(plan.labels(q.spine, q.stages))))
    step(LABELS, "done", len(partitions), len(partitions))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


class _LabelLookup:
    """The labels by (lead, cutoff), looked up a chunk at a time: the key's hash table is built once, where a merge
    per chunk hashed every label again (2.1 s a chunk against 0.06 s, 3.5 M labels and 55 k rows a chunk)."""

    def __init__(self, labels: pd.DataFrame):
        self.index = pd.MultiIndex.from_frame(labels[KEY])
        if not self.index.is_unique:
            raise ValueError("the labels repeat a (lead, cutoff)")  # the spine's keys are unique
        self.values = labels.drop(columns=KEY)

    def joined(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame's rows that have a label, with it, as an inner merge on the key (the frame's order kept)."""
        at = self.index.get_indexer(pd.MultiIndex.from_frame(frame[KEY]))
        found = at >= 0
        values = self.values.iloc[at[found]].reset_index(drop=True)
        return pd.concat([frame[found].reset_index(drop=True), values], axis=1)


def _write_tiled(plan: _Plan, out: Path) -> int:
    """The tiles engine's training set written a chunk at a time (of leads, or of cutoffs from kept rows), so
    the table is never held whole: each chunk gets its labels and the consent rule, sorted by lead and cutoff
    within it. The rows, columns and values are the in-memory set's; the file's order is the chunks'.

    A chunk is written in a second thread while the next is made (Parquet's encoding runs without Python's lock):
    the writing was 7.4 s of a 23.4 s night from kept rows at 1.26 M rows, one chunk more held at a time."""
    from leadradar.features.tiles.build import frame_of, tiled_chunks

    events, stages, cutoffs, settings = plan.inputs
    labels = _LabelLookup(_tiled_labels(plan))
    rows, writer, schema, written = 0, None, None, None
    inputs = (events, stages, cutoffs, settings, plan.registry, plan.con, plan.items, plan.leads, plan.events_source)
    try:  # the pool's end waits for the last write, so the file is closed after it whatever stopped the loop
        with (
            ThreadPoolExecutor(1, thread_name_prefix="training-set-writer") as pool,
            tiled_chunks(feature_query, *inputs) as parts,
        ):
            for part in parts:
                frame = labels.joined(frame_of(part))
                frame = counts_only_frame(frame.sort_values(KEY, kind="stable"), plan.consent, settings, plan.registry)
                table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(out, schema)
                if written is not None:
                    written.result()
                written = pool.submit(writer.write_table, table)
                rows += len(frame)
            if written is not None:
                written.result()
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no rows: the in-memory set's (empty) layout
        plan.frame().to_parquet(out, index=False)
    return rows


__all__ = ["META", "TrainingSet", "WrittenTrainingSet", "build_training_set", "registry_hash", "write_training_set"]
