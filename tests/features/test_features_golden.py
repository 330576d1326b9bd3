"""A dozen hand-written events with every feature value worked out by hand, on each executor."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from leadradar.config import Settings
from leadradar.features.build import compute_features
from leadradar.features.contract import EVENT_SCHEMA, ITEM_SCHEMA, STAGE_SCHEMA
from leadradar.features.online import OnlineFeatures
from leadradar.features.registry import build_registry

CUTOFF = pd.Timestamp("2026-03-02 00:00:00", tz="UTC")  # a Monday; local time is UTC+8

# (event_id, lead, sales, ts UTC, type, dwell, item, referrer)
EVENTS = [
    ("e1", "L1", "s1", "2026-02-01 10:00:00", "card_view", 30.0, None, None),  # Sun 18:00 local
    ("e2", "L1", "s1", "2026-02-25 09:00:00", "product_view", 60.0, "P1", None),  # Wed
    ("e3", "L1", "s1", "2026-02-25 09:10:00", "product_view", 40.0, "P1", None),  # same session, repeat item
    ("e4", "L1", "s1", "2026-02-25 10:00:00", "product_view", 100.0, "PR", None),  # new session, pricing page
    ("e5", "L1", "s1", "2026-02-28 15:00:00", "card_share", None, None, None),  # Sat 23:00 local: night, weekend
    ("e6", "L1", "s1", "2026-03-01 14:00:00", "phone_call", None, None, None),  # Sun 22:00 local: night, weekend
    ("e7", "L1", "s1", "2026-03-01 23:30:00", "card_view", 0.0, None, None),  # zero dwell
    ("e8", "L1", "s1", "2026-03-02 00:00:00", "chat_message", None, None, None),  # exactly at the cutoff: known
    ("e9", "L1", "s2", "2026-03-02 00:00:00.000001", "meeting", None, None, None),  # one microsecond late: not known
    ("f1", "L2", "s1", "2026-02-28 18:00:00", "card_view", 20.0, None, "L1"),  # brought in by L1's share
    ("f2", "L2", "s1", "2026-03-01 08:00:00", "card_view", 10.0, None, None),
    ("g1", "L3", "s1", "2026-01-10 08:00:00", "card_view", 15.0, None, None),  # a lead that was lost
]
STAGES = [
    ("L1", "new", "2026-02-01 10:00:00"),
    ("L1", "engaged", "2026-02-20 12:00:00"),
    ("L1", "qualified", "2026-02-26 12:00:00"),  # skipped `contacted`
    ("L1", "won", "2026-03-05 12:00:00"),  # after the cutoff
    ("L2", "new", "2026-02-28 18:00:00"),
    ("L3", "new", "2026-01-10 08:00:00"),
    ("L3", "lost", "2026-02-10 08:00:00"),  # a closed lead of s1, before the cutoff
]
ITEMS = [("t1", "P1", "line_1"), ("t1", "PR", "pricing")]

L1 = {
    "n_card_view_1d": 1,
    "n_card_view_7d": 1,
    "n_card_view_30d": 2,
    "n_card_view_all": 2,
    "n_product_view_7d": 3,
    "dwell_sum_product_view_7d": 200.0,
    "dwell_mean_product_view_7d": 200 / 3,
    "dwell_max_product_view_7d": 100.0,
    "dwell_mean_card_view_all": 15.0,
    "n_fam_contact_all": 2,
    "n_chat_message_1d": 1,
    "n_meeting_all": 0,
    "n_card_share_all": 1,
    "n_fam_content_30d": 3,
    "n_fam_view_all": 2,
    "hours_since_last_any": 0.0,
    "hours_since_last_view": 0.5,
    "hours_since_last_share": 33.0,
    "hours_since_last_contact": 0.0,
    "hours_since_two_way_contact": 0.0,
    "n_two_way_contact_30d": 2,
    "hours_since_first_event": 29 * 24 - 10.0,
    "sessions_all": 6,
    "sessions_7d": 5,
    "events_per_session": 8 / 6,
    "active_days_all": 4,
    "active_days_7d": 3,
    "momentum_7d": 8.0,
    "night_share": 2 / 8,
    "weekend_share": 3 / 8,
    "zero_dwell_share": 1 / 8,
    "distinct_items_all": 2,
    "repeat_item_views_all": 1,
    "pricing_views_7d": 1,
    "pricing_views_all": 1,
    "top_category_share": 1.0,
    "n_categories": 1,
    "referred_visits_all": 1,
    "referred_leads_all": 1,
    "stage_rank": 3,
    "days_in_stage": 3.5,
    "days_since_created": 28 + 14 / 24,
    "stage_changes": 2,
    "stages_skipped": 1,
    # s1 closed one lead (L3, lost) and owns two open ones (L1, L2); the tenant won 0 of 1.
    "sales_closed_leads": 1,
    "sales_open_leads": 2,
    "tenant_win_rate": 1 / 3,
    "sales_win_rate": (0 + 20 * (1 / 3)) / (1 + 20),
    # events per day before the cutoff: 3 on day 0, 1 on day 1, 3 on day 4, 1 on day 28; each halves per 7 days
    "engagement_7d": 3 + 2 ** (-1 / 7) + 3 * 2 ** (-4 / 7) + 2 ** (-28 / 7),
    "engaged_days_7d": 1 + 2 ** (-1 / 7) + 2 ** (-4 / 7) + 2 ** (-28 / 7),
}
L2 = {
    "n_card_view_all": 2,
    "stage_rank": 0,
    "referred_visits_all": 0,
    "hours_since_last_view": 16.0,
    "momentum_7d": 3.0,
    "sessions_all": 2,
    "hours_since_first_event": 30.0,
    "engagement_7d": 1 + 2 ** (-1 / 7),
}

SETTINGS = Settings()
REGISTRY = build_registry(SETTINGS)


def events() -> pa.Table:
    rows = {k: [] for k in EVENT_SCHEMA.names}
    for eid, lead, sales, ts, etype, dwell, item, ref in EVENTS:
        for k, v in zip(
            (
                "event_id",
                "tenant_id",
                "lead_id",
                "sales_id",
                "ts",
                "event_type",
                "dwell_s",
                "item_id",
                "referrer_lead_id",
                "channel",
            ),
            (eid, "t1", lead, sales, pd.Timestamp(ts, tz="UTC").to_pydatetime(), etype, dwell, item, ref, None),
        ):
            rows[k].append(v)
    return pa.Table.from_pydict(rows, schema=EVENT_SCHEMA)


def stages() -> pa.Table:
    return pa.Table.from_pydict(
        {
            "tenant_id": ["t1"] * len(STAGES),
            "lead_id": [s[0] for s in STAGES],
            "stage": [s[1] for s in STAGES],
            "ts": [pd.Timestamp(s[2], tz="UTC").to_pydatetime() for s in STAGES],
            "deal_value": [None] * len(STAGES),
        },
        schema=STAGE_SCHEMA,
    )


def items() -> pa.Table:
    return pa.Table.from_pylist([dict(zip(("tenant_id", "item_id", "category"), r)) for r in ITEMS], schema=ITEM_SCHEMA)


@pytest.fixture(scope="module", params=["duckdb", "tiles", "sqlite-online"])
def table(request) -> pd.DataFrame:
    if request.param in ("duckdb", "tiles"):
        return compute_features(events(), stages(), [CUTOFF], SETTINGS, REGISTRY, items(), engine=request.param)
    return OnlineFeatures(SETTINGS, REGISTRY).compute(events(), stages(), [CUTOFF], items())


def row(table: pd.DataFrame, lead: str) -> pd.Series:
    rows = table[table["lead_id"] == lead]
    assert len(rows) == 1, f"{lead} should be one open row, got {len(rows)}"
    return rows.iloc[0]


def test_only_open_leads_are_rows(table):
    assert sorted(table["lead_id"]) == ["L1", "L2"]  # L3 was lost before the cutoff


@pytest.mark.parametrize("name,expected", sorted(L1.items()))
def test_hand_computed_features_of_the_busy_lead(table, name, expected):
    assert row(table, "L1")[name] == pytest.approx(expected, rel=1e-9, abs=1e-9), name


@pytest.mark.parametrize("name,expected", sorted(L2.items()))
def test_hand_computed_features_of_the_referred_lead(table, name, expected):
    assert row(table, "L2")[name] == pytest.approx(expected, rel=1e-9, abs=1e-9), name


def test_owner_is_the_first_card_touched_and_stage_is_as_of_the_cutoff(table):
    busy = row(table, "L1")
    assert busy["sales_id"] == "s1"  # e9 (s2) came a microsecond too late to count for anything
    assert busy["stage"] == "qualified"  # the win came after the cutoff
