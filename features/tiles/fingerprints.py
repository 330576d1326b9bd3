"""What a kept tile or row was computed from, cheaply: per-day fingerprints of events and stages, and a key of
the code and settings.

An event's day fingerprint is its count, a sum of its row's hashes (every column the features read) and a sum
of its times. The whole row, not only its id: the event store never changes an event in place (a re-sent id is a
no-op; forgetting a lead deletes), but an events file given to `features build` can be corrected in place (an
event type mapped again, a dwell time fixed, the same ids and times), and its days must then be computed again.
"""

from __future__ import annotations

import hashlib
import json

import ibis
import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.engines import hash64
from leadradar.features.grid import DEDUP_COLUMNS
from leadradar.features.registry import definition_settings, feature_code_digest
from leadradar.features.tiles.partials import day_bucket

MODULUS = 1_000_000_007  # sums of hashes stay within 64 bits on every engine


def _hashed(value: ir.Value, table: ir.Table) -> ir.IntegerValue:
    return (hash64(value, table) % MODULUS).cast("int64")


def day_fingerprints(events: ir.Table, tod_us: int) -> dict[int, list[int]]:
    """Per day of the events: [rows, sum of row hashes, sum of times], each hash and time taken modulo `MODULUS`.
    Sums: a day's fingerprint is the sum of its parts' (features/tiles/groups.py adds row groups')."""
    return _per_day(fingerprint_rows(events, tod_us))


def fingerprint_rows(events: ir.Table, tod_us: int, by: tuple[str, ...] = ()) -> ir.Table:
    """The query of `day_fingerprints`: a row per day (and value of the columns `by`), (*by, bucket, rows, hsum,
    usum)."""
    ev = events.select(*DEDUP_COLUMNS, *by)
    row = _hashed(ibis.struct({c: ev[c] for c in DEDUP_COLUMNS}), ev)
    ev = ev.mutate(bucket=day_bucket(ev.us, tod_us), h=row, t=ev.us % MODULUS)
    return ev.group_by([*by, "bucket"]).aggregate(rows=ev.count(), hsum=ev.h.sum(), usum=ev.t.sum())


def stage_fingerprints(stages: ir.Table, tod_us: int) -> dict[int, list[int]]:
    """Per day of the stage rows: [rows, sum of the rows' hashes, sum of times]."""
    row = _hashed(ibis.struct({c: stages[c] for c in ("tenant_id", "lead_id", "stage", "us")}), stages)
    st = stages.mutate(bucket=day_bucket(stages.us, tod_us), h=row, t=stages.us % MODULUS)
    return _per_day(st.group_by("bucket").aggregate(rows=st.count(), hsum=st.h.sum(), usum=st.t.sum()))


def _per_day(table: ir.Table) -> dict[int, list[int]]:
    data = table.to_pyarrow().to_pydict()
    return {int(b): [int(r), int(h), int(u)] for b, r, h, u in zip(*data.values(), strict=True)}


def table_fingerprint(table: ir.Table | None) -> list[int]:
    """A whole (small) table's rows and sum of row hashes; [] for no table."""
    if table is None:
        return []
    t = table.mutate(h=_hashed(ibis.struct({c: table[c] for c in table.columns}), table))
    row = t.aggregate(rows=t.count(), hsum=t.h.sum()).to_pyarrow().to_pylist()[0]
    return [int(row["rows"]), int(row["hsum"] or 0)]


def code_key(settings: Settings) -> str:
    """The feature code (every source file of leadradar.features) and the settings the features read (events,
    funnel, features): kept rows follow both, not the rest (a scheduler and a person with another data directory or
    other training options share them)."""
    return hashlib.sha256((definition_settings(settings) + feature_code_digest()).encode()).hexdigest()


def as_of_digest(static: object, days: dict[str, dict[int, list[int]]], bucket: int) -> str:
    """A digest of everything a row at a cutoff ending day `bucket` reads: the static inputs and each input's
    fingerprints of the days up to that one (rows are as of their cutoff, so later days cannot change them)."""
    upto = {name: sorted((b, fp) for b, fp in per_day.items() if b <= bucket) for name, per_day in days.items()}
    return hashlib.sha256(json.dumps([static, upto]).encode()).hexdigest()
