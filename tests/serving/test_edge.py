"""The service's edge against a real server: what `/` and the API docs serve, the key checked before the
body is read, and connections that stall are closed by the configured deadlines."""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from leadradar.config import Settings

pytestmark = pytest.mark.server
HEADER_SECONDS, BODY_SECONDS = 2, 3
# A <script> that loads its code from another host: `src="https://..."`, `src=http:...` or `src="//..."`.
THIRD_PARTY_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory):
    """A server on an empty data directory with short header and body deadlines (set by environment)."""
    from leadradar.serving.process import ServiceProcess

    env = {
        "LEADRADAR_SERVING__HEADER_TIMEOUT_SECONDS": str(HEADER_SECONDS),
        "LEADRADAR_SERVING__BODY_TIMEOUT_SECONDS": str(BODY_SECONDS),
        "BENTOML_HOME": str(tmp_path_factory.mktemp("edge-bentoml")),
    }
    with ServiceProcess(Settings(home=tmp_path_factory.mktemp("edge-home")), env=env, require_ready=False) as svc:
        yield svc
    # A stalled body closed by its deadline must end its request too: BentoML's timeout middleware held one open
    # for its traffic timeout (a minute), and SIGTERM waited behind it until the kill.
    assert not svc.forced, "the server did not stop on SIGTERM after the stalled connections: " + svc.tail()


def raw(server, data: bytes, wait: float = 30.0) -> tuple[bytes, float, bool]:
    """Send `data` on a fresh connection and read until the server closes it or `wait` passes:
    (what came back, seconds until then, whether the server closed the connection)."""
    port = int(server.url.rsplit(":", 1)[1])
    start = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        if data:
            sock.sendall(data)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            return answer, time.monotonic() - start, False
    return answer, time.monotonic() - start, True


def test_root_redirects_to_the_dashboard(edge):
    r = httpx.get(edge.url + "/", follow_redirects=False, timeout=30)
    assert r.status_code in (302, 303, 307), r.text[:300]
    assert r.headers["location"] == "/dashboard/"


@pytest.mark.parametrize("path", ["/", "/v1/docs", "/dashboard/login"])
def test_no_page_served_loads_a_script_from_another_host(edge, path):
    r = httpx.get(edge.url + path, follow_redirects=True, timeout=30)
    assert r.status_code == 200, (path, r.status_code)
    assert not THIRD_PARTY_SCRIPT.search(r.text), THIRD_PARTY_SCRIPT.search(r.text)
    assert "googletagmanager" not in r.text


def test_api_docs_are_one_page_with_no_script_and_every_endpoint(edge):
    r = httpx.get(edge.url + "/v1/docs", timeout=30)
    assert r.status_code == 200
    assert "<script" not in r.text.lower()
    assert "script-src" not in r.headers["content-security-policy"]
    for path in ("/v1/score", "/v1/rank", "/v1/model"):
        assert f"<code>{path}</code>" in r.text, path
    assert httpx.get(edge.url + "/v1/openapi.json", timeout=30).json()["paths"]
    assert httpx.get(edge.url + "/v1/redoc", timeout=30).status_code in (401, 404)


def test_a_request_with_a_wrong_key_is_refused_before_its_body_is_read(edge):
    """Headers announcing 1 MB and ten bytes of it: the 401 comes at once, and the connection ends there."""
    head = (
        b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer lr_0000_wrong\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    answer, _, closed = raw(edge, head + b'{"leads":[', wait=BODY_SECONDS + 20)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert closed, "the connection was left open for the rest of the body"


def test_a_streamed_body_with_a_wrong_key_gets_401_without_being_read(edge):
    """A chunked body that never ends, sent by httpx: the answer is 401, not a wait for the body."""
    sent = []

    def endless():
        for _ in range(10_000):
            sent.append(1)
            yield b"x" * 1024
            time.sleep(0.01)

    r = httpx.post(
        edge.url + "/v1/score",
        content=endless(),
        headers={"Authorization": "Bearer lr_0000_wrong"},
        timeout=BODY_SECONDS + 20,
    )
    assert r.status_code == 401
    assert len(sent) < 10_000


@pytest.mark.parametrize(
    "data",
    [b"", b"GET /heal", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"],
    ids=["silent", "half a request line", "headers never finished"],
)
def test_a_connection_that_stalls_before_its_headers_end_is_closed(edge, data):
    _, seconds, closed = raw(edge, data, wait=HEADER_SECONDS + 30)
    assert closed, f"still open after {seconds:.0f} s"
    assert seconds >= HEADER_SECONDS * 0.9


def test_a_body_that_stalls_is_closed_after_the_body_deadline(edge):
    head = (
        b"POST /dashboard/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nusername=a"
    )
    _, seconds, closed = raw(edge, head, wait=BODY_SECONDS + 30)
    assert closed, f"still open after {seconds:.0f} s"
    assert seconds >= BODY_SECONDS * 0.9


def test_requests_sent_whole_are_answered_before_and_after_an_idle_pause(edge):
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        assert client.get("/healthz").status_code == 200
        time.sleep(HEADER_SECONDS + 0.5)  # idle between requests is keep-alive's (5 s), not the header deadline
        assert client.get("/healthz").status_code == 200
