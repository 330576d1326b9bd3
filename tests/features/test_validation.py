"""The one event rule set: each rule refuses what it should, with its limits read from the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from leadradar.config import EventConfig, Settings
from leadradar.features.contract import EVENT_COLUMNS, EVENT_SCHEMA
from leadradar.features.validation import (
    RULES,
    EventColumnsError,
    mark_duplicates,
    resent_changed_reason,
    validate_events,
)
from tests.support.raw_events import NOW, event


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


def verdicts(rows: list[dict[str, object]], settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    accepted, rejected = validate_events(pd.DataFrame(rows), settings, now=NOW)
    return accepted.to_pandas(), rejected.to_pandas()


def test_rules_follow_the_contract_column_order_so_the_first_problem_in_that_order_is_the_one_named():
    order = [EVENT_COLUMNS.index(rule.field) for rule in RULES]
    assert order == sorted(order)
    assert len({(rule.field, rule.name) for rule in RULES}) == len(RULES)


@pytest.mark.parametrize(
    ("ts", "expected_in_reason"),
    [
        ("2026-03-01T10:00:00", "naive timestamp"),
        ("2026-03-01", "naive timestamp"),
        ("03/01/2026 10:00 +08:00", "is not a timestamp"),
        ("1999-12-31T23:59:59Z", "is before 2000-01-01"),
        ("2026-03-11T00:00:01Z", "more than 1 day after now"),
        ("", "missing"),
        ("   ", "missing"),
    ],
)
def test_timestamps_without_a_zone_or_out_of_range_are_rejected_not_guessed(settings, ts, expected_in_reason):
    accepted, rejected = verdicts([event(1, ts=ts or None)], settings)

    assert accepted.empty
    assert rejected["field"].tolist() == ["ts"]
    assert expected_in_reason in rejected["reason"][0]


def test_timestamps_with_offsets_are_converted_to_the_right_utc_instant(settings):
    raw = [
        "2026-03-01T10:00:00+08:00",
        "2026-03-01 10:00:00+0800",
        "2026-03-01T02:00:00Z",
        "2026-02-28T21:00:00-05:00",
        " 2026-03-01T10:00:00.123456+08:00 ",
    ]
    accepted, rejected = verdicts([event(i, ts=ts) for i, ts in enumerate(raw)], settings)

    assert rejected.empty
    assert str(accepted["ts"].dtype) == "datetime64[us, UTC]"
    expected = pd.Timestamp("2026-03-01T02:00:00Z")
    assert accepted["ts"].tolist()[:4] == [expected] * 4
    assert accepted["ts"].iloc[4] == expected + pd.Timedelta(microseconds=123456)


def test_the_time_bounds_come_from_the_settings(settings):
    own = Settings(
        events=EventConfig(earliest_ts=datetime(2026, 1, 1, tzinfo=UTC), future_tolerance=timedelta(hours=36))
    )
    rows = [
        event(1, ts="2025-12-31T23:59:59Z"),
        event(2, ts="2026-01-01T00:00:00Z"),
        event(3, ts="2026-03-11T12:00:00Z"),
        event(4, ts="2026-03-11T12:00:01Z"),
    ]

    accepted, rejected = verdicts(rows, own)

    assert accepted["event_id"].tolist() == ["ev2", "ev3"]
    assert rejected["row"].tolist() == [1, 4]
    assert "is before 2026-01-01" in rejected["reason"][0]
    assert "more than 36 hours after now" in rejected["reason"][1]
    assert verdicts(rows, settings)[1]["row"].tolist() == [3, 4]


@pytest.mark.parametrize(
    ("dwell", "ok"),
    [
        ("0", True),
        (None, True),
        ("3.25", True),
        ("14400", True),
        ("-0.5", False),
        ("inf", False),
        ("nan", False),
        ("long", False),
        ("14400.1", False),
        (str(2500 * 3600), False),
    ],
)
def test_dwell_must_be_a_finite_plausible_number_of_seconds_or_empty(settings, dwell, ok):
    accepted, rejected = verdicts([event(1, dwell_s=dwell)], settings)

    assert len(accepted) == int(ok)
    assert rejected["field"].tolist() == ([] if ok else ["dwell_s"])


def test_a_dwell_of_2500_hours_is_refused_naming_the_setting_that_bounds_it(settings):
    _, rejected = verdicts([event(1, dwell_s=2500 * 3600.0)], settings)

    assert rejected["reason"][0] == (
        "dwell_s: '9000000' is more than 14400 seconds (4 h, settings.events.max_dwell_seconds): a page left open,"
        " not read"
    )
    longer = Settings(events=EventConfig(max_dwell_seconds=10_000_000))
    assert verdicts([event(1, dwell_s=2500 * 3600.0)], longer)[1].empty


def test_event_types_come_from_the_settings():
    own = Settings(events=EventConfig(types={"card_open": "view"}, two_way_contact=(), dwell_types=()))
    df = pd.DataFrame([event(1, event_type="card_open"), event(2, event_type="card_view")])

    accepted, rejected = validate_events(df, own, now=NOW)

    assert accepted["event_id"].to_pylist() == ["ev1"]
    assert rejected["reason"].to_pylist() == ["event_type: 'card_view' is not a configured type (allowed: card_open)"]


@pytest.mark.parametrize("field", ["event_id", "tenant_id", "lead_id", "sales_id", "event_type"])
def test_a_required_id_missing_or_blank_is_refused_for_that_field(settings, field):
    _, rejected = verdicts([event(1, **{field: None}), event(2, **{field: "  "})], settings)

    assert rejected["field"].tolist() == [field, field]
    assert rejected["reason"][0] == f"{field}: missing (expected a non-empty string)"
    assert rejected["reason"][1] == f"{field}: blank value '  ' (expected a non-empty string)"


def test_strings_are_trimmed_and_blank_optional_values_become_null(settings):
    accepted, _ = verdicts([event(1, lead_id=" L1 ", event_type=" card_view", item_id="  ", channel=" h5 ")], settings)

    row = accepted.iloc[0]
    assert (row["lead_id"], row["event_type"], row["channel"]) == ("L1", "card_view", "h5")
    assert pd.isna(row["item_id"])


def test_a_contract_table_with_typed_columns_gets_the_same_verdicts_as_text(settings):
    rows = [event(1), event(2, ts="1999-06-01T00:00:00Z"), event(3, dwell_s="20000"), event(4, event_type="poke")]
    as_text = verdicts(rows, settings)[1][["row", "field"]]
    typed = pa.Table.from_pylist(
        [
            {**r, "ts": pd.Timestamp(r["ts"]).to_pydatetime(), "dwell_s": float(r["dwell_s"])}  # type: ignore[arg-type]
            for r in rows
        ],
        schema=EVENT_SCHEMA,
    )

    accepted, rejected = validate_events(typed, settings, now=NOW)

    assert rejected.select(["row", "field"]).to_pandas().equals(as_text)
    assert accepted.schema.equals(EVENT_SCHEMA) and accepted["event_id"].to_pylist() == ["ev1"]
    assert rejected["ts"][0].as_py() == "1999-06-01 00:00:00+00:00"


def test_validate_events_returns_contract_rows_and_one_row_per_refusal(settings):
    df = pd.DataFrame([event(1, dwell_s=4.0), event(2, ts="2026-03-01T10:00:00", dwell_s=None)], index=[101, 205])

    accepted, rejected = validate_events(df, settings, now=NOW)

    assert accepted.schema.equals(EVENT_SCHEMA)
    assert accepted["dwell_s"].to_pylist() == [4.0]
    assert rejected.select(["row", "field"]).to_pylist() == [{"row": 2, "field": "ts"}]


def test_a_table_without_a_required_column_is_refused_whole_naming_it(settings):
    df = pd.DataFrame([event(1)]).drop(columns=["sales_id"]).rename(columns={"lead_id": "Lead_ID"})

    with pytest.raises(EventColumnsError, match=r"missing required columns lead_id, sales_id.*'Lead_ID' looks like"):
        validate_events(df, settings, now=NOW, source="crm.csv")


def test_mark_duplicates_flags_all_but_the_first_copy_per_tenant_and_event_id():
    events = pd.DataFrame(
        {
            "event_id": ["a", "a", "a", "a"],
            "tenant_id": ["t", "t", "t", "u"],
            "lead_id": ["L1", "L1", "L9", "L1"],
            **{c: ["x"] * 4 for c in ("sales_id", "event_type")},
            "ts": pd.to_datetime(["2026-03-01"] * 4, utc=True),
            "dwell_s": [1.0] * 4,
            **{c: [None] * 4 for c in ("item_id", "referrer_lead_id", "channel")},
        }
    )[list(EVENT_COLUMNS)]

    duplicate, conflicting = mark_duplicates(events)

    assert duplicate.tolist() == [False, True, True, False]
    assert conflicting.tolist() == [False, False, True, False]


def test_a_changed_resend_is_refused_on_event_id_quoting_it():
    assert resent_changed_reason(pa.array(["ev7"])).to_pylist() == [
        "event_id: 'ev7' came before with different content; the first copy was kept (a new event needs a new event_id)"
    ]


def test_a_naive_now_is_a_bug_of_the_caller(settings):
    with pytest.raises(ValueError, match="naive"):
        validate_events(pd.DataFrame([event(1)]), settings, now=pd.Timestamp("2026-03-10"))
