"""The radar log as one value: events and CRM stages, with the optional items, lead attributes, salespeople and
simulator truth.

The CLI, notebooks, benchmarks, training, promotion and batch scoring pass a `RadarLog` instead of
five loose sources. Files are checked where they are read: a missing file or a column that misses
the contract is one `InputError` naming the file; a truth file that is not the simulator's is
ignored with a one-line warning.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from leadradar.errors import InputError
from leadradar.features.atomic import folder_files
from leadradar.features.consent import split_consent
from leadradar.features.contract import (
    EVENT_SCHEMA,
    ITEM_SCHEMA,
    STAGE_SCHEMA,
    TRUTH_CLOSE_COLUMN,
    TRUTH_KEY_SCHEMA,
    contract_gaps,
)
from leadradar.features.store import EventStore

Source: TypeAlias = str | Path | pa.Table | pd.DataFrame

# The parts whose columns are fixed by a contract (the leads table's columns are configuration).
CONTRACTS = {"events": EVENT_SCHEMA, "stages": STAGE_SCHEMA, "items": ITEM_SCHEMA}

# The file of each part in a radar-log folder (what `leadradar simulate --out DIR` writes).
FILES = {
    "events": "events.parquet",
    "stages": "stages.parquet",
    "items": "items.parquet",
    "leads": "leads.parquet",
    "truth": "truth.parquet",
    "sales": "sales.parquet",
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RadarLog:
    """Where each part of the radar log is: a Parquet path, or a table already in memory.

    The plain constructor takes exactly the parts given; `from_dir` and `from_paths` also find the
    optional parts beside the events. Files are checked against their contracts here, before any
    work starts; a truth that is not the simulator's is dropped with a warning.
    """

    events: Source
    stages: Source
    items: Source | None = None
    leads: Source | None = None
    truth: Source | None = None
    # The salespeople (tenant_id, sales_id, name): display names for pages and lists, never a feature.
    sales: Source | None = None
    # Consent events set apart from `events` (features/consent.py): what may be computed, never a touch. Consent
    # events left inside an events file are set apart when the build loads it.
    consent: pa.Table | None = None
    # Read from the event store: True when an event counts from the later of its time and its arrival (as the
    # service saw the log), False by event time; None for files, which hold no arrivals.
    as_seen: bool | None = None
    # Read from the store's copy of its log: the stretches `events` is made of, in order, (key, rows), each never
    # changing under its key (`EventStore.whole_log`); None otherwise, and for events that are not exactly those rows.
    event_blocks: tuple[tuple[str, int], ...] | None = None

    def __post_init__(self) -> None:
        for part in (f.name for f in fields(self)):
            value = getattr(self, part)
            if isinstance(value, str):
                value = Path(value)
                object.__setattr__(self, part, value)
            if isinstance(value, Path) and part in CONTRACTS:
                require_contract(file_schema(value, part), CONTRACTS[part], str(value))
            elif isinstance(value, Path) and not value.is_file():
                raise InputError(f"{value}: no such {part} file; check the path")
        blocks = self.event_blocks
        if blocks is not None and not (
            isinstance(self.events, pa.Table) and sum(rows for _, rows in blocks) == self.events.num_rows
        ):
            object.__setattr__(self, "event_blocks", None)  # rows taken out (consent events, a lead forgotten)
        if self.truth is not None and (why := not_truth(self.truth)):
            log.warning("%s is not the simulator's truth (%s); ignored: no metrics against it", _name(self.truth), why)
            object.__setattr__(self, "truth", None)

    @classmethod
    def from_dir(cls, folder: str | Path) -> RadarLog:
        """The parts a folder holds under their usual names; events.parquet and stages.parquet must be there. The
        parts with a contract may be folders of Parquet files under those names, as Spark writes them."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder; give the folder that holds events.parquet and stages.parquet")

        def there(part: str, path: Path) -> bool:
            return path.is_file() or (part in CONTRACTS and path.is_dir())

        found: dict[str, Any] = {part: folder / name for part, name in FILES.items() if there(part, folder / name)}
        missing = [FILES[part] for part in ("events", "stages") if part not in found]
        if missing:
            raise InputError(
                f"{folder}: no {' or '.join(missing)} in this folder; a radar log folder holds events.parquet and"
                " stages.parquet (as `leadradar simulate --out DIR` writes them)"
            )
        return cls(**found)

    @classmethod
    def from_paths(
        cls,
        events: str | Path,
        stages: str | Path,
        items: str | Path | None = None,
        leads: str | Path | None = None,
        truth: str | Path | None = None,
        *,
        beside: tuple[str, ...] = ("items", "leads", "truth", "sales"),
    ) -> RadarLog:
        """Named files; the optional parts in `beside` that are not named come from beside the events, when there."""
        events = Path(events)

        def beside_events(part: str, given: str | Path | None) -> Path | None:
            if given is not None:
                return Path(given)
            candidate = events.parent / FILES[part]
            return candidate if part in beside and candidate.is_file() else None

        return cls(
            events,
            Path(stages),
            beside_events("items", items),
            beside_events("leads", leads),
            beside_events("truth", truth),
            beside_events("sales", None),
        )

    @classmethod
    def from_store(
        cls, store: EventStore, *, tenant: str | None = None, until: pd.Timestamp | None = None, as_seen: bool = True
    ) -> RadarLog:
        """The log the event store holds, as the service saw it by default (an event counts from the later of
        its time and its arrival) or by event time (`as_seen=False`). The stage changes are read in a second thread
        beside the events (a long log's by a child process that then runs beside this one)."""
        with ThreadPoolExecutor(1, thread_name_prefix="stages-read") as pool:
            stages = pool.submit(store.stages, tenant, until=until)
            stored, blocks = store.whole_log(tenant, until=until, as_seen=as_seen)
            events, consent = split_consent(stored, store.settings)  # set apart: fewer rows, the blocks dropped below
            if events.num_rows == 0:
                where = f"tenant {tenant!r} in " if tenant else ""
                raise InputError(
                    f"no events for {where}the event store at {store.url}; send them with `leadradar ingest FILE...`"
                    " or POST /v1/events, or name files with --events and --stages"
                )
        items = store.catalog("items", tenant)
        leads = store.catalog("leads", tenant)
        return cls(
            events,
            stages.result(),
            None if items is None else pa.Table.from_pandas(items, schema=ITEM_SCHEMA, preserve_index=False),
            leads,
            sales=store.catalog("sales", tenant),
            consent=consent,
            as_seen=as_seen,
            event_blocks=blocks,
        )

    def paths(self) -> dict[str, Path]:
        """The parts that are files, as absolute paths: what a training run records to rebuild its data."""
        return {
            f.name: getattr(self, f.name).resolve() for f in fields(self) if isinstance(getattr(self, f.name), Path)
        }

    def truth_of(self, column: str) -> pd.DataFrame | None:
        """The simulator's `column` per (tenant_id, lead_id, cutoff); None without truth or when it lacks the column."""
        if self.truth is None or column not in _truth_schema(self.truth).names:
            return None
        columns = [*TRUTH_KEY_SCHEMA.names, column]
        if isinstance(self.truth, Path):
            frame = pd.read_parquet(self.truth, columns=columns)
        else:
            table = self.truth if isinstance(self.truth, pa.Table) else pa.Table.from_pandas(self.truth)
            frame = table.select(columns).to_pandas()
        frame["cutoff"] = frame["cutoff"].astype("datetime64[us, UTC]")
        return frame


def not_truth(source: Source) -> str | None:
    """Why a table is not the simulator's truth, in words; None when its schema says it is."""
    try:
        schema = _truth_schema(source)
    except InputError:
        return "it cannot be read as Parquet"
    problems, _ = contract_gaps(schema, TRUTH_KEY_SCHEMA)
    if problems or not any(TRUTH_CLOSE_COLUMN.fullmatch(name) for name in schema.names):
        return "the simulator's truth has columns tenant_id, lead_id, cutoff (UTC) and p_close_<days>d"
    return None


def file_schema(path: Path, part: str) -> pa.Schema:
    """The Arrow schema of a Parquet file, or of a folder of them read as one table (`parquet_files`), or one
    `InputError` naming the file and what is wrong with it. A folder's files are each checked against the part's
    contract; an optional column some of them lack reads as missing there."""
    if not path.is_dir():
        return _one_schema(path, part)
    files = parquet_files(path, part)
    stats = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _folder_schema(path, part, stats)


@lru_cache(maxsize=8)
def _folder_schema(path: Path, part: str, stats: tuple[tuple[str, int, int], ...]) -> pa.Schema:
    """A folder's schema, read once per state of its files (`stats`: name, time and size of each): a build asks for
    it several times, and a folder of a few hundred files' footers takes a tenth of a second."""
    files = [Path(name) for name, _, _ in stats]
    schemas = [_one_schema(f, part) for f in files]
    if part in CONTRACTS:
        for f, schema in zip(files, schemas, strict=True):
            require_contract(schema, CONTRACTS[part], str(f))
    schemas = [_comparable(schema) for schema in schemas]
    whole = schemas[0]
    for f, schema in zip(files[1:], schemas[1:], strict=True):
        try:
            whole = pa.unify_schemas([whole, schema], promote_options="permissive")
        except (pa.ArrowException, TypeError) as exc:
            reason = " ".join(str(exc).split())
            raise InputError(
                f"{f}: its column types differ from the other files' in {path} ({reason}); write the folder's files"
                " with the same columns"
            ) from exc
    return whole


def _comparable(schema: pa.Schema) -> pa.Schema:
    """A file's schema as the folder's files are matched: text written as categories is text, and a time in any
    zone is a time in UTC (one instant; each file may name its own zone, as one file may)."""

    def plain(t: pa.DataType) -> pa.DataType:
        if pa.types.is_dictionary(t):
            return plain(t.value_type)
        if pa.types.is_timestamp(t) and t.tz is not None:
            return pa.timestamp(t.unit, tz="UTC")
        return t

    return pa.schema([f.with_type(plain(f.type)) for f in schema], metadata=schema.metadata)


def read_parquet_part(path: Path, part: str = "events") -> pa.Table:
    """A part given as a Parquet file, or a folder of them (`parquet_files`) read as one table: columns matched by
    name, one that some files lack null in their rows; what a reader outside the engines takes (fingerprints of the
    log, a forgotten lead's rows taken out)."""
    if not path.is_dir():
        return pq.read_table(path)
    files = [str(f) for f in parquet_files(path, part)]
    return ds.dataset(files, format="parquet", schema=file_schema(path, part)).to_table()


def parquet_files(path: Path, part: str = "events") -> list[Path]:
    """The Parquet files a source reads: the file itself, or a folder's `*.parquet` files at any depth, in name order,
    hidden ones left out (`atomic.folder_files`). A folder with none is one `InputError`."""
    if not path.is_dir():
        return [path]
    files = folder_files(path, (".parquet",))
    if not files:
        raise InputError(
            f"{path}: no Parquet files (*.parquet) in this folder; give the {part} as a Parquet file or a folder"
            " of them"
        )
    return files


def _one_schema(path: Path, part: str) -> pa.Schema:
    if not path.is_file():
        raise InputError(f"{path}: no such {part} file; check the path")
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        reason = " ".join(str(exc).split())
        raise InputError(f"{path}: cannot be read as Parquet ({reason}); give the {part} as a Parquet file") from exc


def damaged_part(path: Path) -> str | None:
    """Where a Parquet file whose footer reads fails further on, in words (its rows and column, and why), read a
    column of a row group at a time; None when every part reads. A damaged page (a copy cut or overwritten inside)
    passes every schema check and then fails deep in a build with an engine's message that names no file."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        return f"cannot be read as Parquet ({' '.join(str(exc).split())})"
    first = 0
    for group in range(pf.num_row_groups):
        rows = pf.metadata.row_group(group).num_rows
        for column in pf.schema_arrow.names:
            try:
                pf.read_row_group(group, columns=[column])
            except (pa.ArrowException, OSError) as exc:
                reason = " ".join(str(exc).split())
                return f"rows {first + 1:,}–{first + rows:,}, column {column}, cannot be read ({reason})"
        first += rows
    return None


def require_contract(schema: pa.Schema, contract: pa.Schema, where: str) -> list[str]:
    """The optional contract columns the table lacks (they read as missing); an `InputError` if it misses more."""
    problems, absent = contract_gaps(schema, contract)
    if problems:
        required = ", ".join(f.name for f in contract if not f.nullable)
        optional = ", ".join(f.name for f in contract if f.nullable)
        raise InputError(
            f"{where}: {'; '.join(problems)} (required: {required}"
            + (f"; optional: {optional}" if optional else "")
            + ")"
        )
    return absent


def _truth_schema(source: Source) -> pa.Schema:
    if isinstance(source, (str, Path)):
        return file_schema(Path(source), "truth")
    if isinstance(source, pd.DataFrame):
        return pa.Schema.from_pandas(source, preserve_index=False)
    return source.schema


def _name(source: Source) -> str:
    return str(source) if isinstance(source, (str, Path)) else "the truth table"
