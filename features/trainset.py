"""The training set: one row per (lead, cutoff) open at the cutoff, features as of it, labels after it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
from leadradar.features.consent import counts_only_frame, counts_only_table, set_apart
from leadradar.features.cutoffs import cadence_cutoffs
from leadradar.features.engines import (
    EPOCH,
    connected,
    duckdb_arrow,
    feature_input,
    load,
    load_cutoffs,
    materializer,
    replaceable_by_spark,
    to_pandas,
    write_parquet,
)
from leadradar.features.labels import label_query, unfinished_as_missing
from leadradar.features.progress import LABELS, step
from leadradar.features.radar_log import RadarLog, Source
from leadradar.features.registry import FeatureRegistry, build_registry, definition_hash
from leadradar.features.spine import prepare_stages
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
                frame.to_parquet(tmp, index=False, **_parquet_options(settings))
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
    """The tiles engine's training set in memory: its labelled chunks joined."""
    from leadradar.features.tiles.build import frame_of

    with _labelled_chunks(plan) as parts:
        return frame_of(pa.concat_tables(list(parts)))


@contextmanager
def _labelled_chunks(plan: _Plan) -> Iterator[Iterator[pa.Table]]:
    """The tiles engine's feature rows a chunk at a time (of leads, or of cutoffs from kept rows), each sorted by
    lead and cutoff and given its labels. The rows are the spine (a lead open at a cutoff, with its stage as of it),
    so labels look forward from their own keys and stages: neither the leads' first events nor the spine is made
    again (a night from kept rows at 1.26 M rows made them in 4.3 s, in three partitions)."""
    from leadradar.features.tiles.build import dropped_after, tiled_chunks

    events, stages, cutoffs, settings = plan.inputs
    inputs = (events, stages, cutoffs, settings, plan.registry, plan.con, plan.items, plan.leads, plan.events_source)
    with dropped_after(plan.con):
        step(LABELS, "stage changes", 0, 1)
        labeller = _Labeller(plan, materializer(plan.con)("lr_label_stages", prepare_stages(stages, settings.funnel)))
        with tiled_chunks(feature_query, *inputs) as parts:
            yield map(labeller.labelled, parts)
        step(LABELS, "done", 1, 1)


class _Labeller:
    """Labels for chunks of feature rows (`_Plan.labels` on the rows' keys and funnel rank), the query compiled once
    over a named table of keys that each chunk stands in for (built and compiled per chunk, the 35 chunks of a night
    took 5.7-5.9 s against 4.2-4.4 s)."""

    KEYS = "lr_label_keys"

    def __init__(self, plan: _Plan, stages: ir.Table):
        self.con, self.stages = plan.con, pa.array(plan.settings.funnel.all_stages)
        columns = {"tenant_id": "string", "lead_id": "string", "cutoff_us": "int64", "stage_rank": "int64"}
        keys = ibis.table({**columns, "row": "int64"}, name=self.KEYS)
        labels = plan.labels(keys, stages)
        self.names = [c for c in labels.columns if c not in QKEY]
        self.sql = str(self.con.compile(labels.inner_join(keys, QKEY).order_by("row").select(*self.names)))

    def labelled(self, part: pa.Table) -> pa.Table:
        """The chunk sorted by (tenant, lead, cutoff), with each row's labels; in Arrow, not pandas (a night's 220
        columns passed through pandas in 4.7 s)."""
        part = part.take(pc.sort_indices(part.select(KEY), sort_keys=[(k, "ascending") for k in KEY]))
        keys = pa.table(
            {
                "tenant_id": part["tenant_id"],
                "lead_id": part["lead_id"],
                "cutoff_us": pc.cast(part["cutoff"], pa.int64()),
                "stage_rank": pc.cast(pc.index_in(part["stage"], value_set=self.stages), pa.int64()),
                "row": pa.array(np.arange(part.num_rows, dtype=np.int64)),
            }
        )
        found = duckdb_arrow(self.con, self.sql, {self.KEYS: keys})
        if found.num_rows != part.num_rows:  # the label query is a left join of the keys, which are unique
            raise ValueError(f"{found.num_rows} labels for {part.num_rows} rows")
        for name in self.names:
            part = part.append_column(name, found[name])
        return part


def _schema(part: pa.Table) -> pa.Schema:
    """A training set file's schema: the in-memory set's as pandas writes it (strings large, pandas' metadata)."""
    from leadradar.features.tiles.build import frame_of

    return pa.Schema.from_pandas(frame_of(part.slice(0, 0)), preserve_index=False)


def _floats_nan_as_null(table: pa.Table) -> pa.Table:
    """Missing floats as nulls, as pandas writes NaN (the kept rows hold NaN, which pandas reads without a copy)."""
    columns = [nan_as_null(c) if pa.types.is_floating(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(columns, schema=table.schema)


def nan_as_null(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A float column's NaN (numpy's missing value) as null, as pandas writes it, so a reader in SQL sees NULL. A
    column with no null yet is checked in numpy and given a validity bitmap, its values not copied: 0.4 s for the 1.26 M
    x 212 floats of a training set in 35 chunks, where Arrow's `is_nan` and `any` before each bitmap took 0.7 s."""
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([nan_as_null(c) for c in column.chunks], column.type)
    if column.null_count == 0 and column.offset == 0:
        nan = np.isnan(column.to_numpy(zero_copy_only=True))
        if not nan.any():
            return column
        valid = pa.py_buffer(np.packbits(~nan, bitorder="little"))
        return pa.Array.from_buffers(column.type, len(column), [valid, column.buffers()[1]])
    nan = pc.is_nan(column)
    if not pc.any(nan).as_py():
        return column
    return pc.if_else(nan, pa.scalar(None, column.type), column)


def _parquet_options(settings: Settings) -> dict[str, Any]:
    """How a training set's Parquet is written, by every engine that writes one file."""
    return {"dictionary_pagesize_limit": settings.features.training_set_dictionary_bytes}


def _write_tiled(plan: _Plan, out: Path) -> int:
    """The tiles engine's training set written a chunk at a time (`_labelled_chunks`), so the table is never held
    whole; the consent rule applied to each. The rows, columns and values are the in-memory set's; the file's order
    is the chunks'.

    A chunk is written in a second thread while the next is made (Parquet's encoding runs without Python's lock),
    one chunk more held at a time. A night from kept rows at 1.26 M rows: 8.5 s, 23.4 s through pandas in one thread."""
    settings = plan.settings
    rows, writer, schema, written = 0, None, None, None
    try:  # the pool's end waits for the last write, so the file is closed after it whatever stopped the loop
        with (
            ThreadPoolExecutor(1, thread_name_prefix="training-set-writer") as pool,
            _labelled_chunks(plan) as parts,
        ):
            for part in parts:
                table = counts_only_table(_floats_nan_as_null(part), plan.consent, settings, plan.registry)
                if writer is None:
                    schema = _schema(table)
                    writer = pq.ParquetWriter(out, schema, **_parquet_options(settings))
                if written is not None:
                    written.result()
                written = pool.submit(writer.write_table, table.cast(schema))
                rows += table.num_rows
            if written is not None:
                written.result()
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no rows: the in-memory set's (empty) layout
        plan.frame().to_parquet(out, index=False, **_parquet_options(settings))
    return rows


__all__ = ["META", "TrainingSet", "WrittenTrainingSet", "build_training_set", "registry_hash", "write_training_set"]
