"""One error shape for every /v1 answer that is not a success: `{"error": "<one line>", "detail": ...}`.

The document's `ErrorBody`. An integrator reads `error` whatever went wrong (401, 403, 404, 405, 413, 422, 429,
503, 500): endpoints, FastAPI's validation, Starlette's routing and the middleware of serving/limits.py all
answer through `error_body` here. `detail` is optional: the field errors of a 422, the limit of a 413.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from leadradar.serving.outages import store_fault

log = logging.getLogger(__name__)

# Both ways serving/auth.py reads a key; listed in the document so a client generator sends one.
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer lr_<key id>_<secret>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key", "description": "the same key, in its own header"},
}


def error_body(message: str, detail: Any = None) -> bytes:
    """The JSON of one error answer (ASCII only: a message may quote input that does not encode)."""
    doc: dict[str, Any] = {"error": message}
    if detail is not None:
        doc["detail"] = detail
    return json.dumps(doc, ensure_ascii=True).encode()


def error_response(status: int, message: str, detail: Any = None, headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_body(message, detail), status_code=status, media_type="application/json", headers=headers)


def invalid(errors: Sequence[Mapping[str, Any]], prefix: tuple[str, ...] = ()) -> Response:
    """422 naming the first bad field in `error`, every field error in `detail`; the input is never echoed."""
    detail = [
        {"loc": [*prefix, *e.get("loc", [])], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in errors
    ]
    first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    return error_response(422, f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}", detail)


def install(app: FastAPI, retry_after: int = 2) -> None:
    """Every error FastAPI or Starlette would answer in its own shape answers in ours; a store's fault (503, 507:
    serving/outages.py) is told apart from our bug (500), in the endpoints and in the middleware alike."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return invalid(exc.errors())

    def faulted(exc: BaseException) -> Response | None:
        fault = store_fault(exc, retry_after)
        return None if fault is None else error_response(*fault, headers={"Retry-After": str(retry_after)})

    @app.exception_handler(sa.exc.DBAPIError)
    async def store_failed(request: Request, exc: sa.exc.DBAPIError) -> Response:
        answer = faulted(exc)
        if answer is None:
            raise exc
        log.warning("%s %s answered %d: %s", request.method, request.url.path, answer.status_code, exc.orig)
        return answer

    @app.exception_handler(Exception)
    async def our_bug(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after this answer, so the traceback still reaches the server log.
        return faulted(exc) or error_response(500, "internal error; the server log has the details")


def document(doc: dict[str, Any], error_schema: str) -> dict[str, Any]:
    """The OpenAPI document with the key schemes, and every error answer (4xx, 5xx) pointing at `error_schema`."""
    components = doc.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    doc["security"] = [{name: []} for name in SECURITY_SCHEMES]
    ref = {"$ref": f"#/components/schemas/{error_schema}"}
    for item in doc.get("paths", {}).values():
        for op in item.values():
            for code, answer in op.get("responses", {}).items():
                if str(code)[0] in "45":
                    answer["content"] = {"application/json": {"schema": ref}}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(unused, None)
    return doc
