"""`POST /v1/events` and `/v1/stages`: a JSON body read straight into Arrow, checked by the one rule set, stored.

The body's shape (an object holding one list of objects, each field a JSON string or number where the
contract wants one) is checked here, so a malformed request is refused whole with field paths (422);
what a well-shaped item holds is judged by features/validation.py and the store, which quarantine it with
its reason. Columns are built with one Arrow call each; Python touches an item only to find where a
refused request went wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadradar.config import Settings
from leadradar.features.contract import EVENT_COLUMNS, STAGE_COLUMNS
from leadradar.features.store import Appended, EventStore
from leadradar.features.validation import validate_events, validate_stages

NUMBER_FIELDS = frozenset({"dwell_s", "deal_value"})


class BodyShapeError(ValueError):
    """The body is not the shape the endpoint reads: `loc` is the field path (422)."""

    def __init__(self, loc: list[str | int], message: str, kind: str = "value_error"):
        super().__init__(message)
        self.loc, self.message, self.kind = loc, message, kind


class TooManyItems(ValueError):
    """More items than `settings.store.max_events_per_request` in one request (413)."""


@dataclass(frozen=True)
class ItemKind:
    """What one endpoint takes: the body's list name, the contract columns, the rules and the store call."""

    key: str
    columns: tuple[str, ...]

    def check(self, table: pa.Table, settings: Settings, now: pd.Timestamp) -> Any:
        if self.key == "events":
            return validate_events(table, settings, now, source="request")
        return validate_stages(table, settings, now, source="request")

    def append(self, store: EventStore, checked: Any, tenant: str, now: pd.Timestamp) -> Appended:
        source = f"POST /v1/{self.key}"
        if self.key == "events":
            return store.append_events(checked, source=source, tenant=tenant, arrived=now, now=now)
        return store.append_stages(checked, source=source, tenant=tenant, arrived=now, now=now)


EVENTS = ItemKind("events", EVENT_COLUMNS)
STAGES = ItemKind("stages", STAGE_COLUMNS)


def read_items(body: bytes, kind: ItemKind, tenant: str, limit: int) -> pa.Table:
    """The body's items as one Arrow table of the contract's columns (text, or numbers where the contract
    has them), `tenant_id` filled with the key's tenant where an item leaves it out."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyShapeError(["body"], f"not JSON: {exc}", "json_invalid") from None
    if not isinstance(doc, dict):
        raise BodyShapeError(["body"], f'expected an object {{"{kind.key}": [...]}}', "dict_type")
    extra = sorted(str(k) for k in doc if k != kind.key)
    if extra:
        raise BodyShapeError(["body", extra[0]], "extra fields not permitted", "extra_forbidden")
    if kind.key not in doc:
        raise BodyShapeError(["body", kind.key], "field required", "missing")
    items = doc[kind.key]
    if not isinstance(items, list):
        raise BodyShapeError(["body", kind.key], "expected a list", "list_type")
    if len(items) > limit:
        raise TooManyItems(
            f"{len(items)} {kind.key} in one request; the limit is {limit} (settings.store.max_events_per_request):"
            " send them in several requests"
        )
    if not all(type(item) is dict for item in items):
        i = next(i for i, item in enumerate(items) if type(item) is not dict)
        raise BodyShapeError(["body", kind.key, i], "expected an object", "dict_type")
    unknown = set().union(*items) - set(kind.columns) if items else set()
    if unknown:
        i, name = next((i, k) for i, item in enumerate(items) for k in item if k in unknown)
        raise BodyShapeError(["body", kind.key, i, str(name)], "extra fields not permitted", "extra_forbidden")
    arrays = [_column(kind, name, [item.get(name) for item in items]) for name in kind.columns]
    table = pa.Table.from_arrays(arrays, names=list(kind.columns))
    filled = pc.fill_null(table["tenant_id"], pa.scalar(tenant, pa.string()))
    return table.set_column(table.schema.get_field_index("tenant_id"), "tenant_id", filled)


def _column(kind: ItemKind, name: str, values: list[Any]) -> pa.Array:
    """One column with one Arrow call; on failure, the first value that is not of the column's kind (422)."""
    if name in NUMBER_FIELDS:
        return _numbers(kind, name, values)
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowException, TypeError, ValueError, UnicodeError):
        pass
    for i, v in enumerate(values):
        if not isinstance(v, (str, type(None))):
            raise BodyShapeError(["body", kind.key, i, name], "expected a string or null", "string_type")
        if isinstance(v, str) and not _encodes(v):
            raise BodyShapeError(["body", kind.key, i, name], "not valid Unicode (a lone surrogate)", "string_unicode")
    raise BodyShapeError(["body", kind.key], f"{name}: values that cannot be read as text")  # pragma: no cover


def _numbers(kind: ItemKind, name: str, values: list[Any]) -> pa.Array:
    """A number column: JSON numbers or null (true/false are not numbers, though Arrow would read them as 1/0)."""
    if not any(type(v) is bool for v in values):
        try:
            return pa.array(values, pa.float64(), from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
    for i, v in enumerate(values):
        if type(v) is bool or not isinstance(v, (int, float, type(None))):
            raise BodyShapeError(["body", kind.key, i, name], "expected a number or null", "float_type")
    try:
        return pa.array([None if v is None else float(v) for v in values], pa.float64(), from_pandas=True)
    except OverflowError:
        i = next(i for i, v in enumerate(values) if isinstance(v, int) and abs(v) > 1e308)
        raise BodyShapeError(["body", kind.key, i, name], "a number beyond the float range", "float_type") from None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ingest(store: EventStore, kind: ItemKind, table: pa.Table, tenant: str, settings: Settings) -> dict[str, Any]:
    """Check and store one request's items for the key's tenant; the answer, sent only after the commit."""
    now = pd.Timestamp.now(tz="UTC")
    done = kind.append(store, kind.check(table, settings, now), tenant, now)
    return answer(done)


def answer(done: Appended) -> dict[str, Any]:
    """The contract's answer: counts that reconcile, and each refused item's 0-based index, field and reason."""
    return {
        "received": done.received,
        "stored": done.stored,
        "duplicate": done.duplicate,
        "quarantined": done.quarantined,
        "refused": [{"index": r.index, "field": r.field, "reason": r.reason} for r in done.refusals],
    }
