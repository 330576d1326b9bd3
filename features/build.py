"""Build the as-of feature table: one Ibis expression, run on DuckDB, Spark or a request's events.

DuckDB and a request's SQLite run it as SQL compiled once per code and definitions (`compiled_query`, kept in the
query cache folder): building and compiling the expression costs about a second and a half at every build, as much
as DuckDB's own work on a 100 k-event training set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from leadradar.config import Settings
from leadradar.features.atomic import atomic_write_bytes
from leadradar.features.consent import counts_only_frame, set_apart
from leadradar.features.context import lead_attributes, sales_context
from leadradar.features.grid import Grid, Stage, build_grid, no_stage
from leadradar.features.registry import FeatureRegistry, definitions_key, feature_code_digest
from leadradar.features.spine import build_spine, lead_index, prepare_stages
from leadradar.features.tiles.groups import EventsBlocks, EventsFile, EventsFolder, EventsSource

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY = ["tenant_id", "lead_id", "cutoff"]
META = ["tenant_id", "lead_id", "cutoff", "sales_id", "stage"]
# Inside the query a cutoff is its integer microseconds; `finish` turns it back into a timestamp.
QKEY = ["tenant_id", "lead_id", "cutoff_us"]
QMETA = ["tenant_id", "lead_id", "cutoff_us", "sales_id", "stage"]
KEPT_QUERIES = 16  # compiled queries a cache folder keeps of each dialect, the most recently written
# A DuckDB build's inputs, as its compiled query names them: the loaded contract tables hold the `lr_*` names.
BATCH_PREFIX = "lr_q_"


def _joined(spine: ir.Table, part: ir.Table) -> ir.Table:
    """Rows of a per-day partial at or before each cutoff, with `age` in days before the cutoff."""
    keys = spine.select(*QKEY, "K").view()
    part = part.view()
    j = keys.inner_join(part, ["tenant_id", "lead_id"])
    j = j.filter(j.bucket <= j.K)
    return j.mutate(age=j.K - j.bucket)


def source_rows(source: str, spine: ir.Table, grid: Grid, settings: Settings) -> ir.Table:
    if source == "activity":
        return _joined(spine, grid.activity)
    if source == "items":
        return _joined(spine, grid.items)
    if source == "categories":
        rows = _joined(spine, grid.items)
        rows = rows.filter(rows.category.notnull() & ~rows.category.isin(list(settings.features.pricing_categories)))
        return rows.group_by([*QKEY, "category"]).aggregate(cat_dwell=rows.dwell_sum.sum(), cat_n=rows.n.sum())
    if source == "referrals":
        return _joined(spine, grid.referrals)
    raise ValueError(f"no rows for source {source!r}")


@dataclass(frozen=True)
class FeatureQuery:
    """The unexecuted feature table and the spine it hangs on (labels reuse the spine)."""

    table: ir.Table
    spine: ir.Table
    stages: ir.Table


def feature_query(
    events: ir.Table,
    stages: ir.Table,
    cutoffs: ir.Table,
    settings: Settings,
    registry: FeatureRegistry,
    items: ir.Table | None = None,
    stage: Stage = no_stage,
    leads: ir.Table | None = None,
) -> FeatureQuery:
    """One row per lead open at each cutoff: metadata, then every registry feature in order.

    `stage(name, table)` is called on each intermediate table; an engine may materialise it.
    """
    grid = build_grid(events, cutoffs, settings, items, stage)
    st = stage("lr_stages_prepared", prepare_stages(stages, settings.funnel))
    index = stage("lr_lead_index", lead_index(grid.events, st))
    spine = stage("lr_spine", build_spine(index, st, grid.cutoffs, settings.funnel))
    out = spine
    for source in ("activity", "items", "categories", "referrals"):
        feats = registry.of_source(source)
        if not feats:
            continue
        rows = source_rows(source, spine, grid, settings)
        agg = rows.group_by(QKEY).aggregate(**{f.name: f.expr(rows) for f in feats})
        out = out.left_join(agg, QKEY).select(out, *[agg[f.name] for f in feats])
    context = {
        "sales": lambda: stage("lr_sales_context", sales_context(spine, index, st, grid.cutoffs, settings)),
        "attributes": lambda: lead_attributes(spine, leads, settings),
    }
    for source, build in context.items():
        feats = registry.of_source(source)
        if feats:
            ctx = build()
            out = out.left_join(ctx, QKEY).select(out, *[ctx[c] for c in ctx.columns if c not in QKEY])
    row_level = {
        f.name: f.expr(out)
        for f in (*registry.of_source("funnel"), *registry.of_source("sales"), *registry.of_source("attributes"))
    }
    if row_level:
        out = out.mutate(**row_level)
    columns = {}
    for f in registry:
        col = out[f.name].cast(_dtype(registry, f.name))
        columns[f.name] = col.fill_null(f.default) if f.default is not None else col
    table = out.select(*QMETA, **columns)
    return FeatureQuery(table=table, spine=spine, stages=st)


def _dtype(registry: FeatureRegistry, name: str) -> str:
    return "string" if registry[name].kind == "category" else "float64"


def unbound_inputs(settings: Settings, with_items: bool = True, prefix: str = "lr_") -> dict[str, ir.Table]:
    """Named, schema-only tables: the same query compiles to SQL once and runs on any data."""
    from leadradar.features.contract import (
        CUTOFF_SCHEMA,
        FEATURE_EVENT_SCHEMA,
        FEATURE_ITEM_SCHEMA,
        FEATURE_STAGE_SCHEMA,
    )

    tables = {
        "events": ibis.table(ibis.Schema.from_pyarrow(FEATURE_EVENT_SCHEMA), name=f"{prefix}events"),
        "stages": ibis.table(ibis.Schema.from_pyarrow(FEATURE_STAGE_SCHEMA), name=f"{prefix}stages"),
        "cutoffs": ibis.table(ibis.Schema.from_pyarrow(CUTOFF_SCHEMA), name=f"{prefix}cutoffs"),
    }
    if with_items:
        tables["items"] = ibis.table(ibis.Schema.from_pyarrow(FEATURE_ITEM_SCHEMA), name=f"{prefix}items")
        tables["leads"] = ibis.table(ibis.Schema.from_pyarrow(lead_schema(settings)), name=f"{prefix}leads")
    return tables


@dataclass(frozen=True)
class CompiledQuery:
    """The feature query compiled for one SQL dialect: its stage tables, the tables a caller fills, the final query."""

    stages: list[tuple[str, str]]
    provided: dict[str, pa.Schema]
    sql: str

    @classmethod
    def of(
        cls,
        settings: Settings,
        registry: FeatureRegistry,
        skip: tuple[str, ...] = (),
        given: tuple[str, ...] = (),
        dialect: str = "sqlite",
        prefix: str = "lr_",
        absent: tuple[str, ...] = (),
    ) -> CompiledQuery:
        """`skip`: stage tables not filled; `given`: stage tables the caller fills; `absent`: optional inputs (items,
        leads) the caller has none of; `prefix`: the input tables' names."""
        from leadradar.features.engines import typed_sql

        t = unbound_inputs(settings, prefix=prefix)
        items, leads = (None if kind in absent else t[kind] for kind in ("items", "leads"))
        stages: list[tuple[str, str]] = []
        provided: dict[str, pa.Schema] = {}

        def stage(name: str, table: ir.Table) -> ir.Table:
            if name in skip:
                return table
            if name in given:
                provided[name] = table.schema().to_pyarrow()
                return ibis.table(table.schema(), name=name)
            stages.append((name, typed_sql(table, dialect)))
            return ibis.table(table.schema(), name=name)

        q = feature_query(t["events"], t["stages"], t["cutoffs"], settings, registry, items, stage=stage, leads=leads)
        return cls(stages, provided, str(ibis.to_sql(q.table, dialect=dialect)))

    def to_json(self) -> str:
        schemas = {k: base64.b64encode(v.serialize().to_pybytes()).decode() for k, v in self.provided.items()}
        return json.dumps({"stages": self.stages, "provided": schemas, "sql": self.sql})

    @classmethod
    def from_json(cls, text: str) -> CompiledQuery:
        data = json.loads(text)
        provided = {k: pa.ipc.read_schema(pa.py_buffer(base64.b64decode(v))) for k, v in data["provided"].items()}
        return cls([(name, sql) for name, sql in data["stages"]], provided, data["sql"])


def compiled_key(
    settings: Settings,
    registry: FeatureRegistry,
    skip: tuple[str, ...],
    given: tuple[str, ...],
    dialect: str = "sqlite",
    prefix: str = "lr_",
    absent: tuple[str, ...] = (),
) -> str | None:
    """What the compiled query is a function of: the feature code, the definitions' settings, the columns, the
    tables left out, given or absent, the dialect and input names, and the compilers' versions. None for a registry
    made by hand, whose expressions nothing names: it is compiled each time."""
    import sqlglot

    definitions = definitions_key(settings, registry)
    if definitions is None:
        return None
    parts = [feature_code_digest(), definitions, skip, given, dialect, prefix, absent]
    return hashlib.sha256(json.dumps([*parts, ibis.__version__, sqlglot.__version__]).encode()).hexdigest()[:32]


_MADE: dict[str, Any] = {}  # what this process made once: compiled queries and definition hashes, by file name
_UNKEPT: set[str] = set()  # of those, the ones whose file could not be written


def kept_once(
    name: str | None, cache: Path | None, make: Callable[[], T], read: Callable[[str], T], text: Callable[[T], str]
) -> T:
    """`make()`, at most once a process and read back from `cache/name` when a process made it before (compiling
    the query takes about a second and a half); `name` must say everything the result follows, None made each time.
    The cache is a convenience: a file that cannot be read is made again and one that cannot be written is skipped."""
    if name is None:
        return make()
    path = cache / name if cache is not None else None
    if path is not None:
        try:
            return read(path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            pass  # not made yet, or no folder to keep it in: said once, below, if it cannot be made
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
            log.warning("query cache file %s unreadable (%s); compiling the feature query again", path, exc)
    if name not in _MADE:
        _MADE[name] = make()
    made: T = _MADE[name]
    if path is None or name in _UNKEPT:
        return made
    kind = name.split("-", 1)[0]
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_bytes(text(made).encode(), path)
        for stale in sorted(path.parent.glob(f"{kind}-*"), key=lambda p: p.stat().st_mtime)[:-KEPT_QUERIES]:
            stale.unlink(missing_ok=True)  # other code versions' and settings'
    except OSError as exc:
        _UNKEPT.add(name)  # said once a process
        log.warning("cannot keep the compiled feature query in %s (%s); it is compiled at each start", cache, exc)
    return made


def compiled_query(
    settings: Settings,
    registry: FeatureRegistry,
    skip: tuple[str, ...] = (),
    given: tuple[str, ...] = (),
    cache: Path | None = None,
    dialect: str = "sqlite",
    prefix: str = "lr_",
    absent: tuple[str, ...] = (),
) -> CompiledQuery:
    """The compiled query, kept in `cache` and made once a process (`kept_once`); a registry made by hand is
    compiled each time."""

    def make() -> CompiledQuery:
        return CompiledQuery.of(settings, registry, skip, given, dialect, prefix, absent)

    key = compiled_key(settings, registry, skip, given, dialect, prefix, absent)
    kind = "online" if dialect == "sqlite" else dialect
    name = f"{kind}-{key}.json" if key is not None else None
    return kept_once(name, cache, make, CompiledQuery.from_json, CompiledQuery.to_json)


def bound_query(
    con: ibis.BaseBackend,
    events: ir.Table,
    stages: ir.Table,
    cutoffs: ir.Table,
    settings: Settings,
    registry: FeatureRegistry,
    items: ir.Table | None = None,
    leads: ir.Table | None = None,
) -> FeatureQuery:
    """The feature query over inputs loaded on `con`, its stage tables computed once. On DuckDB its statements are
    the SQL compiled once (`compiled_query`) run on views of the inputs, the expression neither built nor compiled
    again; on Spark the expression, its stages cached views."""
    from leadradar.features.engines import materialize_sql, materializer

    if con.name != "duckdb":
        return feature_query(events, stages, cutoffs, settings, registry, items, stage=materializer(con), leads=leads)
    inputs = {"events": events, "stages": stages, "cutoffs": cutoffs, "items": items, "leads": leads}
    absent = tuple(kind for kind, table in inputs.items() if table is None)
    compiled = compiled_query(
        settings, registry, cache=settings.query_cache_dir, dialect="duckdb", prefix=BATCH_PREFIX, absent=absent
    )
    for kind, table in inputs.items():
        if table is not None:
            con.create_view(f"{BATCH_PREFIX}{kind}", table, overwrite=True)
    for name, sql in compiled.stages:
        materialize_sql(con, name, sql)
    features = f"{BATCH_PREFIX}features"
    con.raw_sql(f"CREATE OR REPLACE TEMP VIEW {features} AS {compiled.sql}")  # nosec B608 # the compiled query's SQL
    return FeatureQuery(table=con.table(features), spine=con.table("lr_spine"), stages=con.table("lr_stages_prepared"))


def lead_schema(settings: Settings) -> pa.Schema:
    """The optional leads table: key plus the configured static attributes, all text."""
    return pa.schema(
        [pa.field("tenant_id", pa.string(), nullable=False), pa.field("lead_id", pa.string(), nullable=False)]
        + [pa.field(name, pa.string()) for name in settings.features.lead_attributes]
    )


def finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Query output to the public shape: `cutoff` as a UTC timestamp in place of its microseconds."""
    cutoff = pd.to_datetime(frame["cutoff_us"].astype("int64"), unit="us", utc=True).astype("datetime64[us, UTC]")
    rest = frame.drop(columns="cutoff_us")
    return pd.concat([rest.iloc[:, :2], cutoff.rename("cutoff"), rest.iloc[:, 2:]], axis=1)


def _bound(
    con: ibis.BaseBackend, events, stages, cutoffs: list, settings: Settings, items=None, leads=None, consent=None
):
    """The inputs loaded on a connection, as the feature query takes them: events (without the consent events),
    stages, cutoffs, items, leads; and the consent events, carried aside and found among the events."""
    from leadradar.features.engines import feature_input, load, load_cutoffs

    behaviour, said = set_apart(load(con, events, "events"), settings, consent)
    ev = feature_input(behaviour, "events")
    st = feature_input(load(con, stages, "stages"), "stages")
    it = feature_input(load(con, items, "items"), "items") if items is not None else None
    ld = load(con, leads, "leads", lead_schema(settings)) if leads is not None else None
    return ev, st, load_cutoffs(con, cutoffs), it, ld, said


def up_to(table: ir.Table, until: pd.Timestamp | None) -> ir.Table:
    """The rows of a contract table at or before `until` (all for None): a training set's data window."""
    return table if until is None else table.filter(table.ts <= until.to_pydatetime())


def events_source(
    events, settings: Settings, until: pd.Timestamp | None = None, blocks: tuple[tuple[str, int], ...] | None = None
) -> EventsSource | None:
    """What `events` is made of, for the tiles engine to keep its day fingerprints by part (features/tiles/groups.py):
    a Parquet file's row groups, a folder's files, or the stretches of a table read from the store's copy of its log
    (`blocks`, `RadarLog.event_blocks`); each with the view that makes a build's events of an engine's table of its
    rows (the same calls as `_bound`'s: `load`'s contract, `up_to`, `set_apart`'s filter, `feature_input`). None
    otherwise."""
    from leadradar.features.engines import conform

    if isinstance(events, pa.Table) and blocks is not None:
        view = partial(_events_of_table, settings=settings, until=until)
        return EventsBlocks(conform(events, "events"), blocks, view)
    if not isinstance(events, (str, Path)):
        return None
    view = partial(_events_of_scan, path=Path(events), settings=settings, until=until)
    if Path(events).is_dir():
        return EventsFolder(Path(events), view)
    return EventsFile(Path(events), view) if Path(events).is_file() else None


def _events_of_scan(
    scan: ir.Table, keep: tuple[str, ...], path: Path, settings: Settings, until: pd.Timestamp | None
) -> ir.Table:
    from leadradar.features.engines import parquet_contract

    return _events_of_table(parquet_contract(scan, path, "events", keep=keep), keep, settings, until)


def _events_of_table(
    table: ir.Table, keep: tuple[str, ...], settings: Settings, until: pd.Timestamp | None
) -> ir.Table:
    from leadradar.features.consent import without_consent
    from leadradar.features.engines import feature_input

    return feature_input(without_consent(up_to(table, until), settings), "events", keep=keep)


def feature_table(
    events,
    stages,
    cutoffs: list,
    settings: Settings,
    registry: FeatureRegistry,
    items=None,
    engine: str | None = None,
    leads=None,
) -> tuple[ibis.BaseBackend, ir.Table]:
    """The feature query bound to its inputs on an engine, not yet run: the connection and the table expression.
    The consent rule is not in it: a caller that writes it rows applies `consent.counts_only_frame` as
    `compute_features` does."""
    from leadradar.features.engines import connect

    con = connect(engine or settings.features.engine, settings.features)
    ev, st, cut, it, ld, _ = _bound(con, events, stages, cutoffs, settings, items, leads)
    return con, bound_query(con, ev, st, cut, settings, registry, it, ld).table


@contextmanager
def tiled_feature_chunks(
    events, stages, cutoffs: list, settings: Settings, registry: FeatureRegistry, items=None, leads=None
) -> Iterator[Iterator[pa.Table]]:
    """The tiles engine's feature table as chunks, for a writer that never holds it whole (features/tiles/build.py
    `tiled_chunks`). The consent rule is not in them: a writer applies `consent.counts_only_table` per chunk."""
    from leadradar.features.engines import connect
    from leadradar.features.tiles.build import tiled_chunks

    con = connect("tiles", settings.features)
    ev, st, cut, it, ld, _ = _bound(con, events, stages, cutoffs, settings, items, leads)
    source = events_source(events, settings)
    with tiled_chunks(feature_query, ev, st, cut, settings, registry, con, it, ld, source) as parts:
        yield parts


def compute_features(
    events,
    stages,
    cutoffs: list,
    settings: Settings,
    registry: FeatureRegistry,
    items=None,
    engine: str | None = None,
    leads=None,
    consent: pa.Table | None = None,
    event_blocks: tuple[tuple[str, int], ...] | None = None,
):
    """Execute the feature query for the given cutoffs on an engine; a pandas frame, one row per open lead, blanked
    to counts where the lead had no consent at the cutoff (`consent`: consent events carried aside, beside any in
    `events`; `event_blocks`: the stretches of a log read from the store, `RadarLog.event_blocks`)."""
    from leadradar.features.engines import connect, connected, memory_said, to_pandas

    engine, fc = engine or settings.features.engine, settings.features
    # A Spark Connect session ends with the build; a local or cluster session stays for the next call.
    ends = engine == "spark" and fc.spark_master.startswith("sc://")
    with connected(engine, fc) if ends else nullcontext(connect(engine, fc)) as con, memory_said(engine, fc):
        ev, st, cut, it, ld, said = _bound(con, events, stages, cutoffs, settings, items, leads, consent)
        if engine == "tiles":
            from leadradar.features.tiles.build import tiled_frame

            source = events_source(events, settings, blocks=event_blocks)
            frame = tiled_frame(feature_query, ev, st, cut, settings, registry, con, it, ld, source)
        else:
            frame = finish(to_pandas(bound_query(con, ev, st, cut, settings, registry, it, ld).table))
    return counts_only_frame(frame, said, settings, registry)
