"""`EventStore`: append validated events and stage changes once each, keep what is refused, read the log back.

Appending is idempotent by (tenant_id, event_id): a re-sent event is counted as a duplicate and stored
once; a re-send with the same id and other content is quarantined with that reason and the first copy
stays. A batch is answered only after its transaction commits (SQLite: WAL, `synchronous=FULL` by
default), so an acknowledged event survives `kill -9`. Each event keeps when it arrived, so the log can be
read as the service saw it (an event counts from the later of its time and its arrival) or by event time.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess  # nosec B404 # our own script, in this interpreter (`_arrow_columns`)
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from leadradar.config import Settings, sqlite_file
from leadradar.errors import InputError
from leadradar.features.contract import EVENT_COLUMNS, EVENT_SCHEMA, STAGE_COLUMNS, STAGE_SCHEMA, TS_TYPE
from leadradar.features.cutoffs import epoch_us
from leadradar.features.store.mirror import SCHEMA as COPY_SCHEMA
from leadradar.features.store.mirror import LogMirror, drop, mirror_dir
from leadradar.features.store.tables import (
    CATALOG,
    EVENTS,
    METADATA,
    NAME_KINDS,
    NAMES,
    QUARANTINE,
    STAGES,
    engine_for,
)
from leadradar.features.validation import Checked, mark_duplicates, resent_changed_reason, utc_now

log = logging.getLogger(__name__)

# Event columns stored as a code into `names`, with the kind of name each holds.
_EVENT_CODED = {
    "tenant_id": "tenant",
    "lead_id": "lead",
    "sales_id": "sales",
    "event_type": "event_type",
    "item_id": "item",
    "referrer_lead_id": "lead",
    "channel": "channel",
}
# The same columns as the events table stores them.
_CODED_COLUMNS = ("tenant", "lead", "sales", "event_type", "item", "referrer", "channel")
_KIND = {kind: i for i, kind in enumerate(NAME_KINDS)}
_US = 1_000_000
_CONTENT = ("lead", "sales", "us", "event_type", "dwell_s", "item", "referrer", "channel")
# An events row as appended: these columns, in this order.
_COLUMNS = (
    "event_id",
    "tenant",
    "lead",
    "sales",
    "us",
    "event_type",
    "dwell_s",
    "item",
    "referrer",
    "channel",
    "arrived_s",
)
_NO_LIMIT = int(np.iinfo(np.int64).max)  # a bound that keeps every row
# Leads' event counts and newest log positions, by the (tenant, lead, us) index; built once, compiled once. One
# lead's has no grouping (SQLite sorts the groups of the other: 0.64 ms against 0.44 at 5,000 events).
_LEAD_MARK = sa.select(sa.func.count(), sa.func.max(EVENTS.c.seq)).where(
    EVENTS.c.tenant == sa.bindparam("tenant"), EVENTS.c.lead == sa.bindparam("lead")
)
_LEAD_MARKS = (
    sa.select(EVENTS.c.lead, sa.func.count(), sa.func.max(EVENTS.c.seq))
    .where(EVENTS.c.tenant == sa.bindparam("tenant"), EVENTS.c.lead.in_(sa.bindparam("leads", expanding=True)))
    .group_by(EVENTS.c.lead)
)
# SQLite counts the events ever deleted or rewritten (forget, retention, by hand), so that one cheap question, the
# newest log position and that count (`log_position`), tells a reader whether anything stored changed since.
_SQLITE_REWRITES = (
    "CREATE TABLE IF NOT EXISTS event_rewrites (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO event_rewrites (id, n) VALUES (1, 0)",
    "CREATE TRIGGER IF NOT EXISTS events_deleted AFTER DELETE ON events "
    "BEGIN UPDATE event_rewrites SET n = n + 1 WHERE id = 1; END",
    "CREATE TRIGGER IF NOT EXISTS events_updated AFTER UPDATE ON events "
    "BEGIN UPDATE event_rewrites SET n = n + 1 WHERE id = 1; END",
)
_FEW_CODES = 64  # codes decoded by lookup, not by `take`
_NAMES_BY_CODE = 5000  # names looked up by code in one query; more: every name read
_ARROW_READ = Path(__file__).with_name("arrow_read.py")  # run as a script by `_arrow_columns`
_LOG_POSITION = "SELECT (SELECT max(seq) FROM events), (SELECT n FROM event_rewrites WHERE id = 1)"
_EVENT_COLUMNS = [
    EVENTS.c[c]
    for c in ("tenant", "event_id", "lead", "sales", "us", "event_type", "dwell_s", "item", "referrer", "channel")
] + [EVENTS.c.arrived_s]
# Some leads' events by a time and in a stretch of the log, as scoring reads them; built once, compiled once.
_LEAD_EVENTS = (
    sa.select(*_EVENT_COLUMNS, EVENTS.c.seq)
    .where(
        EVENTS.c.tenant == sa.bindparam("tenant"),
        EVENTS.c.lead.in_(sa.bindparam("leads", expanding=True)),
        EVENTS.c.us <= sa.bindparam("until"),
        EVENTS.c.seq > sa.bindparam("after"),
        EVENTS.c.seq <= sa.bindparam("upto"),
    )
    .order_by(EVENTS.c.seq)
)
# The same by log position: `+ 0` keeps the (tenant, lead) index out of the plan on SQLite and PostgreSQL alike.
_LEAD_EVENTS_BY_LOG = (
    sa.select(*_EVENT_COLUMNS, EVENTS.c.seq)
    .where(
        EVENTS.c.seq > sa.bindparam("after"),
        EVENTS.c.seq <= sa.bindparam("upto"),
        EVENTS.c.tenant + 0 == sa.bindparam("tenant"),
        (EVENTS.c.lead + 0).in_(sa.bindparam("leads", expanding=True)),
        EVENTS.c.us <= sa.bindparam("until"),
    )
    .order_by(EVENTS.c.seq)
)
# Some leads' stage changes by a time, as scoring reads them per request; built once, compiled once.
_LEAD_STAGES = (
    sa.select(STAGES.c.tenant, STAGES.c.lead, STAGES.c.stage, STAGES.c.us, STAGES.c.deal_value)
    .where(
        STAGES.c.tenant == sa.bindparam("tenant"),
        STAGES.c.lead.in_(sa.bindparam("leads", expanding=True)),
        STAGES.c.us <= sa.bindparam("until"),
    )
    .order_by(STAGES.c.seq)
)
_CONTENT_AT = tuple(_COLUMNS.index(c) for c in _CONTENT)
# Statements built from the fixed column names above only; every value is a bound parameter.
_SQLITE_INSERT = f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"  # nosec B608
_PG_TYPES = ("text", "int", "int", "int", "bigint", "int", "float8", "int", "int", "int", "int")
_PG_INSERT = (
    f"INSERT INTO events ({', '.join(_COLUMNS)}) SELECT * FROM unnest("  # nosec B608
    + ", ".join(f"%s::{t}[]" for t in _PG_TYPES)
    + ") ON CONFLICT (tenant, event_id) DO NOTHING RETURNING tenant, event_id"
)


@dataclass(frozen=True)
class Refusal:
    """One item of a request that was not stored: its 0-based index in the request, the field and why."""

    index: int
    field: str
    reason: str


@dataclass(frozen=True)
class Moved:
    """A lead whose history changed, and the newest of its events that did it."""

    tenant_id: str
    lead_id: str
    event_id: str
    ts: pd.Timestamp


@dataclass
class Appended:
    """What one append did: received = stored + duplicate + quarantined, always."""

    received: int = 0
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0
    refusals: list[Refusal] = field(default_factory=list)
    # (tenant_id, lead_id) of every lead whose stored history this append changed.
    leads: list[tuple[str, str]] = field(default_factory=list)

    def check(self) -> Appended:
        if self.received != self.stored + self.duplicate + self.quarantined:
            raise AssertionError(
                f"append does not reconcile: received {self.received} != stored {self.stored}"
                f" + duplicate {self.duplicate} + quarantined {self.quarantined}"
            )
        return self


class EventStore:
    """The radar log in SQL: SQLite under the data directory by default, PostgreSQL by URL."""

    def __init__(self, url: str, settings: Settings):
        self.url = url
        self.settings = settings
        self.engine = engine_for(url)
        self.sqlite = self.engine.dialect.name == "sqlite"
        if self.sqlite:
            _sqlite_pragmas(self.engine, settings, immediate=True)
            self.reader = engine_for(url)
            _sqlite_pragmas(self.reader, settings, immediate=False)
        else:
            self.reader = self.engine
        METADATA.create_all(self.engine)
        if self.sqlite:
            with self.engine.begin() as conn:
                for statement in _SQLITE_REWRITES:
                    conn.exec_driver_sql(statement)
        self._lock = threading.Lock()
        self._loading = threading.Lock()  # one read of names at a time (`_decode`)
        self._codes: dict[tuple[int, str], int] = {}
        self._raw_sql: dict[tuple[int, int], tuple[str, tuple[str, ...], dict[str, Any]]] = {}
        self._names: dict[int, str] = {}
        self._by_code: pa.Array | None = None
        # Names this process's open write transaction added to the cache (forgotten again if it rolls back).
        self._interned: list[tuple[int, str]] = []

    @classmethod
    def open(cls, settings: Settings) -> EventStore:
        """The store the settings name (`store.url`, or `events.db` under the data directory)."""
        settings.ensure_dirs()
        return cls(settings.event_store_url, settings)

    def close(self) -> None:
        self.engine.dispose()
        self.reader.dispose()

    # --- writing ---------------------------------------------------------------------------------

    def append_events(
        self,
        checked: Checked,
        *,
        source: str,
        tenant: str | None = None,
        arrived: pd.Timestamp | np.ndarray | None = None,
        now: pd.Timestamp | None = None,
    ) -> Appended:
        """Store the accepted events that are new, count re-sends, quarantine the refused and the conflicting.

        `tenant` restricts the batch to one tenant (an API key's): events of another are refused.
        `arrived` is when the events arrived: one time for the batch (the service: now), one per row sent
        (whole seconds, -1 unknown), or None for a backfilled log whose events arrived when they happened.
        """
        now = utc_now(now)
        accepted, rejected = checked
        n = accepted.num_rows + rejected.num_rows
        index = _accepted_index(n, rejected)
        result = Appended(received=n)
        quarantine = _rejected_rows(rejected, "event", source, tenant)
        keep = np.ones(accepted.num_rows, dtype=bool)
        if tenant is not None and accepted.num_rows:
            other = ~pc.equal(accepted["tenant_id"], tenant).to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(other):
                quarantine.append(
                    _refused(
                        int(index[i]),
                        "tenant_id",
                        f"tenant_id: {accepted['tenant_id'][i].as_py()!r} is not this key's tenant {tenant!r}",
                        _row_json(accepted, i),
                        "event",
                        source,
                        tenant,
                    )
                )
            keep &= ~other
        duplicate, conflicting = mark_duplicates(accepted)
        for i in np.flatnonzero(keep & conflicting):
            quarantine.append(
                _refused(
                    int(index[i]),
                    "event_id",
                    _resent_changed(accepted, i),
                    _row_json(accepted, i),
                    "event",
                    source,
                    tenant,
                )
            )
        result.duplicate += int((keep & duplicate & ~conflicting).sum())
        firsts = np.flatnonzero(keep & ~duplicate)
        seconds = _arrival_seconds(arrived, now, index, firsts)
        sub = accepted.take(firsts)
        with self._write() as conn:
            rows = self._event_rows(conn, sub, seconds)
            inserted = self._insert_new(conn, rows)
            resent = [j for j, row in enumerate(rows) if not inserted[j]]
            previous = self._stored_content(conn, [(rows[j][1], rows[j][0]) for j in resent])
            for j in resent:
                row = rows[j]
                first = previous.get((row[1], row[0]))
                if first is not None and first == tuple(row[c] for c in _CONTENT_AT):
                    result.duplicate += 1
                    continue
                k = int(firsts[j])
                quarantine.append(
                    _refused(
                        int(index[k]),
                        "event_id",
                        _resent_changed(accepted, k),
                        _row_json(accepted, k),
                        "event",
                        source,
                        tenant,
                    )
                )
            result.stored = int(inserted.sum())
            self._quarantine(conn, quarantine, now)
        new = pa.array(inserted)
        stored_leads = set(zip(sub["tenant_id"].filter(new).to_pylist(), sub["lead_id"].filter(new).to_pylist()))
        result.quarantined = len(quarantine)
        result.refusals = sorted(
            (Refusal(q["row"], q["field"], q["reason"]) for q in quarantine), key=lambda r: r.index
        )
        result.leads = sorted(stored_leads)
        return result.check()

    def append_stages(
        self,
        checked: Checked,
        *,
        source: str,
        tenant: str | None = None,
        arrived: pd.Timestamp | None = None,
        now: pd.Timestamp | None = None,
    ) -> Appended:
        """Store the new stage changes; the same change (tenant, lead, stage, time) sent again is a duplicate."""
        now = utc_now(now)
        accepted, rejected = checked
        n = accepted.num_rows + rejected.num_rows
        index = _accepted_index(n, rejected)
        result = Appended(received=n)
        quarantine = _rejected_rows(rejected, "stage", source, tenant)
        frame = accepted.to_pandas()
        keep = np.ones(len(frame), dtype=bool)
        if tenant is not None:
            other = (frame["tenant_id"] != tenant).to_numpy()
            for i in np.flatnonzero(other):
                quarantine.append(
                    _refused(
                        int(index[i]),
                        "tenant_id",
                        f"tenant_id: {frame['tenant_id'].iat[i]!r} is not this key's tenant {tenant!r}",
                        _row_json(accepted, i),
                        "stage",
                        source,
                        tenant,
                    )
                )
            keep &= ~other
        same = frame.duplicated(subset=["tenant_id", "lead_id", "stage", "ts"], keep="first").to_numpy()
        result.duplicate += int((keep & same).sum())
        firsts = np.flatnonzero(keep & ~same)
        arrived_s = None if arrived is None else int(np.ceil(pd.Timestamp(arrived).timestamp()))
        with self._write() as conn:
            sub = frame.iloc[firsts]
            codes = {
                col: self._intern(conn, kind, sub[col].tolist())
                for col, kind in (("tenant_id", "tenant"), ("lead_id", "lead"), ("stage", "stage"))
            }
            rows = [
                {
                    "tenant": codes["tenant_id"][j],
                    "lead": codes["lead_id"][j],
                    "stage": codes["stage"][j],
                    "us": epoch_us(sub["ts"].iat[j]),
                    "deal_value": None if pd.isna(sub["deal_value"].iat[j]) else float(sub["deal_value"].iat[j]),
                    "arrived_s": arrived_s,
                }
                for j in range(len(sub))
            ]
            stmt = (
                self._insert(STAGES)
                .on_conflict_do_nothing(index_elements=["tenant", "lead", "stage", "us"])
                .returning(STAGES.c.tenant, STAGES.c.lead, STAGES.c.stage, STAGES.c.us)
            )
            done: set[tuple[int, int, int, int]] = set()
            for start in range(0, len(rows), 1000):
                done.update(tuple(r) for r in conn.execute(stmt, rows[start : start + 1000]))
            inserted = 0
            stored_leads: set[tuple[str, str]] = set()
            for j, row in enumerate(rows):
                if (row["tenant"], row["lead"], row["stage"], row["us"]) in done:
                    inserted += 1
                    stored_leads.add((sub["tenant_id"].iat[j], sub["lead_id"].iat[j]))
                else:
                    result.duplicate += 1
            result.stored = inserted
            self._quarantine(conn, quarantine, now)
        result.quarantined = len(quarantine)
        result.refusals = sorted(
            (Refusal(q["row"], q["field"], q["reason"]) for q in quarantine), key=lambda r: r.index
        )
        result.leads = sorted(stored_leads)
        return result.check()

    def put_catalog(self, part: str, frame: pd.DataFrame, key: str) -> int:
        """Keep the latest copy of each row of a whole-table part (`items` by item_id, `leads` by lead_id)."""
        rows = [
            {
                "part": part,
                "tenant_id": str(rec["tenant_id"]),
                "key": str(rec[key]),
                "body": json.dumps({k: _plain(v) for k, v in rec.items()}, ensure_ascii=False),
            }
            for rec in frame.to_dict("records")
        ]
        with self._write() as conn:
            for row in rows:
                stmt = self._insert(CATALOG).values(**row)
                conn.execute(
                    stmt.on_conflict_do_update(index_elements=["part", "tenant_id", "key"], set_={"body": row["body"]})
                )
        return len(rows)

    # --- reading ---------------------------------------------------------------------------------

    def events(
        self,
        tenant: str | None = None,
        *,
        leads: Sequence[str] | None = None,
        until: pd.Timestamp | None = None,
        as_seen: bool = False,
        types: Sequence[str] | None = None,
        after_seq: int | None = None,
        upto_seq: int | None = None,
        event_ids: Sequence[str] | None = None,
        by_log: bool = False,
    ) -> pa.Table:
        """The stored events as a contract table (`EVENT_SCHEMA`), optionally one tenant's and some leads'.

        `as_seen` places each event at the later of its time and its arrival, as the service saw the log;
        `until` keeps events that count by then; `types` only events of these types (a tenant's consent events);
        `after_seq`/`upto_seq` those stored in that stretch of the log (what a reader that kept a lead's history
        has not seen); `event_ids` those with these ids; `by_log` (with both log positions) walks that stretch of
        the log instead of the leads' index, cheaper when it is shorter than their histories.
        """
        if tenant is not None and leads is not None and types is None and event_ids is None and not as_seen:
            data = self._lead_events(tenant, leads, until, after_seq, upto_seq, by_log)
        else:
            data = self._events_data(tenant, leads, until, as_seen, types, after_seq, upto_seq, event_ids)
        return self._event_table(data, as_seen)

    def whole_log(
        self, tenant: str | None = None, *, until: pd.Timestamp | None = None, as_seen: bool = False
    ) -> tuple[pa.Table, tuple[tuple[str, int], ...] | None]:
        """`events(tenant, until=, as_seen=)`, and when they are every event of the log's copy (no tenant or time
        left any out), the stretches they are made of, in order: a key for each (its part of the copy, which never
        changes, and how its times were taken) and its rows. A nightly build keeps what it computed of each
        (features/tiles/groups.py); None when the log was read otherwise."""
        copy = self._mirrored()
        if copy is None:
            return self.events(tenant, until=until, as_seen=as_seen), None
        table, parts = copy
        events = self._event_table(self._log_columns(table, tenant, until, as_seen), as_seen)
        if events.num_rows != table.num_rows:  # a tenant's or an earlier window: not the parts' rows
            return events, None
        seen = "as-seen" if as_seen else "event-time"
        return events, tuple((f"{name}:{seen}", rows) for name, rows in parts)

    def lead_histories(
        self,
        tenant: str,
        leads: Sequence[str],
        *,
        after_seq: int | None = None,
        upto_seq: int | None = None,
        by_log: bool = False,
    ) -> tuple[pa.Table, np.ndarray]:
        """Named leads' stored events in log order, with each one's log position: kept histories read in one
        query, each lead's mark (count, newest position) taken from the very rows read. `after_seq`, `upto_seq`
        and `by_log` as for `events`: what a kept history has not seen."""
        data = self._lead_events(tenant, leads, None, after_seq, upto_seq, by_log)
        if data is None:
            return EVENT_SCHEMA.empty_table(), np.empty(0, np.int64)
        return self._event_table(data), np.array(data[11], dtype=np.int64)

    def _event_table(self, data: list[Sequence[Any]] | None, as_seen: bool = False) -> pa.Table:
        """Read event columns (`_EVENT_COLUMNS` order) as a contract table, names decoded."""
        if data is None:
            return EVENT_SCHEMA.empty_table()
        us = _as_arrow(data[4], pa.int64())
        if as_seen and len(us):  # in Arrow, chunk by chunk: a whole log's copy is not joined into one array
            us = pc.max_element_wise(us, pc.multiply(pc.fill_null(_as_arrow(data[10], pa.int64()), 0), _US))
        return pa.Table.from_arrays(
            [
                _as_arrow(data[1], pa.string()),
                self._decode(data[0]),
                self._decode(data[2]),
                self._decode(data[3]),
                pc.cast(us, TS_TYPE),
                self._decode(data[5]),
                _as_arrow(data[6], pa.float64()),
                self._decode(data[7]),
                self._decode(data[8]),
                self._decode(data[9]),
            ],
            schema=EVENT_SCHEMA,
        )

    def _lead_events(
        self,
        tenant: str,
        leads: Sequence[str],
        until: pd.Timestamp | None,
        after_seq: int | None,
        upto_seq: int | None,
        by_log: bool = False,
    ) -> list[Sequence[Any]] | None:
        """Named leads' event columns (what scoring and kept histories read)."""
        params = {
            "until": epoch_us(until) if until is not None else _NO_LIMIT,
            "after": after_seq if after_seq is not None else -1,
            "upto": upto_seq if upto_seq is not None else _NO_LIMIT,
        }
        by_log = by_log and after_seq is not None and upto_seq is not None
        return self._named(_LEAD_EVENTS_BY_LOG if by_log else _LEAD_EVENTS, tenant, leads, params, 12)

    def _named(
        self, statement: Any, tenant: str, leads: Sequence[str], params: dict[str, int], width: int
    ) -> list[Sequence[Any]] | None:
        """The columns of a statement compiled once, over one tenant's named leads (None: no name was ever stored).

        On SQLite, with every name's code known, the statement runs on the driver's own connection: a scoring
        request's stage read took 130 us through a SQLAlchemy connection, 41 us so (one lead, a loop of 500)."""
        known = [self._codes.get((_KIND["tenant"], tenant)), *(self._codes.get((_KIND["lead"], x)) for x in leads)]
        rows: Sequence[Any]
        if self.sqlite and None not in known:
            rows = self._raw_rows(statement, {"tenant": known[0], "leads": known[1:], **params})
        else:
            with self.reader.connect() as conn:
                code = self._code_of(conn, "tenant", tenant)
                codes = [c for c in (self._code_of(conn, "lead", lead) for lead in leads) if c is not None]
                if code is None or not codes:
                    return None
                rows = conn.execute(statement, {"tenant": code, "leads": codes, **params}).all()
        return list(zip(*rows)) if rows else [() for _ in range(width)]

    def _raw_rows(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        """A named-lead statement's rows by the SQLite driver: its SQL compiled once per count of leads."""
        key = (id(statement), len(params["leads"]))
        if key not in self._raw_sql:
            state = statement.compile(dialect=self.reader.dialect).construct_expanded_state(params)
            order = tuple(state.positiontup or ())
            fixed = {k: v for k, v in state.parameters.items() if k not in params and not k.startswith("leads_")}
            self._raw_sql[key] = (state.statement, order, fixed)  # `fixed`: the literals, as `+ 0`
        sql, order, fixed = self._raw_sql[key]
        values = {**fixed, **params, **{f"leads_{i}": c for i, c in enumerate(params["leads"], 1)}}
        return self._driver_rows(sql, [values[k] for k in order])

    def _driver_rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """A statement's rows by the driver's own cursor on a pooled connection: no SQLAlchemy session round or row
        objects (a log position in 10 us where a session's round took 95; 250 k names in 0.22 s against 0.58 s)."""
        raw = self.reader.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            raw.close()

    def _events_data(
        self,
        tenant: str | None,
        leads: Sequence[str] | None,
        until: pd.Timestamp | None,
        as_seen: bool,
        types: Sequence[str] | None,
        after_seq: int | None,
        upto_seq: int | None,
        event_ids: Sequence[str] | None,
    ) -> list[Sequence[Any]] | None:
        whole_log = leads is None and types is None and event_ids is None and after_seq is None and upto_seq is None
        if whole_log and (copy := self._mirrored()) is not None:
            return self._log_columns(copy[0], tenant, until, as_seen)
        query = self._scoped(sa.select(*_EVENT_COLUMNS).order_by(EVENTS.c.seq), EVENTS, tenant, leads)
        if query is not None and types is not None:
            with self.reader.connect() as conn:
                codes = [c for c in (self._code_of(conn, "event_type", t) for t in types) if c is not None]
            if not codes:
                return None
            query = query.where(EVENTS.c.event_type.in_(codes))
        if query is None:
            return None
        if after_seq is not None:
            query = query.where(EVENTS.c.seq > after_seq)
        if upto_seq is not None:
            query = query.where(EVENTS.c.seq <= upto_seq)
        if event_ids is not None:
            query = query.where(EVENTS.c.event_id.in_(list(event_ids)))
        if until is not None:
            until_us = epoch_us(until)
            query = query.where(EVENTS.c.us <= until_us)
            if as_seen:
                query = query.where(sa.or_(EVENTS.c.arrived_s.is_(None), EVENTS.c.arrived_s <= until_us // _US))
        return self._fetch(query, 11, few=leads is not None, arrow=EVENTS)

    def _mirrored(self) -> tuple[pa.Table, list[tuple[str, int]]] | None:
        """A long SQLite log's events (every stored column, in log order) from its copy in Arrow files, brought up to
        the newest log position first (features/store/mirror.py), with the copy's parts they are (name, rows); None
        when the log is read from the database instead: PostgreSQL (its log positions can commit out of order), an
        in-memory database, a short log, `store.mirror` off."""
        database = sqlite_file(self.url)
        if not self.settings.store.mirror or database is None:
            return None
        position = self.log_position()
        if position is None or position[0] < self.settings.store.arrow_read_rows:
            return None
        folder = mirror_dir(database)
        try:
            return LogMirror(folder).table(*position, self._log_stretch, self._event_id_at)
        except (OSError, InputError) as exc:  # a cache: a folder that cannot be written (a full disk, read-only)
            why = getattr(exc, "strerror", None) or exc
            log.warning("%s: the log's copy cannot be kept there (%s); reading the log from the database", folder, why)
            return None

    def _log_stretch(self, after: int, upto: int) -> pa.Table:
        """The events stored at log positions after `after` up to `upto`, as the copy keeps them (a long stretch, the
        first copy's whole log, by ADBC)."""
        query = (
            sa.select(*_EVENT_COLUMNS, EVENTS.c.seq)
            .where(EVENTS.c.seq > after, EVENTS.c.seq <= upto)
            .order_by(EVENTS.c.seq)
        )
        long = upto - after >= self.settings.store.arrow_read_rows  # a night's events: a child's start costs more
        data = self._fetch(query, len(COPY_SCHEMA), arrow=EVENTS if long else None)
        columns = [
            self._decode(column) if f.name in _CODED_COLUMNS else _as_arrow(column, f.type)
            for column, f in zip(data, COPY_SCHEMA, strict=True)
        ]
        return pa.Table.from_arrays(columns, schema=COPY_SCHEMA)

    def _event_id_at(self, seq: int) -> str | None:
        with self.reader.connect() as conn:
            return conn.execute(sa.select(EVENTS.c.event_id).where(EVENTS.c.seq == seq)).scalar()

    def _log_columns(
        self, copy: pa.Table, tenant: str | None, until: pd.Timestamp | None, as_seen: bool
    ) -> list[Sequence[Any]] | None:
        """The copy's rows that the whole-log query of `_events_data` keeps, as its columns (the same filters)."""
        keep = []
        if tenant is not None:
            keep.append(pc.equal(copy["tenant"], tenant))
        if until is not None:
            until_us = epoch_us(until)
            keep.append(pc.less_equal(copy["us"], until_us))
            if as_seen:
                arrived = copy["arrived_s"]
                keep.append(pc.or_kleene(pc.is_null(arrived), pc.less_equal(arrived, until_us // _US)))
        rows = copy.filter(functools.reduce(pc.and_, keep)) if keep else copy
        return [rows.column(i) for i in range(len(_EVENT_COLUMNS))]

    def drop_mirror(self) -> None:
        """The copy of the log removed (forgetting, retention: it holds the events they delete)."""
        database = sqlite_file(self.url)
        if database is not None:
            drop(mirror_dir(database))

    def stages(
        self, tenant: str | None = None, *, leads: Sequence[str] | None = None, until: pd.Timestamp | None = None
    ) -> pa.Table:
        """The stored stage changes as a contract table (`STAGE_SCHEMA`)."""
        if tenant is not None and leads is not None:
            data = self._lead_stages(tenant, leads, until)
        else:
            data = self._all_stages(tenant, leads, until)
        if data is None:
            return STAGE_SCHEMA.empty_table()
        return pa.Table.from_arrays(
            [
                self._decode(data[0]),
                self._decode(data[1]),
                self._decode(data[2]),
                pa.array(data[3], pa.int64()).cast(TS_TYPE),
                pa.array(data[4], pa.float64(), from_pandas=True),
            ],
            schema=STAGE_SCHEMA,
        )

    def _lead_stages(self, tenant: str, leads: Sequence[str], until: pd.Timestamp | None) -> list[Sequence[Any]] | None:
        """Named leads' stage columns (a scoring request's read)."""
        until_us = epoch_us(until) if until is not None else _NO_LIMIT
        return self._named(_LEAD_STAGES, tenant, leads, {"until": until_us}, 5)

    def _all_stages(
        self, tenant: str | None, leads: Sequence[str] | None, until: pd.Timestamp | None
    ) -> list[Sequence[Any]] | None:
        query = sa.select(STAGES.c.tenant, STAGES.c.lead, STAGES.c.stage, STAGES.c.us, STAGES.c.deal_value).order_by(
            STAGES.c.seq
        )
        query = self._scoped(query, STAGES, tenant, leads)
        if query is None:
            return None
        if until is not None:
            query = query.where(STAGES.c.us <= epoch_us(until))
        return self._fetch(query, 5, few=leads is not None, arrow=STAGES)

    def catalog(self, part: str, tenant: str | None = None) -> pd.DataFrame | None:
        """A whole-table part as stored (None when nothing was stored for it)."""
        query = sa.select(CATALOG.c.body).where(CATALOG.c.part == part)
        if tenant is not None:
            query = query.where(CATALOG.c.tenant_id == tenant)
        with self.reader.connect() as conn:
            bodies = conn.execute(query).scalars().all()
        return pd.DataFrame([json.loads(b) for b in bodies]) if bodies else None

    def timeline(self, tenant: str, lead: str, *, limit: int = 50, before_seq: int | None = None) -> pd.DataFrame:
        """A lead's events newest first, with when each arrived and its place in the log (`seq`), for paging."""
        query = (
            sa.select(
                EVENTS.c.seq,
                EVENTS.c.event_id,
                EVENTS.c.us,
                EVENTS.c.event_type,
                EVENTS.c.sales,
                EVENTS.c.dwell_s,
                EVENTS.c.item,
                EVENTS.c.channel,
                EVENTS.c.arrived_s,
            )
            .order_by(EVENTS.c.us.desc(), EVENTS.c.seq.desc())
            .limit(limit)
        )
        query = self._scoped(query, EVENTS, tenant, [lead])
        if query is None:
            return pd.DataFrame(
                columns=[
                    "seq",
                    "event_id",
                    "ts",
                    "event_type",
                    "sales_id",
                    "dwell_s",
                    "item_id",
                    "channel",
                    "arrived_at",
                ]
            )
        if before_seq is not None:
            query = query.where(EVENTS.c.seq < before_seq)
        data = self._fetch(query, 9)
        return pd.DataFrame(
            {
                "seq": np.array(data[0], dtype=np.int64),
                "event_id": pd.array(data[1], dtype="str"),
                "ts": pd.to_datetime(np.array(data[2], dtype=np.int64), unit="us", utc=True),
                "event_type": self._decode(data[3]).to_pandas(),
                "sales_id": self._decode(data[4]).to_pandas(),
                "dwell_s": pd.array(data[5], dtype="Float64"),
                "item_id": self._decode(data[6]).to_pandas(),
                "channel": self._decode(data[7]).to_pandas(),
                "arrived_at": pd.to_datetime(pd.Series(data[8], dtype="Float64"), unit="s", utc=True),
            }
        )

    def changed_since(self, seq: int, limit: int = 100_000) -> tuple[int, list[tuple[str, str]]]:
        """Leads with events stored after log position `seq`, and the position read up to."""
        upto, moved = self.moves_since(seq, limit)
        return upto, [(m.tenant_id, m.lead_id) for m in moved]

    def moves_since(self, seq: int, limit: int = 100_000) -> tuple[int, list[Moved]]:
        """Like `changed_since`, with each lead's newest event after `seq` (the last to arrive): what a
        rescoring names as the event that moved the lead's score."""
        query = (
            sa.select(EVENTS.c.seq, EVENTS.c.tenant, EVENTS.c.lead, EVENTS.c.event_id, EVENTS.c.us)
            .where(EVENTS.c.seq > seq)
            .order_by(EVENTS.c.seq)
            .limit(limit)
        )
        data = self._fetch(query, 5)
        if not data[0]:
            return seq, []
        tenants, leads = self._decode(data[1]).to_pylist(), self._decode(data[2]).to_pylist()
        newest: dict[tuple[str, str], Moved] = {}
        for k, (tenant, lead) in enumerate(zip(tenants, leads)):
            newest[tenant, lead] = Moved(tenant, lead, data[3][k], pd.Timestamp(data[4][k], unit="us", tz="UTC"))
        return int(max(data[0])), list(newest.values())

    def lead_marks(self, tenant: str, leads: Sequence[str]) -> dict[str, tuple[int, int]]:
        """How many events each lead has stored and the newest log position among them (a lead with none is
        left out): a reader that kept a lead's history reads only what came after, and tells a deletion by the
        count."""
        with self.reader.connect() as conn:
            code = self._code_of(conn, "tenant", tenant)
            named = {c: lead for lead in leads if (c := self._code_of(conn, "lead", lead)) is not None}
            if code is None or not named:
                return {}
            if len(named) == 1:
                lead = next(iter(named))
                rows = [(lead, *conn.execute(_LEAD_MARK, {"tenant": code, "lead": lead}).one())]
            else:
                rows = [tuple(r) for r in conn.execute(_LEAD_MARKS, {"tenant": code, "leads": list(named)})]
        return {named[lead]: (int(count), int(top)) for lead, count, top in rows if count}

    def log_position(self) -> tuple[int, int] | None:
        """The newest log position and how many events were ever deleted or rewritten: while both stay the same,
        nothing stored changed, and a reader that kept some leads' histories need not ask for their marks. None on
        PostgreSQL, whose log positions can commit out of order (a position below the newest may appear later);
        SQLite commits one writer at a time, in log order."""
        if not self.sqlite:
            return None
        rows = self._driver_rows(_LOG_POSITION)  # one statement, its own snapshot
        top, rewrites = rows[0] if rows else (None, None)
        if rewrites is None:  # the count's row removed by hand: deletions go uncounted until the store is reopened
            return None
        return int(top or 0), int(rewrites)

    def last_seq(self) -> int:
        with self.reader.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(EVENTS.c.seq), 0))).scalar_one())

    def quarantine(self, tenant: str, *, limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
        """A tenant's quarantined items, newest first: the item as received, the field and the reason."""
        query = (
            sa.select(QUARANTINE).where(QUARANTINE.c.tenant_id == tenant).order_by(QUARANTINE.c.id.desc()).limit(limit)
        )
        if before_id is not None:
            query = query.where(QUARANTINE.c.id < before_id)
        with self.reader.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["received"] = json.loads(row["received"])
            row["received_at"] = (
                pd.Timestamp(row["received_at"]).tz_localize("UTC")
                if pd.Timestamp(row["received_at"]).tzinfo is None
                else pd.Timestamp(row["received_at"])
            )
        return rows

    def counts(self, tenant: str | None = None) -> dict[str, int]:
        """How many events, stage changes and quarantined items are stored (one tenant's, or all)."""
        out = {}
        with self.reader.connect() as conn:
            for name, table, col in (
                ("events", EVENTS, "tenant"),
                ("stages", STAGES, "tenant"),
                ("quarantined", QUARANTINE, "tenant_id"),
            ):
                query = sa.select(sa.func.count()).select_from(table)
                if tenant is not None:
                    if col == "tenant":
                        code = self._code_of(conn, "tenant", tenant)
                        if code is None:
                            out[name] = 0
                            continue
                        query = query.where(table.c.tenant == code)
                    else:
                        query = query.where(table.c.tenant_id == tenant)
                out[name] = int(conn.execute(query).scalar_one())
        return out

    def tenants(self) -> list[str]:
        with self.reader.connect() as conn:
            codes = conn.execute(sa.select(EVENTS.c.tenant).distinct()).scalars().all()
        return sorted(self._decode(list(codes)).to_pylist())

    # --- internals -------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One write transaction at a time per process; SQLite takes its write lock at BEGIN (IMMEDIATE).

        Names cached by a transaction that then fails (a full disk, a lost database) are dropped from the cache:
        their rows were rolled back, and a later batch would otherwise store codes that name nothing."""
        with self._lock:
            self._interned = []
            try:
                with self.engine.begin() as conn:
                    yield conn
            except BaseException:
                for k, value in self._interned:
                    self._names.pop(self._codes.pop((k, value)), None)
                self._by_code = None
                raise
            finally:
                self._interned = []

    def _insert(self, table: sa.Table) -> Any:
        return (sqlite.insert if self.sqlite else postgresql.insert)(table)

    def _intern(self, conn: sa.Connection, kind: str, values: Iterable[str | None]) -> list[int | None]:
        """Codes of these names, new names added; the cache is safe to share because a code never changes."""
        k = _KIND[kind]
        values = list(values)
        missing = sorted({v for v in values if v is not None and (k, v) not in self._codes})
        if missing:
            for start in range(0, len(missing), 5000):
                chunk = missing[start : start + 5000]
                conn.execute(
                    self._insert(NAMES).on_conflict_do_nothing(index_elements=["kind", "value"]),
                    [{"kind": k, "value": v} for v in chunk],
                )
                found = conn.execute(
                    sa.select(NAMES.c.code, NAMES.c.value).where(NAMES.c.kind == k, NAMES.c.value.in_(chunk))
                )
                for code, value in found:
                    self._codes[(k, value)] = code
                    self._names[code] = value
                    self._interned.append((k, value))
        return [None if v is None else self._codes[(k, v)] for v in values]

    def _code_of(self, conn: sa.Connection, kind: str, value: str) -> int | None:
        k = _KIND[kind]
        if (k, value) not in self._codes:
            code = conn.execute(sa.select(NAMES.c.code).where(NAMES.c.kind == k, NAMES.c.value == value)).scalar()
            if code is None:
                return None
            self._codes[(k, value)] = code
            self._names[code] = value
        return self._codes[(k, value)]

    def _decode(self, codes: Sequence[Any]) -> pa.Array | pa.ChunkedArray:
        """Names for codes (None stays null), by one `take` from a table indexed by code; a few known ones (a scoring
        request's stage rows) by lookup, which costs a tenth of building and taking. The table is built again only
        when a code is missing from it: a whole log's column is taken once, not first searched for its codes."""
        if isinstance(codes, pa.Array | pa.ChunkedArray) and pa.types.is_string(codes.type):
            return codes  # the log's copy holds names already
        few = len(codes) <= _FEW_CODES and not isinstance(codes, pa.Array | pa.ChunkedArray)
        if few and all(c is None or c in self._names for c in codes):
            return pa.array([None if c is None else self._names[c] for c in codes], pa.string())
        arr = _as_arrow(codes, pa.int64())
        table = self._by_code  # once: another thread may replace it meanwhile, or a failed write set it aside
        if table is not None and (top := pc.max(arr).as_py()) is not None and top < len(table):
            names = table.take(arr)
            if names.null_count == arr.null_count:
                return names
        present = pc.unique(pc.drop_null(arr))
        if len(present):
            wanted = set(present.to_pylist()) - self._names.keys()
            if wanted:
                with self._loading:  # a thread decoding beside this one (stages beside events) may load them first
                    wanted -= self._names.keys()
                    if wanted:
                        self._load_names(sorted(wanted))
            # The table lacked a code (above), its name now loaded or met by a write since it was built: built again.
            table = pa.array([self._names.get(c) for c in range(max(self._names, default=0) + 1)], pa.string())
        elif table is None:
            table = pa.array([None], pa.string())
        self._by_code = table
        return table.take(arr)

    def _load_names(self, codes: list[int]) -> None:
        """The names of these codes into the cache; many (a whole log's) by one read of every name, not a query per
        5,000."""
        if len(codes) > _NAMES_BY_CODE:
            self._names.update(self._driver_rows(f"SELECT code, value FROM {NAMES.name}"))  # nosec B608 # our table
        else:
            with self.reader.connect() as conn:
                found = conn.execute(sa.select(NAMES.c.code, NAMES.c.value).where(NAMES.c.code.in_(codes)))
                self._names.update(found.all())

    def _scoped(self, query: Any, table: sa.Table, tenant: str | None, leads: Sequence[str] | None) -> Any:
        """The query limited to one tenant and some leads; None when a name was never stored (nothing matches)."""
        if tenant is None and leads is None:
            return query
        with self.reader.connect() as conn:
            if tenant is not None:
                code = self._code_of(conn, "tenant", tenant)
                if code is None:
                    return None
                query = query.where(table.c.tenant == code)
            if leads is not None:
                codes = [c for c in (self._code_of(conn, "lead", lead) for lead in leads) if c is not None]
                if not codes:
                    return None
                query = query.where(table.c.lead.in_(codes))
        return query

    def _fetch(self, query: Any, width: int, few: bool = False, arrow: sa.Table | None = None) -> list[Sequence[Any]]:
        """The columns of a query's rows, read by the driver's own cursor in batches (a whole log is millions).

        `few` (a query of named leads): through SQLAlchemy's statement cache instead, as a scoring request reads
        them; compiling the query again costs more than reading a lead's rows. `arrow` (the table of a whole log's
        read): from a long log, Arrow columns read by ADBC's driver for the database (`_arrow_columns`)."""
        if arrow is not None and not few and (source := self._arrow_source(arrow)) is not None:
            columns = self._arrow_columns(source, query, width)
            if columns is not None:
                return columns
        with self.reader.connect() as conn:
            rows = conn.execute(query).all() if few else self._read_in_batches(conn, query)
        if not rows:
            return [() for _ in range(width)]
        return list(zip(*rows))

    def _arrow_source(self, table: sa.Table) -> tuple[str, str] | None:
        """(driver, database URI) when a whole-log read of `table` goes by `_arrow_columns`: past
        `store.arrow_read_rows` rows by log position (a child process costs a few tenths of a second); None for an
        in-memory SQLite database, another server or a shorter log."""
        url = sa.engine.make_url(self.url)
        path = sqlite_file(self.url)
        if path is not None:
            source = ("sqlite", str(path))
        elif url.get_backend_name() == "postgresql":
            source = ("postgresql", url.set(drivername="postgresql").render_as_string(hide_password=False))
        else:
            return None
        with self.reader.connect() as conn:
            newest = conn.execute(sa.select(sa.func.max(table.c.seq))).scalar() or 0
        return source if newest >= self.settings.store.arrow_read_rows else None

    def _arrow_columns(self, source: tuple[str, str], query: Any, width: int) -> list[Sequence[Any]] | None:
        """The query's columns as Arrow arrays, read by ADBC's driver for the store's database in a child process
        (features/store/arrow_read.py says why not here): 10.5 M events from SQLite in 18.4 s where Python's driver
        took 70 s to its rows and their columns (benchmarks/store_read.py). None when the child fails (said in one
        warning line): the caller reads the rows instead."""
        driver, uri = source
        dialect = self.reader.dialect if driver == "sqlite" else postgresql.psycopg.dialect(paramstyle="numeric_dollar")
        compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        params = [compiled.params[k] for k in compiled.positiontup or []]
        job = {"driver": driver, "uri": uri, "sql": str(compiled), "params": params}
        with tempfile.TemporaryFile() as said:  # its error lines; its columns come as a stream, read as they come
            child = subprocess.Popen(  # nosec B603 # this interpreter, our own script, no shell
                [sys.executable, "-I", str(_ARROW_READ)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=said
            )
            assert child.stdin is not None and child.stdout is not None  # nosec B101 # both are pipes, as asked
            with child:
                try:
                    with child.stdin:
                        child.stdin.write(json.dumps(job).encode())
                    table = pa.ipc.open_stream(child.stdout).read_all()
                except (BrokenPipeError, pa.ArrowInvalid):  # it ended before reading the job, or with no stream
                    table = None
            if child.returncode != 0 or table is None:
                said.seek(0)
                lines = said.read().decode(errors="replace").strip().splitlines() or [f"exit {child.returncode}"]
                where = sa.engine.make_url(self.url).render_as_string(hide_password=True)
                log.warning("%s: the Arrow read of the log failed (%s); reading it row by row", where, lines[-1])
                return None
        return [table.column(i).combine_chunks() for i in range(width)]

    def _read_in_batches(self, conn: sa.Connection, query: Any) -> list[Any]:
        """The query's rows, compiled once and fetched by the driver's own cursor in batches."""
        rows: list[Any] = []
        compiled = query.compile(dialect=self.reader.dialect, compile_kwargs={"render_postcompile": True})
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            params = compiled.params
            if self.sqlite:
                cursor.execute(str(compiled), [params[k] for k in compiled.positiontup or []])
            else:
                cursor.execute(str(compiled), params)
            while chunk := cursor.fetchmany(self.settings.store.read_batch_rows):
                rows.extend(chunk)
        finally:
            cursor.close()
        return rows

    def _event_rows(self, conn: sa.Connection, events: pa.Table, arrived: list[int | None]) -> list[tuple[Any, ...]]:
        """One tuple per event in `_COLUMNS` order, names as codes (interned once per distinct value)."""
        code = {col: self._intern_column(conn, kind, events[col]) for col, kind in _EVENT_CODED.items()}
        columns = [
            events["event_id"].to_pylist(),
            *(code[c] for c in ("tenant_id", "lead_id", "sales_id")),
            events["ts"].cast(pa.int64()).to_pylist(),
            code["event_type"],
            events["dwell_s"].to_pylist(),
            *(code[c] for c in ("item_id", "referrer_lead_id", "channel")),
            arrived,
        ]
        return list(zip(*columns))

    def _intern_column(self, conn: sa.Connection, kind: str, values: pa.ChunkedArray | pa.Array) -> list[Any]:
        """The codes of a column (None for null) through its distinct values: a batch repeats few names."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        encoded = pc.dictionary_encode(values)
        codes = np.array([*self._intern(conn, kind, encoded.dictionary.to_pylist()), None], dtype=object)
        return codes[encoded.indices.fill_null(len(codes) - 1).to_numpy(zero_copy_only=False)].tolist()

    def _insert_new(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> np.ndarray:
        """Insert rows whose (tenant, event_id) is new; which rows were inserted.

        SQLite: the write lock is held from BEGIN IMMEDIATE, so the keys found absent stay absent and the new
        rows go in by the driver's executemany. PostgreSQL: one INSERT ... SELECT FROM unnest(arrays) ON
        CONFLICT DO NOTHING RETURNING, safe with other writers.
        """
        inserted = np.zeros(len(rows), dtype=bool)
        if not rows:
            return inserted
        if self.sqlite:
            stored = self._stored_keys(conn, [(row[1], row[0]) for row in rows])
            fresh = [j for j, row in enumerate(rows) if (row[1], row[0]) not in stored]
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(_SQLITE_INSERT, [rows[j] for j in fresh])
            finally:
                cursor.close()
            inserted[fresh] = True
            return inserted
        done: set[tuple[int, str]] = set()
        for start in range(0, len(rows), 5000):
            chunk = list(zip(*rows[start : start + 5000]))
            done.update((t, e) for t, e in conn.exec_driver_sql(_PG_INSERT, tuple(list(c) for c in chunk)))
        inserted[:] = [(row[1], row[0]) in done for row in rows]
        return inserted

    def _stored_keys(self, conn: sa.Connection, keys: list[tuple[int, str]]) -> set[tuple[int, str]]:
        """Which of these (tenant, event_id) keys are stored already (SQLite, by the unique index)."""
        by_tenant: dict[int, list[str]] = {}
        for t, e in keys:
            by_tenant.setdefault(t, []).append(e)
        found: set[tuple[int, str]] = set()
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            for t, ids in by_tenant.items():
                for start in range(0, len(ids), 900):
                    chunk = ids[start : start + 900]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT event_id FROM events WHERE tenant = ? AND event_id IN ({marks})"  # nosec B608
                    found.update((t, e) for (e,) in cursor.execute(sql, [t, *chunk]))
        finally:
            cursor.close()
        return found

    def _stored_content(self, conn: sa.Connection, keys: list[tuple[int, str]]) -> dict[tuple[int, str], tuple]:
        out: dict[tuple[int, str], tuple] = {}
        by_tenant: dict[int, list[str]] = {}
        for t, e in keys:
            by_tenant.setdefault(t, []).append(e)
        for t, ids in by_tenant.items():
            for start in range(0, len(ids), 5000):
                query = sa.select(EVENTS.c.event_id, *(EVENTS.c[c] for c in _CONTENT)).where(
                    EVENTS.c.tenant == t, EVENTS.c.event_id.in_(ids[start : start + 5000])
                )
                for row in conn.execute(query):
                    out[(t, row[0])] = tuple(row[1:])
        return out

    def _quarantine(self, conn: sa.Connection, rows: list[dict[str, Any]], now: pd.Timestamp) -> None:
        if rows:
            stamp = now.to_pydatetime()
            conn.execute(QUARANTINE.insert(), [{**r, "row": r["row"], "received_at": stamp} for r in rows])


def _sqlite_pragmas(engine: sa.Engine, settings: Settings, *, immediate: bool) -> None:
    """WAL (readers never wait for the writer, the CLI and the service share the file), the configured sync,
    a busy timeout; writers take the lock at BEGIN so two of them never deadlock upgrading a read lock."""
    store = settings.store

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={store.sqlite_synchronous}")
        cur.execute(f"PRAGMA busy_timeout={int(store.busy_timeout_seconds * 1000)}")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _as_arrow(column: Sequence[Any], kind: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """A read column (Arrow from ADBC or the log's copy, kept in its chunks; a tuple of values from Python's driver)
    as an array of `kind`."""
    if isinstance(column, pa.Array | pa.ChunkedArray):
        return pc.cast(column, kind)
    return pa.array(column, kind, from_pandas=True)


def _accepted_index(n: int, rejected: pa.Table) -> np.ndarray:
    """0-based positions in the request of the accepted rows (validation keeps their order)."""
    taken = np.zeros(n, dtype=bool)
    if rejected.num_rows:
        taken[rejected["row"].to_numpy() - 1] = True
    return np.flatnonzero(~taken)


def _arrival_seconds(
    arrived: pd.Timestamp | np.ndarray | None, now: pd.Timestamp, index: np.ndarray, rows: np.ndarray
) -> list[int | None]:
    if arrived is None:
        return [None] * len(rows)
    if isinstance(arrived, np.ndarray):
        picked = arrived[index[rows]]
        return [None if s < 0 else int(s) for s in picked]
    return [int(np.ceil(pd.Timestamp(arrived).timestamp()))] * len(rows)


def _resent_changed(events: pa.Table, i: int | np.integer) -> str:
    return str(resent_changed_reason(events["event_id"].take([i]))[0].as_py())


def _plain(value: Any) -> Any:
    if isinstance(value, (pd.Timestamp, datetime)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _row_json(table: pa.Table, i: int | np.integer) -> str:
    row = {name: _plain(table[name][i].as_py()) for name in table.column_names}
    return json.dumps(row, ensure_ascii=False)


def _refused(
    row: int, field_name: str, reason: str, received: str, kind: str, source: str, tenant: str | None
) -> dict[str, Any]:
    raw = json.loads(received)
    return {
        "tenant_id": tenant if tenant is not None else str(raw.get("tenant_id") or ""),
        "kind": kind,
        "source": source,
        "row": row,
        "field": field_name,
        "reason": reason,
        "received": received,
    }


def _rejected_rows(rejected: pa.Table, kind: str, source: str, tenant: str | None) -> list[dict[str, Any]]:
    columns = EVENT_COLUMNS if kind == "event" else STAGE_COLUMNS
    out = []
    data = rejected.to_pydict()
    for j in range(rejected.num_rows):
        raw = {c: data[c][j] for c in columns if c in data}
        out.append(
            _refused(
                int(data["row"][j]) - 1,
                data["field"][j],
                data["reason"][j],
                json.dumps(raw, ensure_ascii=False),
                kind,
                source,
                tenant,
            )
        )
    return out
