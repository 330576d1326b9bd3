"""The lifecycle ledger: the retrain lock and every scheduled job's run and outcome, in one SQL database.

Training writes it (`leadradar retrain`), serving reads it (`/v1/model`, the health page), so it sits beside
the model registry. The lock is a row, not a file: on PostgreSQL it holds across machines; a holder that died
is recognised by its lease running out, or at once by its pid when it ran on this host.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from leadradar.features.store.tables import engine_for

METADATA = sa.MetaData()

LOCKS = sa.Table(
    "lifecycle_locks",
    METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

RUNS = sa.Table(
    "lifecycle_runs",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(32), nullable=False, index=True),
    sa.Column("tenant_id", sa.String(64)),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("detail", sa.Text),  # JSON: figures of the run (the verdict, the drift table, the bands)
)

SCHEDULE = sa.Table(
    "lifecycle_schedule",
    METADATA,
    sa.Column("job", sa.String(32), primary_key=True),
    sa.Column("cron", sa.String(64), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("next_run", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class JobRun:
    job: str
    tenant_id: str | None
    started_at: datetime
    finished_at: datetime
    outcome: str
    summary: str
    detail: dict[str, Any]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ledger:
    """Locks, job runs and the schedule's next runs; SQLite by default, PostgreSQL by URL."""

    def __init__(self, url: str):
        # The stores' engine: a PostgreSQL ledger's pooled connections are tested before use, so a scheduler or
        # service holding the ledger across a database restart reconnects instead of failing its next record.
        # On SQLite a lock taken by another process's job is waited for up to 30 s, as before.
        self.engine = engine_for(url, sqlite_wait_s=30)
        METADATA.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def acquire(self, name: str, lease: timedelta, now: datetime | None = None) -> Lease | None:
        """Take the named lock, or None when a live holder has it; a dead or expired holder's lock is taken over."""
        now = _utc(now) or datetime.now(UTC)
        mine = Lease(name, uuid.uuid4().hex, socket.gethostname(), os.getpid(), now, now + lease)
        row = {k: getattr(mine, k) for k in ("name", "holder", "host", "pid", "acquired_at", "expires_at")}
        try:
            with self.engine.begin() as conn:
                conn.execute(LOCKS.insert().values(**row))
            return mine
        except sa.exc.IntegrityError:
            pass
        held = self.holder(name)
        if held is None:
            return self.acquire(name, lease, now)
        stale = held.expires_at <= now or (held.host == mine.host and not _alive(held.pid))
        if not stale:
            return None
        with self.engine.begin() as conn:
            taken = conn.execute(
                LOCKS.update().where(LOCKS.c.name == name, LOCKS.c.holder == held.holder).values(**row)
            ).rowcount
        return mine if taken == 1 else None

    def holder(self, name: str) -> Lease | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(LOCKS).where(LOCKS.c.name == name)).mappings().first()
        if row is None:
            return None
        values = dict(row)
        for key in ("acquired_at", "expires_at"):
            values[key] = _utc(values[key])
        return Lease(**values)

    def release(self, lease: Lease) -> None:
        with self.engine.begin() as conn:
            conn.execute(LOCKS.delete().where(LOCKS.c.name == lease.name, LOCKS.c.holder == lease.holder))

    def record(
        self,
        job: str,
        outcome: str,
        summary: str,
        started_at: datetime,
        detail: dict[str, Any] | None = None,
        tenant_id: str | None = None,
        finished_at: datetime | None = None,
    ) -> None:
        """Keep one job run: what it decided and the figures it decided on."""
        with self.engine.begin() as conn:
            conn.execute(
                RUNS.insert().values(
                    job=job,
                    tenant_id=tenant_id,
                    started_at=_utc(started_at),
                    finished_at=_utc(finished_at) or datetime.now(UTC),
                    outcome=outcome,
                    summary=summary,
                    detail=json.dumps(detail or {}, default=str, ensure_ascii=False),
                )
            )

    def runs(self, job: str | None = None, limit: int = 20, tenant_id: str | None = None) -> list[JobRun]:
        """Job runs, newest first."""
        query = sa.select(RUNS).order_by(RUNS.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(RUNS.c.job == job)
        if tenant_id is not None:
            query = query.where(sa.or_(RUNS.c.tenant_id == tenant_id, RUNS.c.tenant_id.is_(None)))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            JobRun(
                job=r["job"],
                tenant_id=r["tenant_id"],
                started_at=_utc(r["started_at"]) or datetime.now(UTC),
                finished_at=_utc(r["finished_at"]) or datetime.now(UTC),
                outcome=r["outcome"],
                summary=r["summary"],
                detail=json.loads(r["detail"] or "{}"),
            )
            for r in rows
        ]

    def plan(self, job: str, cron: str, timezone: str, next_run: datetime | None) -> None:
        """Write down when a scheduled job runs next, for the pages of processes that do not run it."""
        values = {"cron": cron, "timezone": timezone, "next_run": _utc(next_run), "updated_at": datetime.now(UTC)}
        with self.engine.begin() as conn:
            if conn.execute(SCHEDULE.update().where(SCHEDULE.c.job == job).values(**values)).rowcount == 0:
                conn.execute(SCHEDULE.insert().values(job=job, **values))

    def schedule(self) -> list[dict[str, Any]]:
        """Each scheduled job with its cron line, time zone, next run, and its last run's outcome."""
        with self.engine.connect() as conn:
            planned = conn.execute(sa.select(SCHEDULE).order_by(SCHEDULE.c.job)).mappings().all()
        out = []
        for row in planned:
            last = self.runs(row["job"], limit=1)
            out.append(
                {
                    "job": row["job"],
                    "cron": row["cron"],
                    "timezone": row["timezone"],
                    "next_run": _utc(row["next_run"]),
                    "last_run": last[0].finished_at if last else None,
                    "last_outcome": last[0].outcome if last else None,
                    "last_summary": last[0].summary if last else None,
                }
            )
        return out
