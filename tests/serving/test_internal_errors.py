"""An answer to an exception no handler took (our bug, a store's fault in the middleware) keeps the connection open.

Starlette's last handler answered such an exception and then re-raised it to uvicorn, which closed the connection;
under load the client's next request on that pooled connection failed with a reset (the mixed traffic of
tests/serving/test_service_load.py). A real uvicorn serves an app with the service's error handling
(serving/errors.py), and one HTTP/1.1 connection carries the requests one after the other.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from leadradar.serving import errors
from leadradar.serving.process import free_port


class FailingGate:
    """A middleware whose own store read fails, as the key check's does when its database is out of reach."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/gate-down":
            raise sa.exc.OperationalError("SELECT key", {}, ConnectionRefusedError("connection refused"))
        await self.app(scope, receive, send)


def app() -> FastAPI:
    made = FastAPI()
    made.add_middleware(FailingGate)
    errors.install(made, retry_after=3)

    @made.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    @made.get("/bug")
    def bug() -> dict[str, bool]:
        raise RuntimeError("a bug in an endpoint")

    return made


@pytest.fixture(scope="module")
def served() -> Iterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield port
    server.should_exit = True
    thread.join(timeout=10)


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, dict, dict]:
    conn.request("GET", path)
    answer = conn.getresponse()
    return answer.status, dict(answer.getheaders()), json.loads(answer.read())


@pytest.mark.parametrize(
    ("path", "status", "said"),
    [("/bug", 500, "internal error"), ("/gate-down", 503, "out of reach")],
)
def test_an_unhandled_error_is_answered_in_our_shape_and_the_next_request_on_the_connection_is_served(
    served, path, status, said, caplog
):
    conn = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
    try:
        assert get(conn, "/ok")[0] == 200
        sock = conn.sock
        with caplog.at_level(logging.WARNING, logger="leadradar.serving.errors"):
            code, headers, body = get(conn, path)
        assert code == status and said in body["error"]
        assert (headers.get("retry-after") == "3") == (status == 503)
        code, _, body = get(conn, "/ok")
        assert (code, body) == (200, {"ok": True})
        assert conn.sock is sock, "the connection was opened again"
        assert f"GET {path} answered {status}" in caplog.text
        assert ("a bug in an endpoint" in caplog.text) == (status == 500)  # a bug's traceback is in the log
    finally:
        conn.close()


@pytest.fixture(scope="module")
def ledger_out_of_reach(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A service whose lifecycle ledger is a PostgreSQL port nobody listens on; its URL and a manager's key."""
    pytest.importorskip("psycopg", reason="psycopg is in the dev extra: pip install -e '.[dev]'")
    from leadradar.config import Settings
    from leadradar.serving.auth import KeyStore
    from leadradar.serving.process import ServiceProcess

    settings = Settings(home=tmp_path_factory.mktemp("ledger-away-home"))
    token = KeyStore(settings.score_store_url).create("t01", "manager", name="ledger out of reach")[1]
    env = {
        "LEADRADAR_LIFECYCLE__URL": f"postgresql+psycopg://leadradar@127.0.0.1:{free_port()}/ledger",
        "BENTOML_HOME": str(tmp_path_factory.mktemp("ledger-away-bentoml")),
    }
    with ServiceProcess(settings, env=env, require_ready=False) as svc:
        yield svc.url, token


@pytest.mark.server
def test_a_service_whose_lifecycle_ledger_is_out_of_reach_starts_and_model_answers_503(ledger_out_of_reach):
    """The ledger `/v1/model` reads is opened at its first use, not with the service: a ledger database out of
    reach costs that endpoint a 503, not the service its start."""
    import httpx

    url, token = ledger_out_of_reach
    assert httpx.get(url + "/healthz", timeout=10).status_code == 200
    for _ in range(2):  # tried again at the next request, and answered the same
        answer = httpx.get(url + "/v1/model", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 503, answer.text
        assert "out of reach" in answer.json()["error"] and answer.headers["retry-after"]
