"""Consent per lead (PIPL, `privacy.consent_required`): the lead's latest consent event decides.

A card back end sends one of `privacy.consent_events` when a visitor accepts or withdraws the privacy agreement;
it is stored with the lead's events. Until a lead consents, its score uses counts of its events and its CRM stage
only, and it raises no alert: how long it read, what, when and with whom it shared are not looked at.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from leadradar.config import Settings
from leadradar.features.registry import FeatureRegistry

# Families kept for a lead without consent: what it did, counted, and where the CRM says it stands.
KEPT_FAMILIES = ("funnel",)


def split_consent(events: pa.Table, settings: Settings) -> tuple[pa.Table, set[str] | None]:
    """The events without the consent events (no feature counts them), and the leads whose latest consent event
    grants it; None when consent is not required (every lead counts as consenting)."""
    types = settings.privacy.consent_events
    if not events.num_rows:
        return events, None if not settings.privacy.consent_required else set()
    is_consent = pc.is_in(events["event_type"], value_set=pa.array(list(types), pa.string()))
    behaviour = events.filter(pc.invert(pc.fill_null(is_consent, False)))
    if not settings.privacy.consent_required:
        return behaviour, None
    said = events.filter(is_consent).select(["lead_id", "ts", "event_type"]).sort_by([("ts", "ascending")])
    latest: dict[str, bool] = {}
    for lead, kind in zip(said["lead_id"].to_pylist(), said["event_type"].to_pylist()):
        latest[lead] = types[kind]
    return behaviour, {lead for lead, granted in latest.items() if granted}


def counts_only(records: Iterable[dict], consented: set[str] | None, registry: FeatureRegistry) -> None:
    """Blank, in place, every feature but counts and the CRM stage for the records of leads without consent."""
    if consented is None:
        return
    blanked = [f.name for f in registry if f.kind != "count" and f.family not in KEPT_FAMILIES]
    for record in records:
        if record.get("lead_id") not in consented:
            for name in blanked:
                if name in record:
                    record[name] = None
