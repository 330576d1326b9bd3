"""Scores that follow the events (serving/rescoring.py): a lead whose events land is rescored from its stored
history by the model served, the score is appended with the event that moved it, and a burst of one lead's
events gives a few rescorings, not one per event. The real model, stores and online query; the last test runs
the real server and reads the score back from /v1/rank and the dashboard."""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx
import pandas as pd
import pytest

from leadradar.config import Settings
from leadradar.features.online import OnlineFeatures
from leadradar.features.registry import build_registry
from leadradar.features.store import EventStore
from leadradar.features.tiles.online import OnlineTiles
from leadradar.features.validation import validate_events
from leadradar.registry import load_alias
from leadradar.serving.auth import Principal
from leadradar.serving.dashboard.formatting import pct
from leadradar.serving.engine import ContextCache, Engine, load_items
from leadradar.serving.positions import Positions
from leadradar.serving.rescoring import Rescorer, rescoring_worker
from leadradar.serving.schemas import ScoreRequest
from leadradar.serving.store import ScoreStore
from tests.support.raw_events import event

TENANT = "t01"
LEAD = "rescore-L1"


@pytest.fixture(scope="module")
def engine(trained: dict, settings: Settings) -> Engine:
    """What the service answers with, built as serving/service.py builds it."""
    loaded = load_alias(settings)
    registry = build_registry(settings)
    online = OnlineFeatures(settings, registry)
    return Engine(loaded, settings, registry, online, ContextCache(None, 60.0), load_items(settings, loaded))


@pytest.fixture
def stores(tmp_path, settings: Settings):
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}", settings)
    scores = ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}")
    yield events, scores
    events.close()
    scores.engine.dispose()


def touches(n: int, at: pd.Timestamp, start: int = 0, lead: str = LEAD, sales: str = "S1") -> list[dict]:
    """`n` events of one lead, a minute apart up to `at`, the way a card back end sends them."""
    kinds = ["card_view", "product_view", "phone_call", "wechat_add", "meeting", "form_submit", "chat_message"]
    return [
        event(
            start + k,
            event_id=f"{lead}-{start + k}",
            tenant_id=TENANT,
            lead_id=lead,
            sales_id=sales,
            event_type=kinds[(start + k) % len(kinds)],
            ts=(at - pd.Timedelta(minutes=n - 1 - k)).isoformat(),
            dwell_s="30",
        )
        for k in range(n)
    ]


def land(store: EventStore, rows: list[dict], arrived: pd.Timestamp) -> None:
    done = store.append_events(
        validate_events(pd.DataFrame(rows), store.settings, arrived), source="test", arrived=arrived
    )
    assert done.stored == len(rows), done.refusals


def test_only_one_worker_of_a_service_rescores_and_none_when_it_is_turned_off(settings: Settings):
    assert rescoring_worker(settings, None) and rescoring_worker(settings, 1)
    assert not rescoring_worker(settings, 2)
    off = settings.model_copy(update={"serving": settings.serving.model_copy(update={"rescore": False})})
    assert not rescoring_worker(off, 1)


def test_a_late_event_changes_the_score_from_its_arrival_on_and_leaves_earlier_scores_alone(stores, engine):
    events, scores = stores
    t0 = pd.Timestamp.now(tz="UTC").floor("s")
    rescorer = Rescorer(engine.settings, events, scores, lambda: engine)
    land(events, touches(3, t0 - pd.Timedelta(hours=1)), t0)
    assert rescorer.tick(now=t0) == 1
    first = scores.live_history(TENANT, LEAD)
    assert first["moved_by"].tolist() == [f"{LEAD}-2"] and first["scored_at"].tolist() == [t0]

    assert rescorer.tick(now=t0 + pd.Timedelta(seconds=30)) == 0  # nothing new landed: nothing rescored
    t1 = t0 + pd.Timedelta(minutes=1)
    late = touches(3, t0 - pd.Timedelta(days=3), start=10)  # contacts three days ago, sent only now
    land(events, late, t1)
    assert rescorer.tick(now=t1) == 1

    history = scores.live_history(TENANT, LEAD)
    assert len(history) == 2
    pd.testing.assert_frame_equal(history.iloc[:1], first)  # the score given before the event arrived stays
    second = history.iloc[1]
    assert second["scored_at"] == t1 and second["moved_by"] == f"{LEAD}-12"
    assert second["moved_at"] == pd.Timestamp(late[-1]["ts"])
    assert second["p_close"] != first["p_close"].iloc[0]


def test_one_pass_reads_the_whole_log_stored_before_it_and_rescores_each_lead_once(stores, engine):
    """A burst longer than one read of the log: each lead is rescored once, with its newest event, not once a read."""
    events, scores = stores
    t0 = pd.Timestamp.now(tz="UTC").floor("s")
    serving = engine.settings.serving.model_copy(update={"rescore_read_events": 2})
    settings = engine.settings.model_copy(update={"serving": serving})
    rescorer = Rescorer(settings, events, scores, lambda: engine, since=0)
    land(events, touches(4, t0 - pd.Timedelta(minutes=2)) + touches(3, t0, lead="rescore-L2"), t0)
    assert rescorer.tick(now=t0) == 2
    assert rescorer.seq == events.last_seq() and not rescorer.pending
    for lead, newest in ((LEAD, f"{LEAD}-3"), ("rescore-L2", "rescore-L2-2")):
        assert scores.live_history(TENANT, lead)["moved_by"].tolist() == [newest]


def test_a_live_score_is_the_answer_to_the_same_events_sent_inline(stores, engine):
    events, scores = stores
    t0 = pd.Timestamp.now(tz="UTC").floor("s")
    rows = touches(6, t0 - pd.Timedelta(minutes=5))
    land(events, rows, t0)
    Rescorer(engine.settings, events, scores, lambda: engine, since=0).tick(now=t0)
    stored = scores.live_history(TENANT, LEAD).iloc[-1]
    inline = [{k: v for k, v in r.items() if k != "tenant_id"} for r in rows]
    request = ScoreRequest.model_validate({"leads": [{"lead_id": LEAD, "events": inline}], "as_of": t0.isoformat()})
    answer = engine.score(request, Principal(key_id="k", tenant_id=TENANT, role="system")).leads[0]
    assert stored["p_close"] == pytest.approx(answer.p_close[f"{engine.settings.training.horizon_days}d"], abs=1e-9)
    assert stored["grade"] == answer.grade and stored["stage"] == answer.stage


def test_a_request_is_answered_in_place_only_while_its_cost_is_bounded(stores, engine, settings: Settings):
    """The service answers `Engine.quick` requests on its event loop: feature rows, or leads by id whose histories
    the worker keeps; a history still to be read whole, raw events or more leads than `serving.inline_leads` go to
    a thread."""
    events, _ = stores
    t0 = pd.Timestamp.now(tz="UTC").floor("s")
    rows = touches(6, t0 - pd.Timedelta(minutes=5))
    land(events, rows, t0)
    tiles = OnlineTiles(settings, engine.registry)
    kept = Engine(engine.loaded, settings, engine.registry, engine.online, engine.context, engine.items, events, tiles)

    def request(*leads: dict) -> ScoreRequest:
        return ScoreRequest.model_validate({"leads": list(leads), "as_of": t0.isoformat()})

    by_id = request({"lead_id": LEAD})
    assert not kept.quick(by_id, TENANT)  # its history is read whole the first time
    kept.score(by_id, Principal(key_id="k", tenant_id=TENANT, role="system"))
    assert kept.quick(by_id, TENANT)
    assert not kept.quick(by_id, "t02")  # another tenant's lead of that id is not the one kept
    assert not kept.quick(request({"lead_id": LEAD}, {"lead_id": "rescore-unread"}), TENANT)
    sent = {k: v for k, v in rows[0].items() if k not in ("tenant_id", "lead_id")}
    assert not kept.quick(request({"lead_id": LEAD, "stored": True, "events": [sent]}), TENANT)
    assert not kept.quick(request({"lead_id": LEAD, "events": [sent]}), TENANT)
    limit = settings.serving.inline_leads
    assert kept.quick(request(*[{"lead_id": f"F{i}", "features": {}} for i in range(limit)]), TENANT)
    assert not kept.quick(request(*[{"lead_id": f"F{i}", "features": {}} for i in range(limit + 1)]), TENANT)
    assert not engine.quick(by_id, TENANT)  # no kept histories without the tiles


def test_many_events_of_one_lead_in_a_burst_give_a_few_rescorings_not_one_each(stores, engine):
    events, scores = stores
    rescorer = Rescorer(engine.settings, events, scores, lambda: engine)
    rescorer.start()
    try:
        started, sent = time.monotonic(), 40
        for k in range(sent):
            now = pd.Timestamp.now(tz="UTC")
            land(events, touches(1, now, start=k), now)
            time.sleep(0.04)
        burst = time.monotonic() - started
        deadline = time.monotonic() + 60
        while (rescorer.seq < events.last_seq() or rescorer.pending) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rescorer.seq == events.last_seq() and not rescorer.pending, rescorer.status()
    finally:
        rescorer.stop()
    history = scores.live_history(TENANT, LEAD)
    ticks_possible = burst / engine.settings.serving.rescore_interval_seconds + 2
    assert 1 <= len(history) <= ticks_possible, (len(history), burst)
    assert len(history) < sent / 4
    assert history["moved_by"].iloc[-1] == f"{LEAD}-{sent - 1}"  # the last score saw the last event


def test_without_a_model_the_position_stays_so_the_leads_are_rescored_once_one_is_served(stores, engine):
    events, scores = stores
    served: list[Engine] = []
    rescorer = Rescorer(engine.settings, events, scores, lambda: served[0] if served else None)
    t0 = pd.Timestamp.now(tz="UTC").floor("s")
    land(events, touches(2, t0), t0)
    assert rescorer.tick(now=t0) == 0 and rescorer.seq == 0
    served.append(engine)
    assert rescorer.tick(now=t0) == 1 and rescorer.seq == events.last_seq()


# -- the real server ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rescoring_server(tmp_path_factory, settings: Settings, scored):
    """The service on its own score and event stores (so the session server's lists stay as the batch left
    them), with the session's batch run in its score store and a manager key."""
    from leadradar.serving.auth import KeyStore
    from leadradar.serving.process import ServiceProcess
    from leadradar.serving.scoring import store_batch

    tmp = tmp_path_factory.mktemp("rescoring")
    score_url, event_url = f"sqlite:///{tmp / 'scores.db'}", f"sqlite:///{tmp / 'events.db'}"
    store = ScoreStore(score_url)
    store_batch(store, scored.scores, scored.features)
    token = KeyStore(score_url).create(TENANT, "manager", name="rescoring tests")[1]
    events = EventStore(event_url, settings)
    env = {"LEADRADAR_SERVING__SCORE_STORE_URL": score_url, "LEADRADAR_STORE__URL": event_url}
    with ServiceProcess(settings, env=env, log_file=tmp / "service.log") as svc:
        yield svc, store, events, token
    events.close()
    store.engine.dispose()


def test_a_rescored_lead_shows_its_new_score_in_rank_and_on_the_dashboard(rescoring_server, scored):
    svc, store, events, token = rescoring_server
    batch = scored.scores[scored.scores["tenant_id"] == TENANT].sort_values("p_close")
    lead, sales, p_batch = batch.iloc[0][["lead_id", "sales_id", "p_close"]]
    now = pd.Timestamp.now(tz="UTC")
    land(events, touches(7, now, lead=lead, sales=sales), now)  # straight into the store the server follows

    deadline = time.monotonic() + 60
    while store.live_history(TENANT, lead).empty and time.monotonic() < deadline:
        time.sleep(0.2)
    live = store.live_history(TENANT, lead)
    assert len(live) >= 1, svc.tail()
    p_live = float(live["p_close"].iloc[-1])
    assert p_live != pytest.approx(p_batch)
    assert live["moved_by"].iloc[-1] == f"{lead}-6"

    auth = {"Authorization": f"Bearer {token}"}
    ranked = []
    for page in range(1, 50):
        r = httpx.post(
            svc.url + "/v1/rank", json={"sales_id": sales, "page": page, "page_size": 500}, headers=auth, timeout=30
        )
        assert r.status_code == 200, r.text
        ranked += r.json()["leads"]
        if len(r.json()["leads"]) < 500:
            break
    shown = {x["lead_id"]: x for x in ranked}
    assert shown[lead]["p_close"] == pytest.approx(p_live)
    assert shown[lead]["change"] == pytest.approx(p_live - p_batch)  # against the batch run it moved from

    with httpx.Client(base_url=svc.url, timeout=30, follow_redirects=True) as client:
        signed_in = client.post("/dashboard/login", data={"api_key": token, "next": "/dashboard/"})
        assert signed_in.status_code == 200 and "/dashboard/login" not in str(signed_in.url)
        page = client.get(f"/dashboard/leads/{quote(lead, safe='')}")
        assert page.status_code == 200
        assert pct(p_live) in page.text and 'class="moved"' in page.text  # the live point, its event marked
        board = client.get("/dashboard/", params={"sales": sales, "grade": shown[lead]["grade"]})
        row = board.text.split(f'data-lead="{lead}"', 1)
        assert len(row) == 2, "the lead is on its salesperson's list"
        assert pct(p_live) in row[1].split("</tr>", 1)[0]


def test_events_acknowledged_before_a_kill_are_rescored_by_the_next_process_from_the_kept_position(stores, engine):
    events, scores = stores
    positions = Positions(scores.engine)
    t0 = pd.Timestamp.now(tz="UTC").floor("s")
    first = Rescorer(engine.settings, events, scores, lambda: engine, positions=positions)
    assert first.tick(now=t0) == 0 and positions.get() == events.last_seq()
    land(events, touches(3, t0), t0)  # acknowledged; the process dies before its next tick (kill -9: no clean-up)
    del first
    land(events, touches(2, t0, start=10, lead="rescore-L2"), t0)
    second = Rescorer(engine.settings, events, scores, lambda: engine, positions=positions)
    assert second.tick(now=t0 + pd.Timedelta(seconds=1)) == 2
    assert scores.live_history(TENANT, LEAD)["moved_by"].tolist() == [f"{LEAD}-2"]
    assert positions.get() == events.last_seq()


def test_the_kept_position_stays_before_a_lead_that_waits_for_its_interval(stores, engine):
    events, scores = stores
    positions = Positions(scores.engine)
    t0 = pd.Timestamp.now(tz="UTC").floor("s")
    rescorer = Rescorer(engine.settings, events, scores, lambda: engine, positions=positions)
    land(events, touches(1, t0), t0)
    assert rescorer.tick(now=t0) == 1
    before = events.last_seq()
    land(events, touches(1, t0, start=5), t0)  # the same lead again within the interval: it waits
    assert rescorer.tick(now=t0 + pd.Timedelta(milliseconds=100)) == 0 and len(rescorer.pending) == 1
    assert positions.get() == before  # killed now, the next process reads that event again
    again = Rescorer(engine.settings, events, scores, lambda: engine, positions=positions)
    assert again.tick(now=t0 + pd.Timedelta(seconds=5)) == 1
