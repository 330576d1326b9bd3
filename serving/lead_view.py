"""One lead as `GET /v1/leads/{lead_id}` shows it: its stored timeline, its score history, its current reasons.

The timeline comes from the event store (newest first, paged by log position); scores from the score store,
read through `score_history` alone, so the live score history can replace the batch runs in one place.
Who may see the lead is decided here too: a sales key sees a lead whose latest event is its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from leadradar.config import Settings
from leadradar.features.store import EventStore
from leadradar.serving.auth import Principal
from leadradar.serving.reasons import ReasonWriter
from leadradar.serving.store import ScoreStore

# Catalogue columns that name an item, in the order they are preferred.
ITEM_NAME_COLUMNS = ("name", "title", "item_name")


class LeadNotFound(LookupError):
    """No event or score of this lead in the key's tenant (404)."""


class NotYourLead(PermissionError):
    """A sales key asked for, or judged, a lead whose latest event belongs to another salesperson (403)."""


@dataclass(frozen=True)
class LeadView:
    tenant_id: str
    lead_id: str
    sales_id: str | None
    events: list[dict[str, Any]]
    next_before: int | None
    scores: list[dict[str, Any]]
    current: dict[str, Any] | None


def score_history(scores: ScoreStore, tenant: str, lead: str, settings: Settings) -> pd.DataFrame:
    """The lead's scores, batch runs and live rescorings together, oldest first: the one read."""
    return scores.score_history(tenant, lead, grade=settings.serving.grade)


def lead_owner(events: EventStore | None, history: pd.DataFrame, tenant: str, lead: str) -> str | None:
    """The salesperson of the lead's latest event (else of its latest score); `LeadNotFound` if it has neither."""
    latest = events.timeline(tenant, lead, limit=1) if events is not None else pd.DataFrame()
    if latest.empty and history.empty:
        raise LeadNotFound(f"no lead {lead!r} in tenant {tenant!r}")
    newest: Any = latest["sales_id"].tolist()[0] if not latest.empty else history["sales_id"].tolist()[-1]
    return None if pd.isna(newest) else str(newest)


def lead_view(
    events: EventStore,
    scores: ScoreStore,
    principal: Principal,
    lead: str,
    *,
    limit: int,
    before: int | None,
    lang: str,
    words: ReasonWriter,
    settings: Settings,
) -> LeadView:
    """The lead's page of the key's tenant, or `LeadNotFound` / `NotYourLead`."""
    tenant = principal.tenant_id
    history = score_history(scores, tenant, lead, settings)
    owner = lead_owner(events, history, tenant, lead)
    if principal.role == "sales" and owner != principal.sales_id:
        raise NotYourLead(f"lead {lead!r} is not one of salesperson {principal.sales_id!r}'s leads")
    page = events.timeline(tenant, lead, limit=limit + 1, before_seq=before)
    more = len(page) > limit
    page = page.iloc[:limit]
    names = _item_names(events, tenant, page["item_id"].dropna().unique().tolist())
    rows = [_event(r, names, lang, settings) for r in page.to_dict("records")]
    points = [_score(r, settings) for r in history.to_dict("records")]
    current = None
    if points:
        last = history.iloc[-1]
        worded = words.reasons(last["detail"], lang)
        current = {
            **points[-1],
            "reasons": {
                side: [{"feature": r.feature, "contribution": round(r.contribution, 4), "text": r.text} for r in rs]
                for side, rs in worded.items()
            },
        }
    return LeadView(
        tenant_id=tenant,
        lead_id=lead,
        sales_id=owner,
        events=rows,
        next_before=int(page["seq"].to_numpy()[-1]) if more and len(page) else None,
        scores=points,
        current=current,
    )


def _item_names(events: EventStore, tenant: str, items: list[str]) -> dict[str, str]:
    """Item id → the name the tenant's catalogue gives it, where the catalogue has one."""
    if not items:
        return {}
    catalog = events.catalog("items", tenant)
    if catalog is None or "item_id" not in catalog:
        return {}
    column = next((c for c in ITEM_NAME_COLUMNS if c in catalog), None)
    if column is None:
        return {}
    known = catalog[catalog["item_id"].isin(items)].dropna(subset=[column])
    return dict(zip(known["item_id"].astype(str), known[column].astype(str)))


def _event(row: dict[Any, Any], names: dict[str, str], lang: str, settings: Settings) -> dict[str, Any]:
    label = settings.events.label(str(row["event_type"]))
    item = None if pd.isna(row["item_id"]) else str(row["item_id"])
    return {
        "seq": int(row["seq"]),
        "event_id": str(row["event_id"]),
        "ts": row["ts"].to_pydatetime(),
        "arrived_at": None if pd.isna(row["arrived_at"]) else row["arrived_at"].to_pydatetime(),
        "event_type": str(row["event_type"]),
        "what": label.verb_zh if lang == "zh-CN" else label.verb_en,
        "sales_id": None if pd.isna(row["sales_id"]) else str(row["sales_id"]),
        "dwell_s": None if pd.isna(row["dwell_s"]) else float(row["dwell_s"]),
        "item_id": item,
        "item_name": names.get(item) if item else None,
        "channel": None if pd.isna(row["channel"]) else str(row["channel"]),
    }


def _score(row: dict[Any, Any], settings: Settings) -> dict[str, Any]:
    return {
        "as_of": pd.Timestamp(row["as_of"]).to_pydatetime(),
        "model_version": str(row["model_version"]),
        "p_close": float(row["p_close"]),
        "grade": str(row["grade"])
        if isinstance(row.get("grade"), str)
        else settings.serving.grade(float(row["p_close"])),
        "stage": None if pd.isna(row["stage"]) else str(row["stage"]),
        "source": str(row.get("source") or "batch"),
        "moved_by": None if pd.isna(row.get("moved_by")) else str(row["moved_by"]),
    }
