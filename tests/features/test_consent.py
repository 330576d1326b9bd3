"""Consent in the batch build (PIPL, `privacy.consent_required`): a row whose lead had not consented at its cutoff
keeps counts and the funnel stage only, on the DuckDB and tiles engines, in the training set, and from the event
store as the service saw it; with consent not required the table is the one built without consent events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from leadradar.config import Settings
from leadradar.features.build import compute_features
from leadradar.features.consent import CONSENT_SCHEMA, blanked, consented
from leadradar.features.contract import EVENT_SCHEMA, STAGE_SCHEMA
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import build_registry
from leadradar.features.store import EventStore
from leadradar.features.trainset import build_training_set
from leadradar.features.validation import validate_events, validate_stages
from tests.support.parity import assert_same_features

START = pd.Timestamp("2026-02-02", tz="UTC")
DAYS = 100
CUTOFFS = [START + pd.Timedelta(days=d, hours=12) for d in range(5, 46)]
KINDS = ["card_view", "product_view", "card_share", "phone_call", "article_view"]
# When each lead said what (day, event type): A consents on day 20, B on day 10 and withdraws on day 30, C never.
SAID = {"A": [(20, "privacy_consent")], "B": [(10, "privacy_consent"), (30, "privacy_withdrawn")], "C": []}


def settings_with(required: bool) -> Settings:
    return Settings.model_validate({"privacy": {"consent_required": required}})


REQUIRED, NOT_REQUIRED = settings_with(True), settings_with(False)
REGISTRY = build_registry(REQUIRED)
BLANKED = blanked(REGISTRY)


def day(d: float) -> pd.Timestamp:
    return (START + pd.Timedelta(days=d)).floor("s")


def radar_events(said: dict[str, list[tuple[int, str]]] = SAID) -> pa.Table:
    """A touch a day per lead (views with dwell, shares, calls), and the consent events at 08:00 of their day."""
    rows = []
    for lead in ("A", "B", "C", "D"):
        for d in range(DAYS):
            kind = KINDS[d % len(KINDS)]
            rows.append(
                {
                    "event_id": f"{lead}-{d}",
                    "ts": day(d + 0.3 + 0.01 * "ABCD".index(lead)),
                    "event_type": kind,
                    "dwell_s": 30.0 + 7 * d if kind.endswith("view") else None,
                    "lead_id": lead,
                }
            )
        for d, kind in said.get(lead, []):
            rows.append({"event_id": f"{lead}-c{d}", "ts": day(d + 1 / 3), "event_type": kind, "lead_id": lead})
    frame = pd.DataFrame(rows).assign(tenant_id="t1", sales_id="s1", item_id=None, referrer_lead_id=None, channel=None)
    return pa.Table.from_pandas(frame[EVENT_SCHEMA.names], schema=EVENT_SCHEMA, preserve_index=False)


def radar_stages() -> pa.Table:
    rows = [{"tenant_id": "t1", "lead_id": lead, "stage": "new", "ts": day(0.2), "deal_value": None} for lead in "ABCD"]
    rows += [{"tenant_id": "t1", "lead_id": "A", "stage": "engaged", "ts": day(25), "deal_value": None}]
    return pa.Table.from_pylist(rows, schema=STAGE_SCHEMA)


def consenting(lead: str, cutoff: pd.Timestamp, said: dict[str, list[tuple[int, str]]] = SAID) -> bool:
    latest = [kind for d, kind in said.get(lead, []) if day(d + 1 / 3) <= cutoff]
    return bool(latest) and latest[-1] == "privacy_consent"


def assert_counts_only_where_unconsented(gated: pd.DataFrame, full: pd.DataFrame, expected: np.ndarray) -> None:
    """Rows with consent equal the ungated table; rows without it are blank on every non-count feature and equal
    on the rest; and the ungated table had something to blank there."""
    key = ["tenant_id", "lead_id", "cutoff"]
    gated, full = (t.sort_values(key).reset_index(drop=True) for t in (gated, full))
    assert expected.any() and not expected.all()
    assert_same_features(gated[expected], full[expected], REGISTRY)
    kept = REGISTRY.select([n for n in REGISTRY.names if n not in BLANKED])
    assert_same_features(gated[~expected], full[~expected], kept)
    assert gated.loc[~expected, BLANKED].isna().all().all()
    assert full.loc[~expected, BLANKED].notna().any().sum() > 5, "nothing there to blank: the test cannot fail"


@pytest.fixture(scope="module")
def events() -> pa.Table:
    return radar_events()


@pytest.mark.parametrize("engine", ["duckdb", "tiles"])
def test_rows_before_a_lead_consents_and_after_it_withdraws_carry_only_counts(events, engine):
    gated = compute_features(events, radar_stages(), CUTOFFS, REQUIRED, REGISTRY, engine=engine)
    full = compute_features(events, radar_stages(), CUTOFFS, NOT_REQUIRED, REGISTRY, engine=engine)
    gated = gated.sort_values(["tenant_id", "lead_id", "cutoff"]).reset_index(drop=True)
    expected = np.array([consenting(lead, c) for lead, c in zip(gated["lead_id"], gated["cutoff"])])
    assert_counts_only_where_unconsented(gated, full, expected)
    a = gated[gated["lead_id"] == "A"].set_index("cutoff")[BLANKED].notna().any(axis=1)
    assert not a[a.index < day(20)].any() and a[a.index > day(20)].all()
    b = gated[gated["lead_id"] == "B"].set_index("cutoff")[BLANKED].notna().any(axis=1)
    assert a.any() and not b[b.index > day(31)].any() and b[(b.index > day(11)) & (b.index < day(30))].all()


def test_with_consent_not_required_consent_events_change_nothing_in_the_table(events):
    without = compute_features(radar_events({}), radar_stages(), CUTOFFS, NOT_REQUIRED, REGISTRY)
    with_them = compute_features(events, radar_stages(), CUTOFFS, NOT_REQUIRED, REGISTRY)
    assert_same_features(with_them, without, REGISTRY)
    assert without[BLANKED].notna().any(axis=1).all()


def test_the_training_set_applies_the_same_rule_as_the_batch_build(events):
    ts = build_training_set(RadarLog(events, radar_stages()), REQUIRED, registry=REGISTRY)
    cutoffs = sorted(ts.frame["cutoff"].unique())
    assert len(cutoffs) >= 3
    batch = compute_features(events, radar_stages(), list(cutoffs), REQUIRED, REGISTRY)
    assert_same_features(ts.frame[batch.columns], batch, REGISTRY)
    expected = np.array([consenting(lead, c) for lead, c in zip(ts.frame["lead_id"], ts.frame["cutoff"])])
    assert expected.any() and not expected.all()
    assert (ts.frame[BLANKED].notna().any(axis=1).to_numpy() == expected).all()


def test_a_consent_that_arrived_late_counts_from_its_arrival_in_a_log_read_as_the_service_saw_it(tmp_path):
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}", REQUIRED)
    now = day(DAYS + 1)
    behaviour = radar_events({})
    store.append_events(validate_events(behaviour, REQUIRED, now), source="test", now=now)
    late = radar_events({"D": [(15, "privacy_consent")]})
    said = late.filter(pc.equal(late["event_type"], "privacy_consent"))
    store.append_events(validate_events(said, REQUIRED, now), source="test", now=now, arrived=day(25))
    store.append_stages(validate_stages(radar_stages(), REQUIRED, now), source="test", now=now)
    seen = RadarLog.from_store(store, as_seen=True)
    by_time = RadarLog.from_store(store, as_seen=False)
    store.close()
    assert seen.consent is not None and seen.consent.num_rows == 1
    assert seen.events.num_rows == behaviour.num_rows, "a consent event is not a touch"
    for log, since in ((seen, day(25)), (by_time, day(15 + 1 / 3))):
        cutoffs = CUTOFFS[::3]
        gated = compute_features(log.events, log.stages, cutoffs, REQUIRED, REGISTRY, consent=log.consent).sort_values(
            ["tenant_id", "lead_id", "cutoff"], ignore_index=True
        )
        full = compute_features(log.events, log.stages, cutoffs, NOT_REQUIRED, REGISTRY)
        expected = ((gated["lead_id"] == "D") & (gated["cutoff"] >= since)).to_numpy()
        assert_counts_only_where_unconsented(gated, full, expected)


def test_the_rule_reads_each_tenants_own_lead_and_the_later_listed_of_two_events_at_one_instant():
    at = day(3)
    said = pa.Table.from_pylist(
        [
            {"tenant_id": "t1", "lead_id": "L", "ts": at, "event_type": "privacy_consent"},
            {"tenant_id": "t1", "lead_id": "L", "ts": at, "event_type": "privacy_withdrawn"},
            {"tenant_id": "t2", "lead_id": "L", "ts": at, "event_type": "privacy_consent"},
            {"tenant_id": "t1", "lead_id": "M", "ts": at, "event_type": "privacy_withdrawn"},
            {"tenant_id": "t1", "lead_id": "M", "ts": at, "event_type": "privacy_consent"},
        ],
        schema=CONSENT_SCHEMA,
    )
    keys = [("t1", "L", at), ("t2", "L", at), ("t2", "L", at - pd.Timedelta(microseconds=1)), ("t1", "M", at)]
    got = consented(said, *zip(*keys), settings=REQUIRED)
    assert got.tolist() == [False, True, False, True]


def test_a_log_without_consent_events_is_given_back_as_it_is_and_one_with_them_is_split():
    """Filtering copies every column: a 10.5 M-event log read from the store was held twice for none to drop."""
    from leadradar.features.consent import split_consent

    s = REQUIRED
    rows = {name: [] for name in EVENT_SCHEMA.names} | {"event_id": ["a", "b"], "tenant_id": ["t", "t"]}
    rows |= {"lead_id": ["L", "L"], "sales_id": ["s", "s"], "ts": [START, START], "event_type": KINDS[:2]}
    rows |= {"dwell_s": [None, None], "item_id": [None, None], "referrer_lead_id": [None, None]}
    rows |= {"channel": ["h5", "h5"]}
    log = pa.Table.from_pydict(rows, schema=EVENT_SCHEMA)
    behaviour, consent = split_consent(log, s)
    assert behaviour is log and consent.num_rows == 0
    types = pa.array([KINDS[0], "privacy_consent"])
    said = log.set_column(log.schema.get_field_index("event_type"), "event_type", types)
    behaviour, consent = split_consent(said, s)
    assert behaviour["event_id"].to_pylist() == ["a"] and consent["event_type"].to_pylist() == ["privacy_consent"]
