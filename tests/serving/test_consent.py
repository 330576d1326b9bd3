"""Consent per lead (PIPL, `privacy.consent_required`): without it a lead's score reads counts and its CRM stage
only, the batch build gives it the same row, the dashboard lists none of its recent events, and it raises no alert
nor is named in the digest; with it, or with consent not required, every feature is computed. The real model,
stores and online query (the session's trained champion); the batch build's own consent tests are in
tests/features/test_consent.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadradar.config import Settings
from leadradar.features.build import compute_features
from leadradar.features.consent import split_consent
from leadradar.features.contract import STAGE_SCHEMA
from leadradar.features.online import OnlineFeatures
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import build_registry
from leadradar.features.store import EventStore
from leadradar.features.validation import validate_events
from leadradar.registry import load_alias
from leadradar.serving.activity import batch_activity
from leadradar.serving.alerts.alert import Alert
from leadradar.serving.alerts.delivery import DeliveryWorker
from leadradar.serving.alerts.digest import digest_message, read_facts
from leadradar.serving.alerts.live import Alerter
from leadradar.serving.alerts.outbox import Outbox, Target
from leadradar.serving.alerts.restraint import Decided
from leadradar.serving.alerts.wiring import consenting_now
from leadradar.serving.engine import ContextCache, Engine, load_items
from leadradar.serving.rescoring import Rescorer
from leadradar.serving.store import ScoreStore
from tests.support.alert_standin import JsonPost, plain
from tests.support.http_receiver import Receiver
from tests.support.raw_events import event

TENANT = "t01"


def requiring(settings: Settings, required: bool) -> Settings:
    return settings.model_copy(update={"privacy": settings.privacy.model_copy(update={"consent_required": required})})


@pytest.fixture(scope="module")
def engines(trained: dict, settings: Settings) -> dict[bool, Engine]:
    """The service's engine with consent required and not, built as serving/service.py builds it."""
    loaded = load_alias(settings)
    built = {}
    for required in (True, False):
        s = requiring(settings, required)
        registry = build_registry(s)
        online = OnlineFeatures(s, registry)
        built[required] = Engine(loaded, s, registry, online, ContextCache(None, 60.0), load_items(s, loaded))
    return built


def touches(lead: str, at: pd.Timestamp, consent: list[str] = ()) -> list[dict]:
    """A lead that read products and articles for minutes and called, then the consent events named, in order."""
    kinds = ["card_view", "product_view", "article_view", "product_view", "phone_call", "card_share"]
    rows = [
        event(
            f"{lead}-{k}",
            event_id=f"{lead}-{k}",
            tenant_id=TENANT,
            lead_id=lead,
            sales_id="S1",
            event_type=kind,
            ts=(at - pd.Timedelta(hours=len(kinds) - k)).isoformat(),
            dwell_s="240",
            item_id="P1" if kind == "product_view" else None,
        )
        for k, kind in enumerate(kinds)
    ]
    for j, kind in enumerate(consent):
        ts = (at - pd.Timedelta(minutes=30 - j)).isoformat()
        rows.append(
            event(f"{lead}-c{j}", event_id=f"{lead}-c{j}", tenant_id=TENANT, lead_id=lead, ts=ts, event_type=kind)
        )
    return rows


def records(engine: Engine, rows: list[dict], at: pd.Timestamp) -> dict[str, dict]:
    accepted, rejected = validate_events(pd.DataFrame(rows), engine.settings, at)
    assert rejected.num_rows == 0, rejected.to_pylist()
    stages = STAGE_SCHEMA.empty_table()
    return {r["lead_id"]: r for r in engine.feature_records(accepted, stages, TENANT, at.to_pydatetime())}


def kinds_of(engine: Engine) -> tuple[list[str], list[str]]:
    """The model's count features, and its features about how, what, when and with whom (neither count nor stage)."""
    counts = [f for f in engine.features if f in engine.registry and engine.registry[f].kind == "count"]
    personal = [
        f
        for f in engine.features
        if f in engine.registry and engine.registry[f].kind != "count" and engine.registry[f].family != "funnel"
    ]
    return counts, personal


def test_without_consent_only_counts_are_computed_and_with_it_everything(engines):
    at = pd.Timestamp.now(tz="UTC").floor("s")
    engine = engines[True]
    got = records(
        engine,
        touches("L-none", at)
        + touches("L-yes", at, ["privacy_consent"])
        + touches("L-gone", at, ["privacy_consent", "privacy_withdrawn"]),
        at,
    )
    counts, personal = kinds_of(engine)
    assert counts and personal
    informed = [f for f in personal if got["L-yes"].get(f) is not None]
    assert informed, "the consenting lead has no feature beyond counts"
    for lead in ("L-none", "L-gone"):
        assert [f for f in personal if got[lead].get(f) is not None] == [], lead
        assert [got[lead][f] for f in counts] == [got["L-yes"][f] for f in counts], "counts differ"


def test_with_consent_not_required_every_lead_gets_every_feature_and_consent_events_count_for_nothing(engines):
    at = pd.Timestamp.now(tz="UTC").floor("s")
    got = records(engines[False], touches("L-none", at) + touches("L-yes", at, ["privacy_consent"]), at)
    _, personal = kinds_of(engines[False])
    assert [got["L-none"].get(f) for f in engines[False].features] == [
        got["L-yes"].get(f) for f in engines[False].features
    ]
    assert [f for f in personal if got["L-none"].get(f) is not None]


def test_a_lead_without_consent_raises_no_alert_and_one_with_it_does(engines, tmp_path):
    engine = engines[True]
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}", engine.settings)
    scores = ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}")
    told: list[tuple[str, str]] = []
    at = pd.Timestamp.now(tz="UTC").floor("s")
    rows = touches("L-none", at) + touches("L-yes", at, ["privacy_consent"])
    events.append_events(validate_events(pd.DataFrame(rows), engine.settings, at), source="test", arrived=at)
    rescorer = Rescorer(
        engine.settings, events, scores, lambda: engine, since=0, after=lambda keys, when: told.extend(keys)
    )
    assert rescorer.tick(now=at) == 2  # both are scored: the one without consent from its counts
    assert told == [(TENANT, "L-yes")]
    events.close()
    scores.engine.dispose()


def test_consent_events_are_kept_in_the_store_but_a_training_log_read_from_it_counts_none(tmp_path, settings):
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}", settings)
    at = pd.Timestamp.now(tz="UTC").floor("s")
    rows = touches("L-yes", at, ["privacy_consent"])
    events.append_events(validate_events(pd.DataFrame(rows), settings, at), source="test", arrived=at)
    assert "privacy_consent" in events.events(TENANT)["event_type"].to_pylist()
    log = RadarLog.from_store(events, tenant=TENANT)
    events.close()
    assert sorted(log.events["event_id"].to_pylist()) == sorted(r["event_id"] for r in rows[:-1])
    assert log.consent is not None and log.consent["event_type"].to_pylist() == ["privacy_consent"]


def test_a_lead_that_withdraws_consent_before_its_session_settles_raises_no_alert(tmp_path, settings):
    s = requiring(settings, True)
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}", s)
    scores = ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}")
    outbox = Outbox(f"sqlite:///{tmp_path / 'scores.db'}", s.alerts.rules)
    t0 = pd.Timestamp("2025-03-03T03:40:00Z")  # near noon in the tenants' zone: outside the quiet hours

    def land(lead: str, kinds: list[str], at: pd.Timestamp) -> None:
        rows = [
            event(f"{lead}-{at.value}-{k}", tenant_id=TENANT, lead_id=lead, sales_id="S1", event_type=kind, ts=at)
            for k, kind in enumerate(kinds)
        ]
        events.append_events(validate_events(pd.DataFrame(rows), s, at), source="test", arrived=at)

    for lead in ("L-yes", "L-gone"):
        land(lead, ["privacy_consent"], t0 - pd.Timedelta(hours=1))
        land(lead, ["card_view", "card_save"], t0)
        live = {"tenant_id": TENANT, "lead_id": lead, "scored_at": t0, "model_name": "m", "model_version": "1"}
        live |= {"sales_id": "S1", "stage": "engaged", "p_close": 0.4, "grade": "B", "detail": "{}"}
        scores.write_live(pd.DataFrame([live | {"moved_by": None, "moved_at": None}]))
    land("L-gone", ["privacy_withdrawn"], t0 + pd.Timedelta(minutes=2))
    alerter = Alerter(s, events, scores, outbox, lambda t, sales: [Target("hook", "webhook", None, "en")])
    alerter.after_rescoring([(TENANT, "L-yes"), (TENANT, "L-gone")], t0)
    found = alerter.after_rescoring([], t0 + pd.Timedelta(minutes=8))
    feed = [stored.alert.lead_id for stored in outbox.feed(TENANT)]
    events.close()
    scores.engine.dispose()
    assert found == 1 and feed == ["L-yes"]


def test_a_batch_row_equals_the_live_record_of_a_lead_without_consent_at_the_same_time(engines):
    at = pd.Timestamp.now(tz="UTC").floor("s")
    engine = engines[True]
    rows = touches("L-none", at) + touches("L-gone", at, ["privacy_consent", "privacy_withdrawn"])
    accepted, _ = validate_events(pd.DataFrame(rows), engine.settings, at)
    live = records(engine, rows, at)
    batch = compute_features(accepted, STAGE_SCHEMA.empty_table(), [at], engine.settings, engine.registry, engine.items)
    _, personal = kinds_of(engine)
    for lead in ("L-none", "L-gone"):
        row = batch[batch["lead_id"] == lead].iloc[0]
        assert [f for f in personal if pd.notna(row[f])] == [], lead
        for f in engine.features:
            online = live[lead][f]
            if isinstance(online, str) or isinstance(row[f], str):
                assert online == row[f], (lead, f)
            else:
                expected = np.nan if online is None else float(online)
                assert np.isclose(float(row[f]), expected, equal_nan=True), (lead, f, row[f], online)


@pytest.mark.parametrize("carried", [False, True], ids=["consent in the events file", "consent from the store"])
def test_the_batch_activity_lists_no_event_of_a_lead_without_consent_at_the_run(settings, carried):
    s = requiring(settings, True)
    at = pd.Timestamp.now(tz="UTC").floor("s")
    rows = touches("L-none", at) + touches("L-gone", at, ["privacy_consent", "privacy_withdrawn"])
    rows += touches("L-yes", at, ["privacy_consent"]) + touches("L-later", at, ["privacy_consent"])
    later = (at + pd.Timedelta(minutes=10)).isoformat()
    rows.append(event("L-later-w", tenant_id=TENANT, lead_id="L-later", ts=later, event_type="privacy_withdrawn"))
    accepted, rejected = validate_events(pd.DataFrame(rows), s, at + pd.Timedelta(hours=1))
    assert rejected.num_rows == 0, rejected.to_pylist()
    events, consent = split_consent(accepted, s) if carried else (accepted, None)
    scores = pd.DataFrame({"tenant_id": TENANT, "lead_id": ["L-none", "L-gone", "L-yes", "L-later"]})
    listed = batch_activity(events, STAGE_SCHEMA.empty_table(), scores, at, s, consent).events
    assert sorted(set(listed["lead_id"])) == ["L-later", "L-yes"]  # consent at the run decides, not a later change
    touched = [r["event_id"] for r in touches("L-yes", at)]
    assert sorted(listed.loc[listed["lead_id"] == "L-yes", "event_id"]) == sorted(touched)


def test_the_digest_names_no_lead_without_consent_and_counts_none_of_its_alerts(tmp_path, settings):
    s = requiring(settings, True)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}", s)
    scores = ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}")
    rows = touches("L-none", now) + touches("L-yes", now, ["privacy_consent"])
    rows += touches("L-gone", now, ["privacy_consent", "privacy_withdrawn"])
    events.append_events(validate_events(pd.DataFrame(rows), s, now), source="test", arrived=now)
    scored = pd.DataFrame({"lead_id": ["L-none", "L-yes", "L-gone"], "p_close": [0.9, 0.7, 0.8]}).assign(
        tenant_id=TENANT, sales_id="S1", stage="engaged", as_of=now - pd.Timedelta(hours=1)
    )
    scores.write(scored.assign(model_name="leadradar-close", model_version="1"))
    alerts = [
        Alert(TENANT, lead, "S1", "hot_action", now - pd.Timedelta(hours=30), 0.8, 0.3, "A", f"{lead}|1")
        for lead in ("L-none", "L-yes", "L-gone")
    ]
    facts = {
        required: read_facts(
            TENANT, now.to_pydatetime(), settings=requiring(s, required), scores=scores, events=events, alerts=alerts
        )
        for required in (True, False)
    }
    events.close()
    scores.engine.dispose()
    assert {h.lead_id for h in facts[False].hottest} == {"L-none", "L-yes", "L-gone"}
    assert [h.lead_id for h in facts[True].hottest] == ["L-yes"]
    assert {h.lead_id for h in facts[True].waiting} <= {"L-yes"}
    assert [line.judged for line in facts[True].sales] == [1]
    text = digest_message(facts[True], "en", "http://x/", s).text
    assert "L-yes" in text and "L-none" not in text and "L-gone" not in text


def test_an_alert_waiting_in_the_outbox_is_withheld_when_its_lead_withdraws_consent(tmp_path, settings):
    """Decided while the lead consented, still waiting (quiet hours, a retry) when consent is withdrawn: not sent."""
    s = requiring(settings, True)
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}", s)
    outbox = Outbox(f"sqlite:///{tmp_path / 'scores.db'}", s.alerts.rules)
    t0 = pd.Timestamp("2025-03-03T03:40:00Z")
    said = [
        event(f"{lead}-c", tenant_id=TENANT, lead_id=lead, event_type="privacy_consent", ts=t0 - pd.Timedelta(hours=1))
        for lead in ("L-yes", "L-gone")
    ]
    events.append_events(validate_events(pd.DataFrame(said), s, t0), source="test")
    decided = [
        Decided(Alert(TENANT, lead, "S1", "hot_action", t0, 0.4, 0.2, "B", f"k-{lead}"), "instant", t0)  # type: ignore[arg-type]
        for lead in ("L-yes", "L-gone")
    ]
    ids = dict(zip(("L-yes", "L-gone"), outbox.record(decided, lambda a: [Target("hook", "webhook", None, "en")], t0)))
    gone = event("L-gone-w", tenant_id=TENANT, lead_id="L-gone", event_type="privacy_withdrawn", ts=t0)
    events.append_events(validate_events(pd.DataFrame([gone]), s, t0), source="test")
    with Receiver() as rx:
        worker = DeliveryWorker(outbox, lambda t, n: JsonPost(rx.url), plain, consenting_now(s, events))
        made = worker.drain((t0 + pd.Timedelta(minutes=1)).to_pydatetime())
        got = [g.json()["title"] for g in rx.got]
    statuses = {lead: outbox.deliveries(i)[0]["status"] for lead, i in ids.items()}
    events.close()
    assert made == 1 and got == ["hot_action L-yes"]
    assert statuses == {"L-yes": "sent", "L-gone": "withheld"}
    assert outbox.get(ids["L-gone"]).status == "withheld"
    assert outbox.attempts(ids["L-gone"]) == []
