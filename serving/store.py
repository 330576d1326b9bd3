"""The score store: every batch score kept per (tenant, lead, as_of, model version), and every live
rescoring kept as history, in SQL.

SQLite under the data directory by default; PostgreSQL or any SQLAlchemy database by URL.
Re-scoring the same as_of with the same model replaces those batch rows, never duplicates them. Live
scores (serving/rescoring.py) are only ever appended: a score already given is history. What lists
show is the newest of the two per lead (`latest`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from leadradar.features.store.tables import engine_for

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
# Scores that followed the events: one row per rescoring of a lead, appended, never updated or deleted.
# `moved_by` is the newest event of that lead the rescoring saw arrive, `moved_at` its time.
LIVE_SCORES = sa.Table(
    "live_scores",
    METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("lead_id", sa.String(128), nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("sales_id", sa.String(128)),
    sa.Column("stage", sa.String(64)),
    sa.Column("p_close", sa.Float, nullable=False),
    sa.Column("grade", sa.String(8), nullable=False),
    sa.Column("detail", sa.Text),  # JSON: horizons, transitions, reasons (as a batch score's)
    sa.Column("moved_by", sa.String(200)),
    sa.Column("moved_at", sa.DateTime(timezone=True)),
    sa.Index("ix_live_scores_lead", "tenant_id", "lead_id", "id"),
)
LIVE_COLUMNS = [c.name for c in LIVE_SCORES.columns if c.name != "id"]
# A lead's score history: batch runs and live rescorings in one frame, oldest first.
HISTORY_COLUMNS = [
    "source",
    "as_of",
    "scored_at",
    "model_version",
    "p_close",
    "grade",
    "sales_id",
    "stage",
    "detail",
    "moved_by",
    "moved_at",
]
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

    def tenants(self) -> list[str]:
        """The tenants with a scoring run, in order."""
        q = sa.select(SCORES.c.tenant_id).distinct().order_by(SCORES.c.tenant_id)
        with self.engine.connect() as conn:
            return [r.tenant_id for r in conn.execute(q)]

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
        """Changes whenever the tenant's scores do (a run written, replaced or removed, a lead rescored live):
        what was read from them before holds while the stamp does."""
        q = sa.select(sa.func.count(), sa.func.max(SCORES.c.scored_at)).where(SCORES.c.tenant_id == tenant_id)
        live = sa.select(sa.func.count(), sa.func.max(LIVE_SCORES.c.id)).where(LIVE_SCORES.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            return (*conn.execute(q).one(), *conn.execute(live).one())

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

    def latest(
        self, tenant_id: str, back: int = 0, columns: list[str] | None = None, live: bool = True
    ) -> pd.DataFrame:
        """Each lead's current score: its newest of the newest batch run and its live rescorings (a live
        score counts as of when it was given). `back=1` is the batch run before, with no live scores."""
        columns = columns or COLUMNS
        runs = self.runs(tenant_id)
        batch = (
            self.run(tenant_id, *runs[back], columns=columns)
            if len(runs) > back
            else pd.DataFrame(columns=columns).astype({c: float for c in ("p_close",) if c in columns})
        )
        if back or not live:
            return batch
        fresh = self.live_latest(tenant_id, columns)
        if fresh.empty:
            return batch
        if len(batch):
            newest = pd.Timestamp(runs[0][0])
            fresh = fresh[fresh["as_of"] > newest]
            batch = batch[~batch["lead_id"].isin(fresh["lead_id"])]
        parts = [f for f in (batch, fresh) if len(f)]
        return pd.concat(parts, ignore_index=True) if parts else batch

    def write_live(self, scores: pd.DataFrame) -> int:
        """Append live scores (`LIVE_COLUMNS`); nothing already stored is touched."""
        if scores.empty:
            return 0
        frame = scores.copy()
        for col in ("sales_id", "stage", "detail", "moved_by", "moved_at"):
            if col not in frame:
                frame[col] = None
        records = _records(frame, LIVE_COLUMNS, ("scored_at",))
        for rec in records:
            if rec["moved_at"] is not None:
                rec["moved_at"] = _utc(rec["moved_at"])
        with self.engine.begin() as conn:
            conn.execute(LIVE_SCORES.insert(), records)
        return len(records)

    def live_latest(self, tenant_id: str, columns: list[str] | None = None) -> pd.DataFrame:
        """The newest live score of each of the tenant's rescored leads, in the batch rows' shape
        (`as_of` is when it was given)."""
        columns = columns or COLUMNS
        c = LIVE_SCORES.c
        newest = sa.select(sa.func.max(c.id).label("id")).where(c.tenant_id == tenant_id).group_by(c.lead_id).subquery()
        shape = {name: c[name] for name in LIVE_COLUMNS} | {"as_of": c.scored_at}
        picked = [shape[name].label(name) for name in columns if name in shape]
        q = sa.select(*picked).join(newest, c.id == newest.c.id)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(q).mappings().all(), columns=[p.name for p in picked])
        for col in columns:
            if col not in frame:
                frame[col] = None
        frame = frame[columns]
        for col in ("as_of", "scored_at"):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col], utc=True)
        return frame

    def live_history(self, tenant_id: str, lead_id: str, limit: int | None = None) -> pd.DataFrame:
        """A lead's live scores, oldest first (the newest `limit` of them)."""
        c = LIVE_SCORES.c
        q = (
            sa.select(*[c[n] for n in LIVE_COLUMNS])
            .where((c.tenant_id == tenant_id) & (c.lead_id == lead_id))
            .order_by(c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return _frame(list(reversed(rows)), LIVE_COLUMNS, ("scored_at", "moved_at"))

    def score_history(
        self,
        tenant_id: str,
        lead_id: str,
        grade: Callable[[float], str] | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """A lead's scores over time, batch runs and live rescorings together, oldest first (`HISTORY_COLUMNS`).

        A batch run scored twice (another model version on the same as_of) keeps its last scoring. `grade`
        grades the batch rows (live rows keep the grade they were given); `limit` keeps the newest points.
        """
        batch = self.history(tenant_id, lead_id)
        batch = batch.sort_values(["as_of", "scored_at"]).drop_duplicates("as_of", keep="last")
        batch = batch.assign(
            source="batch",
            grade=batch["p_close"].map(grade) if grade is not None and len(batch) else None,
            moved_by=None,
            moved_at=pd.Series(pd.NaT, index=batch.index, dtype="datetime64[ns, UTC]"),
        )
        batch["scored_at"] = pd.to_datetime(batch["scored_at"], utc=True)
        live = self.live_history(tenant_id, lead_id, limit)
        live = live.assign(source="live", as_of=live["scored_at"])
        parts = [f[HISTORY_COLUMNS] for f in (batch, live) if len(f)]
        if not parts:
            return pd.DataFrame(columns=HISTORY_COLUMNS)
        out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        out = out.sort_values(["as_of", "scored_at"], kind="stable").reset_index(drop=True)
        return out if limit is None else out.tail(limit).reset_index(drop=True)

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
