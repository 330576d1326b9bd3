"""Where feature queries run: embedded DuckDB by default, Spark (local or a cluster) by configuration."""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from ibis.common.exceptions import IbisError

from leadradar.config import FeatureConfig
from leadradar.errors import BadValueError, ResourceError
from leadradar.features.atomic import written_whole_folder
from leadradar.features.contract import (
    EVENT_SCHEMA,
    FEATURE_EVENT_SCHEMA,
    FEATURE_ITEM_SCHEMA,
    FEATURE_STAGE_SCHEMA,
    ITEM_SCHEMA,
    STAGE_SCHEMA,
)
from leadradar.features.radar_log import file_schema, parquet_files, require_contract

SCHEMAS = {"events": EVENT_SCHEMA, "stages": STAGE_SCHEMA, "items": ITEM_SCHEMA}


@functools.cache
def _warehouse() -> str:
    """This process's own folder for the managed tables `load` writes, removed at exit: two builds started from
    one folder (two cron jobs, two test workers) would collide in Spark's default ./spark-warehouse."""
    path = tempfile.mkdtemp(prefix="leadradar-spark-warehouse-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def spark_session(
    master: str = "local[2]", shuffle_partitions: int = 2, adaptive: bool = False, app_name: str = "leadradar"
) -> Any:
    """A Spark session in UTC (Spark's timestamps are session-zoned): in-process or on a cluster's master bound to
    loopback, or a Spark Connect client when `master` is `sc://host:port` (the server owns the driver)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    sql_conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.adaptive.enabled": str(adaptive).lower(),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Spark's default INT96 reads back zoneless; microseconds marked UTC read back as the UTC instants they are.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }
    if master.startswith("sc://"):
        # Connect's own builder: the generic one marks the whole process as Connect-only.
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        session = ConnectSession.builder.remote(master).create()
        for key, value in sql_conf.items():
            session.conf.set(key, value)
        return session
    running = SparkSession.getActiveSession()
    if running is not None and running.sparkContext.master != master:
        running.stop()  # getOrCreate would hand back a session on the other master
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.warehouse.dir", _warehouse())
    )
    for key, value in sql_conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def connect(engine: str = "duckdb", fc: FeatureConfig | None = None) -> ibis.BaseBackend:
    """An engine connection; for DuckDB, an optional memory cap makes big builds spill instead of growing."""
    fc = fc or FeatureConfig()
    threads, memory_limit = fc.duckdb_threads, fc.duckdb_memory_limit
    if engine in ("duckdb", "tiles"):  # the tiles engine runs its reference columns on DuckDB
        con = ibis.duckdb.connect()
        con.raw_sql("SET preserve_insertion_order = false")
        con.raw_sql(f"SET temp_directory = '{spill_folder()}'")
        if threads:
            con.raw_sql(f"SET threads = {int(threads)}")
        if memory_limit:
            con.raw_sql(f"SET memory_limit = '{memory_limit}'")
        return con
    if engine == "spark":
        return ibis.pyspark.connect(spark_session(fc.spark_master, fc.spark_shuffle_partitions, fc.spark_adaptive))
    raise BadValueError(f"unknown feature engine {engine!r}; use 'duckdb', 'tiles' or 'spark'")


def spill_folder() -> Path:
    """Where DuckDB writes what does not fit its memory cap (`features.duckdb_memory_limit`): beside the system's
    temporary files ($TMPDIR)."""
    return Path(tempfile.gettempdir()) / "leadradar-duckdb-spill"


def out_of_memory(exc: Exception, engine: str, fc: FeatureConfig) -> ResourceError:
    """DuckDB's out-of-memory error as one line a person can act on: the cap, or the spill folder that filled."""
    said = str(exc).split("\n")[0].strip()
    cap = f"features.duckdb_memory_limit = {fc.duckdb_memory_limit}" if fc.duckdb_memory_limit else "no memory cap"
    if "offload" in said or "No space left" in said:
        return ResourceError(
            f"DuckDB ran out of memory under {cap} and could not spill: {spill_folder()} (in $TMPDIR) is full"
            f" ({said}); free space there, point TMPDIR at a larger disk, or raise the cap"
        )
    smaller = (
        "lower features.tiles_partition_events (the events of a partition of leads built at a time)"
        if engine == "tiles"
        else "build with --engine tiles, whose memory follows features.tiles_partition_events"
    )
    raise_it = "raise it (LEADRADAR_FEATURES__DUCKDB_MEMORY_LIMIT)"
    return ResourceError(f"DuckDB ran out of memory under {cap} ({said}); {raise_it}, or {smaller}")


@contextmanager
def memory_said(engine: str, fc: FeatureConfig) -> Iterator[None]:
    """DuckDB running out of memory inside the block raised as `out_of_memory`'s one line."""
    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        raise out_of_memory(exc, engine, fc) from exc


@contextmanager
def connected(engine: str = "duckdb", fc: FeatureConfig | None = None) -> Iterator[ibis.BaseBackend]:
    """A connection for one build, closed after it with the Spark session it opened: a Spark Connect session
    otherwise holds its server-side state until the server's idle timeout, a cluster session its executors."""
    fc = fc or FeatureConfig()
    before = None
    if engine == "spark" and not fc.spark_master.startswith("sc://"):
        from pyspark.sql import SparkSession

        before = SparkSession.getActiveSession()
    con = connect(engine, fc)
    try:
        with memory_said(engine, fc):
            yield con
    finally:
        if con.name != "pyspark" or con._session is not before:  # a session the caller had open stays open
            con.disconnect()


def write_parquet(
    con: ibis.BaseBackend,
    expr: ir.Table,
    path: str | Path,
    partition_by: tuple[str, ...] = (),
    folders: tuple[str, ...] = (),
    sort_by: tuple[str, ...] = (),
) -> None:
    """Write a table to Parquet where the engine runs it: on Spark the executors write a folder of parts,
    hash-partitioned by `partition_by` (tenant and lead), in one subfolder per value of `folders` (`tenant_id=…`),
    each part sorted by `sort_by`, so no row passes through the driver. Spark's folder is written beside `path` and
    put in its place whole (`replaceable_by_spark` first): Spark's own overwrite emptied any folder it was given."""
    if con.name != "pyspark":
        con.to_parquet(expr, str(path))
        return
    path = Path(path)
    replaceable_by_spark(path)
    frame = con._session.sql(con.compile(expr))
    if partition_by:
        frame = frame.repartition(*partition_by)
    if sort_by:
        frame = frame.sortWithinPartitions(*sort_by)
    with written_whole_folder(path) as tmp:  # a failed build leaves the last folder as it was
        frame.write.mode("overwrite").partitionBy(*folders).parquet(str(tmp))


def replaceable_by_spark(out: Path) -> None:
    """A Spark build replaces only an earlier Spark build's folder, or none: `--out data` would take the events with
    it. A file, or a folder holding anything a Spark writer does not write, is refused in one line."""
    if out.is_file():
        raise BadValueError(f"--out {out} is a file (an earlier DuckDB build?); remove it or name a folder")
    foreign = _not_spark_written(out) if out.is_dir() else []
    if foreign:
        names = ", ".join(str(f.relative_to(out)) for f in foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise BadValueError(
            f"--out {out} holds files a Spark build did not write ({names}); a build replaces its folder whole,"
            " so name a new folder or an earlier build's"
        )


def _not_spark_written(folder: Path) -> list[Path]:
    """What in `folder` a Spark writer does not write (its parts, their checksums, `_SUCCESS`, `key=value`
    subfolders of the same)."""
    foreign: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and "=" in entry.name:
            foreign += _not_spark_written(entry)
        elif not entry.is_file() or not re.fullmatch(r"_SUCCESS|\._SUCCESS\.crc|\.?part-.*", entry.name):
            foreign.append(entry)
    return foreign


def read_parquet(path: str | Path) -> pd.DataFrame:
    """One Parquet file, or a folder of parts as Spark writes it: its `key=value` subfolders come back as text
    columns in front (where the training set has `tenant_id`), never guessed as numbers."""
    path = Path(path)
    if not path.is_dir():
        return pd.read_parquet(path)
    keys = folder_keys(path)
    parts = ds.partitioning(pa.schema([(k, pa.string()) for k in keys]), flavor="hive") if keys else None
    table = ds.dataset(path, format="parquet", partitioning=parts).to_table()
    return table.select([*keys, *(c for c in table.column_names if c not in keys)]).to_pandas()


def folder_keys(path: Path) -> list[str]:
    """The column names of a partitioned folder's `key=value` levels, outermost first."""
    keys: list[str] = []
    level = path
    while True:
        sub = next((d for d in sorted(level.iterdir()) if d.is_dir() and "=" in d.name), None)
        if sub is None:
            return keys
        keys.append(sub.name.split("=", 1)[0])
        level = sub


def conform(table: pa.Table, kind: str, schema: pa.Schema | None = None) -> pa.Table:
    """Select and cast an Arrow table to its contract schema (columns in contract order, absent optional ones null)."""
    schema = schema or SCHEMAS[kind]
    for name in require_contract(table.schema, schema, f"the {kind} table"):
        table = table.append_column(name, pa.nulls(table.num_rows, schema.field(name).type))
    return table.select(schema.names).cast(schema)


def load(
    con: ibis.BaseBackend, source: str | Path | pa.Table | pd.DataFrame, kind: str, schema: pa.Schema | None = None
) -> ir.Table:
    """A contract table on the engine, scanned in place from Parquet or (on DuckDB) from memory; uploaded to Spark.

    `schema` is needed only for tables whose layout is configuration (the leads table).
    """
    name = f"lr_{kind}"
    arrow_schema = schema or SCHEMAS[kind]
    if isinstance(source, (str, Path)):
        file_schema(Path(source), kind)  # a file that is not Parquet: one line naming it, not the engine's error
        return parquet_contract(scan_parquet(con, Path(source), name), source, kind, schema)
    if isinstance(source, pd.DataFrame):
        source = pa.Table.from_pandas(source, preserve_index=False)
    data = conform(source, kind, arrow_schema)
    if con.name == "duckdb":
        # Scanned in place, as a file is, not copied into the engine: 10.6 M events in memory built by DuckDB in 44 s
        # at an 8.5 GB peak against 51 s and 10.6 GB, a nightly tiles increment in 1.6 s against 4.4 s.
        return con.create_view(name, ibis.memtable(data), overwrite=True)
    if con.name == "pyspark":  # PySpark 4 takes Arrow: Ibis's way through pandas made a null float NaN, row by row
        con._session.createDataFrame(data).write.saveAsTable(name, format="parquet", mode="overwrite")
        return con.table(name)
    return con.create_table(name, data.to_pandas(), overwrite=True)


def scan_parquet(con: ibis.BaseBackend, path: Path, name: str, **options: Any) -> ir.Table:
    """The engine's scan of a Parquet file, or of a folder's files as one table (`radar_log.parquet_files`: the same
    files on DuckDB and Spark; a column some files lack reads as null there; `key=value` folder names are no columns).
    `options`: the engine's own (DuckDB's `file_row_number`, `filename`)."""
    if not path.is_dir():
        return con.read_parquet(str(path), table_name=name, **options)
    if con.name == "pyspark":
        spark = {"recursiveFileLookup": "true", "pathGlobFilter": "*.parquet", "mergeSchema": "true"}
        return con.read_parquet(str(path), table_name=name, **spark, **options)
    return scan_files(con, parquet_files(path), name, **options)


def scan_files(con: ibis.BaseBackend, files: list[Path], name: str, **options: Any) -> ir.Table:
    """DuckDB's scan of these Parquet files as one table: columns matched by name, folder names not read as columns."""
    return con.read_parquet(
        [str(f) for f in files], table_name=name, union_by_name=True, hive_partitioning=False, **options
    )


def parquet_contract(
    table: ir.Table, path: str | Path, kind: str, schema: pa.Schema | None = None, keep: tuple[str, ...] = ()
) -> ir.Table:
    """An engine's scan of a Parquet contract file as `load` gives it: checked against the contract, absent optional
    columns null, in contract order and types; other columns of the scan dropped but those in `keep`, last."""
    arrow_schema = schema or SCHEMAS[kind]
    require_contract(file_schema(Path(path), kind), arrow_schema, str(path))
    absent = [c for c in arrow_schema.names if c not in table.columns]  # a scan of some of a folder's files lacks more
    ibis_schema = ibis.Schema.from_pyarrow(arrow_schema)
    if absent:
        table = table.mutate(**{c: ibis.null(ibis_schema[c]) for c in absent})
    return table.select(*ibis_schema.names, *keep).cast(ibis_schema)


EPOCH = ibis.literal(pd.Timestamp("1970-01-01", tz="UTC"))
FEATURE_SCHEMAS = {"events": FEATURE_EVENT_SCHEMA, "stages": FEATURE_STAGE_SCHEMA, "items": FEATURE_ITEM_SCHEMA}


@ibis.udf.scalar.builtin(name="epoch_us")
def duckdb_epoch_us(ts: dt.Timestamp(timezone="UTC")) -> dt.int64:  # type: ignore[valid-type]
    """DuckDB's own microseconds since 1970: 20x faster than its calendar-aware date difference on 930 k events."""


@ibis.udf.scalar.builtin(name="hash")
def _duckdb_hash(value) -> dt.uint64:
    """DuckDB's own 64-bit hash, unsigned as it computes it."""


def hash64(value: ir.Value, table: ir.Table) -> ir.IntegerValue:
    """A 64-bit hash of `value`, a column or struct of `table`. On DuckDB its own unsigned `hash`: Ibis's portable
    `hash()` casts it through a 64-character bit string to signed, a third of a fingerprint scan of the events."""
    try:
        on_duckdb = table.get_backend().name == "duckdb"
    except IbisError:  # an unbound table (the online query's inputs): the portable form
        on_duckdb = False
    return _duckdb_hash(value) if on_duckdb else value.hash()


def feature_input(table: ir.Table, kind: str, keep: tuple[str, ...] = ()) -> ir.Table:
    """What the feature query reads from a contract table: its columns, with `ts` as integer microseconds (and the
    columns in `keep`, last)."""
    if kind not in FEATURE_SCHEMAS:
        return table
    if "ts" in table.columns:
        on_duckdb = table.get_backend().name == "duckdb"
        us = duckdb_epoch_us(table.ts) if on_duckdb else table.ts.delta(EPOCH, unit="microsecond")
        table = table.mutate(us=us)
    return table.select(*FEATURE_SCHEMAS[kind].names, *keep)


def within_times(table: ir.Table, after_us: int, upto_us: int) -> ir.Table:
    """The rows of a `feature_input` table with `after_us < us <= upto_us`, the bounds put on its source's own `ts`
    as well: an engine skips Parquet row groups and Arrow batches by a column's bounds, not by `us`, which is computed
    from it (a day of a 10.5 M-event log held in memory: 0.84 s to scan without them)."""
    kept = table.filter((table.us > after_us) & (table.us <= upto_us))
    sources = [s for s in kept.op().find(ops.DatabaseTable) if isinstance(s.schema.get("ts"), dt.Timestamp)]
    if len(sources) != 1:
        return kept
    source = sources[0].to_expr()
    after, before = (pd.Timestamp(us, unit="us", tz="UTC") for us in (after_us, upto_us + 1))  # `us` truncates
    narrowed = source.filter((source.ts > after) & (source.ts < before))
    return kept.op().replace({sources[0]: narrowed.op()}).to_expr()


def load_cutoffs(con: ibis.BaseBackend, cutoffs: list[pd.Timestamp]) -> ir.Table:
    from leadradar.features.cutoffs import cutoff_frame

    return ibis.memtable(cutoff_frame(cutoffs))


def materializer(con: ibis.BaseBackend) -> Callable[[str, ir.Table], ir.Table]:
    """A stage hook that computes an intermediate table once: a DuckDB temp table, a cached Spark view."""

    def stage(name: str, table: ir.Table) -> ir.Table:
        if con.name == "duckdb":
            return _duckdb_stage(con, name, table)
        view = con.create_view(name, table, overwrite=True)
        con._session.catalog.cacheTable(name)
        return view

    return stage


def _duckdb_stage(con: ibis.BaseBackend, name: str, table: ir.Table) -> ir.Table:
    """A temp table of `table` made in one statement, its columns of the types the expression declares. Ibis's
    `create_table(..., overwrite=True)` inserts into a new table and then copies it under its name: a partition's
    events (3.5 M rows) 2.0 s against 1.3 s. The view registers the expression's in-memory tables."""
    view = f"{name}_lr_view"
    con.create_view(view, table, overwrite=True)
    try:
        materialize_sql(con, name, typed_sql(table, "duckdb", source=view))
    finally:
        con.drop_view(view, force=True)
    return con.table(name)


def typed_sql(table: ir.Table, dialect: str, source: str | None = None) -> str:
    """A stage's SQL whose columns have the types the expression declares, as Ibis's `create_table` makes them:
    DuckDB's own sum of integers is a 16-byte HUGEINT, which made the activity grid's counts twice as wide (a
    build of 10.6 M events peaked some 400 MB higher). SQLite keeps what it is given. `source`: a view of the
    expression already made, read instead of its SQL."""
    sql = f"SELECT * FROM {source}" if source else str(ibis.to_sql(table, dialect=dialect))  # nosec B608
    if dialect == "sqlite":
        return sql
    columns = ", ".join(
        f"CAST({d.this.sql(dialect)} AS {d.args['kind'].sql(dialect)}) AS {d.this.sql(dialect)}"
        for d in table.schema().to_sqlglot_column_defs(dialect)
    )
    return f"SELECT {columns} FROM ({sql}) AS lr_typed"  # nosec B608 # the expression's own columns and SQL


def materialize_sql(con: ibis.BaseBackend, name: str, sql: str) -> None:
    """A compiled stage computed once on DuckDB: a temp table of its SQL (`build.bound_query`'s statements)."""
    con.raw_sql(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")  # nosec B608 # the compiled query's own SQL


def duckdb_arrow(con: ibis.BaseBackend, sql: str, tables: dict[str, pa.Table]) -> pa.Table:
    """A compiled query run on DuckDB over Arrow tables registered under its table names (replacing any before):
    a query run once per chunk is compiled once, not once per chunk."""
    for name, table in tables.items():
        con.con.register(name, table)
    try:
        result = con.raw_sql(sql).arrow()
        return result.read_all() if isinstance(result, pa.RecordBatchReader) else result  # 1.5 reads on demand
    finally:
        for name in tables:
            con.con.unregister(name)


def to_pandas(expr: ir.Table) -> pd.DataFrame:
    """Execute and return pandas with UTC microsecond timestamps whatever the engine."""
    df = expr.to_pyarrow().to_pandas()
    for col in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[col]):
            s = df[col]
            df[col] = (s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")).astype(
                "datetime64[us, UTC]"
            )
    return df
