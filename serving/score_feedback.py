""" "This score is wrong": a person's verdict on one score of one lead (too high, too low), kept per model version.

Stored in the score store's database (table `score_feedback`), so the health page can count it per model version
beside the matured calibration: the calibration says how the scores did on average, the feedback where people
who know the lead disagree. Who may judge: the lead's owner (a sales key), a manager, a system key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa

from leadradar.errors import UserError
from leadradar.features.store import EventStore
from leadradar.features.store.tables import engine_for
from leadradar.serving.auth import Principal
from leadradar.serving.lead_view import LeadNotFound, NotYourLead, lead_owner
from leadradar.serving.store import ScoreStore

Verdict = Literal["too_high", "too_low"]
VERDICTS: tuple[str, ...] = ("too_high", "too_low")
# Long enough for a sentence of context ("they signed with a competitor last week"), short enough to read in a list.
NOTE_CHARS = 500

METADATA = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
FEEDBACK = sa.Table(
    "score_feedback",
    METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("lead_id", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("p_close", sa.Float, nullable=False),
    sa.Column("as_of", sa.DateTime(timezone=True)),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_score_feedback_tenant_version", "tenant_id", "model_version"),
)


class UnknownScore(UserError):
    """The feedback names a score the lead was never given (422)."""


@dataclass(frozen=True)
class Judge:
    """Who gives a verdict: tenant, role, salesperson (for a sales key) and the name the row keeps."""

    tenant_id: str
    role: str
    sales_id: str | None
    by: str

    @classmethod
    def of_key(cls, principal: Principal) -> Judge:
        return cls(principal.tenant_id, principal.role, principal.sales_id, f"key:{principal.key_id}")


@dataclass(frozen=True)
class Judged:
    """One verdict as stored: which score of which lead, the verdict, the note, who and when."""

    feedback_id: int
    tenant_id: str
    lead_id: str
    model_version: str
    p_close: float
    as_of: datetime | None
    verdict: str
    note: str | None
    by: str
    at: datetime


class ScoreFeedback:
    """The verdicts on scores, one row each; counted per tenant and model version."""

    def __init__(self, url: str):
        self.engine = engine_for(url)
        METADATA.create_all(self.engine)

    def record(self, judged: Judged) -> int:
        """Store one verdict; its id."""
        if judged.verdict not in VERDICTS:
            raise ValueError(f"verdict is one of {', '.join(VERDICTS)}, not {judged.verdict!r}")
        row = {k: v for k, v in asdict(judged).items() if k != "feedback_id"}
        row["note"] = (row["note"] or None) and row["note"][:NOTE_CHARS]
        with self.engine.begin() as conn:
            return int(conn.execute(FEEDBACK.insert().values(**row).returning(FEEDBACK.c.id)).scalar_one())

    def counts(self, tenant_id: str) -> list[dict[str, Any]]:
        """Per model version (newest first): how many scores were judged too high, too low, and when last."""
        c = FEEDBACK.c
        q = (
            sa.select(c.model_version, c.verdict, sa.func.count().label("n"), sa.func.max(c.at).label("last"))
            .where(c.tenant_id == tenant_id)
            .group_by(c.model_version, c.verdict)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        out: dict[str, dict[str, Any]] = {}
        for version, verdict, n, last in rows:
            entry = out.setdefault(version, {"model_version": version, "too_high": 0, "too_low": 0, "last": None})
            entry[verdict] = int(n)
            entry["last"] = max([t for t in (entry["last"], _aware(last)) if t is not None], default=None)
        ordered = sorted(out.values(), key=lambda e: _version_key(str(e["model_version"])), reverse=True)
        return [{**e, "total": e["too_high"] + e["too_low"]} for e in ordered]

    def of_lead(self, tenant_id: str, lead_id: str) -> list[Judged]:
        """The lead's verdicts, newest first (its page shows the latest)."""
        c = FEEDBACK.c
        q = sa.select(FEEDBACK).where((c.tenant_id == tenant_id) & (c.lead_id == lead_id)).order_by(c.id.desc())
        with self.engine.connect() as conn:
            return [
                Judged(
                    r.id,
                    r.tenant_id,
                    r.lead_id,
                    r.model_version,
                    r.p_close,
                    _aware(r.as_of),
                    r.verdict,
                    r.note,
                    r.by,
                    _aware(r.at) or datetime.now(UTC),
                )
                for r in conn.execute(q)
            ]

    def forget(self, tenant_id: str, lead_id: str) -> int:
        """Delete the lead's verdicts (forgetting a lead reaches every store); how many."""
        c = FEEDBACK.c
        with self.engine.begin() as conn:
            return int(
                conn.execute(FEEDBACK.delete().where((c.tenant_id == tenant_id) & (c.lead_id == lead_id))).rowcount
            )


def _aware(t: datetime | None) -> datetime | None:
    return None if t is None else (t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC))


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def judge_score(
    feedback: ScoreFeedback,
    scores: ScoreStore,
    events: EventStore | None,
    judge: Judge,
    lead_id: str,
    verdict: str,
    *,
    model_version: str | None = None,
    p_close: float | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Judged:
    """Record a verdict on the lead's score of `model_version` (default: its latest score); `LeadNotFound`,
    `NotYourLead` or `UnknownScore` when it cannot be. Without `events`, the lead's owner is read from its scores."""
    tenant = judge.tenant_id
    history = scores.score_history(tenant, lead_id)
    owner = lead_owner(events, history, tenant, lead_id)
    if judge.role == "sales" and owner != judge.sales_id:
        raise NotYourLead(f"lead {lead_id!r} is not one of salesperson {judge.sales_id!r}'s leads")
    if history.empty:
        raise UnknownScore(f"lead {lead_id!r} has no score to judge yet")
    given = history if model_version is None else history[history["model_version"].astype(str) == model_version]
    if given.empty:
        versions = ", ".join(sorted(set(history["model_version"].astype(str))))
        raise UnknownScore(
            f"model version {model_version!r} never scored lead {lead_id!r} (versions that did: {versions})"
        )
    last = given.iloc[-1]
    judged = Judged(
        0,
        tenant,
        lead_id,
        str(last["model_version"]),
        float(p_close if p_close is not None else last["p_close"]),
        pd.Timestamp(last["as_of"]).to_pydatetime(),
        verdict,
        note,
        judge.by,
        now or datetime.now(UTC),
    )
    return replace(judged, feedback_id=feedback.record(judged))


__all__ = ["NOTE_CHARS", "VERDICTS", "Judge", "Judged", "LeadNotFound", "NotYourLead", "ScoreFeedback", "UnknownScore"]
