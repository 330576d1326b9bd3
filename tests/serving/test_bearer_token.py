"""One reading of `Authorization: Bearer <key>`: the API's key gate, its endpoints and the dashboard agree."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from leadradar.serving.auth import KeyStore, bearer_token, request_key
from leadradar.serving.dashboard.sessions import Gate, SessionLedger, SessionSigner
from leadradar.serving.dashboard.throttle import LoginThrottle
from leadradar.serving.limits import KeyGate
from leadradar.serving.users import UserStore

KEY = "lr_abc123_s3cr3t-value"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("Bearer", None),
        ("Bearer ", None),
        (f"Basic {KEY}", None),
        (f"Token {KEY}", None),
        (KEY, None),
        (f"Bearer{KEY}", None),
        (f"Bearer {KEY} extra", None),
        (f"Bearer {KEY}", KEY),
        (f"bearer {KEY}", KEY),
        (f"BEARER {KEY}", KEY),
        (f"BeArEr {KEY}", KEY),
        (f"Bearer    {KEY}   ", KEY),
        (f"  Bearer {KEY}", KEY),
        (f"Bearer\t{KEY}", KEY),
    ],
)
def test_bearer_token_reads_only_the_bearer_scheme_in_any_case_with_any_spacing(header, token):
    assert bearer_token(header) == token


def test_an_x_api_key_header_wins_and_a_blank_one_falls_back_to_the_bearer_token():
    assert request_key(f"Bearer {KEY}", "lr_other_key") == "lr_other_key"
    assert request_key(f"Bearer {KEY}", " lr_other_key ") == "lr_other_key"
    assert request_key(f"Bearer {KEY}", "  ") == KEY
    assert request_key(f"Bearer {KEY}", None) == KEY
    assert request_key(KEY, None) is None
    assert request_key(None, None) is None


HEADERS = ["Bearer {key}", "bearer {key}", "BEARER   {key} ", "{key}", "Basic {key}", "Bearer", "Bearer {key} x", ""]


def test_the_api_key_gate_and_the_dashboard_accept_the_same_authorization_headers(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    keys = KeyStore(url, cache_seconds=0)
    _, key = keys.create("t01", "manager", name="both doors")
    app = Starlette(routes=[Route("/model", lambda request: PlainTextResponse("ok"))])
    app.state.keys = keys
    app.add_middleware(KeyGate)
    dashboard = Gate(
        SessionSigner(b"secret", 1.0), UserStore(url), keys, LoginThrottle(url, 5, 20, 60.0), SessionLedger(url, 3600)
    )

    with TestClient(app) as client:
        for template in HEADERS:
            header = template.format(key=key)
            through_gate = client.get("/model", headers={"Authorization": header}).status_code == 200
            on_dashboard = dashboard.from_bearer(header) is not None
            assert through_gate == on_dashboard == (bearer_token(header) == key), header
