"""The one rule set for radar events, shared by `leadradar ingest` and the scoring service's raw events.

A rule is data: the field it names, the test a refused value fails and the reason it carries.
`RULES` run in contract column order and an event is refused for the first rule it breaks, so a
rule may assume the earlier rules of its field held. The limits (the earliest time, how far past
now, the longest plausible dwell) come from `settings.events`. Everything is vectorised (Arrow
compute and numpy, no Python loop per row).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadradar.config import EventConfig, Settings
from leadradar.features.contract import (
    EVENT_COLUMNS,
    EVENT_OPTIONAL,
    EVENT_REQUIRED,
    EVENT_SCHEMA,
    STAGE_COLUMNS,
    STAGE_OPTIONAL,
    STAGE_REQUIRED,
    STAGE_SCHEMA,
    TS_TYPE,
)
from leadradar.features.cutoffs import epoch_us

# Events are the same event when these agree; re-sending one is a no-op.
EVENT_KEY = ("tenant_id", "event_id")

# A time of day followed by `Z` or a numeric offset; a bare date such as 2026-03-01 has no zone.
_ZONE_PATTERN = r"[T ]\d{2}(?::?\d{2}){0,2}(?:[.,]\d+)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_TS_EXPECTED = "expected ISO 8601 with a time zone, e.g. '2026-03-01T10:00:00+08:00'"
_DWELL_EXPECTED = "expected a finite number of seconds >= 0, or empty"
_TEXT_EXPECTED = "expected a non-empty string"
VISIBLE_EXPECTED = "expected visible characters only: no bidi control, zero-width, control or other format character"
_SHOWN_CHARS = 60
# Characters that do not show, or that reorder what follows (Trojan Source, CVE-2021-42574): control (Cc), format
# (Cf: bidi controls U+202A-202E and U+2066-2069, zero-width U+200B-200D, U+2060, U+FEFF) and line/paragraph
# separators. An id holding one reads like another id, or reverses the text around it wherever it is shown.
INVISIBLE_PATTERN = r"[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]"
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
ID_FIELDS = ("event_id", "tenant_id", "lead_id", "sales_id", "item_id", "referrer_lead_id")

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64()),
        pa.field("field", pa.string()),
        pa.field("reason", pa.string()),
        *(pa.field(c, pa.string()) for c in EVENT_COLUMNS),
    ]
)


class EventColumnsError(ValueError):
    """A table of events lacks a required column or repeats one: no row of it can be checked."""


@dataclass(frozen=True)
class Column:
    """One contract column of a batch as the rules see it: what was sent, and what it reads as."""

    clean: pa.Array  # the contract value; null where absent
    raw: Callable[[np.ndarray], pa.Array]  # the values as sent, as text, of the given rows
    text: pa.Array  # trimmed text (text columns); nulls otherwise
    null: np.ndarray
    blank: np.ndarray  # present but only white space
    unreadable: np.ndarray  # present but not of the column's kind: not a timestamp, not a number
    naive: np.ndarray  # a time without a zone
    number: np.ndarray  # ts: UTC microseconds; dwell_s: seconds (NaN where absent); else zeros


@dataclass(frozen=True)
class Limits:
    """What the rules compare with: `settings.events` at one `now`, and the words reasons quote."""

    types: pa.Array
    stages: pa.Array
    earliest_us: int
    latest_us: int
    max_dwell_s: float
    words: dict[str, str]

    @classmethod
    def of(
        cls, events: EventConfig, now: pd.Timestamp, stages: tuple[str, ...] = (), consent: tuple[str, ...] = ()
    ) -> Limits:
        earliest = pd.Timestamp(events.earliest_ts).tz_convert("UTC")
        ahead = _duration(events.future_tolerance)
        return cls(
            types=pa.array([*events.types, *consent], pa.string()),
            stages=pa.array(list(stages), pa.string()),
            earliest_us=epoch_us(earliest),
            latest_us=epoch_us(now + pd.Timedelta(events.future_tolerance)),
            max_dwell_s=events.max_dwell_seconds,
            words={
                "text": _TEXT_EXPECTED,
                "visible": VISIBLE_EXPECTED,
                "time": _TS_EXPECTED,
                "number": _DWELL_EXPECTED,
                "amount": "expected a finite amount >= 0, or empty",
                "stages": ", ".join(stages),
                "earliest": earliest.isoformat().removesuffix("T00:00:00+00:00"),
                "ahead": ahead,
                "now": now.isoformat(),
                "allowed": ", ".join(events.types),
                "max_dwell": f"{events.max_dwell_seconds:g}",
                "max_dwell_hours": f"{events.max_dwell_seconds / 3600:g}",
            },
        )


@dataclass(frozen=True)
class Rule:
    """One way an event is refused: the field named, the test a bad value fails, the reason given.

    In `reason`, `{value}` is the value as sent (quoted, long ones cut) and the other names come from
    `Limits.words`; the refusal reads `<field>: <reason>`.
    """

    field: str
    name: str
    broken: Callable[[Column, Limits], np.ndarray]
    reason: str


def _text_rules(field: str) -> tuple[Rule, ...]:
    return (
        Rule(field, "missing", lambda c, _: c.null, "missing ({text})"),
        Rule(field, "blank", lambda c, _: c.blank, "blank value {value} ({text})"),
    )


def _invisible(field: str) -> Rule:
    return Rule(
        field,
        "invisible",
        lambda c, _: _bools(pc.match_substring_regex(c.text, INVISIBLE_PATTERN)),
        "holds an invisible or direction-changing character ({visible})",
    )


def _id_rules(field: str) -> tuple[Rule, ...]:
    return (*_text_rules(field), _invisible(field))


RULES: tuple[Rule, ...] = (
    *_id_rules("event_id"),
    *_id_rules("tenant_id"),
    *_id_rules("lead_id"),
    *_id_rules("sales_id"),
    Rule("ts", "missing", lambda c, _: c.null | c.blank, "missing ({time})"),
    Rule("ts", "unparseable", lambda c, _: c.unreadable, "{value} is not a timestamp ({time})"),
    Rule("ts", "naive", lambda c, _: c.naive, "naive timestamp {value} (no time zone; {time})"),
    Rule(
        "ts",
        "too_early",
        lambda c, lim: c.number < lim.earliest_us,
        "{value} is before {earliest} (expected a real event time)",
    ),
    Rule(
        "ts",
        "too_late",
        lambda c, lim: c.number > lim.latest_us,
        "{value} is more than {ahead} after now ({now}; expected at most now + {ahead})",
    ),
    *_text_rules("event_type"),
    Rule(
        "event_type",
        "unknown",
        lambda c, lim: ~_bools(pc.is_in(c.text, value_set=lim.types)),
        "{value} is not a configured type (allowed: {allowed})",
    ),
    Rule("dwell_s", "not_finite", lambda c, _: c.unreadable, "{value} is not a finite number ({number})"),
    Rule("dwell_s", "negative", lambda c, _: c.number < 0, "{value} is negative ({number})"),
    Rule(
        "dwell_s",
        "implausible",
        lambda c, lim: c.number > lim.max_dwell_s,
        "{value} is more than {max_dwell} seconds ({max_dwell_hours} h, settings.events.max_dwell_seconds):"
        " a page left open, not read",
    ),
    _invisible("item_id"),
    _invisible("referrer_lead_id"),
)

# CRM stage changes: ids and time as for events, a stage of the configured funnel, a deal value >= 0.
STAGE_RULES: tuple[Rule, ...] = (
    *_id_rules("tenant_id"),
    *_id_rules("lead_id"),
    *_text_rules("stage"),
    Rule(
        "stage",
        "unknown",
        lambda c, lim: ~_bools(pc.is_in(c.text, value_set=lim.stages)),
        "{value} is not a stage of the funnel (allowed: {stages})",
    ),
    *(rule for rule in RULES if rule.field == "ts"),
    Rule("deal_value", "not_finite", lambda c, _: c.unreadable, "{value} is not a finite number ({amount})"),
    Rule("deal_value", "negative", lambda c, _: c.number < 0, "{value} is negative ({amount})"),
)
REJECTED_STAGE_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64()),
        pa.field("field", pa.string()),
        pa.field("reason", pa.string()),
        *(pa.field(c, pa.string()) for c in STAGE_COLUMNS),
    ]
)

# The rule `mark_duplicates` applies across events rather than within one: a later copy of an event id
# whose content differs is refused (the first copy stays), on the field event_id.
RESENT_CHANGED = (
    "{value} came before with different content; the first copy was kept (a new event needs a new event_id)"
)


class Checked(NamedTuple):
    """Contract rows (`EVENT_SCHEMA`) and refused rows (`REJECTED_SCHEMA`: 1-based row, field, reason, values)."""

    accepted: pa.Table
    rejected: pa.Table


def validate_events(
    events: pd.DataFrame | pa.Table, settings: Settings, now: pd.Timestamp | None = None, *, source: str = "events"
) -> Checked:
    """Split raw events into contract rows and refused rows with one reason each, by `RULES`.

    The one entry point: `leadradar ingest` and the service's raw events both come through here, so
    an event gets the same verdict either way. Raises `EventColumnsError` naming every missing
    required column.
    """
    names = [str(c) for c in (events.column_names if isinstance(events, pa.Table) else events.columns)]
    _require_columns(names, source)
    limits = Limits.of(settings.events, utc_now(now), consent=tuple(settings.privacy.consent_events))
    n = len(events)
    columns = {name: _read(name, _values(events, name), n) for name in EVENT_COLUMNS}
    rejections = _Rejections(n)
    for rule in RULES:
        column = columns[rule.field]
        rejections.add(rule.field, rule.broken(column, limits), _reason(rule.reason, column.raw, limits.words))

    accepted = pa.Table.from_arrays([columns[c].clean for c in EVENT_COLUMNS], schema=EVENT_SCHEMA)
    if not rejections.taken.any():
        return Checked(accepted, REJECTED_SCHEMA.empty_table())
    rows, fields, reasons = rejections.ordered()
    rejected = pa.Table.from_arrays(
        [pa.array(rows + 1, pa.int64()), fields, reasons, *(columns[c].raw(rows) for c in EVENT_COLUMNS)],
        schema=REJECTED_SCHEMA,
    )
    return Checked(accepted.filter(pa.array(~rejections.taken)), rejected)


def validate_stages(
    stages: pd.DataFrame | pa.Table, settings: Settings, now: pd.Timestamp | None = None, *, source: str = "stages"
) -> Checked:
    """Split raw CRM stage changes into contract rows (`STAGE_SCHEMA`) and refused rows, by `STAGE_RULES`."""
    names = [str(c) for c in (stages.column_names if isinstance(stages, pa.Table) else stages.columns)]
    _require_columns(names, source, STAGE_COLUMNS, STAGE_REQUIRED, STAGE_OPTIONAL)
    limits = Limits.of(settings.events, utc_now(now), settings.funnel.all_stages)
    n = len(stages)
    columns = {name: _read(name, _values(stages, name), n) for name in STAGE_COLUMNS}
    rejections = _Rejections(n)
    for rule in STAGE_RULES:
        column = columns[rule.field]
        rejections.add(rule.field, rule.broken(column, limits), _reason(rule.reason, column.raw, limits.words))
    accepted = pa.Table.from_arrays([columns[c].clean for c in STAGE_COLUMNS], schema=STAGE_SCHEMA)
    rows, fields, reasons = rejections.ordered()
    rejected = pa.Table.from_arrays(
        [pa.array(rows + 1, pa.int64()), fields, reasons, *(columns[c].raw(rows) for c in STAGE_COLUMNS)],
        schema=REJECTED_STAGE_SCHEMA,
    )
    return Checked(accepted.filter(pa.array(~rejections.taken)), rejected)


def mark_duplicates(events: pd.DataFrame | pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Flag re-sent events (all but the first per tenant and event id), and those whose content differs."""
    table = events if isinstance(events, pa.Table) else pa.Table.from_pandas(events, preserve_index=False)
    none = np.zeros(table.num_rows, dtype=bool)
    key = pc.binary_join_element_wise(*(table[c].cast(pa.string()) for c in EVENT_KEY), "\x1f")
    if pc.count_distinct(key, mode="all").as_py() == table.num_rows:
        return none, none
    keys = table.select(list(EVENT_KEY)).to_pandas()
    duplicate = keys.duplicated(keep="first").to_numpy()
    conflicting = none.copy()
    involved = np.flatnonzero(keys.duplicated(keep=False).to_numpy())
    sub = table.select(list(EVENT_COLUMNS)).take(involved).to_pandas()
    content = pd.util.hash_pandas_object(sub, index=False)
    first = content.groupby([sub[c] for c in EVENT_KEY], sort=False).transform("first")
    conflicting[involved] = duplicate[involved] & (content != first).to_numpy()
    return duplicate, conflicting


def resent_changed_reason(event_ids: pa.Array) -> pa.Array:
    """The refusal of later copies of these event ids, which came with other content (`<field>: <reason>`)."""
    reasons = _reason(RESENT_CHANGED, event_ids.take, {})(np.arange(len(event_ids)))
    return pc.binary_join_element_wise("event_id: ", reasons, "")


def read_time(values: pa.Array) -> Column:
    """A column of times read as `ts` is (UTC; naive and unparseable ones flagged), for other time columns of a file."""
    return _read_time(values)


def invisible_in(text: str) -> bool:
    """True when an id holds a character `INVISIBLE_PATTERN` refuses: the same test for values checked one by one."""
    return any(unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in text)


def utc_now(now: pd.Timestamp | None) -> pd.Timestamp:
    """`now` in UTC (the wall clock when None); a naive `now` is a caller's bug, not a guess to make."""
    if now is None:
        return pd.Timestamp.now(tz="UTC")
    now = pd.Timestamp(now)
    if now.tzinfo is None:
        raise ValueError(f"now={now} is naive; pass a time-zone-aware timestamp")
    return now.tz_convert("UTC")


# --- reading a column --------------------------------------------------------------------------


def _values(events: pd.DataFrame | pa.Table, name: str) -> pa.Array | None:
    """A column as Arrow: typed times and numbers as they are, anything else as text (as sent)."""
    if isinstance(events, pa.Table):
        return events[name].combine_chunks() if name in events.column_names else None
    if name not in events.columns:
        return None
    col = events[name]
    typed = (name == "ts" and pd.api.types.is_datetime64_any_dtype(col.dtype)) or (
        name in ("dwell_s", "deal_value")
        and pd.api.types.is_numeric_dtype(col.dtype)
        and not pd.api.types.is_bool_dtype(col.dtype)
    )
    if not typed:
        return _text(col)
    arr = pa.Array.from_pandas(col)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _read(name: str, values: pa.Array | None, n: int) -> Column:
    if name == "ts":
        return _read_time(values if values is not None else pa.nulls(n, pa.string()))
    if name in ("dwell_s", "deal_value"):
        return _read_seconds(values, n)
    if name in EVENT_COLUMNS or name in STAGE_COLUMNS:
        return _read_text(values, n)
    raise NotImplementedError(f"no reader for contract column {name!r}")  # pragma: no cover - a new column


def _read_text(values: pa.Array | None, n: int) -> Column:
    text = values.cast(pa.string()) if values is not None else pa.nulls(n, pa.string())
    trimmed = pc.utf8_trim_whitespace(text)
    blank = _bools(pc.equal(trimmed, ""))
    none = np.zeros(n, dtype=bool)
    return Column(
        clean=pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), trimmed),
        raw=text.take,
        text=trimmed,
        null=_bools(text.is_null()),
        blank=blank,
        unreadable=none,
        naive=none,
        number=np.zeros(n),
    )


def _read_time(values: pa.Array) -> Column:
    n = len(values)
    none = np.zeros(n, dtype=bool)
    blank = unparseable = naive = none
    if pa.types.is_timestamp(values.type):
        raw = _lazy_text(values)
        null = _bools(values.is_null())
        if values.type.tz is None:
            ts = pa.nulls(n, TS_TYPE)
            naive = ~null
        else:
            ts = values.cast(TS_TYPE, safe=False)
    else:
        text = values.cast(pa.string())
        raw = text.take
        trimmed = pc.utf8_trim_whitespace(text)
        null = _bools(text.is_null())
        blank = ~null & _bools(pc.equal(trimmed, ""))
        parsed = pd.to_datetime(trimmed.to_pandas(), utc=True, errors="coerce", format="ISO8601")
        ts = pa.Array.from_pandas(parsed).cast(TS_TYPE, safe=False)
        unparseable = ~(null | blank) & _bools(ts.is_null())
        naive = ~(null | blank | unparseable) & ~_bools(pc.match_substring_regex(trimmed, _ZONE_PATTERN))
    micros = ts.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    return Column(
        clean=ts,
        raw=raw,
        text=pa.nulls(n, pa.string()),
        null=null,
        blank=blank,
        unreadable=unparseable,
        naive=naive,
        number=micros,
    )


def _read_seconds(values: pa.Array | None, n: int) -> Column:
    none = np.zeros(n, dtype=bool)
    raw: Callable[[np.ndarray], pa.Array]
    if values is None:
        raw, numbers = _const_nulls, np.full(n, np.nan)
        absent = ~none
    elif pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_decimal(values.type):
        raw, numbers = _lazy_text(values), values.cast(pa.float64()).to_numpy(zero_copy_only=False)
        absent = np.isnan(numbers)
    else:
        text = values.cast(pa.string())
        raw = text.take
        trimmed = pc.utf8_trim_whitespace(text)
        present = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
        absent = _bools(present.is_null())
        try:
            numbers = present.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            numbers = pd.to_numeric(present.to_pandas(), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return Column(
        clean=pa.array(np.where(absent, np.nan, numbers), pa.float64(), from_pandas=True),
        raw=raw,
        text=pa.nulls(n, pa.string()),
        null=absent,
        blank=none,
        unreadable=~absent & ~np.isfinite(numbers),
        naive=none,
        number=numbers,
    )


def _require_columns(
    columns: list[str],
    source: str,
    contract: tuple[str, ...] = EVENT_COLUMNS,
    required: tuple[str, ...] = EVENT_REQUIRED,
    optional: tuple[str, ...] = EVENT_OPTIONAL,
) -> None:
    twice = sorted({c for c in columns if c in contract and columns.count(c) > 1})
    if twice:
        plural = len(twice) > 1
        raise EventColumnsError(
            f"{source}: column{'s' if plural else ''} {', '.join(twice)} appear{'' if plural else 's'} more than once"
            " (expected each column once)"
        )
    present = set(columns)
    missing = [c for c in required if c not in present]
    if not missing:
        return
    message = (
        f"{source}: missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        f" (required: {', '.join(required)}; optional: {', '.join(optional)})"
    )
    for c in missing:
        near = sorted(p for p in present if p.strip().lower() == c)
        if near:
            message += f"; {near[0]!r} looks like {c!r}, but column names are exact and case-sensitive"
    raise EventColumnsError(message)


# --- reasons -----------------------------------------------------------------------------------


class _Rejections:
    """The first problem of each row, in rule order, with its reason."""

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


def _reason(
    template: str, raw: Callable[[np.ndarray], pa.Array], words: dict[str, str]
) -> Callable[[np.ndarray], pa.Array]:
    """The reasons of the given rows: a rule's words with each row's value (as sent) in place of `{value}`."""
    before, marker, after = template.partition("{value}")
    before, after = before.format(**words), after.format(**words)
    if not marker:
        return lambda rows: pa.repeat(before, len(rows)).cast(pa.string())
    return lambda rows: pc.binary_join_element_wise(before, _shown(raw(rows)), after, "")


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


def _lazy_text(values: pa.Array) -> Callable[[np.ndarray], pa.Array]:
    """Typed values as text the way pandas writes them (e.g. '2026-03-01 10:00:00+08:00'), only when shown."""
    return lambda rows: _text(values.take(rows).to_pandas())


def _const_nulls(rows: np.ndarray) -> pa.Array:
    return pa.nulls(len(rows), pa.string())


def _bools(arr: pa.Array) -> np.ndarray:
    return arr.fill_null(False).to_numpy(zero_copy_only=False)


def _shown(values: pa.Array) -> pa.Array:
    """Values quoted for a reason, long ones cut short."""
    long = pc.greater(pc.utf8_length(values), _SHOWN_CHARS)
    cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(values, 0, _SHOWN_CHARS), "…", "")
    return pc.binary_join_element_wise("'", pc.if_else(long, cut, values), "'", "")


def _duration(span: timedelta) -> str:
    """A span in the largest whole unit that fits: '1 day', '36 hours', '90 minutes'."""
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{span.total_seconds():g} seconds"
