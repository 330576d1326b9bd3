"""Every /v1 error answer a test receives over httpx, checked against the OpenAPI document's `ErrorBody`.

tests/conftest.py wraps httpx for each test (`error_answers`); after the test, each 4xx/5xx answer of a
/v1 path must validate against the schema the server itself publishes at /v1/openapi.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import jsonschema

_documents: dict[str, dict] = {}


def error_schema(origin: str) -> dict:
    """The ErrorBody schema of the server at `origin`, with the document's components to resolve refs."""
    if origin not in _documents:
        _documents[origin] = httpx.get(origin + "/v1/openapi.json", timeout=30).json()
    doc = _documents[origin]
    return {**doc["components"]["schemas"]["ErrorBody"], "components": doc["components"]}


def problems(responses: list[httpx.Response]) -> list[str]:
    """One line per error answer that does not match the document, naming the request."""
    found = []
    for resp in responses:
        origin = f"{resp.request.url.scheme}://{resp.request.url.netloc.decode()}"
        where = f"{resp.request.method} {resp.request.url.path} → {resp.status_code}"
        try:
            jsonschema.validate(json.loads(resp.content), error_schema(origin))
        except (ValueError, jsonschema.ValidationError) as exc:
            found.append(f"{where}: {str(exc).splitlines()[0]}; body {resp.content[:200]!r}")
    return found


@contextmanager
def collected() -> Iterator[list[httpx.Response]]:
    """Every error answer of a /v1 path (not the docs) that httpx reads in full while the block runs."""
    seen: list[httpx.Response] = []
    original = httpx.Client.send

    def send(self: httpx.Client, request: httpx.Request, *args, **kwargs) -> httpx.Response:
        resp = original(self, request, *args, **kwargs)
        path = request.url.path
        wanted = path.startswith("/v1/") and not path.startswith("/v1/docs") and not kwargs.get("stream")
        if resp.status_code >= 400 and wanted:
            seen.append(resp)
        return resp

    httpx.Client.send = send  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        httpx.Client.send = original  # type: ignore[method-assign]
