"""Radar events and stage changes as a card back end posts them to /v1/events and /v1/stages."""

from __future__ import annotations

import uuid

import httpx
import pandas as pd


def fresh(prefix: str) -> str:
    """An id no other test of the session uses (the session's event store is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def event(event_id: str, lead_id: str, minutes_ago: float = 60, **fields) -> dict:
    ts = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=minutes_ago)).floor("s").isoformat()
    body = {"event_id": event_id, "lead_id": lead_id, "sales_id": "s-live", "ts": ts, "event_type": "card_view"}
    return {**body, **fields}


def post(url: str, path: str, body: object, key, timeout: float = 60) -> httpx.Response:
    return httpx.post(url + path, json=body, headers=key.auth, timeout=timeout)
