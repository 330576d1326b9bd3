"""Forgetting a lead and dropping old data in the event store (PIPL: deletion on request, limited retention).

A forgotten lead's events, stage changes, quarantined items naming it and its CRM attributes are deleted; events
of other leads that it referred keep their place with the referrer cleared (they are the other lead's behaviour,
only the link names the forgotten one); its interned name is overwritten once nothing refers to it. SQLite
deletes with `secure_delete` and truncates its write-ahead log afterwards, so the bytes leave the files too.

The forgotten list keeps an HMAC of (tenant, lead) under a per-install salt, not the id: the list must outlive
the deletion (a training set built later from old files must still leave the lead out), and a list of ids would
keep the very data that was to be deleted. The salt lives in the same database, so the list is pseudonymous:
it stops anyone reading it from learning ids, not someone who also holds the salt and guesses ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from leadradar.features.cutoffs import epoch_us
from leadradar.features.radar_log import RadarLog, read_parquet_part
from leadradar.features.store.event_store import EventStore
from leadradar.features.store.tables import CATALOG, EVENTS, FORGOTTEN, NAMES, QUARANTINE, SECRETS, STAGES

SALT = "forget_salt"
_LEAD_KIND = "lead"


@dataclass(frozen=True)
class Forgotten:
    """What forgetting one lead deleted from the event store (counts only: the report names nobody)."""

    lead_hash: str
    events: int
    referrals_cleared: int
    stages: int
    quarantined: int
    catalog: int


def salt(store: EventStore) -> bytes:
    """The install's salt, made on first use (32 random bytes)."""
    with store.reader.connect() as conn:
        value = conn.execute(sa.select(SECRETS.c.value).where(SECRETS.c.name == SALT)).scalar()
    if value is None:
        with store._write() as conn:
            conn.execute(store._insert(SECRETS).values(name=SALT, value=secrets.token_hex(32)).on_conflict_do_nothing())
            value = conn.execute(sa.select(SECRETS.c.value).where(SECRETS.c.name == SALT)).scalar_one()
    return bytes.fromhex(value)


def lead_hash(key: bytes, tenant: str, lead: str) -> str:
    return hmac.new(key, f"{tenant}\x00{lead}".encode(), hashlib.sha256).hexdigest()


def forget_events(store: EventStore, tenant: str, lead: str, now: datetime | None = None) -> Forgotten:
    """Delete every row of the event store that names `lead` of `tenant`, and list its hash as forgotten."""
    digest = lead_hash(salt(store), tenant, lead)
    needle = json.dumps(lead, ensure_ascii=False)
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    with store._write() as conn:
        secure_delete(conn, True)
        t = store._code_of(conn, "tenant", tenant)
        code = store._code_of(conn, _LEAD_KIND, lead)
        events = referrals = stages = 0
        if t is not None and code is not None:
            events = conn.execute(EVENTS.delete().where(EVENTS.c.tenant == t, EVENTS.c.lead == code)).rowcount
            referrals = conn.execute(
                EVENTS.update().where(EVENTS.c.tenant == t, EVENTS.c.referrer == code).values(referrer=None)
            ).rowcount
            stages = conn.execute(STAGES.delete().where(STAGES.c.tenant == t, STAGES.c.lead == code)).rowcount
        quarantined = conn.execute(
            QUARANTINE.delete().where(
                QUARANTINE.c.tenant_id == tenant, QUARANTINE.c.received.like(pattern, escape="\\")
            )
        ).rowcount
        catalog = conn.execute(
            CATALOG.delete().where(CATALOG.c.part == "leads", CATALOG.c.tenant_id == tenant, CATALOG.c.key == lead)
        ).rowcount
        if code is not None and not _referenced(conn, code):
            # Overwritten, not deleted: a process that cached the code still decodes to a string, never to null.
            conn.execute(NAMES.update().where(NAMES.c.code == code).values(value=f"forgotten:{code}"))
            _drop_cached(store, code)
        conn.execute(
            store._insert(FORGOTTEN)
            .values(tenant_id=tenant, lead_hash=digest, forgotten_at=now or datetime.now(UTC))
            .on_conflict_do_nothing()
        )
        secure_delete(conn, False)
    truncate_log(store.engine)
    store.drop_mirror()
    return Forgotten(digest, events, referrals, stages, quarantined, catalog)


def forgotten_hashes(store: EventStore, tenant: str | None = None) -> set[tuple[str, str]]:
    """(tenant, lead hash) of every forgotten lead."""
    query = sa.select(FORGOTTEN.c.tenant_id, FORGOTTEN.c.lead_hash)
    if tenant is not None:
        query = query.where(FORGOTTEN.c.tenant_id == tenant)
    with store.reader.connect() as conn:
        return {(r[0], r[1]) for r in conn.execute(query)}


def keep_mask(store: EventStore, tenants: Iterable[str], leads: Iterable[str]) -> list[bool] | None:
    """For rows given by (tenant, lead): False where the lead was forgotten; None when nothing was ever forgotten."""
    listed = forgotten_hashes(store)
    if not listed:
        return None
    key = salt(store)
    cache: dict[tuple[str, str], bool] = {}
    out = []
    for pair in zip(tenants, leads):
        if pair not in cache:
            cache[pair] = (pair[0], lead_hash(key, str(pair[0]), str(pair[1]))) not in listed
        out.append(cache[pair])
    return out


def without_forgotten(store: EventStore, table: pa.Table | pd.DataFrame) -> pa.Table | pd.DataFrame:
    """The rows of an events, stages or leads table whose lead was not forgotten (a table holding none, unchanged)."""
    if isinstance(table, pd.DataFrame):
        mask = keep_mask(store, table["tenant_id"].astype(str), table["lead_id"].astype(str))
        return table if mask is None else table[mask].reset_index(drop=True)
    mask = keep_mask(store, table.column("tenant_id").to_pylist(), table.column("lead_id").to_pylist())
    return table if mask is None else table.filter(pa.array(mask))


def log_without_forgotten(store: EventStore, log: RadarLog) -> RadarLog:
    """A radar log (files or tables) without the forgotten leads' rows: what a training set is built from.
    Files are read only when something was forgotten, and kept as files when they hold none of it."""
    if not forgotten_hashes(store):
        return log
    parts: dict[str, Any] = {}
    for part in ("events", "stages", "leads"):
        source = getattr(log, part)
        if source is None:
            continue
        table = read_parquet_part(source, part) if isinstance(source, Path) else source
        if not has_lead_column(table):
            continue
        kept = without_forgotten(store, table)
        if len(kept) != len(table):
            parts[part] = kept
    return dataclasses.replace(log, **parts) if parts else log


def purge_before(store: EventStore, cutoff: pd.Timestamp) -> dict[str, int]:
    """Delete events that happened, and quarantined items received, before `cutoff` (retention)."""
    with store._write() as conn:
        secure_delete(conn, True)
        events = conn.execute(EVENTS.delete().where(EVENTS.c.us < epoch_us(cutoff))).rowcount
        quarantined = conn.execute(
            QUARANTINE.delete().where(QUARANTINE.c.received_at < cutoff.to_pydatetime())
        ).rowcount
        secure_delete(conn, False)
    truncate_log(store.engine)
    store.drop_mirror()
    return {"events": events, "quarantine": quarantined}


def _referenced(conn: sa.Connection, code: int) -> bool:
    for query in (
        sa.select(EVENTS.c.seq).where(EVENTS.c.lead == code).limit(1),
        sa.select(EVENTS.c.seq).where(EVENTS.c.referrer == code).limit(1),
        sa.select(STAGES.c.seq).where(STAGES.c.lead == code).limit(1),
    ):
        if conn.execute(query).first() is not None:
            return True
    return False


def _drop_cached(store: EventStore, code: int) -> None:
    store._codes = {k: v for k, v in store._codes.items() if v != code}
    store._names.pop(code, None)
    store._by_code = None


def secure_delete(conn: sa.Connection, on: bool) -> None:
    """SQLite overwrites what it deletes while this is on (the event and score stores' deletions)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA secure_delete={'ON' if on else 'OFF'}")


def truncate_log(engine: sa.Engine) -> None:
    """Copy the write-ahead log into the database and empty it, so deleted rows' old pages leave it too."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # outside any transaction: a checkpoint cannot run inside one
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


def has_lead_column(table: pa.Table | pd.DataFrame) -> bool:
    names = table.column_names if isinstance(table, pa.Table) else list(table.columns)
    return "tenant_id" in names and "lead_id" in names


__all__ = [
    "Forgotten",
    "forget_events",
    "forgotten_hashes",
    "has_lead_column",
    "keep_mask",
    "lead_hash",
    "log_without_forgotten",
    "purge_before",
    "salt",
    "without_forgotten",
]
