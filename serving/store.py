"""The score store: every batch score kept per (tenant, lead, as_of, model version), in SQL.

SQLite under the data directory by default; PostgreSQL or any SQLAlchemy database by URL.
Re-scoring the same as_of with the same model replaces those rows, never duplicates them.
"""

from __future__ import annotations

from datetime import datetime, timezone

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


def _utc(value: pd.Timestamp | datetime) -> datetime:
    ts = pd.Timestamp(value)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()


class ScoreStore:
    def __init__(self, url: str):
        self.engine = sa.create_engine(url, future=True)
        METADATA.create_all(self.engine)

    def write(self, scores: pd.DataFrame) -> int:
        """Replace the rows of each (tenant, as_of, model version) present in `scores`, atomically."""
        if scores.empty:
            return 0
        frame = scores.copy()
        frame["scored_at"] = datetime.now(timezone.utc)
        for col in ("sales_id", "stage", "detail"):
            if col not in frame:
                frame[col] = None
        records = [
            {**{k: (None if pd.isna(v) else v) for k, v in row.items()}, "as_of": _utc(row["as_of"])}
            for row in frame[COLUMNS].to_dict("records")
        ]
        batches = frame[["tenant_id", "as_of", "model_version"]].drop_duplicates().to_dict("records")
        with self.engine.begin() as conn:
            for b in batches:
                conn.execute(SCORES.delete().where(
                    (SCORES.c.tenant_id == b["tenant_id"]) & (SCORES.c.as_of == _utc(b["as_of"]))
                    & (SCORES.c.model_version == b["model_version"])
                ))
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

    def run(self, tenant_id: str, as_of: datetime, model_version: str) -> pd.DataFrame:
        q = sa.select(SCORES).where(
            (SCORES.c.tenant_id == tenant_id) & (SCORES.c.as_of == _utc(as_of))
            & (SCORES.c.model_version == model_version)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(q).mappings().all(), columns=COLUMNS)
        for col in ("as_of", "scored_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True)
        return frame

    def latest(self, tenant_id: str, back: int = 0) -> pd.DataFrame:
        """The tenant's newest scoring run (`back=1` for the one before); empty if there is none."""
        runs = self.runs(tenant_id)
        if len(runs) <= back:
            return pd.DataFrame(columns=COLUMNS)
        return self.run(tenant_id, *runs[back])

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
            {"tenant_id": r["tenant_id"], "sales_id": r["sales_id"], "as_of": _utc(r["cutoff"]),
             **{c: (None if pd.isna(r.get(c)) else float(r[c])) for c in CONTEXT_FEATURES if c in rows.columns}}
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
