"""No input gives a 5xx on the endpoints that write or delete (issue 21 item 4): Schemathesis over `/v1/events`,
`/v1/stages`, `/v1/leads/{id}` (GET, DELETE) and the alert feedback, our own fuzzer of event items with any JSON
values, and the dashboard's rules page and feedback form with any query or form.

Everything runs as a tenant of its own (`fz`), so that nothing generated lands in, or forgets, the leads other
tests of the session read. Example counts stay small: the session server answers them in seconds.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from leadradar.serving.auth import KeyStore
from tests.serving.test_service_fuzz import EVENT_TYPES
from tests.support.dashboard_support import manager
from tests.support.schema_fuzz import FUZZ, fuzz_operation

pytestmark = pytest.mark.server
TENANT = "fz"
OPERATIONS = [
    ("POST /events", GenerationMode.POSITIVE, 25),
    ("POST /events", GenerationMode.NEGATIVE, 20),
    ("POST /stages", GenerationMode.POSITIVE, 20),
    ("POST /stages", GenerationMode.NEGATIVE, 15),
    ("GET /leads/{lead_id}", GenerationMode.POSITIVE, 20),
    ("GET /leads/{lead_id}", GenerationMode.NEGATIVE, 15),
    ("DELETE /leads/{lead_id}", GenerationMode.POSITIVE, 15),
    ("DELETE /leads/{lead_id}", GenerationMode.NEGATIVE, 10),
    ("POST /alerts/{alert_id}/feedback", GenerationMode.POSITIVE, 15),
    ("POST /alerts/{alert_id}/feedback", GenerationMode.NEGATIVE, 15),
]


@pytest.fixture(scope="module")
def schema(server):
    return schemathesis.openapi.from_url(server.url + "/v1/openapi.json")


@pytest.fixture(scope="module")
def auth(server, settings) -> dict[str, str]:
    """A system key of the fuzz tenant, in both headers the API reads (a generated X-Api-Key cannot replace it)."""
    token = KeyStore(settings.score_store_url).create(TENANT, "system", name="write fuzz")[1]
    return {"Authorization": f"Bearer {token}", "X-Api-Key": token}


@pytest.mark.parametrize("label,mode,examples", OPERATIONS, ids=[f"{o[0]}-{o[1].value}" for o in OPERATIONS])
def test_schemathesis_finds_no_server_error_on_writes_and_deletes(label, mode, examples, schema, server, auth, capsys):
    summary = fuzz_operation(schema, label, mode, examples, server.url + "/v1", auth)
    with capsys.disabled():
        print("\n" + summary)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**400), 10**400)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", " ", "2026-03-01T10:00:00+08:00", "2026-03-01 10:00", "NaN", "\u0000", "\U0001f600"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
EVENT_FIELDS = ["event_id", "lead_id", "sales_id", "ts", "event_type", "dwell_s", "item_id", "channel", "tenant_id"]


def test_event_items_with_any_json_values_get_200_413_or_422_never_5xx(server, auth, capsys):
    codes: list[int] = []

    @hsettings(FUZZ, max_examples=60)
    @given(data=st.data(), n=st.integers(0, 4))
    def fuzz(data, n):
        items = []
        for i in range(n):
            item = {
                "event_id": f"fz-{i}-{data.draw(st.integers(0, 10**6))}",
                "lead_id": "fz-L1",
                "sales_id": "fz-S1",
                "ts": "2026-03-01T10:00:00+08:00",
                "event_type": data.draw(st.sampled_from([*EVENT_TYPES, "privacy_consent"])),
            }
            for name in data.draw(st.lists(st.sampled_from(EVENT_FIELDS), max_size=4, unique=True)):
                item[name] = data.draw(json_values, label=name)
            items.append(item)
        r = httpx.post(server.url + "/v1/events", json={"events": items}, headers=auth, timeout=60)
        codes.append(r.status_code)
        assert r.status_code in (200, 413, 422), r.text[:300]
        if r.status_code == 200:
            done = r.json()
            assert done["received"] == done["stored"] + done["duplicate"] + done["quarantined"] == n

    fuzz()
    with capsys.disabled():
        print(f"\nevent item fuzz: {len(codes)} requests, statuses {dict(sorted(Counter(codes).items()))}")


@pytest.fixture(scope="module")
def dashboard(server, settings):
    """A manager of the fuzz tenant signed in to the server's dashboard."""
    name, password = manager(settings, TENANT)
    with httpx.Client(base_url=server.url, timeout=30, headers={"Origin": server.url}) as client:
        r = client.post("/dashboard/login", data={"username": name, "password": password, "next": "/dashboard/"})
        assert r.status_code in (200, 303), r.text[:300]
        yield client


def test_the_rules_page_and_the_feedback_form_never_answer_5xx(dashboard, capsys):
    codes: list[int] = []
    text = st.text(max_size=40)

    @hsettings(FUZZ, max_examples=40)
    @given(
        query=st.dictionaries(st.sampled_from(["lang", "msg", "tenant", "rule", "sales", "x"]), text, max_size=3),
        alert=st.text(min_size=1, max_size=30).filter(lambda s: s not in (".", "..")),
        form=st.one_of(
            st.dictionaries(st.sampled_from(["verdict", "next", "csrf", "x"]), text, max_size=3),
            st.binary(max_size=60),
        ),
    )
    def fuzz(query, alert, form):
        r = dashboard.get("/dashboard/rules", params=query)
        codes.append(r.status_code)
        assert r.status_code < 500, r.text[:300]
        path = f"/dashboard/alerts/{quote(alert, safe='')}/feedback"
        sent = {"data": form} if isinstance(form, dict) else {"content": form}
        r = dashboard.post(path, headers={"content-type": "application/x-www-form-urlencoded"}, **sent)
        codes.append(r.status_code)
        assert r.status_code < 500, r.text[:300]

    fuzz()
    with capsys.disabled():
        print(f"\ndashboard form fuzz: {len(codes)} requests, statuses {dict(sorted(Counter(codes).items()))}")
