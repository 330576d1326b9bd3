"""No input gives a 5xx: Schemathesis over the OpenAPI document, model-aware fuzzing, and explicit bad inputs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from leadradar.registry import load_alias
from tests.support.schema_fuzz import FUZZ, fuzz_operation

pytestmark = pytest.mark.server

OPERATIONS = [
    ("POST /score", GenerationMode.POSITIVE, 60),
    ("POST /score", GenerationMode.NEGATIVE, 40),
    ("POST /rank", GenerationMode.POSITIVE, 30),
    ("POST /rank", GenerationMode.NEGATIVE, 30),
    ("GET /model", GenerationMode.POSITIVE, 5),
]
EVENT_TYPES = ["card_view", "card_share", "product_view", "phone_call", "meeting"]
STAGES = ["new", "engaged", "contacted", "qualified", "proposal", "won", "lost"]


@pytest.fixture(scope="module")
def schema(server):
    return schemathesis.openapi.from_url(server.url + "/v1/openapi.json")


@pytest.fixture(scope="module")
def auth(role_keys) -> dict[str, str]:
    """A valid system key of t01, in both headers the API reads (so a generated X-Api-Key cannot replace it)."""
    token = role_keys["t01", "system"].token
    return {"Authorization": f"Bearer {token}", "X-Api-Key": token}


def steer(body, data) -> None:
    """Send some generated leads on to the scoring code, past the checks the JSON Schema cannot express.

    The schema does not say "features or events, not both", nor which event types, stages and tenant
    exist; a steered lead is a raw-events lead of the key's tenant with configured types and stages.
    """
    if not isinstance(body, dict) or not isinstance(body.get("leads"), list):
        return
    for lead in body["leads"]:
        if not isinstance(lead, dict) or not data.draw(st.integers(0, 3), label="steer"):
            continue
        if "tenant_id" in lead:
            lead["tenant_id"] = "t01"
        lead.pop("features", None)
        if not isinstance(lead.get("events"), list):
            lead["events"] = []
        for e in lead.get("events") or []:
            if isinstance(e, dict):
                e["event_type"] = data.draw(st.sampled_from(EVENT_TYPES))
        for s in lead.get("stages") or []:
            if isinstance(s, dict):
                s["stage"] = data.draw(st.sampled_from(STAGES))


@pytest.mark.parametrize("label,mode,examples", OPERATIONS, ids=[f"{o[0]}-{o[1].value}" for o in OPERATIONS])
def test_schemathesis_finds_no_server_error(label, mode, examples, schema, server, auth, capsys):
    summary = fuzz_operation(schema, label, mode, examples, server.url + "/v1", auth, steer)
    with capsys.disabled():
        print("\n" + summary)


# -- model-aware fuzzing: feature rows with every value type, raw events with any times and dwell --------------


@pytest.fixture(scope="module")
def feature_names(settings, trained) -> tuple[list[str], set[str]]:
    model = load_alias(settings).model
    return list(model.features), set(model.encoder_.categorical)


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
values = st.one_of(
    st.none(),
    finite,
    st.integers(-(10**9), 10**9),
    st.booleans(),
    st.sampled_from(["Infinity", "-Infinity", "NaN", "1e3", "", "abc", "3"]),
    st.text(max_size=8),
)


def test_any_feature_values_get_200_or_422_never_5xx(server, auth, feature_names, capsys):
    names, categorical = feature_names
    codes: list[int] = []

    @hsettings(FUZZ, max_examples=60)
    @given(data=st.data(), n=st.integers(1, 4), lang=st.sampled_from(["en", "zh-CN"]))
    def fuzz(data, n, lang):
        leads = []
        for i in range(n):
            row = {f: None for f in names}
            for f in data.draw(st.lists(st.sampled_from(names), max_size=25, unique=True), label="touched"):
                row[f] = data.draw(st.one_of(st.text(max_size=12), st.none()) if f in categorical else values, label=f)
            row["stage_rank"] = data.draw(st.one_of(st.none(), st.integers(0, len(STAGES) - 1)), label="stage_rank")
            leads.append({"lead_id": f"fz-{i}", "features": row})
        resp = httpx.post(server.url + "/v1/score", json={"leads": leads, "lang": lang}, headers=auth, timeout=60)
        codes.append(resp.status_code)
        assert resp.status_code in (200, 422), resp.text[:500]

    fuzz()
    with capsys.disabled():
        print(f"\nfeature-row fuzz: {len(codes)} requests, {codes.count(200)} answered 200, {codes.count(422)} 422")


timestamps = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5, minutes=30))]),
)


def test_any_events_and_stages_get_200_or_422_never_5xx(server, auth, capsys):
    codes: list[int] = []
    event = st.fixed_dictionaries(
        {
            "event_id": st.text(min_size=1, max_size=6),
            "ts": timestamps.map(lambda t: t.isoformat()),
            "event_type": st.sampled_from(EVENT_TYPES),
            "sales_id": st.sampled_from(["t01-s001", "t01-s002", "zz"]),
        },
        optional={
            "dwell_s": st.one_of(st.none(), st.floats(0, 1e7)),
            "item_id": st.sampled_from(["t01-p1-01", "x"]),
            "referrer_lead_id": st.sampled_from(["L1", "L2"]),
            "channel": st.sampled_from(["h5", "wecom", "?"]),
            "lead_id": st.sampled_from(["L1", "L2", "L3"]),
        },
    )
    stage = st.fixed_dictionaries({"stage": st.sampled_from(STAGES), "ts": timestamps.map(lambda t: t.isoformat())})
    lead = st.fixed_dictionaries(
        {"lead_id": st.sampled_from(["L1", "L2", "L3"]), "events": st.lists(event, max_size=12)},
        optional={
            "stages": st.lists(stage, max_size=4),
            "attributes": st.dictionaries(
                st.sampled_from(["source", "industry", "x"]), st.one_of(st.none(), st.text(max_size=5))
            ),
        },
    )

    @hsettings(FUZZ, max_examples=60)
    @given(
        leads=st.lists(lead, min_size=1, max_size=3),
        as_of=st.one_of(st.none(), timestamps.map(lambda t: t.isoformat())),
        explain=st.booleans(),
    )
    def fuzz(leads, as_of, explain):
        body = {"leads": leads, "explain": explain, **({"as_of": as_of} if as_of else {})}
        resp = httpx.post(server.url + "/v1/score", json=body, headers=auth, timeout=60)
        codes.append(resp.status_code)
        assert resp.status_code in (200, 422), resp.text[:500]

    fuzz()
    with capsys.disabled():
        print(f"\nevent fuzz: {len(codes)} requests, {codes.count(200)} answered 200, {codes.count(422)} 422")


# -- explicit bad inputs: each a clear 4xx naming what is wrong --------------------------------------------------

EVENT = {"event_id": "e1", "ts": "2026-09-01T10:00:00+08:00", "event_type": "card_view", "sales_id": "t01-s001"}
AS_OF = "2026-09-02T00:00:00Z"


def events_body(**changes) -> dict:
    return {"leads": [{"lead_id": "L1", "events": [{**EVENT, **changes}]}], "as_of": AS_OF}


BAD = {
    "naive event time": (events_body(ts="2026-09-01T10:00:00"), ["body", "leads", 0, "events", 0, "ts"], "timezone"),
    "unparseable event time": (events_body(ts="yesterday"), ["body", "leads", 0, "events", 0, "ts"], "datetime"),
    "naive as_of": ({**events_body(), "as_of": "2026-09-02T00:00:00"}, ["body", "as_of"], "timezone"),
    "unknown event type": (
        events_body(event_type="teleport"),
        ["body", "leads", 0, "events", 0, "event_type"],
        "not a configured type",
    ),
    "negative dwell": (events_body(dwell_s=-1), ["body", "leads", 0, "events", 0, "dwell_s"], "greater than or equal"),
    "dwell not a number": (events_body(dwell_s="long"), ["body", "leads", 0, "events", 0, "dwell_s"], "number"),
    "unknown stage": (
        {"leads": [{"lead_id": "L1", "events": [EVENT], "stages": [{"stage": "nope", "ts": AS_OF}]}]},
        ["body", "leads", 0, "stages", 0, "stage"],
        "not a funnel stage",
    ),
    "features and events": (
        {"leads": [{"lead_id": "L1", "events": [EVENT], "features": {"x": 1}}]},
        ["body", "leads", 0],
        "either `features` or `events`",
    ),
    "neither features nor events nor stored history": (
        {"leads": [{"lead_id": "L1", "stored": False}]},
        ["body", "leads", 0],
        "either `features` or `events`",
    ),
    "leads not a list": ({"leads": {"lead_id": "L1"}}, ["body", "leads"], "array"),
    "no leads": ({"leads": []}, ["body", "leads"], "at least 1"),
    "lead id a number": ({"leads": [{"lead_id": 7, "features": {}}]}, ["body", "leads", 0, "lead_id"], "string"),
    "feature value a list": (
        {"leads": [{"lead_id": "L1", "features": {"x": [1]}}]},
        ["body", "leads", 0, "features", "x"],
        "",
    ),
    "unknown field": ({"leads": [{"lead_id": "L1", "features": {}}], "colour": "red"}, ["body", "colour"], "Extra"),
    "unknown language": ({"leads": [{"lead_id": "L1", "features": {}}], "lang": "fr"}, ["body", "lang"], "en"),
    "more than 1000 leads": (
        {"leads": [{"lead_id": f"L{i}", "features": {}} for i in range(1001)]},
        ["body", "leads"],
        "at most 1000",
    ),
    "rank page 0": ({"page": 0}, ["body", "page"], "greater than or equal to 1"),
    "rank page size over 500": ({"page_size": 501}, ["body", "page_size"], "less than or equal to 500"),
    "rank grade E": ({"grade": "E"}, ["body", "grade"], "'A'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_input_gets_422_naming_the_field(case, server, auth):
    body, loc, words = BAD[case]
    path = "/v1/rank" if case.startswith("rank") else "/v1/score"
    resp = httpx.post(server.url + path, json=body, headers=auth, timeout=60)
    assert resp.status_code == 422, resp.text[:500]
    detail = resp.json()["detail"]
    assert any(d["loc"][: len(loc)] == loc and words.lower() in d["msg"].lower() for d in detail), detail[:3]
    assert len(resp.content) < 2_000_000


def test_a_lead_missing_model_features_gets_422_naming_the_lead(server, auth):
    resp = httpx.post(
        server.url + "/v1/score",
        json={"leads": [{"lead_id": "L1", "features": {"n_card_view_7d": 1}}]},
        headers=auth,
        timeout=30,
    )
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "leads", 0, "features"]
    assert "lacks" in resp.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"[]",
        b"null",
        b'{"leads": [',
        '{"leads": "\u00e9"}'.encode("latin-1"),
        b'{"leads": [{"lead_id": "L1", "features": {}}]}' * 2,
    ],
    ids=["broken", "empty", "array", "null", "truncated", "latin-1", "two objects"],
)
def test_a_body_that_is_not_one_json_object_gets_4xx(raw, server, auth):
    resp = httpx.post(
        server.url + "/v1/score", content=raw, headers={**auth, "content-type": "application/json"}, timeout=30
    )
    assert resp.status_code in (400, 422), resp.text[:300]


def test_a_non_json_content_type_gets_4xx(server, auth):
    resp = httpx.post(
        server.url + "/v1/score",
        content=b"leads=1",
        timeout=30,
        headers={**auth, "content-type": "application/x-www-form-urlencoded"},
    )
    assert 400 <= resp.status_code < 500, resp.text[:300]


def test_more_events_than_the_request_limit_get_422_naming_the_limit(server, auth, settings):
    limit = settings.serving.max_events_per_request
    per_lead = 20_000
    leads = [
        {"lead_id": f"L{i}", "events": [{**EVENT, "event_id": f"e{i}-{j}"} for j in range(per_lead)]}
        for i in range(limit // per_lead + 1)
    ]
    resp = httpx.post(server.url + "/v1/score", json={"leads": leads, "as_of": AS_OF}, headers=auth, timeout=120)
    assert resp.status_code == 422, resp.text[:300]
    assert str(limit) in json.dumps(resp.json()["detail"]).replace(",", "")


# -- the body limit: 413 before any parsing, by Content-Length or while streaming ---------------------------------


@pytest.fixture(scope="module")
def bare_key(bare_server) -> str:
    """A real system key of the bare server: the key is checked before the body, so the limit needs one."""
    from leadradar.serving.auth import KeyStore

    return KeyStore(bare_server.settings.score_store_url).create("t01", "system", name="body limits")[1]


def test_a_body_over_max_body_bytes_gets_413_naming_the_limit(bare_server, bare_key):
    body = json.dumps({"leads": [{"lead_id": "L1", "features": {"x": "y" * 5000}}]}).encode()
    resp = httpx.post(
        bare_server.url + "/v1/score",
        content=body,
        timeout=30,
        headers={"content-type": "application/json", "Authorization": f"Bearer {bare_key}"},
    )
    assert resp.status_code == 413 and "4096" in resp.json()["detail"]


def test_a_streamed_body_over_max_body_bytes_gets_413(bare_server, bare_key):
    def chunks():
        yield b'{"leads": [{"lead_id": "L1", "features": {"x": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}}]}'

    resp = httpx.post(
        bare_server.url + "/v1/score",
        content=chunks(),
        timeout=30,
        headers={"content-type": "application/json", "Authorization": f"Bearer {bare_key}"},
    )
    assert resp.status_code == 413, resp.text[:300]


def test_an_unknown_key_is_refused_before_an_oversized_body_is_read(bare_server):
    body = json.dumps({"leads": [{"lead_id": "L1", "features": {"x": "y" * 5000}}]}).encode()
    resp = httpx.post(
        bare_server.url + "/v1/score",
        content=body,
        timeout=30,
        headers={"content-type": "application/json", "Authorization": "Bearer lr_x_y"},
    )
    assert resp.status_code == 401


def test_a_body_under_max_body_bytes_is_read(bare_server, bare_key):
    resp = httpx.post(
        bare_server.url + "/v1/score",
        json={"leads": [{"lead_id": "L1", "features": {}}]},
        headers={"Authorization": f"Bearer {bare_key}"},
        timeout=30,
    )
    assert resp.status_code == 503  # past the limit and the key, to the missing model


# -- inputs that once gave a 5xx or a vague answer, found by fuzzing -----------------------------------------


@pytest.fixture(scope="module")
def valid_row(feature_names) -> dict:
    names, categorical = feature_names
    return {f: (None if f in categorical else 1) for f in names} | {"stage_rank": 1}


@pytest.mark.parametrize("rank", ["Infinity", -1, 7, 1e300])
def test_a_stage_rank_outside_the_funnel_gets_422(rank, server, auth, valid_row):
    resp = httpx.post(
        server.url + "/v1/score",
        json={"leads": [{"lead_id": "L1", "features": {**valid_row, "stage_rank": rank}}]},
        headers=auth,
        timeout=30,
    )
    assert resp.status_code == 422, resp.text[:200]
    assert resp.json()["detail"][0]["loc"] == ["body", "leads", 0, "features", "stage_rank"]


def test_an_integer_beyond_the_float_range_gets_422(server, auth, valid_row, feature_names):
    name = next(f for f in feature_names[0] if f not in feature_names[1] and f != "stage_rank")
    raw = json.dumps({"leads": [{"lead_id": "L1", "features": {**valid_row, name: 10**400}}]})
    resp = httpx.post(
        server.url + "/v1/score", content=raw, timeout=30, headers={**auth, "content-type": "application/json"}
    )
    assert resp.status_code == 422, resp.text[:200]


@pytest.mark.parametrize("value", [1e308, -1e308])
def test_an_extreme_but_finite_share_is_answered(value, server, auth, valid_row):
    resp = httpx.post(
        server.url + "/v1/score",
        json={"leads": [{"lead_id": "L1", "features": {**valid_row, "sales_win_rate": value}}]},
        headers=auth,
        timeout=30,
    )
    assert resp.status_code in (200, 422), resp.text[:200]


def test_a_lone_surrogate_in_a_string_gets_4xx(server, auth):
    raw = b'{"leads": [{"lead_id": "\\ud800", "features": {}}]}'
    resp = httpx.post(
        server.url + "/v1/score", content=raw, timeout=30, headers={**auth, "content-type": "application/json"}
    )
    assert 400 <= resp.status_code < 500, resp.text[:200]


def test_a_feature_that_is_not_a_number_gets_422_naming_lead_and_feature(server, auth, valid_row, feature_names):
    name = next(f for f in feature_names[0] if f not in feature_names[1] and f != "stage_rank")
    leads = [{"lead_id": "L0", "features": valid_row}, {"lead_id": "L1", "features": {**valid_row, name: "abc"}}]
    resp = httpx.post(server.url + "/v1/score", json={"leads": leads}, headers=auth, timeout=30)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "leads", 1, "features", name]
