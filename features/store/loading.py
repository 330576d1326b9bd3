"""Files into the event store (`leadradar ingest FILE...`): events, stage changes and catalogues, each row once.

A file's kind is read from its columns (a stage file has `stage` and no `event_type`), or named by the
option it came with. When each event arrived: a file's own `arrived_at` column (or the simulator's
`arrivals.parquet` beside its `events.parquet`); without one the file is a backfill whose events arrived when
they happened, unless `--arrived-now` says they arrive now. Files are appended in batches, each committed,
so a re-run after an interruption stores only what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from leadradar.config import Settings
from leadradar.errors import InputError
from leadradar.features.contract import ITEM_SCHEMA, STAGE_COLUMNS
from leadradar.features.ingest import IngestError, read_table
from leadradar.features.store.event_store import Appended, EventStore
from leadradar.features.validation import EventColumnsError, read_time, utc_now, validate_events, validate_stages

ARRIVED_COLUMN = "arrived_at"
# What the simulator writes beside events.parquet: when each copy of an event reached the log.
ARRIVALS_FILE = "arrivals.parquet"
# The key of each row of a catalogue part.
CATALOG_KEYS = {"items": "item_id", "leads": "lead_id", "sales": "sales_id"}


@dataclass
class Loaded:
    """What one file did to the store: received = stored + duplicate + quarantined (catalogues: rows kept)."""

    file: str
    kind: str
    received: int = 0
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0
    refused_by_field: dict[str, int] = field(default_factory=dict)
    # Where arrival came from: the file's arrived_at column, arrivals.parquet, now, or backfill (when they happened).
    arrival: str = ""

    def add(self, appended: Appended) -> None:
        self.received += appended.received
        self.stored += appended.stored
        self.duplicate += appended.duplicate
        self.quarantined += appended.quarantined
        for refusal in appended.refusals:
            self.refused_by_field[refusal.field] = self.refused_by_field.get(refusal.field, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_files(
    store: EventStore,
    settings: Settings,
    files: Sequence[Path] = (),
    *,
    stages: Sequence[Path] = (),
    items: Path | None = None,
    leads: Path | None = None,
    sales: Path | None = None,
    arrived_now: bool = False,
    now: pd.Timestamp | None = None,
) -> list[Loaded]:
    """Append every file to the store; all are read and checked for columns before anything is written."""
    now = utc_now(now)
    read = [(path, read_table(path, None)) for path in files]
    kinds = [file_kind(frame, path) for path, frame in read]
    read += [(path, read_table(path, None)) for path in stages]
    kinds += ["stages"] * len(stages)
    for (path, frame), kind in zip(read, kinds):
        _require_columns(frame, kind, path, settings)
    arrivals = [
        _arrivals(path, frame, now, arrived_now) if kind == "events" else None
        for (path, frame), kind in zip(read, kinds)
    ]
    out = []
    for (path, frame), kind, arrival in zip(read, kinds, arrivals):
        if kind == "events":
            out.append(_load_events(store, settings, path, frame, arrival, now))
        else:
            out.append(_load_stages(store, settings, path, frame, arrived_now, now))
    for part, catalogue in (("items", items), ("leads", leads), ("sales", sales)):
        if catalogue is not None:
            out.append(_load_catalog(store, part, catalogue))
    return out


def file_kind(frame: pd.DataFrame, path: Path) -> str:
    """ "stages" for a table of CRM stage changes (it has `stage` and no `event_type`), else "events"."""
    columns = set(map(str, frame.columns))
    return "stages" if "stage" in columns and "event_type" not in columns else "events"


def _require_columns(frame: pd.DataFrame, kind: str, path: Path, settings: Settings) -> None:
    try:
        if kind == "events":
            validate_events(frame.head(0), settings, source=str(path))
        else:
            validate_stages(frame.head(0), settings, source=str(path))
    except EventColumnsError as exc:
        raise IngestError(str(exc)) from exc


def _arrivals(path: Path, frame: pd.DataFrame, now: pd.Timestamp, arrived_now: bool) -> np.ndarray | None:
    """Whole seconds of each row's arrival (-1 unknown); None for a backfill (every event arrived when it happened)."""
    seconds = None
    beside = path.with_name(ARRIVALS_FILE) if path.name == "events.parquet" else None
    if ARRIVED_COLUMN in frame.columns:
        seconds = _seconds(pa.Array.from_pandas(frame[ARRIVED_COLUMN]), str(path))
    elif beside is not None and beside.is_file():
        seconds = _arrivals_beside(frame, beside)
    if arrived_now:
        now_s = int(np.ceil(now.timestamp()))
        seconds = np.full(len(frame), now_s, np.int64) if seconds is None else np.where(seconds < 0, now_s, seconds)
    return seconds


def _seconds(values: pa.Array, where: str) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_timestamp(values.type):
        values = values.cast(pa.string())
    column = read_time(values)
    bad = np.flatnonzero(column.unreadable | column.naive)
    if len(bad):
        row = int(bad[0])
        why = "has no time zone" if column.naive[row] else "is not a time"
        raise InputError(
            f"{where}: row {row + 1}: {ARRIVED_COLUMN} {column.raw(np.array([row]))[0].as_py()!r} {why};"
            " write ISO 8601 with a zone, e.g. 2026-03-02T08:00:00+08:00 (or leave it empty: arrived when it happened)"
        )
    seconds = -(-column.number // 1_000_000)
    return np.where(column.null | column.blank, -1, seconds).astype(np.int64)


def _arrivals_beside(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """Each event's first arrival from the simulator's arrivals file, joined by (tenant_id, event_id)."""
    table = read_table(path, None)
    missing = {"tenant_id", "event_id", ARRIVED_COLUMN} - set(table.columns)
    if missing:
        raise InputError(
            f"{path}: lacks the column(s) {', '.join(sorted(missing))} (an arrivals file has tenant_id,"
            f" event_id and {ARRIVED_COLUMN})"
        )
    table = table.assign(s=_seconds(pa.Array.from_pandas(table[ARRIVED_COLUMN]), str(path)))
    first = table[table["s"] >= 0].groupby(["tenant_id", "event_id"], sort=False)["s"].min()
    keys = pd.MultiIndex.from_arrays([frame["tenant_id"].astype("str"), frame["event_id"].astype("str")])
    return first.reindex(keys).fillna(-1).to_numpy(dtype=np.int64)


def _load_events(
    store: EventStore,
    settings: Settings,
    path: Path,
    frame: pd.DataFrame,
    arrival: np.ndarray | None,
    now: pd.Timestamp,
) -> Loaded:
    loaded = Loaded(str(path), "events", arrival=_arrival_words(path, frame, arrival))
    batch = settings.store.file_batch_rows
    for start in range(0, len(frame), batch):
        chunk = frame.iloc[start : start + batch]
        checked = validate_events(chunk, settings, now, source=str(path))
        arrived = None if arrival is None else arrival[start : start + batch]
        loaded.add(store.append_events(checked, source=str(path), arrived=arrived, now=now))
    return loaded


def _load_stages(
    store: EventStore, settings: Settings, path: Path, frame: pd.DataFrame, arrived_now: bool, now: pd.Timestamp
) -> Loaded:
    loaded = Loaded(str(path), "stages", arrival="now" if arrived_now else "backfill")
    frame = frame[[c for c in frame.columns if c in STAGE_COLUMNS]]
    batch = settings.store.file_batch_rows
    for start in range(0, len(frame), batch):
        checked = validate_stages(frame.iloc[start : start + batch], settings, now, source=str(path))
        loaded.add(store.append_stages(checked, source=str(path), arrived=now if arrived_now else None, now=now))
    return loaded


def _load_catalog(store: EventStore, part: str, path: Path) -> Loaded:
    frame = read_table(path, None)
    key = CATALOG_KEYS[part]
    need = set(ITEM_SCHEMA.names) if part == "items" else {"tenant_id", key}
    missing = need - set(map(str, frame.columns))
    if missing:
        raise InputError(
            f"{path}: lacks the column(s) {', '.join(sorted(missing))} ({part} need {', '.join(sorted(need))})"
        )
    n = store.put_catalog(part, frame, key)
    return Loaded(str(path), part, received=n, stored=n, arrival="latest copy per " + key)


def _arrival_words(path: Path, frame: pd.DataFrame, arrival: np.ndarray | None) -> str:
    if arrival is None:
        return "backfill"
    if ARRIVED_COLUMN in frame.columns:
        return ARRIVED_COLUMN
    if path.with_name(ARRIVALS_FILE).is_file() and path.name == "events.parquet":
        return ARRIVALS_FILE
    return "now"
