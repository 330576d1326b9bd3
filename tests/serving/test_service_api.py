"""The /v1 API round trips against the real server: the answers equal the same computation in process."""

from __future__ import annotations

import math
import re

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from leadradar.features.contract import EVENT_SCHEMA, ITEM_SCHEMA, STAGE_SCHEMA
from leadradar.features.online import OnlineFeatures
from leadradar.features.registry import build_registry
from leadradar.registry import load_alias
from leadradar.serving.ranking import ranked_leads
from leadradar.serving.store import CONTEXT_FEATURES, ScoreStore

pytestmark = pytest.mark.server
CJK = re.compile(r"[\u4e00-\u9fff]")
TENANT = "t01"


def post(server, path: str, body: dict, key) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=key.auth, timeout=60)


def feature_lead(row: dict, features: list[str]) -> dict:
    """A lead's feature row as a sales system sends it (missing values as null)."""
    return {"lead_id": row["lead_id"], "features": {f: (None if pd.isna(row[f]) else row[f]) for f in features}}


# -- raw events: what a request sends, and the same computation in process --------------------------------------


def iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").isoformat()


def event_body(e: dict) -> dict:
    body = {"event_id": e["event_id"], "ts": iso(e["ts"]), "event_type": e["event_type"], "sales_id": e["sales_id"]}
    for k in ("dwell_s", "item_id", "referrer_lead_id", "channel"):
        if not pd.isna(e[k]):
            body[k] = e[k]
    return body


def event_lead(lead_id: str, events: pd.DataFrame, stages: pd.DataFrame, attributes: dict | None) -> dict:
    """One lead's own events and stage rows, as a CRM sends them."""
    body = {
        "lead_id": lead_id,
        "events": [event_body(e) for e in events.to_dict("records")],
        "stages": [{"stage": s["stage"], "ts": iso(s["ts"])} for s in stages.to_dict("records")],
    }
    if attributes:
        body["attributes"] = attributes
    return body


def request_tables(leads: list[dict], tenant: str) -> tuple[pa.Table, pa.Table, pa.Table | None]:
    """The contract tables a scoring request stands for, built from the JSON that was sent."""
    ev = {k: [] for k in EVENT_SCHEMA.names}
    st = {k: [] for k in STAGE_SCHEMA.names}
    attrs = []
    for lead in leads:
        for e in lead["events"]:
            row = {
                "dwell_s": None,
                "item_id": None,
                "referrer_lead_id": None,
                "channel": None,
                **e,
                "ts": pd.Timestamp(e["ts"]).to_pydatetime(),
                "tenant_id": tenant,
                "lead_id": lead["lead_id"],
            }
            for k in EVENT_SCHEMA.names:
                ev[k].append(row[k])
        for s in lead.get("stages", []):
            for k, v in (
                ("tenant_id", tenant),
                ("lead_id", lead["lead_id"]),
                ("stage", s["stage"]),
                ("ts", pd.Timestamp(s["ts"]).to_pydatetime()),
                ("deal_value", None),
            ):
                st[k].append(v)
        if lead.get("attributes"):
            attrs.append({"tenant_id": tenant, "lead_id": lead["lead_id"], **lead["attributes"]})
    lead_table = pa.Table.from_pylist(attrs) if attrs else None
    return pa.Table.from_pydict(ev, schema=EVENT_SCHEMA), pa.Table.from_pydict(st, schema=STAGE_SCHEMA), lead_table


def with_stored_context(frame: pd.DataFrame, context: dict[str, dict]) -> pd.DataFrame:
    """Salesperson features as the latest batch run stored them (a win rate unknown for a person: the tenant's)."""
    frame = frame.copy()
    if not context or frame.empty:
        return frame
    tenant_rate = next(iter(context.values())).get("tenant_win_rate")
    for col in (c for c in CONTEXT_FEATURES if c in frame.columns):
        for i, sales in enumerate(frame["sales_id"]):
            value = context.get(sales, {}).get(col)
            if value is None and col in ("sales_win_rate", "tenant_win_rate"):
                value = tenant_rate
            if value is not None:
                frame.loc[frame.index[i], col] = float(value)
    return frame


@pytest.fixture(scope="module")
def sim_frames(small_sim) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(getattr(small_sim, name)) for name in ("events", "stages", "leads")}


@pytest.fixture(scope="module")
def online(settings) -> OnlineFeatures:
    return OnlineFeatures(settings, build_registry(settings))


@pytest.fixture(scope="module")
def champion(settings, scored):
    return load_alias(settings)


def lead_payload(sim_frames, lead_id: str, as_of: pd.Timestamp, after: bool = False) -> dict:
    ev, st, ld = sim_frames["events"], sim_frames["stages"], sim_frames["leads"]
    events = ev[(ev["lead_id"] == lead_id) & ((ev["ts"] <= as_of) | after)].sort_values("ts")
    stages = st[(st["lead_id"] == lead_id) & (st["ts"] <= as_of)].sort_values("ts")
    attrs = ld[ld["lead_id"] == lead_id].drop(columns=["tenant_id", "lead_id"]).to_dict("records")
    attributes = {k: (None if pd.isna(v) else str(v)) for k, v in attrs[0].items()} if attrs else None
    return event_lead(lead_id, events, stages, attributes)


def open_leads_at(sim_frames, tenant: str, when: pd.Timestamp, settings) -> list[str]:
    """Leads of the tenant whose latest stage at `when` is an open one and that have a few events by then."""
    st, ev = sim_frames["stages"], sim_frames["events"]
    st = st[(st["tenant_id"] == tenant) & (st["ts"] <= when)].sort_values("ts")
    last = st.groupby("lead_id")["stage"].last()
    open_ = last[last.isin(settings.funnel.open_stages)].index
    counts = ev[(ev["tenant_id"] == tenant) & (ev["ts"] <= when)].groupby("lead_id").size()
    counts = counts[counts.index.isin(open_) & counts.between(3, 400)]
    return sorted(counts.index)


def expected_online(settings, online, champion, small_sim, leads: list[dict], as_of: pd.Timestamp) -> pd.DataFrame:
    """The service's answer for raw events, computed in process: online features, stored context, the funnel."""
    events, stages, lead_table = request_tables(leads, TENANT)
    items = (
        pa.Table.from_pandas(pd.read_parquet(small_sim.items), preserve_index=False)
        .select(ITEM_SCHEMA.names)
        .cast(ITEM_SCHEMA)
    )
    frame = online.compute(events, stages, [as_of], items, lead_table)
    frame = with_stored_context(frame, ScoreStore(settings.score_store_url).context(TENANT))
    funnel = champion.model.predict_funnel(frame, list(settings.funnel.open_stages))
    return pd.concat([frame[["lead_id", "stage"]], funnel], axis=1).set_index("lead_id")


def assert_same_as_in_process(answer: dict, expected: pd.DataFrame) -> None:
    scored = {a["lead_id"]: a for a in answer["leads"] if a["status"] == "scored"}
    assert set(scored) == set(expected.index), set(scored) ^ set(expected.index)
    for lead_id, a in scored.items():
        row = expected.loc[lead_id]
        assert a["stage"] == row["stage"]
        for h, p in a["p_close"].items():
            assert p == pytest.approx(row[f"p_close_{h}"], abs=1e-9, rel=0), (lead_id, h)
        if not math.isnan(row.get("p_advance", float("nan"))):
            assert a["p_advance"] == pytest.approx(row["p_advance"], abs=1e-9, rel=0), lead_id


# -- /v1/score with feature rows ---------------------------------------------------------------------------------


def test_feature_rows_score_exactly_as_the_champion_predicts_in_process(server, scored, champion, settings, role_keys):
    features = champion.model.features
    sample = scored.features[scored.features["tenant_id"] == TENANT].sample(30, random_state=1)
    body = {"leads": [feature_lead(r, features) for r in sample.to_dict("records")]}
    resp = post(server, "/v1/score", body, role_keys[TENANT, "system"])
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["model_name"] == champion.ref.name and answer["model_version"] == champion.ref.version
    assert answer["horizon_days"] == settings.training.horizon_days
    assert [a["lead_id"] for a in answer["leads"]] == sample["lead_id"].tolist()
    funnel = champion.model.predict_funnel(sample, list(settings.funnel.open_stages))
    targets = champion.model.predict_targets(sample)
    for k, a in enumerate(answer["leads"]):
        assert a["status"] == "scored" and a["tenant_id"] == TENANT
        assert a["stage"] == sample["stage"].iloc[k]
        assert set(a["p_close"]) == {
            c.removeprefix("p_close_") for c in funnel.columns if c.startswith("p_close_") and c != "p_close_chained"
        }
        for h, p in a["p_close"].items():
            assert p == pytest.approx(funnel[f"p_close_{h}"].iloc[k], abs=1e-9, rel=0)
        assert a["p_advance"] == pytest.approx(funnel["p_advance"].iloc[k], abs=1e-9, rel=0)
        for stage, p in a["transitions"].items():
            assert p == pytest.approx(targets[f"advance_{stage}"].iloc[k], abs=1e-9, rel=0)
        assert a["grade"] == settings.serving.grade(targets[champion.model.main_target].iloc[k])


def test_zh_cn_reasons_are_in_chinese_and_explain_false_gives_none(server, scored, champion, role_keys):
    features = champion.model.features
    sample = scored.features[scored.features["tenant_id"] == TENANT].head(5)
    leads = [feature_lead(r, features) for r in sample.to_dict("records")]
    key = role_keys[TENANT, "manager"]
    texts = {}
    for lang in ("zh-CN", "en"):
        resp = post(server, "/v1/score", {"leads": leads, "lang": lang}, key)
        assert resp.status_code == 200, resp.text
        reasons = [a["reasons"] for a in resp.json()["leads"]]
        assert all(r is not None and (r["for"] or r["against"]) for r in reasons)
        texts[lang] = [x["text"] for r in reasons for x in (*r["for"], *r["against"])]
    assert all(CJK.search(t) for t in texts["zh-CN"]), texts["zh-CN"][:3]
    assert not any(CJK.search(t) for t in texts["en"]), texts["en"][:3]
    quiet = post(server, "/v1/score", {"leads": leads, "lang": "zh-CN", "explain": False}, key)
    assert quiet.status_code == 200 and all(a["reasons"] is None for a in quiet.json()["leads"])


# -- /v1/score with raw events ----------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["end", "mid"])
def test_raw_events_score_exactly_as_online_features_in_process(
    when, server, scored, sim_frames, online, champion, settings, small_sim, role_keys
):
    as_of = scored.as_of if when == "end" else scored.as_of - pd.Timedelta(days=61, hours=-13, minutes=-7)
    candidates = open_leads_at(sim_frames, TENANT, as_of, settings)
    picked = list(np.random.default_rng(5).choice(candidates, 8, replace=False))
    leads = [lead_payload(sim_frames, lead_id, as_of) for lead_id in picked]
    resp = post(server, "/v1/score", {"leads": leads, "as_of": iso(as_of)}, role_keys[TENANT, "system"])
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert pd.Timestamp(answer["as_of"]) == as_of and answer["model_version"] == champion.ref.version
    assert [a["status"] for a in answer["leads"]] == ["scored"] * len(picked)
    assert_same_as_in_process(answer, expected_online(settings, online, champion, small_sim, leads, as_of))


def test_events_after_as_of_never_change_the_answer(server, scored, sim_frames, settings, role_keys):
    as_of = scored.as_of - pd.Timedelta(days=30)
    ev = sim_frames["events"]
    later = set(ev.loc[ev["ts"] > as_of, "lead_id"])
    lead_id = next(x for x in open_leads_at(sim_frames, TENANT, as_of, settings) if x in later)
    until, everything = (lead_payload(sim_frames, lead_id, as_of, after=after) for after in (False, True))
    assert len(everything["events"]) > len(until["events"])
    answers = []
    for lead in (until, everything):
        resp = post(server, "/v1/score", {"leads": [lead], "as_of": iso(as_of)}, role_keys[TENANT, "system"])
        assert resp.status_code == 200, resp.text
        answers.append(resp.json()["leads"][0])
    assert answers[0]["status"] == "scored" and answers[0] == answers[1]


def test_a_lead_won_or_lost_before_as_of_answers_closed_and_one_not_seen_yet_unknown(
    server, scored, sim_frames, settings, role_keys
):
    st, ev = sim_frames["stages"], sim_frames["events"]
    as_of = scored.as_of
    mine = st[(st["tenant_id"] == TENANT) & (st["ts"] <= as_of)].sort_values("ts")
    last = mine.groupby("lead_id")["stage"].last()
    won = last[last == settings.funnel.won].index[0]
    lost = last[last == settings.funnel.lost].index[0]
    first_seen = ev[ev["tenant_id"] == TENANT].groupby("lead_id")["ts"].min()
    early = as_of - pd.Timedelta(days=60)
    newcomer = first_seen[first_seen > early + pd.Timedelta(days=1)].index[0]
    leads = [
        lead_payload(sim_frames, won, as_of),
        lead_payload(sim_frames, lost, as_of),
        lead_payload(sim_frames, newcomer, as_of, after=True),
    ]
    resp = post(server, "/v1/score", {"leads": leads, "as_of": iso(early)}, role_keys[TENANT, "system"])
    assert resp.status_code == 200, resp.text
    unseen = resp.json()["leads"][2]  # nothing of the newcomer at or before `early`
    assert unseen["status"] == "unknown" and unseen["p_close"] == {} and unseen["grade"] is None
    resp = post(server, "/v1/score", {"leads": leads[:2], "as_of": iso(as_of)}, role_keys[TENANT, "system"])
    assert resp.status_code == 200, resp.text
    for a in resp.json()["leads"]:
        assert a["status"] == "closed" and a["p_close"] == {} and a["grade"] is None and a["reasons"] is None


# -- /v1/rank ---------------------------------------------------------------------------------------------------


def expected_rank(settings, tenant: str, **filters) -> pd.DataFrame:
    frame = ranked_leads(
        ScoreStore(settings.score_store_url), tenant, filters.get("sales_id"), filters.get("stage"), limit=None
    )
    frame = frame.assign(grade=frame["p_close"].map(settings.serving.grade))
    if filters.get("grade"):
        frame = frame[frame["grade"] == filters["grade"]]
    return frame.reset_index(drop=True)


def assert_page_equals(page: list[dict], frame: pd.DataFrame) -> None:
    assert [r["lead_id"] for r in page] == frame["lead_id"].tolist()
    for got, want in zip(page, frame.to_dict("records")):
        assert got["rank"] == want["rank"] and got["sales_id"] == want["sales_id"] and got["stage"] == want["stage"]
        assert got["grade"] == want["grade"]
        assert got["p_close"] == pytest.approx(want["p_close"], abs=1e-12, rel=0)
        if pd.isna(want["change"]):
            assert got["change"] is None
        else:
            assert got["change"] == pytest.approx(want["change"], abs=1e-12, rel=0)


def test_rank_first_page_equals_ranked_leads_on_the_store(server, scored, settings, role_keys):
    resp = post(server, "/v1/rank", {}, role_keys[TENANT, "manager"])
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    want = expected_rank(settings, TENANT)
    assert answer["tenant_id"] == TENANT and answer["total"] == len(want) > 50
    assert answer["model_version"] == scored.version and pd.Timestamp(answer["as_of"]) == scored.as_of
    assert answer["page"] == 1 and answer["page_size"] == 50
    assert_page_equals(answer["leads"], want.head(50))
    assert any(r["change"] is not None for r in answer["leads"])  # the run a week before gives each a change


def test_rank_filters_by_salesperson_stage_and_grade(server, scored, settings, role_keys):
    mine = scored.scores[scored.scores["tenant_id"] == TENANT]
    sales = mine["sales_id"].value_counts().index[1]
    stage = mine["stage"].value_counts().index[-1]
    grades = mine["p_close"].map(settings.serving.grade)
    grade = grades.value_counts().index[-1]
    key = role_keys[TENANT, "system"]
    for filters in (
        {"sales_id": sales},
        {"stage": stage},
        {"grade": grade},
        {"sales_id": sales, "stage": "engaged"},
        {"stage": stage, "grade": grade},
    ):
        resp = post(server, "/v1/rank", {**filters, "page_size": 500}, key)
        assert resp.status_code == 200, (filters, resp.text)
        want = expected_rank(settings, TENANT, **filters)
        assert resp.json()["total"] == len(want), filters
        assert_page_equals(resp.json()["leads"], want.head(500))
        for r in resp.json()["leads"]:
            assert all(r[k] == v for k, v in filters.items()), (filters, r)


def test_rank_pages_partition_the_list(server, settings, role_keys):
    key = role_keys[TENANT, "manager"]
    want = expected_rank(settings, TENANT, stage="proposal")
    size = max(1, len(want) // 3)
    got, page = [], 1
    while True:
        resp = post(server, "/v1/rank", {"stage": "proposal", "page": page, "page_size": size}, key)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["total"] == len(want) and body["page"] == page and body["page_size"] == size
        if not body["leads"]:
            break
        assert len(body["leads"]) <= size
        got += body["leads"]
        page += 1
    assert page == -(-len(want) // size) + 1
    assert_page_equals(got, want)
    beyond = post(server, "/v1/rank", {"page": 100_000, "page_size": 500}, key)
    assert beyond.status_code == 200 and beyond.json()["leads"] == [] and beyond.json()["total"] > 0


# -- /v1/model, /healthz, /readyz -------------------------------------------------------------------------------


def test_model_names_the_champion_its_window_and_test_metrics(server, trained, scored, role_keys):
    resp = httpx.get(server.url + "/v1/model", headers=role_keys[TENANT, "sales"].auth, timeout=10)
    assert resp.status_code == 200, resp.text
    info = resp.json()
    assert info["ready"] is True and info["alias"] == "champion" and info["source"] == "registry"
    assert info["problem"] is None and info["loaded_at"]
    assert info["name"] == trained["model_name"] and info["version"] == trained["model_version"] == scored.version
    assert info["window"] == trained["window"]
    for name, value in trained["test_metrics"].items():
        if isinstance(value, float) and math.isfinite(value):
            assert info["test_metrics"][name] == pytest.approx(value, rel=1e-9), name
    assert "close_30d" in info["targets"]


def test_model_shows_a_retrain_recorded_after_the_service_started(server, settings, role_keys):
    """The service holds its lifecycle ledger open (opened once, not per request) and still reads what another
    process records in it later."""
    from datetime import UTC, datetime

    from leadradar.ledger import Ledger

    ledger = Ledger(settings.lifecycle_url)
    try:
        ledger.record("retrain", "kept", "test: recorded while the service runs", datetime.now(UTC))
    finally:
        ledger.close()
    resp = httpx.get(server.url + "/v1/model", headers=role_keys[TENANT, "sales"].auth, timeout=10)
    assert resp.status_code == 200, resp.text
    newest = resp.json()["lifecycle"]["retrains"][0]
    assert (newest["outcome"], newest["summary"]) == ("kept", "test: recorded while the service runs")


def test_health_and_readiness_answer_200(server):
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200


def test_the_openapi_document_declares_the_v1_server_and_its_operations(server):
    doc = httpx.get(server.url + "/v1/openapi.json", timeout=10).json()
    assert doc["servers"] == [{"url": "/v1"}]
    assert {("/score", "post"), ("/rank", "post"), ("/model", "get")} <= {
        (p, m) for p, ops in doc["paths"].items() for m in ops
    }
