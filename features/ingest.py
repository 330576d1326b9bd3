"""Event ingestion: raw radar-event files in, contract-clean `events.parquet` out, nothing lost.

Companies send their card logs as Parquet, CSV or JSON Lines. Every row either lands in
`events.parquet` (exactly `EVENT_SCHEMA`, timestamps UTC at microseconds), is a re-sent copy of
an event already stored (dropped and counted, so ingestion is idempotent), or goes to
`quarantine.parquet` with its original values and one reason naming the field, the bad value
and what was expected. The counts always reconcile: rows in = accepted + rejected + duplicates.

`validate_events` is the vectorised core (Arrow compute, no Python loop per row), shared with
the scoring service, which checks the raw events that come with a request by the same rules.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from leadradar.config import Settings
from leadradar.features.contract import EVENT_COLUMNS, EVENT_OPTIONAL, EVENT_REQUIRED, EVENT_SCHEMA, TS_TYPE

EVENTS_FILE = "events.parquet"
QUARANTINE_FILE = "quarantine.parquet"
REPORT_FILE = "ingest_report.json"
# Later copies of an event_id that came back with different content: not stored, but not lost.
CONFLICTS_FILE = "conflicts.parquet"

EVENT_KEY = ("tenant_id", "event_id")
EARLIEST_TS = pd.Timestamp("2000-01-01", tz="UTC")
MAX_FUTURE = pd.Timedelta(days=1)

READERS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_KIND_NAMES = {"parquet": "Parquet", "csv": "CSV", "jsonl": "JSON Lines"}
_BOM = b"\xef\xbb\xbf"
_SNIFF_BYTES = 65536
_JSON_SPACE = np.frombuffer(b" \t\r\n", dtype=np.uint8)

# A time of day followed by `Z` or a numeric offset; a bare date such as 2026-03-01 has no zone.
_ZONE_PATTERN = r"[T ]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_TS_EXPECTED = "expected ISO 8601 with a time zone, e.g. '2026-03-01T10:00:00+08:00'"
_DWELL_EXPECTED = "expected a finite number of seconds >= 0, or empty"
_TEXT_EXPECTED = "expected a non-empty string"
_SHOWN_CHARS = 60

_TEXT_COLUMNS = tuple(f.name for f in EVENT_SCHEMA if f.type == pa.string())

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64()),
        pa.field("field", pa.string()),
        pa.field("reason", pa.string()),
        *(pa.field(c, pa.string()) for c in EVENT_COLUMNS),
    ]
)
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string()),
        *REJECTED_SCHEMA,
        pa.field("ingested_at", TS_TYPE),
    ]
)


class IngestError(ValueError):
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


def validate_events(
    df: pd.DataFrame, settings: Settings, now: pd.Timestamp | None = None, *, source: str = "events"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split raw events into contract rows and rejected rows with one reason each.

    Ingestion and serving both call this, so both apply the same rules.

    Rejected rows carry `row` (1-based position in `df`), `field`, `reason` and the original
    values as strings. Raises `IngestError` naming every missing required column.
    """
    accepted, rejected = _validate(df, settings, _utc_now(now), source)
    return accepted.to_pandas(), rejected.to_pandas()


def mark_duplicates(events: pd.DataFrame | pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Flag re-sent events (all but the first per tenant and event id), and those whose content differs."""
    table = events if isinstance(events, pa.Table) else pa.Table.from_pandas(events, preserve_index=False)
    keys = table.select(list(EVENT_KEY)).to_pandas()
    duplicate = keys.duplicated(keep="first").to_numpy()
    conflicting = np.zeros(len(keys), dtype=bool)
    if duplicate.any():
        involved = np.flatnonzero(keys.duplicated(keep=False).to_numpy())
        sub = table.select(list(EVENT_COLUMNS)).take(involved).to_pandas()
        content = pd.util.hash_pandas_object(sub, index=False)
        first = content.groupby([sub[c] for c in EVENT_KEY], sort=False).transform("first")
        conflicting[involved] = duplicate[involved] & (content != first).to_numpy()
    return duplicate, conflicting


def ingest(
    paths: Sequence[Path | str], out_dir: Path | str, settings: Settings, now: pd.Timestamp | None = None
) -> IngestReport:
    """Append the valid, new events of files to `out_dir/events.parquet`, quarantine the rest, account for every row.

    All inputs are read and validated before anything is written, so an unreadable file
    (`IngestError`) leaves `out_dir` as it was.
    """
    now = _utc_now(now)
    out_dir = Path(out_dir)
    names = [str(p) for p in paths]
    frames = [_read_table(Path(p)) for p in paths]
    checked = [_validate(df, settings, now, name) for df, name in zip(frames, names)]

    out_dir.mkdir(parents=True, exist_ok=True)
    events_path, quarantine_path, report_path = (out_dir / f for f in (EVENTS_FILE, QUARANTINE_FILE, REPORT_FILE))
    with _exclusive(out_dir):
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
        for report in files:
            report.check_reconciles(report.file)
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
        _atomic_write_bytes(json.dumps(report.to_dict(), indent=2, ensure_ascii=False).encode(), report_path)
    return report


# --- reading -----------------------------------------------------------------------------------


def _read_table(path: Path) -> pd.DataFrame:
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise IngestError(
            f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; expected one of {', '.join(READERS)}"
        )
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    try:
        if kind == "parquet":
            return _read_parquet(path)
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


def _read_parquet(path: Path) -> pd.DataFrame:
    names = pq.read_schema(path).names
    df = pq.read_table(path, columns=[c for c in names if c in EVENT_COLUMNS]).to_pandas()
    df.attrs["ignored_columns"] = [c for c in names if c not in EVENT_COLUMNS]
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


# --- validation --------------------------------------------------------------------------------


class _Rejections:
    """The first problem of each row, in contract column order, with its reason."""

    def __init__(self, n: int) -> None:
        self.taken = np.zeros(n, dtype=bool)
        self._rows: list[np.ndarray] = []
        self._fields: list[str] = []
        self._reasons: list[pa.Array] = []

    def add(self, column: str, bad: np.ndarray, reason: Callable[[np.ndarray], pa.Array]) -> None:
        rows = np.flatnonzero(bad & ~self.taken)
        if len(rows):
            self.taken[rows] = True
            self._rows.append(rows)
            self._fields.append(column)
            self._reasons.append(pc.binary_join_element_wise(f"{column}: ", reason(rows), ""))

    def ordered(self) -> tuple[np.ndarray, pa.Array, pa.Array]:
        if not self._rows:
            return np.zeros(0, dtype=np.int64), pa.array([], pa.string()), pa.array([], pa.string())
        rows = np.concatenate(self._rows)
        order = np.argsort(rows, kind="stable")
        fields = np.repeat(np.array(self._fields, dtype=object), [len(r) for r in self._rows])
        return rows[order], pa.array(fields[order], pa.string()), pa.concat_arrays(self._reasons).take(order)


def _validate(df: pd.DataFrame, settings: Settings, now: pd.Timestamp, source: str) -> tuple[pa.Table, pa.Table]:
    _require_columns(df, source)
    n = len(df)
    rejections = _Rejections(n)
    raw: dict[str, Callable[[np.ndarray], pa.Array]] = {}
    clean: dict[str, pa.Array] = {}
    for column in EVENT_COLUMNS:
        col = df[column] if column in df.columns else None
        if column == "ts":
            clean[column], raw[column] = _check_ts(df[column], now, rejections)
        elif column == "dwell_s":
            clean[column], raw[column] = _check_dwell(col, n, rejections)
        elif column in _TEXT_COLUMNS:
            text = _text(col) if col is not None else pa.nulls(n, pa.string())
            raw[column] = text.take
            if column in EVENT_REQUIRED:
                clean[column] = _check_required_text(column, text, settings.events.types, rejections)
            else:
                trimmed = pc.utf8_trim_whitespace(text)
                clean[column] = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        else:  # pragma: no cover - a new contract column needs a rule here
            raise NotImplementedError(f"no validation rule for contract column {column!r}")

    accepted = pa.Table.from_arrays([clean[c] for c in EVENT_COLUMNS], schema=EVENT_SCHEMA)
    if rejections.taken.any():
        accepted = accepted.filter(pa.array(~rejections.taken))
    rows, fields, reasons = rejections.ordered()
    rejected = pa.Table.from_arrays(
        [pa.array(rows + 1, pa.int64()), fields, reasons, *(raw[c](rows) for c in EVENT_COLUMNS)],
        schema=REJECTED_SCHEMA,
    )
    return accepted, rejected


def _require_columns(df: pd.DataFrame, source: str) -> None:
    names = pd.Series([str(c) for c in df.columns], dtype=object)
    twice = sorted(set(names[names.duplicated() & names.isin(EVENT_COLUMNS)]))
    if twice:
        plural = len(twice) > 1
        raise IngestError(
            f"{source}: column{'s' if plural else ''} {', '.join(twice)} appear{'' if plural else 's'} more than once"
            " (expected each event column once)"
        )
    present = set(names)
    missing = [c for c in EVENT_REQUIRED if c not in present]
    if not missing:
        return
    message = (
        f"{source}: missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        f" (required: {', '.join(EVENT_REQUIRED)}; optional: {', '.join(EVENT_OPTIONAL)})"
    )
    for c in missing:
        near = sorted(p for p in present if p.strip().lower() == c)
        if near:
            message += f"; {near[0]!r} looks like {c!r}, but column names are exact and case-sensitive"
    raise IngestError(message)


def _text(col: pd.Series) -> pa.Array:
    """The values as Arrow strings with nulls kept: the form checks, reasons and the quarantine use."""
    if pd.api.types.is_float_dtype(col.dtype):
        present = col.dropna()
        if len(present) and (present == np.floor(present)).all() and present.abs().max() < 2**53:
            col = col.astype("Int64")
    if not isinstance(col.dtype, pd.StringDtype):
        col = col.astype("str")
    arr = pa.Array.from_pandas(col)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.cast(pa.string())


def _lazy_text(col: pd.Series) -> Callable[[np.ndarray], pa.Array]:
    return lambda rows: _text(col.iloc[rows])


def _bools(arr: pa.Array) -> np.ndarray:
    return arr.fill_null(False).to_numpy(zero_copy_only=False)


def _shown(values: pa.Array) -> pa.Array:
    """Values quoted for a reason, long ones cut short."""
    long = pc.greater(pc.utf8_length(values), _SHOWN_CHARS)
    cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(values, 0, _SHOWN_CHARS), "…", "")
    return pc.binary_join_element_wise("'", pc.if_else(long, cut, values), "'", "")


def _said(raw: Callable[[np.ndarray], pa.Array], before: str, after: str) -> Callable[[np.ndarray], pa.Array]:
    return lambda rows: pc.binary_join_element_wise(before, _shown(raw(rows)), after, "")


def _const(text: str) -> Callable[[np.ndarray], pa.Array]:
    return lambda rows: pa.repeat(text, len(rows)).cast(pa.string())


def _check_required_text(column: str, text: pa.Array, types: dict[str, str], rejections: _Rejections) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(text)
    absent = _bools(text.is_null())
    blank = _bools(pc.equal(trimmed, ""))
    rejections.add(column, absent, _const(f"missing ({_TEXT_EXPECTED})"))
    rejections.add(column, blank, _said(text.take, "blank value ", f" ({_TEXT_EXPECTED})"))
    if column == "event_type":
        known = _bools(pc.is_in(trimmed, value_set=pa.array(list(types), pa.string())))
        allowed = ", ".join(types)
        rejections.add(
            column,
            ~(absent | blank | known),
            _said(trimmed.take, "", f" is not a configured type (allowed: {allowed})"),
        )
    return trimmed


def _check_ts(col: pd.Series, now: pd.Timestamp, rejections: _Rejections) -> tuple[pa.Array, Callable]:
    n = len(col)
    unparseable = naive = np.zeros(n, dtype=bool)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        raw = _lazy_text(col)
        ts = pa.Array.from_pandas(col).cast(TS_TYPE, safe=False)
        absent = _bools(ts.is_null())
    elif pd.api.types.is_datetime64_dtype(col.dtype):
        raw = _lazy_text(col)
        ts = pa.nulls(n, TS_TYPE)
        absent = col.isna().to_numpy()
        naive = ~absent
    else:
        text = _text(col)
        raw = text.take
        trimmed = pc.utf8_trim_whitespace(text)
        absent = _bools(text.is_null()) | _bools(pc.equal(trimmed, ""))
        parsed = pd.to_datetime(trimmed.to_pandas(), utc=True, errors="coerce", format="ISO8601")
        ts = pa.Array.from_pandas(parsed).cast(TS_TYPE, safe=False)
        unparseable = ~absent & _bools(ts.is_null())
        naive = ~absent & ~unparseable & ~_bools(pc.match_substring_regex(trimmed, _ZONE_PATTERN))
    micros = ts.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    usable = ~(absent | unparseable | naive)
    latest = now + MAX_FUTURE
    early = usable & (micros < _micros(EARLIEST_TS))
    late = usable & (micros > _micros(latest))

    rejections.add("ts", absent, _const(f"missing ({_TS_EXPECTED})"))
    rejections.add("ts", unparseable, _said(raw, "", f" is not a timestamp ({_TS_EXPECTED})"))
    rejections.add("ts", naive, _said(raw, "naive timestamp ", f" (no time zone; {_TS_EXPECTED})"))
    rejections.add("ts", early, _said(raw, "", " is before 2000-01-01 (expected a real event time)"))
    rejections.add(
        "ts", late, _said(raw, "", f" is more than 1 day after now ({now.isoformat()}; expected at most now + 1 day)")
    )
    return ts, raw


def _check_dwell(col: pd.Series | None, n: int, rejections: _Rejections) -> tuple[pa.Array, Callable]:
    if col is None:
        return pa.nulls(n, pa.float64()), _const_nulls
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        raw = _lazy_text(col)
        values = col.to_numpy(dtype="float64", na_value=np.nan)
        absent = np.isnan(values)
    else:
        text = _text(col)
        raw = text.take
        trimmed = pc.utf8_trim_whitespace(text)
        present = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        absent = _bools(present.is_null())
        try:
            values = present.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            values = pd.to_numeric(present.to_pandas(), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    finite = np.isfinite(values)
    rejections.add("dwell_s", ~absent & ~finite, _said(raw, "", f" is not a finite number ({_DWELL_EXPECTED})"))
    rejections.add("dwell_s", ~absent & finite & (values < 0), _said(raw, "", f" is negative ({_DWELL_EXPECTED})"))
    return pa.array(np.where(absent, np.nan, values), pa.float64(), from_pandas=True), raw


def _micros(t: pd.Timestamp) -> int:
    return (t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)


def _const_nulls(rows: np.ndarray) -> pa.Array:
    return pa.nulls(len(rows), pa.string())


def _utc_now(now: pd.Timestamp | None) -> pd.Timestamp:
    if now is None:
        return pd.Timestamp.now(tz="UTC")
    now = pd.Timestamp(now)
    if now.tzinfo is None:
        raise ValueError(f"now={now} is naive; pass a time-zone-aware timestamp")
    return now.tz_convert("UTC")


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
    rows = rows.append_column(
        "reason",
        pa.array(
            ["event_id already stored with different content; the first copy was kept"] * rows.num_rows, pa.string()
        ),
    )
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
    _atomic_write(path, lambda fh: pq.write_table(table, fh))


def _atomic_write_bytes(data: bytes, path: Path) -> None:
    _atomic_write(path, lambda fh: fh.write(data))


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write beside the target, flush to disk, then rename: readers see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """One ingest at a time per directory: two appends racing would lose one side's events."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(out_dir / ".ingest.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
