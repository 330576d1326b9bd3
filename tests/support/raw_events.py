"""One raw radar event as a file or a request carries it, for the ingest and validation tests."""

from __future__ import annotations

import pandas as pd

# "Now" for the tests' time rules: a week after the events below happened.
NOW = pd.Timestamp("2026-03-10T00:00:00Z")


def event(n: int | str, **overrides: object) -> dict[str, object]:
    """A valid card view (`ev<n>` of lead L1), with any field replaced by `overrides`."""
    row: dict[str, object] = {
        "event_id": f"ev{n}",
        "tenant_id": "acme",
        "lead_id": "L1",
        "sales_id": "S1",
        "ts": "2026-03-01T10:00:00+08:00",
        "event_type": "card_view",
        "dwell_s": "12.5",
        "item_id": None,
        "referrer_lead_id": None,
        "channel": "mini_program",
    }
    row.update(overrides)
    return row
