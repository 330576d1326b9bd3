"""Event ingestion: raw radar-event files in, contract-clean `events.parquet` out, nothing lost.

Companies send their card logs as Parquet, CSV or JSON Lines. Every row either lands in
`events.parquet` (exactly `EVENT_SCHEMA`, timestamps UTC at microseconds), is a re-sent copy of
an event already stored (dropped and counted, so ingestion is idempotent), or goes to
`quarantine.parquet` with its original values and one reason naming the field, the bad value
and what was expected. The counts always reconcile: rows in = accepted + rejected + duplicates.

The rules themselves are features/validation.py's, the same ones the scoring service applies to
the raw events of a request, so an event gets one verdict whichever way it comes in.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from leadradar.config import Settings
from leadradar.errors import UserError
from leadradar.features.atomic import atomic_write, atomic_write_bytes, folder_files
from leadradar.features.contract import EVENT_COLUMNS, EVENT_SCHEMA, TS_TYPE
from leadradar.features.locks import exclusive
from leadradar.features.validation import (
    REJECTED_SCHEMA,
    Checked,
    EventColumnsError,
    mark_duplicates,
    resent_changed_reason,
    utc_now,
    validate_events,
)

EVENTS_FILE = "events.parquet"
QUARANTINE_FILE = "quarantine.parquet"
REPORT_FILE = "ingest_report.json"
# Later copies of an event_id that came back with different content: not stored, but not lost.
CONFLICTS_FILE = "conflicts.parquet"

READERS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_KIND_NAMES = {"parquet": "Parquet", "csv": "CSV", "jsonl": "JSON Lines"}
_BOM = b"\xef\xbb\xbf"
_SNIFF_BYTES = 65536
_JSON_SPACE = np.frombuffer(b" \t\r\n", dtype=np.uint8)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string()),
        *REJECTED_SCHEMA,
        pa.field("ingested_at", TS_TYPE),
    ]
)


class IngestError(UserError, ValueError):
    """A whole input cannot be used: unreadable, not a table, or missing required columns."""


@dataclass
class IngestCounts:
    """What happened to the rows of one input (or of all inputs together)."""

    rows_in: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    conflicting_duplicates: int = 0
    rejected_by_reason_field: dict[str, int] = field(default_factory=dict)
    unknown_event_types: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)

    def check_reconciles(self, what: str) -> None:
        """Refuse to write anything whose counts do not add up: no row may be lost silently."""
        problems = []
        if self.rows_in != self.accepted + self.rejected + self.duplicates:
            problems.append(
                f"rows_in {self.rows_in} != accepted {self.accepted} + rejected {self.rejected}"
                f" + duplicates {self.duplicates}"
            )
        if sum(self.rejected_by_reason_field.values()) != self.rejected:
            problems.append(f"rejected_by_reason_field does not sum to rejected {self.rejected}")
        if not 0 <= self.conflicting_duplicates <= self.duplicates:
            problems.append(f"conflicting_duplicates {self.conflicting_duplicates} outside 0..duplicates")
        if problems:
            raise AssertionError(f"ingest counts do not reconcile for {what}: " + "; ".join(problems))


@dataclass
class FileReport(IngestCounts):
    """The counts of one input file."""

    file: str = ""


@dataclass
class IngestReport:
    """The outcome of one ingest run: per file, in total, and where everything was written."""

    files: list[FileReport]
    total: IngestCounts
    events_path: str
    quarantine_path: str | None
    report_path: str
    events_stored: int
    ingested_at: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain data for `ingest_report.json` and the CLI's JSON output."""
        return asdict(self)


def ingest(
    paths: Sequence[Path | str], out_dir: Path | str, settings: Settings, now: pd.Timestamp | None = None
) -> IngestReport:
    """Append the valid, new events of files to `out_dir/events.parquet`, quarantine the rest, account for every row.

    All inputs are read and validated before anything is written, so an unreadable file
    (`IngestError`) leaves `out_dir` as it was.
    """
    now = utc_now(now)
    out_dir = Path(out_dir)
    for p in paths:
        for kept in (EVENTS_FILE, QUARANTINE_FILE):
            if Path(p).resolve() == (out_dir / kept).resolve():
                raise IngestError(
                    f"--out {out_dir} holds {p}, a file being ingested: ingest keeps its {kept} there and would count"
                    " every row of it as already kept (the rejected ones too); name another folder"
                )
    names = [str(p) for p in paths]
    frames = [read_table(Path(p)) for p in paths]
    checked = [_validated(df, settings, now, name) for df, name in zip(frames, names)]

    out_dir.mkdir(parents=True, exist_ok=True)
    events_path, quarantine_path, report_path = (out_dir / f for f in (EVENTS_FILE, QUARANTINE_FILE, REPORT_FILE))
    with exclusive(out_dir, ".ingest.lock"):
        existing = _read_existing_events(events_path)
        stacked = pa.concat_tables([existing, *(accepted for accepted, _ in checked)])
        origin = np.repeat(
            np.arange(-1, len(checked)), [existing.num_rows, *(accepted.num_rows for accepted, _ in checked)]
        )
        duplicate, conflicting = mark_duplicates(stacked)
        is_new = (origin >= 0) & ~duplicate

        files = [
            _file_report(name, df, rejected, origin == i, duplicate, conflicting, settings)
            for i, (name, df, (_, rejected)) in enumerate(zip(names, frames, checked))
        ]
        total = _sum_reports(files)
        for file_report in files:
            file_report.check_reconciles(file_report.file)
        total.check_reconciles("all inputs")
        if total.accepted != int(is_new.sum()):
            raise AssertionError(f"{int(is_new.sum())} new rows to store but {total.accepted} counted as accepted")

        quarantined = [
            _quarantine_table(rejected, name, now) for name, (_, rejected) in zip(names, checked) if rejected.num_rows
        ]
        if quarantined:
            quarantined = [*_read_existing_quarantine(quarantine_path), *quarantined]
        if is_new.any() or not events_path.exists():
            _atomic_write_parquet(stacked.filter(pa.array((origin < 0) | is_new)), events_path)
        if quarantined:
            _atomic_write_parquet(pa.concat_tables(quarantined), quarantine_path)
        _keep_conflicts(stacked, origin, conflicting, names, now, out_dir / CONFLICTS_FILE)

        report = IngestReport(
            files=files,
            total=total,
            events_path=str(events_path),
            quarantine_path=str(quarantine_path) if quarantine_path.exists() else None,
            report_path=str(report_path),
            events_stored=existing.num_rows + int(is_new.sum()),
            ingested_at=now.isoformat(),
            notes=_notes(total),
        )
        atomic_write_bytes(json.dumps(report.to_dict(), indent=2, ensure_ascii=False).encode(), report_path)
    return report


# --- reading -----------------------------------------------------------------------------------


def input_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, a folder standing for the files it holds at any depth that `read_table` reads (Parquet,
    CSV, JSON Lines), in name order, hidden ones left out (`atomic.folder_files`); one `IngestError` for a folder
    with none."""
    out: list[Path] = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        found = folder_files(path, tuple(READERS))
        if not found:
            raise IngestError(f"{path}: no {', '.join(READERS)} files in this folder")
        out += found
    return out


def read_table(path: Path, columns: Sequence[str] | None = EVENT_COLUMNS) -> pd.DataFrame:
    """A Parquet, CSV or JSON Lines file as a frame (Parquet: only `columns`, all if None), or one `IngestError`."""
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise IngestError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; expected one of {', '.join(READERS)}"
        )
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    try:
        if kind == "parquet":
            return _read_parquet(path, columns)
        data = path.read_bytes().removeprefix(_BOM)
        _require_text(path, data, kind)
        if kind == "csv":
            return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""], engine="pyarrow")
        _require_object_per_line(path, data)
        if not data.strip():
            return pd.DataFrame({c: pd.Series(dtype="str") for c in EVENT_COLUMNS})
        return pd.read_json(io.BytesIO(data), lines=True, dtype=False)
    except IngestError:
        raise
    except Exception as exc:
        raise IngestError(f"{path}: cannot be read as {_KIND_NAMES[kind]}: {_one_line(exc)}") from exc


def _read_parquet(path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
    names = pq.read_schema(path).names
    wanted = names if columns is None else [c for c in names if c in columns]
    df = pq.read_table(path, columns=wanted).to_pandas()
    df.attrs["ignored_columns"] = [c for c in names if c not in wanted]
    return df


def _require_text(path: Path, data: bytes, kind: str) -> None:
    head = data[:_SNIFF_BYTES]
    if b"\x00" in head:
        raise IngestError(f"{path}: a binary file, not {_KIND_NAMES[kind]} text (it contains NUL bytes)")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4 or len(data) <= _SNIFF_BYTES:
            raise IngestError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from exc
    if kind == "csv" and not data.strip():
        raise IngestError(f"{path}: empty file (expected a CSV header row naming the event columns)")


def _require_object_per_line(path: Path, data: bytes) -> None:
    buf = np.frombuffer(data, dtype=np.uint8)
    newline = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate([[0], newline + 1])
    ends = np.concatenate([newline, [len(buf)]])
    filled = np.flatnonzero(~np.isin(buf, _JSON_SPACE))
    idx = np.searchsorted(filled, starts)
    found = idx < len(filled)
    first = np.full(len(starts), -1, dtype=np.int64)
    first[found] = filled[idx[found]]
    has_content = found & (first < ends)
    offending = np.flatnonzero(has_content & (buf[np.maximum(first, 0)] != ord("{")))
    if len(offending):
        line = int(offending[0])
        snippet = data[starts[line] : min(ends[line], starts[line] + 40)].decode("utf-8", "replace").strip()
        raise IngestError(
            f"{path}: line {line + 1} is not a JSON object ({snippet!r});"
            " JSON Lines needs one {...} object per line (a JSON array is not JSON Lines)"
        )


# --- validation (the rules are features/validation.py's) ---------------------------------------


def _validated(df: pd.DataFrame, settings: Settings, now: pd.Timestamp, name: str) -> Checked:
    try:
        return validate_events(df, settings, now, source=name)
    except EventColumnsError as exc:
        raise IngestError(str(exc)) from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- reporting ---------------------------------------------------------------------------------


def _file_report(
    name: str,
    df: pd.DataFrame,
    rejected: pa.Table,
    mine: np.ndarray,
    duplicate: np.ndarray,
    conflicting: np.ndarray,
    settings: Settings,
) -> FileReport:
    types = pc.utf8_trim_whitespace(rejected["event_type"])
    known = pc.is_in(types, value_set=pa.array(list(settings.events.types), pa.string()))
    unknown = types.filter(pc.and_(pc.not_equal(types, ""), pc.invert(known)))
    ignored = df.attrs.get("ignored_columns", [str(c) for c in df.columns if c not in EVENT_COLUMNS])
    return FileReport(
        file=name,
        rows_in=len(df),
        accepted=int((mine & ~duplicate).sum()),
        rejected=rejected.num_rows,
        duplicates=int((mine & duplicate).sum()),
        conflicting_duplicates=int((mine & conflicting).sum()),
        rejected_by_reason_field=_counts(rejected["field"]),
        unknown_event_types=_counts(unknown),
        ignored_columns=list(ignored),
    )


def _counts(values: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    pairs = pc.value_counts(values.drop_null()).to_pylist()
    return dict(sorted((str(p["values"]), int(p["counts"])) for p in pairs))


def _sum_reports(files: list[FileReport]) -> IngestCounts:
    total = IngestCounts()
    for f in files:
        total.rows_in += f.rows_in
        total.accepted += f.accepted
        total.rejected += f.rejected
        total.duplicates += f.duplicates
        total.conflicting_duplicates += f.conflicting_duplicates
        for key, value in f.rejected_by_reason_field.items():
            total.rejected_by_reason_field[key] = total.rejected_by_reason_field.get(key, 0) + value
        for key, value in f.unknown_event_types.items():
            total.unknown_event_types[key] = total.unknown_event_types.get(key, 0) + value
    total.rejected_by_reason_field = dict(sorted(total.rejected_by_reason_field.items()))
    total.unknown_event_types = dict(sorted(total.unknown_event_types.items()))
    total.ignored_columns = sorted({c for f in files for c in f.ignored_columns})
    return total


def _notes(total: IngestCounts) -> list[str]:
    notes = []
    if total.ignored_columns:
        notes.append(f"columns outside the event contract were ignored: {', '.join(total.ignored_columns)}")
    if total.unknown_event_types:
        notes.append(
            "rows with event types outside settings.events.types were rejected; map these types there"
            f" to keep them: {', '.join(total.unknown_event_types)}"
        )
    if total.conflicting_duplicates:
        notes.append(
            f"{total.conflicting_duplicates} row(s) reused a (tenant_id, event_id) with different content;"
            " the first copy was kept"
        )
    return notes


# --- writing -----------------------------------------------------------------------------------


def _read_existing_events(path: Path) -> pa.Table:
    if not path.exists():
        return EVENT_SCHEMA.empty_table()
    try:
        return pq.read_table(path).select(list(EVENT_COLUMNS)).cast(EVENT_SCHEMA).replace_schema_metadata(None)
    except Exception as exc:
        raise IngestError(f"{path}: the stored events do not match the event contract: {_one_line(exc)}") from exc


def _quarantine_table(rejected: pa.Table, name: str, now: pd.Timestamp) -> pa.Table:
    n = rejected.num_rows
    return pa.Table.from_arrays(
        [
            pa.repeat(name, n).cast(pa.string()),
            *rejected.columns,
            pa.repeat(pa.scalar(now.as_unit("us"), TS_TYPE), n),
        ],
        schema=QUARANTINE_SCHEMA,
    )


def _keep_conflicts(
    stacked: pa.Table, origin: np.ndarray, conflicting: np.ndarray, names: list[str], now: pd.Timestamp, path: Path
) -> None:
    """Append the rejected later copies of conflicting duplicates, with where they came from and why."""
    mask = (origin >= 0) & conflicting
    if not mask.any():
        return
    rows = stacked.filter(pa.array(mask))
    source = [names[i] for i in origin[mask]]
    rows = rows.append_column("source_file", pa.array(source, pa.string()))
    rows = rows.append_column("reason", resent_changed_reason(rows["event_id"].combine_chunks()))
    rows = rows.append_column(
        "ingested_at", pa.array([now.to_pydatetime()] * rows.num_rows, pa.timestamp("us", tz="UTC"))
    )
    if path.exists():
        rows = pa.concat_tables([pq.read_table(path), rows], promote_options="default")
    _atomic_write_parquet(rows, path)


def _read_existing_quarantine(path: Path) -> list[pa.Table]:
    if not path.exists():
        return []
    try:
        return [pq.read_table(path).cast(QUARANTINE_SCHEMA).replace_schema_metadata(None)]
    except Exception as exc:
        raise IngestError(f"{path}: the stored quarantine has another layout: {_one_line(exc)}") from exc


def _atomic_write_parquet(table: pa.Table, path: Path) -> None:
    atomic_write(path, lambda fh: pq.write_table(table, fh))
