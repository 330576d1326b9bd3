"""The score store: every batch score kept per (tenant, lead, as_of, model version), in SQL.

SQLite under the data directory by default; PostgreSQL or any SQLAlchemy database by URL.
Re-scoring the same as_of with the same model replaces those rows, never duplicates them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

METADATA = sa.MetaData()
SCORES = sa.Table(
    "scores",
    METADATA,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("lead_id", sa.String(128), primary_key=True),
    sa.Column("as_of", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("model_version", sa.String(32), primary_key=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("sales_id", sa.String(128)),
    sa.Column("stage", sa.String(64)),
    sa.Column("p_close", sa.Float, nullable=False),
    sa.Column("detail", sa.Text),  # JSON: horizons, transitions, reasons
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_scores_tenant_asof", "tenant_id", "as_of"),
)
COLUMNS = [c.name for c in SCORES.columns]
# Salesperson context as of the latest batch run: online requests cannot compute it from one lead.
SALES_CONTEXT = sa.Table(
    "sales_context",
    METADATA,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("sales_id", sa.String(128), primary_key=True),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sales_win_rate", sa.Float),
    sa.Column("sales_closed_leads", sa.Float),
    sa.Column("sales_open_leads", sa.Float),
    sa.Column("tenant_win_rate", sa.Float),
)
CONTEXT_FEATURES = ["sales_win_rate", "sales_closed_leads", "sales_open_leads", "tenant_win_rate"]
# Each scored lead's last events before its run's as_of, for the timeline on its page (newest run only).
LEAD_EVENTS = sa.Table(
    "lead_events",
    METADATA,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("lead_id", sa.String(128), primary_key=True),
    sa.Column("event_id", sa.String(200), primary_key=True),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("sales_id", sa.String(128)),
    sa.Column("dwell_s", sa.Float),
    sa.Column("item_id", sa.Text),
    sa.Column("channel", sa.String(64)),
    sa.Index("ix_lead_events_lead_ts", "tenant_id", "lead_id", "ts"),
)
EVENT_COLUMNS = [c.name for c in LEAD_EVENTS.columns]
# The funnel to date per run: how many leads reached each stage, and how many were lost there.
FUNNEL_COUNTS = sa.Table(
    "funnel_counts",
    METADATA,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("as_of", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("stage", sa.String(64), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("reached", sa.Integer, nullable=False),
    sa.Column("lost", sa.Integer, nullable=False),
)
FUNNEL_COLUMNS = [c.name for c in FUNNEL_COUNTS.columns]


def engine_for(url: str) -> sa.Engine:
    """A SQLAlchemy engine; a SQLite file is created first, readable by this user only (0600): it holds
    customers' scores, key hashes and password hashes. SQLite gives its journals the same mode."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    return sa.create_engine(url, future=True)


def _utc(value: pd.Timestamp | datetime) -> datetime:
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


def _records(frame: pd.DataFrame, columns: list[str], times: tuple[str, ...]) -> list[dict[str, Any]]:
    """Plain Python rows for a driver: None for missing values, UTC datetimes for `times`."""
    rows = []
    for row in frame[columns].to_dict("records"):
        rec: dict[str, Any] = {
            str(k): (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in row.items()
        }
        for t in times:
            rec[t] = _utc(rec[t])
        rows.append(rec)
    return rows


def _frame(rows: Sequence[Any], columns: list[str], times: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    for col in times:
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


class ScoreStore:
    def __init__(self, url: str):
        self.engine = engine_for(url)
        METADATA.create_all(self.engine)

    def write(self, scores: pd.DataFrame) -> int:
        """Replace the rows of each (tenant, as_of, model version) present in `scores`, atomically."""
        if scores.empty:
            return 0
        frame = scores.copy()
        frame["scored_at"] = datetime.now(UTC)
        for col in ("sales_id", "stage", "detail"):
            if col not in frame:
                frame[col] = None
        records: list[dict[str, Any]] = [
            {**{str(k): (None if pd.isna(v) else v) for k, v in row.items()}, "as_of": _utc(row["as_of"])}
            for row in frame[COLUMNS].to_dict("records")
        ]
        batches = frame[["tenant_id", "as_of", "model_version"]].drop_duplicates().to_dict("records")
        with self.engine.begin() as conn:
            for b in batches:
                conn.execute(
                    SCORES.delete().where(
                        (SCORES.c.tenant_id == b["tenant_id"])
                        & (SCORES.c.as_of == _utc(b["as_of"]))
                        & (SCORES.c.model_version == b["model_version"])
                    )
                )
            conn.execute(SCORES.insert(), records)
        return len(records)

    def runs(self, tenant_id: str) -> list[tuple[datetime, str]]:
        """The tenant's scoring runs, newest first: (as_of, model_version)."""
        q = (
            sa.select(SCORES.c.as_of, SCORES.c.model_version, sa.func.max(SCORES.c.scored_at).label("at"))
            .where(SCORES.c.tenant_id == tenant_id)
            .group_by(SCORES.c.as_of, SCORES.c.model_version)
            .order_by(SCORES.c.as_of.desc(), sa.literal_column("at").desc())
        )
        with self.engine.connect() as conn:
            return [(_utc(r.as_of), r.model_version) for r in conn.execute(q)]

    def stamp(self, tenant_id: str) -> tuple:
        """Changes whenever the tenant's scores do (a run written, replaced or removed): what was read
        from them before holds while the stamp does."""
        q = sa.select(sa.func.count(), sa.func.max(SCORES.c.scored_at)).where(SCORES.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            return tuple(conn.execute(q).one())

    def run(
        self, tenant_id: str, as_of: datetime, model_version: str, columns: list[str] | None = None
    ) -> pd.DataFrame:
        """One scoring run's rows; `columns` reads only those (a ranked list needs no reasons' JSON)."""
        columns = columns or COLUMNS
        q = sa.select(*[SCORES.c[c] for c in columns]).where(
            (SCORES.c.tenant_id == tenant_id)
            & (SCORES.c.as_of == _utc(as_of))
            & (SCORES.c.model_version == model_version)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(q).mappings().all(), columns=columns)
        for col in ("as_of", "scored_at"):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col], utc=True)
        return frame

    def latest(self, tenant_id: str, back: int = 0, columns: list[str] | None = None) -> pd.DataFrame:
        """The tenant's newest scoring run (`back=1` for the one before); empty if there is none."""
        runs = self.runs(tenant_id)
        if len(runs) <= back:
            return pd.DataFrame(columns=columns or COLUMNS)
        return self.run(tenant_id, *runs[back], columns=columns)

    def history(self, tenant_id: str, lead_id: str) -> pd.DataFrame:
        q = (
            sa.select(SCORES)
            .where((SCORES.c.tenant_id == tenant_id) & (SCORES.c.lead_id == lead_id))
            .order_by(SCORES.c.as_of)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(q).mappings().all(), columns=COLUMNS)
        frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
        return frame

    def write_context(self, features: pd.DataFrame) -> int:
        """Keep each salesperson's context from a batch feature table (one row per open lead)."""
        have = [c for c in CONTEXT_FEATURES if c in features.columns]
        if not have or features.empty:
            return 0
        rows = features.dropna(subset=["sales_id"]).groupby(["tenant_id", "sales_id"], as_index=False).first()
        records = [
            {
                "tenant_id": r["tenant_id"],
                "sales_id": r["sales_id"],
                "as_of": _utc(r["cutoff"]),
                **{c: (None if pd.isna(r.get(c)) else float(r[c])) for c in CONTEXT_FEATURES if c in rows.columns},
            }
            for r in rows.to_dict("records")
        ]
        with self.engine.begin() as conn:
            for tenant in rows["tenant_id"].unique():
                conn.execute(SALES_CONTEXT.delete().where(SALES_CONTEXT.c.tenant_id == tenant))
            conn.execute(SALES_CONTEXT.insert(), records)
        return len(records)

    def context(self, tenant_id: str) -> dict[str, dict[str, float | None]]:
        """sales_id → context features for one tenant, as of its latest batch run."""
        q = sa.select(SALES_CONTEXT).where(SALES_CONTEXT.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            return {r["sales_id"]: {c: r[c] for c in CONTEXT_FEATURES} for r in conn.execute(q).mappings()}

    def write_events(self, events: pd.DataFrame, as_of: pd.Timestamp | datetime) -> int:
        """Keep the scored leads' recent events of a run, replacing each tenant's older run's.

        A run older than the one already kept (a backfill) leaves the timeline alone: the pages
        show the newest run's events.
        """
        if events.empty:
            return 0
        when = _utc(as_of)
        frame = events.assign(as_of=when)
        written = 0
        with self.engine.begin() as conn:
            for tenant, rows in frame.groupby("tenant_id", sort=False):
                newest = conn.execute(
                    sa.select(sa.func.max(LEAD_EVENTS.c.as_of)).where(LEAD_EVENTS.c.tenant_id == tenant)
                ).scalar()
                if newest is not None and _utc(newest) > when:
                    continue
                conn.execute(LEAD_EVENTS.delete().where(LEAD_EVENTS.c.tenant_id == tenant))
                conn.execute(LEAD_EVENTS.insert(), _records(rows, EVENT_COLUMNS, ("as_of", "ts")))
                written += len(rows)
        return written

    def events(self, tenant_id: str, lead_id: str, limit: int | None = None) -> pd.DataFrame:
        """A lead's kept events, newest first."""
        q = (
            sa.select(LEAD_EVENTS)
            .where((LEAD_EVENTS.c.tenant_id == tenant_id) & (LEAD_EVENTS.c.lead_id == lead_id))
            .order_by(LEAD_EVENTS.c.ts.desc(), LEAD_EVENTS.c.event_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return _frame(conn.execute(q).mappings().all(), EVENT_COLUMNS, ("as_of", "ts"))

    def write_funnel(self, counts: pd.DataFrame) -> int:
        """Replace the funnel counts of each (tenant, as_of) present in `counts`."""
        if counts.empty:
            return 0
        records = _records(counts, FUNNEL_COLUMNS, ("as_of",))
        with self.engine.begin() as conn:
            for tenant, as_of in {(r["tenant_id"], r["as_of"]) for r in records}:
                conn.execute(
                    FUNNEL_COUNTS.delete().where(
                        (FUNNEL_COUNTS.c.tenant_id == tenant) & (FUNNEL_COUNTS.c.as_of == as_of)
                    )
                )
            conn.execute(FUNNEL_COUNTS.insert(), records)
        return len(records)

    def funnel(self, tenant_id: str, as_of: pd.Timestamp | datetime | None = None) -> pd.DataFrame:
        """The tenant's funnel counts at `as_of` (default: the newest kept), in funnel order."""
        c = FUNNEL_COUNTS.c
        with self.engine.connect() as conn:
            when = (
                _utc(as_of)
                if as_of is not None
                else conn.execute(sa.select(sa.func.max(c.as_of)).where(c.tenant_id == tenant_id)).scalar()
            )
            if when is None:
                return _frame([], FUNNEL_COLUMNS, ("as_of",))
            q = sa.select(FUNNEL_COUNTS).where((c.tenant_id == tenant_id) & (c.as_of == when)).order_by(c.position)
            return _frame(conn.execute(q).mappings().all(), FUNNEL_COLUMNS, ("as_of",))
